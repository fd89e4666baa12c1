"""The Ray executor: runs a sweep's trials as Ray Tune trials. The only module importing Ray.

Ray is imported inside the functions, so ``import backprop`` never loads it. Each Tune
trial calls :func:`backprop.sweep.trial.run_trial` (a real ``run_experiment`` into the
trial's folder); the driver's Tune callback appends each finished trial's record to
``sweep.jsonl`` (the one writer). A retried trial continues from its folder's checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from backprop.sweep.progress import TrialProgress
from backprop.sweep.space import SweepError
from backprop.sweep.trial import record_from_folder, run_trial

__all__ = ["execute", "check_address", "connect_for_cells", "RayCells"]

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a cluster's address to answer before calling it unreachable."""
CLIENT_ATTEMPTS = 3
"""Connections tried through Ray Client (ray://) when the head's server for one fails."""


def _import_ray():
    # Before Ray is imported: no usage reports, and Tune's older, quieter console output.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100")
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SweepError("backprop sweep needs Ray: pip install 'backprop[ray]'") from None
    return ray, tune


# An HTTP/2 client's opening: the connection preface and an empty SETTINGS frame. Every Ray
# address (the GCS and the Ray Client server) is a gRPC server, so it answers with a frame
# of its own; anything else (a web server, a silent port) is caught here in bounded time,
# where ray.init would retry it for ever.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_H2_SETTINGS = 4
"""The frame type a gRPC server sends first (RFC 9113, section 3.4)."""


