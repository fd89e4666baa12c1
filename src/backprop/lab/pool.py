"""The worker processes that run stability-map cells: one capped pool for a whole server.

A stability map trains dozens of short runs; each runs in a worker process so the session
(and the server's event loop) never waits for them. One :class:`CellPool` serves every
session of a server, so however many maps the pages start, cancel or abandon, the server
holds at most ``max_workers`` processes::

    pool = CellPool(max_workers=2)
    batch = pool.submit(cell_function, jobs)     # queued behind the maps already running
    for result in batch:                        # in the order the cells finish
        ...
    batch.cancel()                              # queued cells dropped, running ones stopped
    pool.close()

How a cell is stopped: each worker process has a shared flag; the cell function receives
``should_stop`` (a callable) and checks it between chunks of work (see
:func:`backprop.lab.cells.stability_cell`). A worker that has not stopped within
``stop_grace_s`` is killed and replaced by a fresh one when next needed. A worker also
stops by itself when the server process is gone.

Workers are started lazily (``spawn``: a fresh interpreter, safe however many threads the
server runs) and exit after ``idle_exit_s`` without work, so an idle lab holds no process.
Batches take turns: a big map does not hold a second page's map back until it is done.

:class:`RayCellPool` has the same ``submit``/``close`` and runs the same cell function as
Ray tasks on a cluster instead (``backprop lab --ray ADDRESS``); it allows bigger maps,
up to :data:`RAY_MAX_CELLS` cells.
"""
from __future__ import annotations

import collections
import itertools
import logging
import multiprocessing
import os
import queue
import threading
import time

__all__ = ["Batch", "CellError", "CellPool", "RAY_MAX_CELLS", "RayBatch", "RayCellPool",
           "default_workers"]

log = logging.getLogger("backprop.lab")

_MAX_DEFAULT_WORKERS = 4
_POLL_S = 0.05            # how often a slot looks at its worker's answer and the batch's cancel

RAY_MAX_CELLS = 1024
"""Cells one stability map may have on Ray (32 x 32); the local pool keeps the lab's own cap."""


