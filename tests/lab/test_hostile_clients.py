"""The lab's real server (uvicorn in its own process) under clients that misbehave.

Each test waits on events (a message, a closed socket, the workers going quiet) with
generous deadlines, never on a fixed sleep: CI runs on a loaded 2-core machine.
"""
from __future__ import annotations

import base64
import contextlib
import http.client
import itertools
import json
import os
import signal
import socket
import struct
import threading
import time
import urllib.request

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
sync_client = pytest.importorskip("websockets.sync.client")
if not os.path.isdir("/proc/self"):
    pytest.skip("these tests read the server's child processes from /proc",
                allow_module_level=True)

from backprop.lab.protocol import MAX_CSV_MESSAGE_BYTES  # noqa: E402
from backprop.lab.session import LIMITS  # noqa: E402
from tests.lab.real_server import RealServer, cell_workers, running  # noqa: E402

WAIT_S = 60.0          # for any one expected message
QUIET_S = 60.0         # for the stability workers to stop computing after a cancel
CAP = 2                # the server's stability_workers
_probes = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    lab = RealServer(tmp_path_factory.mktemp("lab") / "server.log", stability_workers=CAP,
                     max_outbox_bytes=1024 * 1024)
    yield lab
    alive = lab.alive()
    lab.stop()
    assert alive, f"the server died:\n{lab.log()}"


def connect(server):
    return sync_client.connect(server.ws_url, max_size=None, open_timeout=WAIT_S)


def until(ws, predicate, timeout: float = WAIT_S) -> dict:
    """Receive until a message satisfies ``predicate``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"the expected message did not come within {timeout} s")
        try:
            message = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            continue
        if predicate(message):
            return message


def of_type(kind):
    return lambda m: m["type"] == kind


def hello(ws, settings=None) -> None:
    ws.send(json.dumps({"type": "hello", "settings": settings or {}}))
    until(ws, of_type("state"))


def still_works(ws) -> None:
    """A normal request on this connection is answered: the session lived."""
    speed = next(_probes) % 999 + 1
    ws.send(json.dumps({"type": "set", "values": {"speed": speed}}))
    until(ws, lambda m: m["type"] == "settings" and m["values"]["speed"] == speed)


# -- Host header ------------------------------------------------------------------------------------
def http_get(server, path: str, host: str):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_S)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/", "/api/settings", "/api/limits", "/static/app.js"])
def test_http_routes_refuse_a_foreign_host_header(server, path):
    # DNS rebinding: a page on evil.example whose name now points at 127.0.0.1
    status, body = http_get(server, path, "evil.example")
    assert status == 400, body
    assert "evil.example" in body
    assert http_get(server, path, f"evil.example:{server.port}")[0] == 400
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"[::1]:{server.port}"):
        assert http_get(server, path, host)[0] == 200, host


# -- message sizes ----------------------------------------------------------------------------------
def test_oversize_csv_and_oversize_messages_get_an_error_and_the_session_lives(server):
    with connect(server) as ws:
        hello(ws)
        row = "0.125,0.5,1\n"
        text = row * (LIMITS["max_csv_bytes"] * 2 // len(row))        # 2 MB: over the limit
        ws.send(json.dumps({"type": "upload_csv", "text": text, "name": "big.csv"}))
        error = until(ws, of_type("error"))
        assert error["field"] == "text"
        assert error["message"] == (f"the CSV has {len(text)} bytes; the lab takes files of at "
                                    f"most {LIMITS['max_csv_bytes']} bytes")
        still_works(ws)
        # bigger than any message the lab takes, but under the socket's own limit
        huge = json.dumps({"type": "upload_csv", "text": "x" * (MAX_CSV_MESSAGE_BYTES + 10)})
        ws.send(huge)
        error = until(ws, of_type("error"))
        assert error["message"].startswith(f"message of {len(huge)} bytes is too big")
        still_works(ws)


# -- stability-map workers -------------------------------------------------------------------------
HEAVY = {"dataset": "circles", "n_samples": 2000, "train_fraction": 0.9, "hidden": [32] * 4}
# Runs of a few thousand slow steps: a cell that is not stopped keeps computing for minutes.
HEAVY_MAP = {"type": "stability_map", "lrs": [1e-4, 2e-4, 3e-4, 5e-4], "batch_sizes": [1024],
             "steps": LIMITS["max_stability_steps"]}


class WorkerWatch:
    """Samples the server's stability workers in the background: the most seen at once."""

    def __init__(self, pid: int):
        self.pid = pid
        self.most = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            self.most = max(self.most, len(cell_workers(self.pid)))
            self.done.wait(0.02)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.most


