"""The lab's web server: the page, the settings table and one training session per WebSocket.

Needs the ``lab`` extra (``pip install 'backprop[lab]'``: FastAPI and uvicorn)::

    import uvicorn
    from backprop.lab.server import create_app

    if __name__ == "__main__":   # stability maps start worker processes that import __main__
        uvicorn.run(create_app(), host="127.0.0.1", port=8000,
                    ws_max_size=WS_MAX_MESSAGE_BYTES)

Routes: ``/`` (index.html), ``/static/*`` (the page's files, shipped in the package),
``GET /api/settings`` (the controls table), ``GET /api/limits``, and the WebSocket ``/ws``
whose messages are described in :mod:`backprop.lab.protocol`.

How a connection runs:

- a receive task on the event loop checks each message (size, JSON, type, rate) and hands
  it to the session's worker thread; a bad one is answered with an ``error`` message and
  the session carries on;
- the worker thread owns the :class:`~backprop.lab.session.LabSession`: it applies the
  commands between training steps, trains at the chosen speed while playing, and makes a
  state frame at most ``max_fps`` times a second, only when something changed;
- a send task writes the worker's messages to the socket in order; state frames are
  coalesced, so a slow browser gets the latest frame and never a backlog (training never
  waits for the browser); a page that stops reading altogether is closed (1013) once its
  queue passes ``max_outbox_bytes``, so it can't grow the server's memory;
- stability maps run on one :class:`~backprop.lab.pool.CellPool` for the whole server, at
  most ``stability_workers`` processes however many maps the pages start (or, with
  ``ray_address``, on a :class:`~backprop.lab.pool.RayCellPool`: Ray tasks on a cluster);
  the cells they train are kept in one :class:`~backprop.lab.cells.CellCache` (4096 cells,
  least recently used out), so a map asked for again, by any page, runs only what it lacks;
- on disconnect the worker thread is stopped, and so are the running cells of its map.

Origin check: browsers always send an Origin header on WebSocket handshakes, so a page on
another site that tries to drive the lab is recognised by it: an Origin whose host and port
differ from the request's Host (treating localhost, 127.0.0.1 and [::1] as one) and that is
not in ``allowed_origins`` is refused with close code 1008. A handshake without Origin is
not from a browser page (scripts, tests) and is allowed. ``allowed_hosts`` also checks the
Host header, of the WebSocket (1008) and of every HTTP request (400): the CLI sets it to the
loopback names when it binds to loopback, which stops DNS-rebinding pages that would
otherwise look same-origin.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import itertools
import logging
import math
import queue
import threading
import time
import traceback
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.websockets import WebSocketDisconnect

from backprop.lab.cells import CellCache
from backprop.lab.pool import CellPool, RayCellPool
from backprop.lab.protocol import WS_MAX_MESSAGE_BYTES, Command, ProtocolError, dumps, parse_message
from backprop.lab.session import LIMITS, LabSession
from backprop.lab.settings import (
    MAX_SPEED,
    SETTINGS,
    LabError,
    defaults,
    public_table,
    shown,
    validate,
)

__all__ = ["LOOPBACK_HOSTS", "WS_MAX_MESSAGE_BYTES", "create_app", "origin_allowed",
           "static_dir"]

log = logging.getLogger("backprop.lab")

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
CLOSE_POLICY = 1008      # policy violation: a foreign Origin
CLOSE_TRY_LATER = 1013   # too many sessions
_UNLIMITED_CHUNK_S = 0.01  # at full speed, train this long between looks at the commands
_MAX_CATCH_UP_S = 0.2      # a worker that fell behind its speed skips, rather than bursts
# A changed setting trains one step at once, whatever the speed, so its frame comes within
# 100 ms; at most one such step in this long (a dragged slider sends many changes).
_CHANGE_STEP_GAP_S = 0.05
_JOIN_TIMEOUT_S = 5.0
_CLOSE_TIMEOUT_S = 2.0     # a page that stopped reading may not take its close frame either
_MAX_OUTBOX_BYTES = 8 * 1024 * 1024
"""Unsent messages one page may have queued (after dropping stale ones) before it is closed."""
_MESSAGE_OVERHEAD = 100    # bytes counted per queued message besides its text
_LATEST_ONLY = ("status", "settings")   # when the queue is full, only the newest is kept
_session_ids = itertools.count(1)


def static_dir() -> Path:
    """The folder of the page's files inside the installed package."""
    return Path(str(resources.files("backprop.lab").joinpath("static")))