def default_workers() -> int:
    """Worker processes a server uses by default: its usable cores, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_DEFAULT_WORKERS, cores))


class CellError(RuntimeError):
    """A cell failed in its worker process (the message names the exception)."""


# -- the worker process ---------------------------------------------------------------------------
def _worker_main(conn, stop_flag, parent_pid: int) -> None:
    """A worker process: run ``(function, job)`` tasks from ``conn`` until told to stop."""
    def should_stop() -> bool:
        # The flag is set by the server on cancel; a changed parent means the server is gone.
        return bool(stop_flag.value) or os.getppid() != parent_pid

    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):          # the server closed the pipe or died
            return
        if task is None:
            return
        function, job = task
        try:
            result = function(job, should_stop)
            answer = ("cancelled", None) if result is None else ("ok", result)
        except Exception as e:  # noqa: BLE001 -- sent back; the worker serves the next task
            answer = ("error", f"{type(e).__name__}: {e}")
        try:
            conn.send(answer)
        except (OSError, ValueError):
            return


class _Worker:
    """One worker process and its pipe and stop flag (restarted when it had to be killed)."""

    def __init__(self, context):
        self.context = context
        self.process = None
        self.conn = None
        self.stop_flag = context.RawValue("b", 0)

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def start(self) -> None:
        parent, child = self.context.Pipe()
        self.process = self.context.Process(
            target=_worker_main, args=(child, self.stop_flag, os.getpid()),
            name="backprop-lab-cell", daemon=True)
        self.process.start()
        child.close()
        self.conn = parent

    def stop(self, grace: float) -> None:
        """Ask the process to exit; kill it if it has not within ``grace`` seconds."""
        if self.process is None:
            return
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(grace)
        self.kill()

    def kill(self) -> None:
        if self.process is None:
            return
        if self.process.is_alive():
            self.process.kill()
        self.process.join()       # reaped before any replacement starts: never over the cap
        self.conn.close()
        self.process = self.conn = None


# -- batches --------------------------------------------------------------------------------------
class Batch:
    """The cells of one map: iterate for results (in finishing order); ``cancel`` to stop.

    Iterating raises :class:`CellError` if a cell failed; leaving the loop early (break,
    an exception, closing the iterator) cancels the rest.
    """

    _ids = itertools.count(1)

    def __init__(self, pool: CellPool, function, jobs: list, cancel=None):
        self.id = next(self._ids)
        self.pool = pool
        self.function = function
        self.total = len(jobs)
        self.pending = collections.deque(jobs)     # not yet handed to a worker
        self.results: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.cancel_event = cancel               # the caller's: set, it cancels the batch

    def cancel(self) -> None:
        """Drop the cells not started; stop the running ones (returns at once)."""
        self.pool._cancel(self)

    def __iter__(self):
        received = 0
        try:
            while received < self.total and not self.cancelled.is_set():
                if self.cancel_event is not None and self.cancel_event.is_set():
                    return
                try:
                    kind, value = self.results.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise CellError(value)
                received += 1
                yield value
        finally:
            self.cancel()


class CellPool:
    """At most ``max_workers`` processes running cells for every map of a server.

    Args:
        max_workers: processes at most (default :func:`default_workers`).
        stop_grace_s: how long a cancelled cell may take to stop before its process is
            killed.
        idle_exit_s: a worker process without work this long exits (a new one starts when
            needed).

    Example::

        pool = CellPool(max_workers=2)
        squares = sorted(pool.submit(square_cell, [1, 2, 3]))   # square_cell(job, should_stop)
        pool.close()
    """

    max_cells = None     # a map's cells at most: None, the lab's own LIMITS cap

    def __init__(self, max_workers: int | None = None, *, stop_grace_s: float = 5.0,
                 idle_exit_s: float = 30.0):
        if max_workers is None:
            max_workers = default_workers()
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"CellPool: max_workers must be a positive int, got "
                             f"{max_workers!r}")
        self.max_workers = max_workers
        self.stop_grace_s = stop_grace_s
        self.idle_exit_s = idle_exit_s
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Condition()
        self._batches: collections.deque = collections.deque()   # with cells not yet started
        self._live: set = set()        # batches not cancelled nor finished (close cancels them)
        self._slots: set = set()       # threads, one per worker process (alive or to start)
        self._idle = 0                 # slots waiting for a cell
        self._closed = False

    # -- public ------------------------------------------------------------------------------
    def submit(self, function, jobs, cancel=None) -> Batch:
        """Queue ``function(job, should_stop)`` for each job; returns the :class:`Batch`.

        ``function`` must be importable by name (it runs in another process) and return a
        picklable result, or None when ``should_stop()`` made it stop early. ``cancel``: a
        ``threading.Event`` that, once set, cancels the batch as :meth:`Batch.cancel` does
        (the iterator notices it within a fraction of a second).
        """
        batch = Batch(self, function, list(jobs), cancel)
        with self._lock:
            if self._closed:
                raise RuntimeError("CellPool: submit after close")
            self._live.add(batch)
            if batch.pending:
                self._batches.append(batch)
            self._grow()
            self._lock.notify_all()
        return batch

    def close(self, wait: bool = True) -> None:
        """Cancel everything and stop the workers (``wait``: until their processes are gone)."""
        with self._lock:
            self._closed = True
            for batch in self._live:
                batch.pending.clear()
                batch.cancelled.set()
            self._live.clear()
            self._batches.clear()
            slots = list(self._slots)
            self._lock.notify_all()
        if wait:
            for slot in slots:
                slot.join()

    def worker_count(self) -> int:
        """Worker slots now (each holds at most one process)."""
        with self._lock:
            return len(self._slots)

    # -- scheduling ----------------------------------------------------------------------------
    def _grow(self) -> None:
        """Start slots for queued cells that no idle slot will take (lock held)."""
        waiting = sum(len(b.pending) for b in self._batches)
        while len(self._slots) < self.max_workers and waiting > self._idle:
            slot = threading.Thread(target=self._serve, name="backprop-lab-cells", daemon=True)
            self._slots.add(slot)
            waiting -= 1
            slot.start()

    def _cancel(self, batch: Batch) -> None:
        with self._lock:
            batch.cancelled.set()
            batch.pending.clear()
            self._live.discard(batch)
            if batch in self._batches:
                self._batches.remove(batch)

    def _next(self):
        """The next (batch, job), taking turns between batches; None: exit this slot."""
        with self._lock:
            deadline = time.monotonic() + self.idle_exit_s
            while not self._batches:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    return None
                self._idle += 1
                try:
                    self._lock.wait(left)
                finally:
                    self._idle -= 1
            batch = self._batches.popleft()
            job = batch.pending.popleft()
            if batch.pending:
                self._batches.append(batch)       # its next cell waits for the others' turn
            return batch, job

    def _serve(self) -> None:
        """A slot: feed one worker process cells until idle for too long or closed."""
        worker = _Worker(self._context)
        try:
            while True:
                task = self._next()
                if task is None:
                    return
                self._run(worker, *task)
        except Exception:  # noqa: BLE001 -- a bug here must not leave a process behind
            log.exception("lab: a stability-map worker slot failed")
        finally:
            worker.stop(self.stop_grace_s)
            # Only now that its process is gone may another slot take its place.
            with self._lock:
                self._slots.discard(threading.current_thread())
                if not self._closed:
                    self._grow()

    def _run(self, worker: _Worker, batch: Batch, job) -> None:
        """Run one cell on ``worker``; its answer goes to the batch unless it was cancelled."""
        if batch.cancelled.is_set():
            return
        if not worker.alive():
            if worker.process is not None:
                worker.kill()
            worker.start()
        worker.stop_flag.value = 0
        try:
            worker.conn.send((batch.function, job))
        except (OSError, ValueError) as e:      # the process died between two cells
            worker.kill()
            batch.results.put(("error", f"a worker process died ({e})"))
            return
        stop_by = None
        while True:
            if worker.conn.poll(_POLL_S):
                try:
                    kind, value = worker.conn.recv()
                except (EOFError, OSError):
                    kind, value = "error", "a worker process died"
                    worker.kill()
                if kind != "cancelled" and not batch.cancelled.is_set():
                    batch.results.put((kind, value))
                return
            if not worker.alive():
                worker.kill()
                if not batch.cancelled.is_set():
                    batch.results.put(("error", "a worker process died"))
                return
            if stop_by is None and (batch.cancelled.is_set() or self._closed):
                worker.stop_flag.value = 1
                stop_by = time.monotonic() + self.stop_grace_s
            elif stop_by is not None and time.monotonic() > stop_by:
                log.warning("lab: a cancelled stability cell did not stop within %.0f s; "
                            "killing its worker", self.stop_grace_s)
                worker.kill()
                return


# -- on a Ray cluster -----------------------------------------------------------------------------
class RayBatch:
    """The cells of one map running as Ray tasks; iterate and cancel as a :class:`Batch`."""

    def __init__(self, pool: RayCellPool, function, jobs: list, cancel=None):
        from backprop.sweep import _ray
        self.pool = pool
        self.total = len(jobs)
        self.cancelled = threading.Event()
        self.cancel_event = cancel
        self._cells = _ray.RayCells(function, jobs)

    def cancel(self) -> None:
        """Drop the cells not started; kill the running ones' workers (returns at once)."""
        if not self.cancelled.is_set():
            self.cancelled.set()
            self._cells.cancel()
            self.pool._live.discard(self)

    def __iter__(self):
        try:
            while self._cells.pending and not self.cancelled.is_set():
                if self.cancel_event is not None and self.cancel_event.is_set():
                    return
                for kind, value in self._cells.ready(_POLL_S):
                    if kind == "error":
                        raise CellError(value)
                    if kind == "ok":
                        yield value
        finally:
            self.cancel()