def wait_until_quiet(pid: int, timeout: float = QUIET_S) -> None:
    """Wait until no stability worker uses the CPU over a whole second (none computes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cell_workers(pid)
        time.sleep(1.0)     # a measuring window, not a wait for something to happen
        after = cell_workers(pid)
        busy = {p: after[p] - before[p] for p in after if p in before and after[p] > before[p] + 2}
        if not busy and set(after) <= set(before):
            return
    pytest.fail(f"stability workers still computing {timeout} s after the maps were "
                f"cancelled: {cell_workers(pid)} (pid: CPU ticks)")


def test_stability_workers_are_capped_and_stop_on_cancel_and_disconnect(server):
    assert server.limits["stability_workers"] == CAP
    watch = WorkerWatch(server.pid)
    try:
        with connect(server) as ws:
            hello(ws, HEAVY)
            for _ in range(15):                       # start / cancel, again and again
                ws.send(json.dumps(HEAVY_MAP))
                until(ws, of_type("stability_start"))
                ws.send(json.dumps({"type": "cancel_stability"}))
                assert until(ws, of_type("stability_done"))["cancelled"] is True
            # a map that really runs: its first cell finishes only if let, so wait until
            # the workers are computing, then cancel that
            ws.send(json.dumps({**HEAVY_MAP, "steps": 20}))
            until(ws, of_type("stability_cell"))
            ws.send(json.dumps(HEAVY_MAP))            # refused: one map at a time
            ws.send(json.dumps({"type": "cancel_stability"}))
            until(ws, of_type("stability_done"))
            still_works(ws)
        wait_until_quiet(server.pid)

        # abandoned maps: five pages start one each and leave
        with contextlib.ExitStack() as stack:
            pages = [stack.enter_context(connect(server)) for _ in range(5)]
            for ws in pages:
                hello(ws, HEAVY)
                ws.send(json.dumps(HEAVY_MAP))
                until(ws, of_type("stability_start"))
        wait_until_quiet(server.pid)
    finally:
        most = watch.stop()
    assert 1 <= most <= CAP, f"{most} stability workers at once; the cap is {CAP}"
    with connect(server) as ws:                    # the pool still serves new maps
        hello(ws, {"dataset": "sine", "optimizer": "sgd"})
        ws.send(json.dumps({"type": "stability_map", "lrs": [0.01, 10.0], "batch_sizes": [4],
                            "steps": 30}))
        done = until(ws, of_type("stability_done"))
        assert done == {"type": "stability_done", "cells": 2, "cancelled": False}


def test_workers_stop_when_the_server_is_killed(tmp_path):
    lab = RealServer(tmp_path / "server.log", stability_workers=CAP)
    try:
        with connect(lab) as ws:
            hello(ws, HEAVY)
            ws.send(json.dumps(HEAVY_MAP))
            until(ws, of_type("stability_start"))
            deadline = time.monotonic() + WAIT_S
            while len(cell_workers(lab.pid)) < CAP:       # both workers started
                if time.monotonic() > deadline:
                    pytest.fail(f"the map's workers did not start within {WAIT_S} s")
                time.sleep(0.05)
            workers = list(cell_workers(lab.pid))
            os.kill(lab.pid, signal.SIGKILL)              # no shutdown, no cleanup
            lab.process.wait()
    finally:
        lab.stop()
    # orphans notice that their server is gone and stop, mid-cell
    deadline = time.monotonic() + QUIET_S
    while any(running(p) for p in workers):
        if time.monotonic() > deadline:
            pytest.fail(f"workers {[p for p in workers if running(p)]} outlived the server "
                        f"by {QUIET_S} s")
        time.sleep(0.1)


# -- a client that never reads ----------------------------------------------------------------------
class RawClient:
    """A WebSocket client on a bare socket that reads only when told to (a stuck page)."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # little buffering
        self.sock.settimeout(WAIT_S)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        return chunk

    def send(self, message: dict) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                  bytes([0x80 | 126]) + struct.pack("!H", n) if n < 65536 else
                                  bytes([0x80 | 127]) + struct.pack("!Q", n))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def read_message(self) -> dict:
        """The next text message (reading as little as that takes)."""
        while True:
            frame = self._frame()
            if frame is None:
                self.buffer += self._recv()
            elif frame[0] == 1:
                return json.loads(frame[1])

    def read_until_closed(self, timeout: float) -> tuple:
        """Read frames until the server closes: (texts received, close code or None)."""
        self.sock.settimeout(timeout)
        texts, code = 0, None
        try:
            while True:
                while True:                  # parse whole frames out of the buffer
                    frame = self._frame()
                    if frame is None:
                        break
                    opcode, payload = frame
                    if opcode == 1:
                        texts += 1
                    elif opcode == 8:
                        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                        return texts, code
                self.buffer += self._recv()
        except (ConnectionError, OSError):
            return texts, code

    def _frame(self):
        b = self.buffer
        if len(b) < 2:
            return None
        n, start = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, start = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, start = struct.unpack("!Q", b[2:10])[0], 10
        if len(b) < start + n:
            return None
        self.buffer = b[start + n:]
        return b[0] & 0x0F, b[start:start + n]

    def close(self):
        self.sock.close()


def open_sessions(server) -> int:
    with urllib.request.urlopen(f"{server.url}/api/limits", timeout=WAIT_S) as response:
        return json.load(response)["sessions"]


def wait_for_sessions(server, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while open_sessions(server) != n:
        if time.monotonic() > deadline:
            pytest.fail(f"{open_sessions(server)} sessions still open after {timeout} s "
                        f"(expected {n})")
        time.sleep(0.1)


def test_a_client_that_never_reads_is_closed_and_others_carry_on(server):
    stuck = RawClient(server.port)
    try:
        stuck.send({"type": "hello"})
        while stuck.read_message()["type"] != "state":   # its session is open
            pass
        # 3000 rows: an exported script embeds them, so each export is ~100 KB
        rows = "".join(f"{i / 3000:.6f},{(i * 7 % 3000) / 3000:.6f},{i % 2}\n"
                       for i in range(3000))
        stuck.send({"type": "upload_csv", "text": rows})
        asked = 100                                   # within the message burst allowed
        for _ in range(asked):
            stuck.send({"type": "export", "what": "script"})
        # The server gives up on it (the 100 exports are about 10 MB, ten times the queue
        # allowed here, and the socket buffers take a few MB): its session ends, while
        # this client has still read nothing.
        wait_for_sessions(server, 0, timeout=120.0)
        texts, code = stuck.read_until_closed(timeout=WAIT_S)
    finally:
        stuck.close()
    assert texts < asked, "every export was delivered: the server queued them all"
    assert code in (1013, None)     # None: the close frame did not fit in the full buffers
    assert server.alive()
    with connect(server) as ws:                     # others are served as before
        hello(ws)
        still_works(ws)