# -- origin -------------------------------------------------------------------------------------
def _host_port(netloc: str, scheme: str):
    """(hostname, port) of ``host[:port]``; the port defaults by scheme."""
    parts = urlsplit(f"//{netloc}")
    try:
        port = parts.port
    except ValueError:
        return None, None
    host = (parts.hostname or "").lower()
    if port is None:
        port = 443 if scheme in ("https", "wss") else 80
    return host, port


def origin_allowed(origin: str | None, host: str | None, allowed_origins=None,
                   scheme: str = "http") -> bool:
    """Whether a WebSocket handshake with this Origin and Host header may open a session.

    Example::

        origin_allowed("http://localhost:8000", "127.0.0.1:8000")     # True
        origin_allowed("https://evil.example", "127.0.0.1:8000")      # False
    """
    if origin is None:
        return True          # not a browser page: browsers always send Origin here
    if allowed_origins and origin.rstrip("/") in allowed_origins:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or host is None:
        return False         # "null" (sandboxed frames, file://) and other oddities
    o_host, o_port = _host_port(parts.netloc, parts.scheme)
    h_host, h_port = _host_port(host, scheme)
    if o_host is None or h_host is None:
        return False
    if o_port != h_port:
        return False
    return o_host == h_host or (o_host in LOOPBACK_HOSTS and h_host in LOOPBACK_HOSTS)


def _host_allowed(host: str | None, allowed_hosts) -> bool:
    if allowed_hosts is None:
        return True
    h_host, _ = _host_port(host or "", "http")
    return h_host in allowed_hosts


