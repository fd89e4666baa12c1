"""``backprop lab --ray``: stability-map cells as Ray tasks (skipped without Ray).

One embedded local Ray for the module, started in its own temp folder; afterwards no
process whose command line names that folder may be left.
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time

import pytest

from backprop.cli import main
from backprop.lab.pool import RAY_MAX_CELLS, CellPool, RayCellPool
from backprop.lab.session import LIMITS, LabSession
from tests.lab.bounded import DEADLINE_S, collect

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0"}


def ray_processes(folder: str) -> list:
    """PIDs of the processes whose command line names ``folder`` (the Ray's temp folder)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if folder.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    folder = tempfile.mkdtemp(prefix="bpray", dir="/tmp")   # short: Ray's socket paths
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=folder, log_to_driver=False)
    try:
        assert ray_processes(folder), "the embedded Ray's processes are not found by folder"
        yield ray
    finally:
        ray.shutdown()
        end = time.monotonic() + 60
        while ray_processes(folder) and time.monotonic() < end:
            time.sleep(0.2)          # raylet and workers take a moment to exit
        left = ray_processes(folder)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(folder, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


def test_a_map_on_ray_equals_the_local_pools(local_ray):
    s = LabSession({"dataset": "sine", "optimizer": "sgd", "n_samples": 80}, diagnostics=False)
    grid = ([0.01, 10.0], [4, 16], 30)
    local = CellPool(1)
    try:
        on_pool = collect(s.stability_map(*grid, pool=local))
    finally:
        local.close()
    ray_pool = RayCellPool()            # the Ray this process joined; not ours to shut down
    try:
        on_ray = collect(s.stability_map(*grid, pool=ray_pool))
    finally:
        ray_pool.close()
    assert local_ray.is_initialized()
    by_cell = lambda cells: {(c["i"], c["j"]): c for c in cells}   # noqa: E731
    assert len(on_ray) == 4 and by_cell(on_ray) == by_cell(on_pool)
    assert by_cell(on_ray)[(1, 0)]["diverged"] and not by_cell(on_ray)[(0, 0)]["diverged"]


def test_a_failing_cell_is_an_error_and_cancel_stops_the_rest(local_ray):
    from backprop.lab.pool import CellError
    from tests.lab import cells

    pool = RayCellPool()
    try:
        with pytest.raises(CellError, match="ValueError: bad job 3"):
            collect(pool.submit(cells.fail, [3]))
        assert sorted(collect(pool.submit(cells.square, [1, 2, 3]))) == [1, 4, 9]
        cancel = threading.Event()
        cancel.set()                    # cancelled before the first result: nothing comes
        assert collect(pool.submit(cells.square, list(range(8)), cancel=cancel)) == []
    finally:
        pool.close()


def test_the_server_on_ray_streams_a_map_bigger_than_the_local_cap(local_ray):
    from fastapi.testclient import TestClient

    from backprop.lab.server import create_app

    lrs, batch_sizes = [0.001 * (k + 1) for k in range(9)], [2, 4, 6, 8, 10, 12, 14, 16]
    assert len(lrs) * len(batch_sizes) > LIMITS["max_stability_cells"]
    request = {"type": "stability_map", "lrs": lrs, "batch_sizes": batch_sizes, "steps": 1}
    with TestClient(create_app()) as c:         # the local pool keeps its cap
        with c.websocket_connect("/ws") as ws:
            ws.send_json(request)
            answer = ws.receive_json()
            while answer["type"] != "error":
                answer = ws.receive_json()
            assert f"at most {LIMITS['max_stability_cells']}" in answer["message"]
    with TestClient(create_app(ray_address="auto")) as c:
        assert c.get("/api/limits").json()["max_stability_cells"] == RAY_MAX_CELLS
        assert c.get("/api/limits").json()["stability_on"] == "ray"
        with c.websocket_connect("/ws") as ws:
            ws.send_json(request)
            cells, done = [], None
            while done is None:
                answer = ws.receive_json()
                assert answer["type"] != "error", answer
                if answer["type"] == "stability_cell":
                    cells.append(answer)
                elif answer["type"] == "stability_done":
                    done = answer
    assert done == {"type": "stability_done", "cells": 72, "cancelled": False}
    assert {(c["i"], c["j"]) for c in cells} == {(i, j) for i in range(9) for j in range(8)}
    assert local_ray.is_initialized()      # the app used the Ray it found, and left it up


# -- the CLI's one-line errors -------------------------------------------------------------------
@pytest.fixture
def no_serving(monkeypatch):
    """The lab must fail before serving; if it got that far, return at once instead."""
    uvicorn = pytest.importorskip("uvicorn")
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)


def error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("backprop lab: error: "), lines[0]
    assert "running at" not in captured.out
    return lines[0]


def test_ray_missing_says_how_to_get_it(capsys, monkeypatch, no_serving):
    # None in sys.modules makes `import ray` raise ImportError, as if it were not installed.
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["lab", "--no-browser", "--ray", "127.0.0.1:6379"]) == 2
    line = error_line(capsys)
    assert "--ray" in line and "pip install 'backprop[ray]'" in line


def test_unreachable_address_is_one_line_in_bounded_time(capsys, no_serving):
    pytest.importorskip("ray")
    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    assert main(["lab", "--no-browser", "--ray", f"127.0.0.1:{port}"]) == 2
    assert time.monotonic() - started < 60
    assert f"127.0.0.1:{port}" in error_line(capsys)


def test_a_malformed_address_is_one_line(capsys, no_serving):
    pytest.importorskip("ray")
    assert main(["lab", "--no-browser", "--ray", "not-an-address"]) == 2
    assert "HOST:PORT" in error_line(capsys)


def test_cancel_kills_a_running_cell_that_ignores_should_stop(local_ray, tmp_path):
    from tests.lab import cells

    pool = RayCellPool()
    try:
        batch = pool.submit(cells.stubborn, [str(tmp_path)])     # sleeps an hour
        end = time.monotonic() + DEADLINE_S
        while not (tmp_path / "started").exists():
            assert time.monotonic() < end, "the cell never started"
            time.sleep(0.05)
        batch.cancel()
        end = time.monotonic() + DEADLINE_S
        while local_ray.available_resources().get("CPU", 0) < 2:   # its CPU comes back
            assert time.monotonic() < end, "the cancelled cell still holds its CPU"
            time.sleep(0.1)
    finally:
        pool.close()
