"""The lab's real app on uvicorn in a child process on 127.0.0.1, stopped by its PID.

Configured as ``backprop lab`` configures it (the WebSocket size limit, the loopback Host
allow-list), with ``create_app`` arguments of the test's choosing. Its own process, so a
test can watch the server's child processes (stability-map workers) in ``/proc``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 120.0   # generous: a loaded 2-core CI machine imports slowly
STOP_TIMEOUT_S = 30.0

_SERVE = """
import json, socket, sys
import uvicorn
from backprop.lab.server import LOOPBACK_HOSTS, WS_MAX_MESSAGE_BYTES, create_app

kwargs = {"allowed_hosts": LOOPBACK_HOSTS, **json.loads(sys.argv[1])}
sock = socket.socket()
sock.bind(("127.0.0.1", 0))       # a free port, chosen by the kernel: no race with others
sock.listen(128)
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(create_app(**kwargs), log_level="warning",
                        ws_max_size=WS_MAX_MESSAGE_BYTES, timeout_graceful_shutdown=3)
uvicorn.Server(config).run(sockets=[sock])
"""


class RealServer:
    """A running lab: ``port``, ``url``, ``pid``; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, log_path: Path, **create_app_kwargs):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        # The server imports the same backprop as the tests do.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVE, json.dumps(create_app_kwargs)],
            stdout=subprocess.PIPE, stderr=self._log, env=env)
        self.pid = self.process.pid
        self.port = self._read_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self._wait_ready()

    def _read_port(self) -> int:
        line = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if not line or not line[0].strip():
            self.stop()
            raise RuntimeError(f"the lab's server did not start:\n{self.log()}")
        return int(line[0])

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/limits", timeout=10) as r:
                    if r.status == 200:
                        self.limits = json.load(r)
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the lab's server did not answer:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait()
        self.process.stdout.close()
        self._log.close()


# -- the server's child processes, from /proc -------------------------------------------------------
def _processes() -> dict:
    """pid -> (parent pid, CPU ticks used, command line) of every process we can read."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:           # it ended while we looked
            continue
        # fields[0] is the state, [1] the parent, [11] and [12] user and system ticks
        table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]), cmdline)
    return table


def cell_workers(pid: int) -> dict:
    """pid -> CPU ticks of the stability-map worker processes under the server ``pid``.

    They are multiprocessing "spawn" children (``spawn_main`` on their command line; a
    zombie has none and does not count): the resource tracker and anything else is not.
    """
    table = _processes()
    return {p: ticks for p, (parent, ticks, cmdline) in table.items()
            if parent == pid and "spawn_main" in cmdline}


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (exited, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
