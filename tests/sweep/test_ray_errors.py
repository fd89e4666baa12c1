"""``backprop sweep``: one-line errors (exit 2) for bad input, Ray missing or unreachable,
and a small sweep on the embedded local Ray (no cluster set up)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from backprop.cli import main
from backprop.sweep import SweepError, load, run

SMALL = ["--dataset", "spiral", "--layers", "2-8-3", "--epochs", "3", "--n-samples", "60",
         "--no-progress"]


def error_line(capsys) -> str:
    """The one line on stderr (and nothing on stdout)."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    # argparse's unrecognized arguments are reported by the top parser ("backprop: error:"),
    # as for `backprop train`; everything else by the subcommand.
    assert lines[0].startswith(("backprop sweep: error: ", "backprop: error: ")), lines[0]
    return lines[0]


def test_unknown_option_is_a_one_line_error(capsys, tmp_path):
    assert main(["sweep", *SMALL, "--grid", "lr=0.1,0.2", "--bogus", "1",
                 "--out", str(tmp_path / "s")]) == 2
    assert "--bogus" in error_line(capsys)
    assert not os.path.exists(tmp_path / "s" / "sweep.jsonl")


def test_unknown_grid_key_is_a_one_line_error(capsys, tmp_path):
    assert main(["sweep", *SMALL, "--grid", "learning-speed=0.1,0.2",
                 "--out", str(tmp_path / "s")]) == 2
    assert "learning-speed" in error_line(capsys)


@pytest.mark.parametrize("spec", ["lr=", "lr=1e-3:1:log:0"])
def test_empty_grid_is_a_one_line_error(capsys, tmp_path, spec):
    assert main(["sweep", *SMALL, "--grid", spec, "--out", str(tmp_path / "s")]) == 2
    error_line(capsys)


def test_empty_grid_in_the_api_is_a_sweep_error(tmp_path):
    with pytest.raises(SweepError):
        run({"dataset": "spiral", "epochs": 1}, {"lr": []}, out=str(tmp_path / "s"),
            progress=False)


def test_grid_over_the_cap_names_the_count_and_how_to_raise_it(capsys, tmp_path):
    assert main(["sweep", *SMALL, "--grid", "lr=1e-4:1:log:50", "--grid", "batch-size=1:256:lin:50",
                 "--out", str(tmp_path / "s")]) == 2
    line = error_line(capsys)
    assert "2500" in line.replace(",", "") and "--max-trials" in line
    # The cap is overridable: the same grid under a lower cap, and a small grid over it.
    assert main(["sweep", *SMALL, "--grid", "lr=0.1,0.2,0.3", "--max-trials", "2",
                 "--out", str(tmp_path / "s")]) == 2
    assert "3" in error_line(capsys)
    with pytest.raises(SweepError, match="3"):
        run({"dataset": "spiral", "epochs": 1}, {"lr": [0.1, 0.2, 0.3]},
            out=str(tmp_path / "s"), max_trials=2, progress=False)


def test_unreachable_address_is_a_one_line_error_in_bounded_time(capsys, tmp_path):
    pytest.importorskip("ray")
    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    assert main(["sweep", *SMALL, "--grid", "lr=0.1,0.2", "--address", f"127.0.0.1:{port}",
                 "--out", str(tmp_path / "s")]) == 2
    assert time.monotonic() - started < 60
    assert f"127.0.0.1:{port}" in error_line(capsys)


@pytest.fixture
def web_server():
    """A real HTTP server on 127.0.0.1 (an address that answers, but is no Ray cluster)."""
    import http.server
    import threading
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):     # the test reads stderr: the server keeps quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_that_is_no_ray_cluster_is_one_line_in_bounded_time(web_server, scheme,
                                                                        capsys, tmp_path):
    # ray.init itself retries such an address for ever; the probe answers at once.
    pytest.importorskip("ray")
    started = time.monotonic()
    assert main(["sweep", *SMALL, "--grid", "lr=0.1,0.2", "--address", scheme + web_server,
                 "--out", str(tmp_path / "s")]) == 2
    assert time.monotonic() - started < 60
    line = error_line(capsys)
    assert web_server in line and "not as a Ray cluster" in line and "replied" in line
    assert not os.path.exists(tmp_path / "s" / "sweep.jsonl")


def test_a_silent_address_is_an_error_after_the_timeout():
    from backprop.sweep._ray import check_address
    with socket.socket() as listener:     # accepts connections (the backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(SweepError, match="did not answer within 1 s"):
            check_address(address, timeout=1.0)
        assert time.monotonic() - started < 30


def test_ray_missing_says_how_to_get_it(capsys, tmp_path, monkeypatch):
    # None in sys.modules makes `import ray` raise ImportError, as if it were not installed.
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["sweep", *SMALL, "--grid", "lr=0.1,0.2", "--out", str(tmp_path / "s")]) == 2
    assert "pip install 'backprop[ray]'" in error_line(capsys)


def test_import_backprop_does_not_import_ray():
    code = ("import sys, backprop, backprop.sweep, backprop.cli, backprop.cli.sweep; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_report_needs_no_ray_and_no_folder_is_an_error(capsys, tmp_path):
    assert main(["sweep", "--report", str(tmp_path / "nothing")]) == 2
    error_line(capsys)


def test_embedded_local_ray_runs_a_four_trial_sweep(ray_env_vars, tmp_path, capsys,
                                                     monkeypatch):
    out = str(tmp_path / "local")
    result = run({"dataset": "spiral", "layers": "2-8-3", "epochs": 3, "n_samples": 60},
                 {"lr": [0.01, 0.1], "batch_size": [8, 32]}, out=out, address=None,
                 progress=False, heatmap=("lr", "batch_size"))
    with open(os.path.join(out, "sweep.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert len(records) == 4 and len({r["trial_id"] for r in records}) == 4
    assert sorted(r["trial_id"] for r in result.trials) == sorted(r["trial_id"] for r in records)
    for r in records:
        assert os.path.exists(os.path.join(r["run_dir"], "metrics.jsonl"))
        assert r["epochs"] == 3 and not r["diverged"]
    # The embedded Ray is gone after the sweep.
    ray = sys.modules.get("ray")
    assert ray is not None and not ray.is_initialized()
    # --report reads the folder again (no Ray needed): table best first, and the summary.
    monkeypatch.setitem(sys.modules, "ray", None)
    capsys.readouterr()
    assert main(["sweep", "--report", out]) == 0
    text = capsys.readouterr().out
    best = min(records, key=lambda r: r["final"]["test_loss"])
    first = [ln for ln in text.splitlines() if ln.split()[:1] == ["1"]]
    assert first and best["trial_id"].split("-")[0] in first[0].split(), text
    assert load(out).best("test_loss")["trial_id"] == best["trial_id"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert os.path.getsize(os.path.join(out, "heatmap.png")) > 0