# -- rate limit -----------------------------------------------------------------------------------
class _TokenBucket:
    """``rate`` messages a second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


# -- the worker -----------------------------------------------------------------------------------
class _Worker:
    """The thread that owns one LabSession: commands in, messages out.

    ``post`` (thread safe) queues an outgoing message and wakes the sender. The queue is
    bounded: a state frame replaces any unsent older one; when the queue exceeds
    ``max_outbox_bytes`` the stale ``status`` and ``settings`` messages (those a newer one
    supersedes) are dropped, and if it still does the page is not reading (or reads far
    slower than it asks), so the worker marks itself ``behind``, drops the queue and sets
    ``kicked``: the connection is closed (1013) rather than let the server's memory grow
    without bound.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, max_fps: float, session_kwargs: dict,
                 pool=None, max_outbox_bytes: int = _MAX_OUTBOX_BYTES, cache=None):
        self.id = next(_session_ids)
        self.loop = loop
        self.frame_interval = 1.0 / max_fps
        self.session_kwargs = session_kwargs
        self.pool = pool
        self.cache = cache            # the server's CellCache: cells of maps already made
        self.commands: queue.Queue = queue.Queue()
        self.outbox: collections.deque = collections.deque()   # [type, dict or text or None]
        self.last_state: list | None = None   # the outbox entry of the last state frame
        self.out_bytes = 0           # text queued in the outbox, plus a little per message
        self.max_outbox_bytes = max_outbox_bytes
        self.behind = False
        self.out_lock = threading.Lock()
        self.wake = asyncio.Event()
        self.kicked = asyncio.Event()
        self.stopped = threading.Event()
        self.session: LabSession | None = None
        self.running = False
        self.full_frame = True
        self.frame_version: int | None = None
        self.last_frame = -math.inf
        self.changed_at: int | None = None   # step count when a setting last changed, until
        #                                     its frame
        self.allowance = 0.0
        self.last_tick = time.monotonic()
        self.change_step_at = -math.inf     # when a changed setting last trained its own step
        self.stability_cancel: threading.Event | None = None
        self.stability_thread: threading.Thread | None = None
        self.mapping = threading.Event()      # a stability map runs (until its "done" is sent)
        self.thread = threading.Thread(target=self._run, name=f"backprop-lab-session-{self.id}",
                                       daemon=True)

    # -- plumbing ---------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def submit(self, command: Command) -> None:
        self.commands.put(command)

    def request_stop(self) -> None:
        """Ask the thread (and a stability map) to stop; returns at once."""
        self.stopped.set()
        self.commands.put(None)
        if self.stability_cancel is not None:
            self.stability_cancel.set()

    def join(self, timeout: float = _JOIN_TIMEOUT_S) -> None:
        """Wait for the thread and a stability map to finish."""
        self.thread.join(timeout)
        stability = self.stability_thread
        if stability is not None:
            stability.join(timeout)

    def post(self, message: dict) -> None:
        """Queue a message for the page (from any thread); see the class docstring."""
        kind = message.get("type")
        with self.out_lock:
            if self.behind:
                return               # the connection is being closed
            # A state frame stays a dict until sent (a newer one may take its points).
            entry = [kind, message if kind == "state" else dumps(message)]
            if kind == "state":
                older = self.last_state
                if older is not None and older[1] is not None:    # unsent: now stale
                    if "points" in older[1] and "points" not in message:
                        message["points"] = older[1]["points"]   # keep the data it carried
                    self._forget(older)
                self.last_state = entry
            self.outbox.append(entry)
            if isinstance(entry[1], str):
                self.out_bytes += len(entry[1]) + _MESSAGE_OVERHEAD
            if self.out_bytes > self.max_outbox_bytes:
                self._drop_stale()
                if self.out_bytes > self.max_outbox_bytes:
                    self._fall_behind()
                    return
        self._call(self.wake.set)

    def _drop_stale(self) -> None:
        """Keep only the newest unsent ``status`` and ``settings`` (lock held)."""
        seen = set()
        for entry in reversed(self.outbox):
            if entry[0] in _LATEST_ONLY and entry[1] is not None:
                if entry[0] in seen:
                    self._forget(entry)
                seen.add(entry[0])
        self.outbox = collections.deque(e for e in self.outbox if e[1] is not None)

    def _forget(self, entry: list) -> None:
        """Empty an outbox entry in place (O(1); the sender skips it)."""
        if isinstance(entry[1], str):
            self.out_bytes -= len(entry[1]) + _MESSAGE_OVERHEAD
        entry[1] = None

    def _fall_behind(self) -> None:
        """The page stays behind: forget its queue and have the connection closed."""
        log.warning("lab session %s: the page is not reading its messages (%d queued, %d "
                    "bytes); closing the connection", self.id, len(self.outbox), self.out_bytes)
        self.behind = True
        self.outbox.clear()
        self.last_state = None
        self.out_bytes = 0
        self.request_stop()
        self._call(self.kicked.set)

    def _call(self, callback) -> None:
        try:
            self.loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the event loop is gone: the connection is closing
            pass

    def take(self) -> str | None:
        """The next message's text, or None when the queue is empty."""
        with self.out_lock:
            while self.outbox:
                entry = self.outbox.popleft()
                payload = entry[1]
                if payload is None:
                    continue                 # superseded by a newer one
                self._forget(entry)          # sent: a newer one of its type must not touch it
                break
            else:
                return None
        return payload if isinstance(payload, str) else dumps(payload)

    def error(self, message: str, field: str | None = None) -> None:
        self.post({"type": "error", "message": message, "field": field})

    # -- the loop -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        finally:
            if self.session is not None:
                self.session.close()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            try:
                command = self.commands.get(timeout=self._timeout())
            except queue.Empty:
                command = False
            while command is not False:
                if command is None or self.stopped.is_set():
                    return
                self._handle(command)
                try:
                    command = self.commands.get_nowait()
                except queue.Empty:
                    command = False
            self._train()
            try:
                self._maybe_frame(force=self._change_trained())
            except Exception as e:  # noqa: BLE001 -- report it; the thread must not die
                log.exception("lab session %s: snapshot failed", self.id)
                self.frame_version = self.session.version if self.session else None
                self.running = False
                self.error(f"drawing the state failed: {type(e).__name__}: {e}")

    def _timeout(self):
        """How long the loop may sleep waiting for a command."""
        waits = []
        now = time.monotonic()
        session = self.session
        if session is not None and self.running and session.diverged is None:
            speed = session.settings["speed"]
            if speed >= MAX_SPEED:
                return 0
            waits.append(max(0.0, (1.0 - self.allowance) / speed))
            if self._change_waits():  # its own step, once the gap since the last one is over
                waits.append(max(0.0, self.change_step_at + _CHANGE_STEP_GAP_S - now))
        if session is not None and session.version != self.frame_version:
            waits.append(max(0.0, self.last_frame + self.frame_interval - now))
        return min(waits) if waits else None

    def _train(self) -> None:
        session = self.session
        now = time.monotonic()
        if session is None or not self.running or session.diverged is not None:
            self.last_tick = now
            self.allowance = 0.0
            return
        speed = session.settings["speed"]
        try:
            if speed >= MAX_SPEED:
                end = now + _UNLIMITED_CHUNK_S
                while time.monotonic() < end and session.diverged is None:
                    session.step(1)
            else:
                self.allowance = min(self.allowance + (now - self.last_tick) * speed,
                                     max(1.0, speed * _MAX_CATCH_UP_S))
                n = max(int(self.allowance), 0)
                if not n and self._change_waits() \
                        and now - self.change_step_at >= _CHANGE_STEP_GAP_S:
                    # A setting just changed: train one step with it now, so its frame need
                    # not wait for the next step at a slow speed. It is borrowed from the
                    # next step, but the debt is at most that one step: changes made one
                    # after another each show their effect at once, and the speed resumes.
                    self.change_step_at = now
                    self.allowance = max(self.allowance - 1.0, -1.0)
                    session.step(1)
                elif n:
                    self.allowance -= n
                    session.step(n)
        except Exception as e:  # a bug must not kill the session silently  # noqa: BLE001
            log.exception("lab session %s: training step failed", self.id)
            self.running = False
            self.error(f"training stopped: {type(e).__name__}: {e}")
            self._status()
        self.last_tick = now
        if session.diverged is not None and self.running:
            self.running = False
            self._status()

    def _change_waits(self) -> bool:
        """A setting changed and no step has trained with it yet."""
        return self.changed_at is not None and self.session is not None \
            and self.session.step_count <= self.changed_at

    def _change_trained(self) -> bool:
        """A setting changed and a step has trained with it: its frame goes out now, not at
        the next frame slot (half a slot, 50 ms, on average), unless a frame went out less
        than a quarter of a slot ago (a slider dragged sends many changes)."""
        session = self.session
        if self.changed_at is None or session is None:
            return False
        if session.step_count <= self.changed_at and self.running \
                and session.diverged is None:
            return False                     # no step with the new setting yet
        if time.monotonic() - self.last_frame < self.frame_interval / 4:
            return False
        self.changed_at = None
        return True

    def _maybe_frame(self, force: bool = False) -> None:
        session = self.session
        if session is None:
            return
        now = time.monotonic()
        if session.version == self.frame_version and not self.full_frame:
            return
        if not force and now - self.last_frame < self.frame_interval:
            return
        frame = session.snapshot("full" if self.full_frame else "frame")
        if session.diverged is not None and self.running:
            # The doctor's verdict, reached while drawing this frame, stops training as a
            # step that diverged does (else a reset would set it training again on its own).
            self.running = False
            self._status()
        frame["running"] = self.running
        self.full_frame = False
        self.frame_version = session.version
        self.last_frame = now
        self.post(frame)

    def _status(self) -> None:
        self.post({"type": "status", "running": self.running,
                   "step": self.session.step_count if self.session else 0})

    def _settings(self) -> None:
        self.post({"type": "settings", "values": dict(self.live.settings)})

    # -- commands -------------------------------------------------------------------------------
    def _ensure_session(self) -> None:
        if self.session is None:
            self.session = LabSession(**self.session_kwargs)
            self.full_frame = True

    @property
    def live(self) -> LabSession:
        """The session the commands act on (``_handle`` makes it before any but hello)."""
        if self.session is None:
            raise RuntimeError(f"lab session {self.id} has no session yet")
        return self.session

    def _handle(self, command: Command) -> None:
        try:
            handler = getattr(self, f"_do_{command.type}")
            if command.type != "hello":
                self._ensure_session()
            handler(**command.args)
        except LabError as e:
            self.error(str(e), e.field)
            if self.session is not None and command.type in ("set", "upload_csv", "hello"):
                self._settings()  # the page puts its controls back to what is in force
        except Exception as e:  # noqa: BLE001 -- reported to the page, the session goes on
            log.error("lab session %s: %s failed\n%s", self.id, command.type,
                      traceback.format_exc())
            self.error(f"{command.type} failed: {type(e).__name__}: {e}")

    def _do_hello(self, settings=None) -> None:
        good: dict = {}
        # In the table's order, whatever the link's: "activations" is checked against the
        # link's "hidden", which comes before it in the table.
        order = {name: i for i, name in enumerate(SETTINGS)}
        items = sorted((settings or {}).items(), key=lambda kv: order.get(kv[0], len(order)))
        for name, value in items:
            try:
                validate({**good, name: value}, defaults())
                good[name] = value
            except LabError as e:
                self.error(f"ignored from the link: {e}", e.field)
        session = None
        while session is None:
            try:
                session = LabSession(good, **self.session_kwargs)
            except LabError as e:     # e.g. dataset=csv in a link: there is no upload yet
                if not good:  # the defaults themselves fail: a server problem, not the link
                    raise
                self.error(f"ignored from the link: {e}", e.field)
                if e.field in good:
                    del good[e.field]
                else:
                    good = {}
        if self.session is not None:
            self.live.close()
        self.session = session
        self.running = False
        self.changed_at = None
        self.full_frame = True
        self._settings()
        self._status()
        self._maybe_frame(force=True)

    def _do_play(self) -> None:
        if self.live.diverged is not None:
            raise LabError(f"training diverged at step {self.live.diverged['step']}; "
                           f"reset to start again")
        self.running = True
        self.last_tick = time.monotonic()
        self.allowance = 0.0
        self._status()

    def _do_pause(self) -> None:
        self.running = False
        self._status()

    def _do_step(self) -> None:
        self.running = False
        detail = self.live.one_step_detail()
        self.post(detail)
        self._status()
        self._maybe_frame(force=True)

    def _do_reset(self, lr=None) -> None:
        self.live.reset(lr)
        # Step 0 again: no change waits for its own step (the step count that marked one
        # is from before), and this frame goes out now.
        self.changed_at = None
        self._settings()
        self._status()
        self._maybe_frame(force=True)

    def _do_set(self, values) -> None:
        self.live.apply(values)
        self.changed_at = self.live.step_count
        self._settings()

    def _do_upload_csv(self, text) -> None:
        size = len(text.encode("utf-8"))
        if size > LIMITS["max_csv_bytes"]:
            raise LabError(f"the CSV has {size} bytes; the lab takes files of at most "
                           f"{LIMITS['max_csv_bytes']} bytes", "text")
        info = self.live.load_csv(text)
        self.changed_at = None        # the session may start again from step 0: see _do_reset
        self.post({"type": "csv_loaded", **info})
        self._settings()
        self._status()

    def _do_export(self, what) -> None:
        name = self.live.export_filename(what)
        if what == "script":
            self.post({"type": "export", "what": what, "filename": name,
                       "text": self.live.export_script()})
        else:
            data = self.live.export_checkpoint()
            self.post({"type": "export", "what": what, "filename": name,
                       "base64": base64.b64encode(data).decode("ascii")})

    def _do_stability_map(self, lrs=None, batch_sizes=None, steps=None, axis=None,
                          values=None) -> None:
        if self.mapping.is_set():
            raise LabError("a stability map is already running; wait for it or cancel it")
        max_cells = getattr(self.pool, "max_cells", None)   # bigger maps on Ray
        axis = axis or "batch_size"
        lrs, values, steps = self.live.stability_grid(lrs, batch_sizes, steps, max_cells,
                                                      axis=axis, values=values)
        cancel = threading.Event()
        cells = self.live.stability_map(lrs, None, steps, axis=axis, values=values,
                                        cancel=cancel, pool=self.pool, max_cells=max_cells,
                                        cache=self.cache)
        self.stability_cancel = cancel
        if self.stopped.is_set():  # the client left while the grid was being set up
            cancel.set()
        self.mapping.set()
        start = {"type": "stability_start", "lrs": lrs, "axis": axis, "values": values,
                 "steps": steps}
        if axis == "batch_size":
            start["batch_sizes"] = values      # what pages before the other axes read
        self.post(start)

        def run():
            count, cancelled = 0, False
            try:
                for cell in cells:
                    if cancel.is_set():
                        break
                    self.post(cell)
                    count += 1
                cancelled = cancel.is_set()
            except Exception as e:  # noqa: BLE001 -- a worker process failed
                log.exception("lab session %s: stability map failed", self.id)
                self.error(f"stability map failed: {type(e).__name__}: {e}")
                cancelled = True
            finally:
                cells.close()
            # Over before "done" goes out: a page may ask for the next map as soon as it sees it.
            self.mapping.clear()
            self.post({"type": "stability_done", "cells": count, "cancelled": cancelled})

        self.stability_thread = threading.Thread(
            target=run, name=f"backprop-lab-stability-{self.id}", daemon=True)
        self.stability_thread.start()

    def _do_cancel_stability(self) -> None:
        if self.stability_cancel is not None:
            self.stability_cancel.set()