def check_address(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """SweepError unless ``HOST:PORT`` (or ``ray://HOST:PORT``) answers as a gRPC server.

    Connects, sends the HTTP/2 preface and reads the first 9-byte frame header, all within
    ``timeout`` seconds: a port that refuses, stays silent, closes, or answers in another
    protocol is a one-line error naming the address and what it did.
    """
    if address == "auto":
        return
    text = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SweepError(f"--address must be auto, HOST:PORT or ray://HOST:PORT, got "
                         f"{address!r}")
    deadline = time.monotonic() + timeout
    header = b""
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as conn:
            conn.sendall(_H2_PREFACE)
            while len(header) < 9:
                conn.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = conn.recv(9 - len(header))
                if not chunk:
                    break
                header += chunk
    except TimeoutError:
        if not header:
            raise SweepError(f"the address {address} accepted a connection but did not answer "
                             f"within {timeout:g} s: no Ray cluster is listening there") \
                from None
    except OSError as e:
        raise SweepError(f"cannot reach the Ray cluster at {address}: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    if len(header) < 9 or header[3] != _H2_SETTINGS:
        seen = header[:16].decode("ascii", "replace").strip() or "nothing"
        raise SweepError(f"the address {address} answers, but not as a Ray cluster (a Ray "
                         f"address speaks gRPC; this one replied {seen!r}). Give the head "
                         f"node's GCS port (ray start --head --port, 6379 by default) or "
                         f"ray://HOST:PORT of its Ray Client server (10001 by default)")


@contextlib.contextmanager
def _quiet_stderr():
    """Hide what Ray's C++ core prints on file descriptor 2 while it connects (a line a
    second while an address answers but is no Ray): the error that follows is one line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no file descriptor 2: nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _connect(ray, address, num_cpus):
    """Start an embedded Ray (address None) or join a cluster; True when we started it."""
    if ray.is_initialized():
        return False
    common = dict(include_dashboard=False, log_to_driver=False,
                  logging_level=logging.ERROR, configure_logging=True)
    if address is None:
        ray.init(num_cpus=num_cpus or len(os.sched_getaffinity(0)) or 1, **common)
        return True
    check_address(address)
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            with _quiet_stderr():
                if address.startswith("ray://"):
                    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
                else:
                    ray.init(address=address, **{k: v for k, v in common.items()
                                                 if k != "include_dashboard"})
            return True
        except (ConnectionError, RuntimeError, ValueError) as e:
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            # Through Ray Client each connection starts a server process on the head that
            # calls ray.init itself; on a busy head that can fail once: try a fresh one.
            if lines and lines[0].startswith("Initialization failure from server") \
                    and attempt < CLIENT_ATTEMPTS:
                time.sleep(attempt)
                continue
            reason = " ".join(lines[:2]) if lines else type(e).__name__
            if reason.startswith("Failed to connect to Ray cluster"):
                reason = "no Ray cluster answered there (is `ray start --head` running?)"
            raise SweepError(f"cannot connect to the Ray cluster at {address}: {reason}") \
                from None
    return True  # pragma: no cover - the loop returns or raises


def _trainable(config, points=None, base=None, trials_dir=None, interval=None):
    """One Tune trial: run the trial, report each epoch, and report its record last."""
    from ray import tune

    trial_id = config["trial_id"]
    record = run_trial(trial_id, points[trial_id], base, trials_dir,
                       report=lambda metrics: tune.report(dict(metrics)),
                       diagnostics_interval=interval)
    final = dict(record["final"])
    if final.get("test_loss") is None:
        final["test_loss"] = final.get("train_loss")
    tune.report({**{k: v for k, v in final.items() if v is not None},
                 "epoch": record["epochs"], "record": json.dumps(record)})


def execute(pending, base: dict, trials_dir: str, log, *, total: int, asha=False,
            metric="test_loss", address=None, tune_dir=None, max_retries=3, progress=True,
            cpus_per_trial=1, num_cpus=None, interval=25) -> dict:
    """Run ``pending`` ``[(trial_id, point), ...]`` on Ray; log each record as it ends.

    Returns ``{trial_id: error}`` for trials that failed past ``max_retries`` retries.
    """
    ray, tune = _import_ray()
    started_ray = _connect(ray, address, num_cpus)
    failed = {}
    points = dict(pending)
    bar = TrialProgress(total, done=total - len(pending), metric=metric) if progress else None

    def finish(record):
        if log.append(record) and bar is not None:
            bar.update(record)

    def from_result(trial_id, result):
        """A record for a trial that ended without reporting one (stopped by ASHA)."""
        final = {k: result.get(k) for k in ("train_loss", "test_loss", "accuracy")}
        run_dir = os.path.join(trials_dir, trial_id)
        # ASHA stops a trial at its last epoch too: only a shorter one stopped early
        stopped = (result.get("epoch") or 0) < _epochs(trial_id)
        if os.path.isdir(run_dir):
            return record_from_folder(trial_id, points[trial_id], run_dir,
                                      stopped_early=stopped, final=final)
        return {"trial_id": trial_id, "config": points[trial_id], "final": final, "best": None,
                "diverged": False, "reason": None, "stopped_early": stopped, "findings": [],
                "epochs": result.get("epoch") or 0, "seconds": result.get("time_total_s") or 0,
                "run_dir": run_dir}

    def _epochs(trial_id):
        return int(points[trial_id].get("epochs", base.get("epochs", 100)))

    def handle(event):
        """One event from Tune's callbacks; only this process writes sweep.jsonl."""
        kind, trial_id, payload = event
        if kind == "failed":
            failed[trial_id] = payload
        elif kind == "record":
            finish(json.loads(payload))
        elif trial_id not in log:  # "ended": a trial that ended without its record
            finish(from_result(trial_id, payload))

    # Through Ray Client (ray://) Tune runs its driver loop, callbacks included, on the head
    # node: the callbacks send their events back through a Ray queue, read here by a thread.
    client = bool(address and address.startswith("ray://"))
    queue = reader = None
    emit: Callable[[tuple], Any]
    if client:
        from ray.util.queue import Queue
        queue = Queue(actor_options={"num_cpus": 0})
        emit = queue.put
        reader = _QueueReader(queue, handle)
    else:
        emit = handle

    from ray.tune import Callback as TuneCallback  # (imported by _import_ray above)

    class LogRecords(TuneCallback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "record" in result:
                emit(("record", trial.config["trial_id"], result["record"]))

        def on_trial_complete(self, iteration, trials, trial, **info):
            result = dict(trial.last_result or {})
            if "record" in result:
                emit(("record", trial.config["trial_id"], result["record"]))
            else:
                emit(("ended", trial.config["trial_id"],
                      {k: result.get(k) for k in ("train_loss", "test_loss", "accuracy",
                                                  "epoch", "time_total_s")}))

        def on_trial_error(self, iteration, trials, trial, **info):
            error = getattr(trial, "error_msg", None) or "the trial failed"
            emit(("failed", trial.config["trial_id"], str(error).strip().splitlines()[-1]))

    try:
        scheduler = None
        if asha:
            from ray.tune.schedulers import ASHAScheduler
            # max_t past the longest trial: a trial that reaches its last epoch reports its
            # own record instead of being stopped there by the scheduler
            scheduler = ASHAScheduler(time_attr="epoch",
                                      max_t=max(_epochs(t) for t in points) + 1,
                                      grace_period=1, reduction_factor=2)
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, points=points, base=base, trials_dir=trials_dir,
                                 interval=interval),
            {"cpu": cpus_per_trial})
        tuner = tune.Tuner(
            trainable,
            param_space={"trial_id": tune.grid_search([t for t, _ in pending])},
            tune_config=tune.TuneConfig(scheduler=scheduler, metric=metric if asha else None,
                                        reuse_actors=True,
                                        mode="min" if asha else None, num_samples=1),
            run_config=tune.RunConfig(
                name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
                storage_path=tune_dir, verbose=0, log_to_file=False,
                failure_config=tune.FailureConfig(max_failures=max_retries),
                callbacks=[LogRecords()]))
        grid = tuner.fit()
        if reader is not None:
            reader.finish()  # every event the callbacks sent, in order, before the net below
        for result in grid:  # a safety net: every trial ends logged or failed
            trial_id = (result.config or {}).get("trial_id")
            if trial_id is None or trial_id in log or trial_id in failed:
                continue
            if result.error is not None:
                failed[trial_id] = str(result.error).strip().splitlines()[-1]
            elif result.metrics and "record" in result.metrics:
                finish(json.loads(result.metrics["record"]))
            else:
                finish(from_result(trial_id, result.metrics or {}))
    finally:
        if reader is not None:
            reader.finish()
        if bar is not None:
            bar.close()
        if started_ray:
            ray.shutdown()
    for trial_id in list(failed):
        if trial_id in log:  # it failed once, then a retry finished it
            del failed[trial_id]
    return failed



class _QueueReader:
    """Calls ``handle`` on each event from a Ray queue, in a thread, until :meth:`finish`."""

    def __init__(self, queue, handle):
        import threading
        self.queue, self.handle = queue, handle
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, name="sweep-events", daemon=True)
        self.thread.start()

    def _run(self):
        from ray.util.queue import Empty
        while not self.stop.is_set():
            try:
                event = self.queue.get(timeout=0.5)
            except Empty:
                continue
            try:
                self.handle(event)
            except BaseException as e:  # raised again by finish(), in the sweep's thread
                self.error = e
                return

    def finish(self):
        """Stop the thread, then handle what is still queued (the callbacks have returned)."""
        if self.thread is None:
            return
        from ray.util.queue import Empty
        self.stop.set()
        self.thread.join()
        self.thread = None
        try:
            if self.error is not None:
                raise self.error
            while True:
                try:
                    event = self.queue.get_nowait()
                except Empty:
                    break
                self.handle(event)
        finally:
            self.queue.shutdown()


