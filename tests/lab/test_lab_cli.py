"""``backprop lab``: options, the busy-port fallback, warnings and a missing extra."""
import socket
import sys

import pytest

from backprop.cli import main
from backprop.cli import lab as cli_lab


@pytest.fixture
def served(monkeypatch):
    """Run ``backprop lab`` without serving: record what uvicorn would have served."""
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    calls = {"sockets": [], "opened": []}

    def fake_run(self, sockets=None):
        calls["sockets"].append([s.getsockname()[1] for s in sockets])
        calls["app"] = self.config.app
        calls["config"] = self.config

    class ImmediateTimer:
        def __init__(self, delay, fn):
            self.fn = fn

        def start(self):
            self.fn()

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.setattr(cli_lab.threading, "Timer", ImmediateTimer)
    monkeypatch.setattr(cli_lab.webbrowser, "open", lambda url: calls["opened"].append(url) or True)
    return calls


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serves_on_loopback_and_opens_the_browser(served, capsys):
    port = free_port()
    assert main(["lab", "--port", str(port)]) == 0
    out, err = capsys.readouterr()
    assert served["sockets"] == [[port]]
    assert served["opened"] == [f"http://127.0.0.1:{port}/"]
    assert f"backprop lab running at http://127.0.0.1:{port}/" in out
    assert "warning" not in err
    app = served["app"]
    assert app.state.max_sessions == 8


def test_served_app_takes_big_messages_and_checks_the_host(served):
    from fastapi.testclient import TestClient

    from backprop.lab.protocol import MAX_CSV_MESSAGE_BYTES, WS_MAX_MESSAGE_BYTES
    from backprop.lab.session import LIMITS

    assert main(["lab", "--port", str(free_port()), "--no-browser"]) == 0
    # a message the lab refuses must reach it (to be answered with an error), not close
    # the socket: a CSV at the limit, JSON-escaped, and more fit under the socket's limit
    assert served["config"].ws_max_size == WS_MAX_MESSAGE_BYTES
    assert WS_MAX_MESSAGE_BYTES > MAX_CSV_MESSAGE_BYTES >= 2 * LIMITS["max_csv_bytes"]
    with TestClient(served["app"], base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/limits").status_code == 200
        assert client.get("/api/limits", headers={"host": "evil.example:8000"}).status_code == 400


def test_busy_port_moves_to_the_next_free_one(served, capsys):
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        assert main(["lab", "--port", str(port), "--no-browser"]) == 0
    out, err = capsys.readouterr()
    used = served["sockets"][0][0]
    assert port < used < port + cli_lab.PORT_TRIES
    assert f"port {port} is busy; using {used}" in err
    assert served["opened"] == []


def test_all_ports_busy_is_a_clear_error():
    held = []
    try:
        for _ in range(50):              # find PORT_TRIES consecutive ports we can hold
            start = free_port()
            held = []
            for p in range(start, start + cli_lab.PORT_TRIES):
                s = socket.socket()
                try:
                    s.bind(("127.0.0.1", p))
                    s.listen()
                except OSError:
                    s.close()
                    break
                held.append(s)
            if len(held) == cli_lab.PORT_TRIES:
                break
            for s in held:
                s.close()
        else:
            pytest.skip("no run of free ports to occupy")
        sock, message = cli_lab._bind("127.0.0.1", start)
        assert sock is None
        assert message.startswith(f"ports {start} to {start + 9} on 127.0.0.1 are all busy")
    finally:
        for s in held:
            s.close()


def test_other_hosts_warn(served, capsys):
    assert main(["lab", "--host", "0.0.0.0", "--port", str(free_port()), "--no-browser"]) == 0
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0: anyone who can reach this machine" in err


def test_loopback_names():
    assert cli_lab.is_loopback("127.0.0.1") and cli_lab.is_loopback("localhost")
    assert cli_lab.is_loopback("::1") and cli_lab.is_loopback("127.0.0.2")
    assert not cli_lab.is_loopback("0.0.0.0") and not cli_lab.is_loopback("example.org")


def test_bad_port(capsys):
    assert main(["lab", "--port", "0"]) == 2
    assert "--port must be between 1 and 65535, got 0" in capsys.readouterr().err


def test_missing_extra_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)        # import uvicorn -> ImportError
    assert main(["lab", "--no-browser"]) == 2
    assert "pip install 'backprop[lab]'" in capsys.readouterr().err


def test_listed_in_help(capsys):
    assert main(["--help"]) == 0
    assert "lab" in capsys.readouterr().out