class RayCellPool:
    """Runs stability-map cells as Ray tasks (one CPU each) on a Ray cluster.

    Same ``submit``/``close`` as :class:`CellPool`; the cluster's scheduler, not a cap of
    ours, decides how many run at once. Connects when built: ``address`` is what
    ``ray.init`` takes (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:PORT"``); None uses the
    Ray this process already joined (or starts an embedded one). Raises
    :class:`backprop.sweep.SweepError` (one line) if Ray is missing or the address does
    not answer.

    Example::

        pool = RayCellPool("127.0.0.1:6379")
        results = list(pool.submit(square_cell, [1, 2, 3]))   # square_cell(job, should_stop)
        pool.close()                                            # leaves the cluster
    """

    max_cells = RAY_MAX_CELLS

    def __init__(self, address: str | None = None):
        from backprop.sweep import _ray
        self.address = address
        self._connected = _ray.connect_for_cells(address)
        self.max_workers = _ray.cluster_cpus()
        self._live: set = set()
        self._closed = False

    def submit(self, function, jobs, cancel=None) -> RayBatch:
        """Start ``function(job, None)`` for each job on the cluster; returns the batch."""
        if self._closed:
            raise RuntimeError("RayCellPool: submit after close")
        batch = RayBatch(self, function, list(jobs), cancel)
        self._live.add(batch)
        return batch

    def worker_count(self) -> int:
        """CPUs of the cluster (the tasks that can run at once)."""
        return self.max_workers

    def close(self, wait: bool = True) -> None:
        """Cancel every map; leave the cluster if this pool joined it."""
        if self._closed:
            return
        self._closed = True
        for batch in list(self._live):
            batch.cancel()
        if self._connected:
            from backprop.sweep import _ray
            _ray.disconnect()