# -- the lab's stability-map cells as Ray tasks ---------------------------------------------------
_LAB_MISSING = "backprop lab --ray needs Ray: pip install 'backprop[ray]'"


def connect_for_cells(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` for the lab's cells; True when this call connected.

    A Ray already initialised in this process is used as it is (False: not ours to shut
    down); ``address`` None starts an embedded local Ray. Raises :class:`SweepError` (one
    line) when Ray is missing or the cluster cannot be reached, within
    :data:`CONNECT_TIMEOUT` seconds for an address that does not answer.
    """
    try:
        ray, _ = _import_ray()
    except SweepError:
        raise SweepError(_LAB_MISSING) from None
    if address is not None:  # checked even when Ray is already up: a bad address is an error
        check_address(address)
    return _connect(ray, address, None)


def disconnect() -> None:
    """Leave the Ray cluster (or stop the embedded Ray) that :func:`connect_for_cells` joined."""
    import ray
    ray.shutdown()


def cluster_cpus() -> int:
    """CPUs of the Ray cluster this process is connected to (at least 1)."""
    import ray
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


_REMOTE: dict = {}   # cell function -> its Ray remote function (exported once per process)


class RayCells:
    """``function(job, None)`` for each job as Ray tasks, one CPU each; results as they end.

    The same cell function the lab's process pool runs, unchanged: it gets no
    ``should_stop`` (a cancelled Ray task's worker is killed instead)::

        cells = RayCells(stability_cell, jobs)
        for kind, value in cells.ready(timeout=0.05): ...   # ("ok", result) / ("error", text)
        cells.cancel()
    """

    def __init__(self, function, jobs):
        import ray
        remote = _REMOTE.get(function)
        if remote is None:
            remote = _REMOTE[function] = ray.remote(num_cpus=1, max_retries=1)(function)
        self._refs = [remote.remote(job, None) for job in jobs]

    @property
    def pending(self) -> int:
        """Tasks not yet collected."""
        return len(self._refs)

    def ready(self, timeout: float) -> list:
        """The tasks that ended within ``timeout`` seconds: ``[(kind, value), ...]``."""
        import ray
        if not self._refs:
            return []
        done, self._refs = ray.wait(self._refs, num_returns=len(self._refs), timeout=timeout,
                                    fetch_local=True)
        answers: list[tuple[str, Any]] = []
        for ref in done:
            try:
                result = ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                continue
            except ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None) or e
                text = str(cause).strip().splitlines()
                answers.append(("error", f"{type(cause).__name__}: {text[-1] if text else ''}"))
                continue
            except ray.exceptions.RayError as e:     # a worker or node died past the retry
                text = str(e).strip().splitlines()
                answers.append(("error", f"a Ray worker failed ({text[0] if text else e})"))
                continue
            answers.append(("cancelled", None) if result is None else ("ok", result))
        return answers

    def cancel(self) -> None:
        """Drop the queued tasks and kill the running ones (returns at once)."""
        import ray
        refs, self._refs = self._refs, []
        for ref in refs:
            try:
                # force: a cell busy in C code (or sleeping) is not reached by an interrupt;
                # its worker process is killed and Ray starts another when needed
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 -- already finished or the cluster is gone
                pass