# -- Host check ---------------------------------------------------------------------------------
class _HostCheck:
    """Refuse HTTP requests whose Host header is not allowed (400), against DNS rebinding.

    A page on evil.example whose name is rebound to 127.0.0.1 could otherwise read the
    lab's pages as its own origin. The WebSocket does its own check (it closes with 1008).
    """

    def __init__(self, app, allowed_hosts):
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host")
            if not _host_allowed(host, self.allowed_hosts):
                log.warning("lab: refused an HTTP request for host %r", host)
                response = PlainTextResponse(
                    f"this lab answers only for {', '.join(sorted(self.allowed_hosts))}, "
                    f"not for the host {shown(host)}", status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- the app --------------------------------------------------------------------------------------
def create_app(*, max_sessions: int = 8, allowed_origins=None, allowed_hosts=None,
               max_fps: float = 10.0, message_rate: float = 60.0, message_burst: int = 120,
               session_kwargs: dict | None = None, stability_workers: int | None = None,
               max_outbox_bytes: int = _MAX_OUTBOX_BYTES,
               ray_address: str | None = None) -> FastAPI:
    """The lab as an ASGI app.

    Args:
        max_sessions: WebSocket sessions open at once; more are told so and closed (1013).
        allowed_origins: extra Origins allowed to open a session (e.g. a reverse proxy's
            ``"https://lab.example.org"``); same-host and loopback Origins always are.
        allowed_hosts: hostnames the Host header of a page or the WebSocket may name
            (None: any); others get 400 (1008 for the WebSocket). The CLI passes the
            loopback names when serving on loopback, against DNS rebinding.
        max_fps: state frames per second at most, per session.
        message_rate, message_burst: incoming messages per second per session, on average
            and in a burst; beyond that messages are dropped with an error.
        session_kwargs: passed to each :class:`~backprop.lab.session.LabSession`.
        stability_workers: worker processes for stability maps, shared by all sessions
            (default: the usable cores, at most 4). A cancelled map, or one whose page
            left, stops its running cells.
        max_outbox_bytes: unsent messages one page may have queued (stale frames are
            dropped first); a page that stays further behind is closed with 1013.
        ray_address: run stability maps as Ray tasks on this cluster (``"auto"``,
            ``"HOST:PORT"``, ``"ray://HOST:PORT"``) instead of local processes, with maps
            of up to :data:`~backprop.lab.pool.RAY_MAX_CELLS` cells; a Ray this process
            already joined is used as it is. Connects here: raises
            :class:`backprop.sweep.SweepError` (one line) if Ray is missing or the
            address does not answer. ``stability_workers`` is then unused.

    Example::

        from fastapi.testclient import TestClient
        with TestClient(create_app()).websocket_connect("/ws") as ws:
            ws.send_json({"type": "hello"})
            ws.receive_json()["type"]          # 'settings'
    """
    if not isinstance(max_sessions, int) or isinstance(max_sessions, bool) or max_sessions < 1:
        raise ValueError(f"create_app: max_sessions must be a positive int, got "
                         f"{max_sessions!r}")
    if not max_fps > 0:
        raise ValueError(f"create_app: max_fps must be positive, got {max_fps!r}")
    origins = {o.rstrip("/") for o in (allowed_origins or ())}
    hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}
    folder = static_dir()
    pool = CellPool(stability_workers) if ray_address is None else RayCellPool(ray_address)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.to_thread(pool.close)

    app = FastAPI(title="backprop lab", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.workers = {}
    app.state.max_sessions = max_sessions
    app.state.stability_pool = pool
    app.state.stability_cache = cache = CellCache()
    if hosts is not None:
        app.add_middleware(_HostCheck, allowed_hosts=hosts)

    no_cache = {"Cache-Control": "no-cache"}

    @app.get("/", include_in_schema=False)
    async def index():
        page = folder / "index.html"
        if not page.is_file():
            return HTMLResponse("<!doctype html><title>backprop lab</title><p>The lab's page is "
                                "missing from this installation.</p>", status_code=500)
        return FileResponse(page, media_type="text/html", headers=no_cache)

    @app.get("/api/settings")
    async def settings_table():
        return JSONResponse(public_table(), headers=no_cache)

    @app.get("/api/limits")
    async def limits():
        return JSONResponse({**LIMITS, "max_fps": max_fps, "max_sessions": max_sessions,
                             "sessions": len(app.state.workers),
                             "stability_workers": pool.max_workers,
                             "max_stability_cells": pool.max_cells or
                             LIMITS["max_stability_cells"],
                             "stability_on": "local" if ray_address is None else "ray",
                             "settings": list(SETTINGS)}, headers=no_cache)

    if folder.is_dir():
        app.mount("/static", StaticFiles(directory=str(folder)), name="static")

    @app.websocket("/ws")
    async def lab_socket(websocket: WebSocket):
        origin = websocket.headers.get("origin")
        host = websocket.headers.get("host")
        scheme = "https" if websocket.url.scheme == "wss" else "http"
        if not _host_allowed(host, hosts) or not origin_allowed(origin, host, origins, scheme):
            log.warning("lab: refused a WebSocket from origin %r (host %r)", origin, host)
            await websocket.close(code=CLOSE_POLICY)
            return
        await websocket.accept()
        if len(app.state.workers) >= max_sessions:
            await websocket.send_text(dumps({
                "type": "error", "field": None,
                "message": f"the lab already has {max_sessions} sessions open; close another "
                           f"tab and reload"}))
            await websocket.close(code=CLOSE_TRY_LATER, reason="too many sessions")
            return
        worker = _Worker(asyncio.get_running_loop(), max_fps, dict(session_kwargs or {}),
                         pool=pool, max_outbox_bytes=max_outbox_bytes, cache=cache)
        app.state.workers[worker.id] = worker
        worker.start()
        sender = asyncio.create_task(_send_loop(websocket, worker))
        # A send to a closed socket fails the sender; the receive loop sees the disconnect.
        sender.add_done_callback(lambda task: task.cancelled() or task.exception())
        receiver = asyncio.create_task(
            _receive_loop(websocket, worker, _TokenBucket(message_rate, message_burst)))
        kicked = asyncio.create_task(worker.kicked.wait())
        try:
            await asyncio.wait({receiver, kicked}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done():
                receiver.result()         # a bug in the receive loop is raised, not lost
            if worker.kicked.is_set():
                # The page stopped reading: its queue is gone; close without waiting on it.
                sender.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(websocket.close(
                        code=CLOSE_TRY_LATER, reason="the page fell too far behind"),
                        _CLOSE_TIMEOUT_S)
        finally:
            # Synchronous first: even if this task is being cancelled, the session is
            # forgotten and its thread told to stop.
            app.state.workers.pop(worker.id, None)
            worker.request_stop()
            sender.cancel()
            receiver.cancel()
            kicked.cancel()
            await asyncio.to_thread(worker.join)

    return app


async def _receive_loop(websocket: WebSocket, worker: _Worker, bucket: _TokenBucket) -> None:
    warned_at = -math.inf
    while True:
        try:
            message = await websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text")
        if data is None:
            data = message.get("bytes")
        if not bucket.take():
            now = time.monotonic()
            if now - warned_at > 1.0:     # one warning a second, not one per dropped message
                warned_at = now
                worker.error("too many messages: some were dropped (slow down)")
            continue
        try:
            command = parse_message(data if data is not None else "")
        except ProtocolError as e:
            worker.error(str(e), e.field)
            continue
        except Exception as e:  # noqa: BLE001 -- a bug in the checks must not end the session
            log.exception("lab session %s: reading a message failed", worker.id)
            worker.error(f"the lab could not read that message ({type(e).__name__})")
            continue
        worker.submit(command)


async def _send_loop(websocket: WebSocket, worker: _Worker) -> None:
    while True:
        await worker.wake.wait()
        worker.wake.clear()
        while True:
            text = worker.take()
            if text is None:
                break
            await websocket.send_text(text)
