"""``backprop lab``: start the lab's local web server and open it in the browser.

    backprop lab                          # http://127.0.0.1:8000, opens the browser
    backprop lab --port 8080 --no-browser
    backprop lab --host 0.0.0.0           # reachable from other machines (warns)
    backprop lab --ray 10.0.0.5:6379      # stability maps run on that Ray cluster

Parsing and printing only: the app is :func:`backprop.lab.server.create_app`, served by
uvicorn (the ``lab`` extra).
"""
from __future__ import annotations

import argparse
import errno
import importlib.util
import ipaddress
import socket
import sys
import threading
import webbrowser
from functools import partial

from backprop.cli._common import fail

__all__ = ["add_parser", "run"]

PORT_TRIES = 10
"""A busy port: try this many ports from the one asked for."""

_MISSING = ("backprop lab needs FastAPI, uvicorn and websockets, which are not all installed: "
            "pip install 'backprop[lab]'")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``lab`` with its options."""
    p = subparsers.add_parser(
        "lab", help="open the lab: watch a network train live in your browser",
        description="Start the backprop lab, a local web page where the real engine trains a "
                    "network while you change the learning rate, batch size, optimiser, "
                    "network and data live.")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000,
                   help=f"port (default 8000; if busy, the next free one of {PORT_TRIES})")
    p.add_argument("--no-browser", dest="no_browser", action="store_true",
                   help="don't open a browser")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run stability maps as Ray tasks on this cluster (auto, HOST:PORT or "
                        "ray://HOST:PORT), with maps of up to 1024 cells; default: local "
                        "worker processes (pip install 'backprop[ray]')")
    p.set_defaults(run=run)
    return p


_fail = partial(fail, "lab")
"""Print a one-line ``backprop lab: error: ...`` and return the exit status (2 by default)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int):
    """A listening socket on the first free port from ``port``; (socket, port) or (None, error)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return None, f"unknown host {host!r}: {e.strerror}"
    except UnicodeError:  # the IDNA encoding refuses it: an empty or over-long label
        return None, f"{host!r} is not a host name or IP address"
    family = infos[0][0]
    last = None
    for candidate in range(port, min(port + PORT_TRIES, 65536)):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if sys.platform != "win32":
                # Lets a restarted lab reuse a port still in TIME_WAIT; never a port in use.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, candidate))
            sock.listen(128)
            return sock, candidate
        except OSError as e:
            sock.close()
            last = e
            if e.errno not in (errno.EADDRINUSE, errno.EACCES):
                return None, f"can't listen on {host}:{candidate}: {e.strerror or e}"
    last_port = min(port + PORT_TRIES, 65536) - 1
    return None, (f"ports {port} to {last_port} on {host} are all busy "
                  f"({last.strerror if last else 'in use'}); choose another with --port")


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def run(args) -> int:
    """Run ``backprop lab`` with parsed arguments; returns the exit status."""
    if not 1 <= args.port <= 65535:
        return _fail(f"--port must be between 1 and 65535, got {args.port}")
    if not args.host.strip():
        # getaddrinfo would take "" as every interface: say so explicitly with 0.0.0.0.
        return _fail("--host needs an address, got ''; 127.0.0.1 is this machine only, "
                     "0.0.0.0 every interface")
    try:
        import uvicorn

        from backprop.lab.server import LOOPBACK_HOSTS, WS_MAX_MESSAGE_BYTES, create_app
    except ImportError:
        return _fail(_MISSING)
    # Without a WebSocket library uvicorn still serves the page, whose socket then fails
    # with a bare 404: say so now instead.
    if all(importlib.util.find_spec(name) is None for name in ("websockets", "wsproto")):
        return _fail(_MISSING)

    # On loopback, the Host header must name this machine too: a page that rebinds its own
    # domain to 127.0.0.1 would otherwise look same-origin.
    loopback = is_loopback(args.host)
    ray_address = getattr(args, "ray", None)
    if ray_address is not None and not ray_address.strip():
        return _fail("--ray needs an address: auto, HOST:PORT or ray://HOST:PORT")
    from backprop.sweep import SweepError
    try:  # with --ray this joins the cluster now: Ray missing or unreachable is one line
        app = create_app(allowed_hosts=LOOPBACK_HOSTS if loopback else None,
                         ray_address=ray_address)
    except SweepError as e:
        return _fail(str(e))
    pool = app.state.stability_pool

    sock, port = _bind(args.host, args.port)
    if sock is None:  # before the warning below: a host that fails gets one line, the error
        pool.close()
        return _fail(port)
    if not loopback:
        print(f"backprop lab: warning: listening on {args.host}: anyone who can reach this "
              f"machine can use the lab and its CPU. Use the default --host 127.0.0.1 to keep "
              f"it private.", file=sys.stderr)
    if port != args.port:
        print(f"backprop lab: port {args.port} is busy; using {port}", file=sys.stderr)

    url = _url(args.host, port)
    print(f"backprop lab running at {url} (Ctrl-C to stop)", flush=True)
    if ray_address is not None:
        print(f"backprop lab: stability maps run on the Ray cluster at {ray_address} "
              f"({pool.max_workers} CPUs, up to {pool.max_cells} cells a map)", flush=True)
    if not args.no_browser:
        # Open once the server had a moment to start; a failure to open is only a note.
        def open_browser():
            try:
                if not webbrowser.open(url):
                    print(f"backprop lab: open {url} in your browser", file=sys.stderr)
            except webbrowser.Error:
                print(f"backprop lab: open {url} in your browser", file=sys.stderr)

        threading.Timer(0.8, open_browser).start()
    config = uvicorn.Config(app, log_level="warning", ws_max_size=WS_MAX_MESSAGE_BYTES,
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("backprop lab stopped")
    return 0
