"""The lab's web server: the page, the settings table and one training session per WebSocket.

Needs the ``lab`` extra (``pip install 'backprop[lab]'``: FastAPI and uvicorn)::

    import uvicorn
    from backprop.lab.server import create_app

    if __name__ == "__main__":   # stability maps start worker processes that import __main__
        uvicorn.run(create_app(), host="127.0.0.1", port=8000)

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
  waits for the browser);
- on disconnect the worker thread and any stability map are stopped.

Origin check: browsers always send an Origin header on WebSocket handshakes, so a page on
another site that tries to drive the lab is recognised by it: an Origin whose host and port
differ from the request's Host (treating localhost, 127.0.0.1 and [::1] as one) and that is
not in ``allowed_origins`` is refused with close code 1008. A handshake without Origin is
not from a browser page (scripts, tests) and is allowed. ``allowed_hosts`` also checks the
Host header (the CLI sets it to the loopback names when it binds to loopback, which stops
DNS-rebinding pages that would otherwise look same-origin).
"""
from __future__ import annotations

import asyncio
import base64
import collections
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
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from backprop.lab.protocol import Command, ProtocolError, dumps, parse_message
from backprop.lab.session import LIMITS, LabSession
from backprop.lab.settings import MAX_SPEED, SETTINGS, LabError, defaults, public_table, validate

__all__ = ["LOOPBACK_HOSTS", "create_app", "origin_allowed", "static_dir"]

log = logging.getLogger("backprop.lab")

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
CLOSE_POLICY = 1008      # policy violation: a foreign Origin
CLOSE_TRY_LATER = 1013   # too many sessions
_UNLIMITED_CHUNK_S = 0.01  # at full speed, train this long between looks at the commands
_MAX_CATCH_UP_S = 0.2      # a worker that fell behind its speed skips, rather than bursts
_JOIN_TIMEOUT_S = 5.0
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

    ``post`` (thread safe) queues an outgoing message and wakes the sender; state frames
    replace an unsent older frame instead of queueing behind it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, max_fps: float, session_kwargs: dict):
        self.id = next(_session_ids)
        self.loop = loop
        self.frame_interval = 1.0 / max_fps
        self.session_kwargs = session_kwargs
        self.commands: queue.Queue = queue.Queue()
        self.outbox: collections.deque = collections.deque()
        self.out_lock = threading.Lock()
        self.wake = asyncio.Event()
        self.stopped = threading.Event()
        self.session: LabSession | None = None
        self.running = False
        self.full_frame = True
        self.frame_version = None
        self.last_frame = -math.inf
        self.allowance = 0.0
        self.last_tick = time.monotonic()
        self.stability_cancel: threading.Event | None = None
        self.stability_thread: threading.Thread | None = None
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
        with self.out_lock:
            if message.get("type") == "state" and self.outbox \
                    and self.outbox[-1].get("type") == "state":
                older = self.outbox.pop()    # never sent: the browser is behind
                if "points" in older and "points" not in message:
                    message["points"] = older["points"]
            self.outbox.append(message)
        try:
            self.loop.call_soon_threadsafe(self.wake.set)
        except RuntimeError:  # the event loop is gone: the connection is closing
            pass

    def take(self):
        with self.out_lock:
            return self.outbox.popleft() if self.outbox else None

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
                self._maybe_frame()
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
                n = int(self.allowance)
                if n:
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
        frame["running"] = self.running
        self.full_frame = False
        self.frame_version = session.version
        self.last_frame = now
        self.post(frame)

    def _status(self) -> None:
        self.post({"type": "status", "running": self.running,
                   "step": self.session.step_count if self.session else 0})

    def _settings(self) -> None:
        self.post({"type": "settings", "values": dict(self.session.settings)})

    # -- commands -------------------------------------------------------------------------------
    def _ensure_session(self) -> None:
        if self.session is None:
            self.session = LabSession(**self.session_kwargs)
            self.full_frame = True

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
        good = {}
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
            self.session.close()
        self.session = session
        self.running = False
        self.full_frame = True
        self._settings()
        self._status()
        self._maybe_frame(force=True)

    def _do_play(self) -> None:
        if self.session.diverged is not None:
            raise LabError(f"training diverged at step {self.session.diverged['step']}; "
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
        detail = self.session.one_step_detail()
        self.post(detail)
        self._status()
        self._maybe_frame(force=True)

    def _do_reset(self) -> None:
        self.session.reset()
        self._settings()
        self._status()
        self._maybe_frame(force=True)

    def _do_set(self, values) -> None:
        self.session.apply(values)
        self._settings()

    def _do_upload_csv(self, text) -> None:
        if len(text.encode("utf-8")) > LIMITS["max_csv_bytes"]:
            raise LabError(f"the CSV is too big; the lab takes at most "
                           f"{LIMITS['max_csv_bytes']} bytes", "text")
        info = self.session.load_csv(text)
        self.post({"type": "csv_loaded", **info})
        self._settings()
        self._status()

    def _do_export(self, what) -> None:
        name = self.session.export_filename(what)
        if what == "script":
            self.post({"type": "export", "what": what, "filename": name,
                       "text": self.session.export_script()})
        else:
            data = self.session.export_checkpoint()
            self.post({"type": "export", "what": what, "filename": name,
                       "base64": base64.b64encode(data).decode("ascii")})

    def _do_stability_map(self, lrs=None, batch_sizes=None, steps=None) -> None:
        if self.stability_thread is not None and self.stability_thread.is_alive():
            raise LabError("a stability map is already running; wait for it or cancel it")
        lrs, batch_sizes, steps = self.session.stability_grid(lrs, batch_sizes, steps)
        cancel = threading.Event()
        cells = self.session.stability_map(lrs, batch_sizes, steps, cancel=cancel)
        self.stability_cancel = cancel
        if self.stopped.is_set():  # the client left while the grid was being set up
            cancel.set()
        self.post({"type": "stability_start", "lrs": lrs, "batch_sizes": batch_sizes,
                   "steps": steps})

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
            self.post({"type": "stability_done", "cells": count, "cancelled": cancelled})

        self.stability_thread = threading.Thread(
            target=run, name=f"backprop-lab-stability-{self.id}", daemon=True)
        self.stability_thread.start()

    def _do_cancel_stability(self) -> None:
        if self.stability_cancel is not None:
            self.stability_cancel.set()


# -- the app --------------------------------------------------------------------------------------
def create_app(*, max_sessions: int = 8, allowed_origins=None, allowed_hosts=None,
               max_fps: float = 10.0, message_rate: float = 60.0, message_burst: int = 120,
               session_kwargs: dict | None = None) -> FastAPI:
    """The lab as an ASGI app.

    Args:
        max_sessions: WebSocket sessions open at once; more are told so and closed (1013).
        allowed_origins: extra Origins allowed to open a session (e.g. a reverse proxy's
            ``"https://lab.example.org"``); same-host and loopback Origins always are.
        allowed_hosts: hostnames the Host header may name (None: any). The CLI passes
            the loopback names when serving on loopback, against DNS rebinding.
        max_fps: state frames per second at most, per session.
        message_rate, message_burst: incoming messages per second per session, on average
            and in a burst; beyond that messages are dropped with an error.
        session_kwargs: passed to each :class:`~backprop.lab.session.LabSession`.

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

    app = FastAPI(title="backprop lab", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.workers = {}
    app.state.max_sessions = max_sessions

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
        worker = _Worker(asyncio.get_running_loop(), max_fps, dict(session_kwargs or {}))
        app.state.workers[worker.id] = worker
        worker.start()
        sender = asyncio.create_task(_send_loop(websocket, worker))
        # A send to a closed socket fails the sender; the receive loop sees the disconnect.
        sender.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            await _receive_loop(websocket, worker, _TokenBucket(message_rate, message_burst))
        finally:
            # Synchronous first: even if this task is being cancelled, the session is
            # forgotten and its thread told to stop.
            app.state.workers.pop(worker.id, None)
            worker.request_stop()
            sender.cancel()
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
        worker.submit(command)


async def _send_loop(websocket: WebSocket, worker: _Worker) -> None:
    while True:
        await worker.wake.wait()
        worker.wake.clear()
        while True:
            message = worker.take()
            if message is None:
                break
            await websocket.send_text(dumps(message))
