"""One home for each job: NaN/Inf in JSON and atomic text writes (serialization), the loss
plot and figures without pyplot (train.plotting), look-up by name in the reports (NamedRows)."""
import json
import math
import os

import numpy as np
import pytest

from backprop.serialization import (
    NONFINITE_WORDS, atomic_write_text, json_dumps, json_restore_nonfinite, json_safe,
)

NAN, INF = float("nan"), float("inf")


def test_json_safe_string_and_null_forms_at_any_depth():
    value = {"a": NAN, 3: [1.5, INF, (-INF, {"b": NAN})], "s": "nan", "n": None, "t": True}
    assert json_safe(value) == {"a": "nan", "3": [1.5, "inf", ["-inf", {"b": "nan"}]],
                                "s": "nan", "n": None, "t": True}
    assert json_safe(value, "null") == {"a": None, "3": [1.5, None, [None, {"b": None}]],
                                        "s": "nan", "n": None, "t": True}


def test_json_safe_numpy_scalars_become_python_numbers():
    out = json_safe({"x": np.float32(0.5), "y": np.float64(-np.inf), "i": np.int64(3),
                     "z": np.array(np.nan)})
    assert out == {"x": 0.5, "y": "-inf", "i": 3, "z": "nan"}
    assert type(out["i"]) is int


def test_json_safe_rejects_an_unknown_form():
    with pytest.raises(ValueError, match="json_safe: nonfinite must be 'string' or 'null'"):
        json_safe(1.0, "zero")


def test_json_dumps_matches_json_dumps_when_finite_and_is_strict_otherwise():
    finite = {"loss": 0.1, "steps": [1, 2], "name": "inf"}
    assert json_dumps(finite, indent=2) == json.dumps(finite, indent=2)
    assert json_dumps({"loss": NAN}) == '{"loss": "nan"}'
    assert json_dumps({"loss": [INF]}, "null", separators=(",", ":")) == '{"loss":[null]}'


def test_restore_turns_the_words_back_into_floats_only():
    assert NONFINITE_WORDS == ("nan", "inf", "-inf")
    assert math.isnan(json_restore_nonfinite("nan"))
    assert json_restore_nonfinite("-inf") == -INF
    assert json_restore_nonfinite("NaN") == "NaN" and json_restore_nonfinite(None) is None


def test_each_file_format_keeps_its_convention(tmp_path):
    from backprop.diagnostics.readings import Readings
    from backprop.lab.protocol import dumps
    from backprop.sweep.results import write_definition
    from backprop.train.history import History

    h = History(steps=[{"step": 1, "loss": NAN}], epochs=[{"epoch": 0, "step": 1, "loss": INF}])
    h.to_jsonl(tmp_path / "metrics.jsonl")
    h.to_json(tmp_path / "history.json")
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["loss"] == "nan" and json.loads(lines[1])["loss"] == "inf"
    assert json.loads((tmp_path / "history.json").read_text())["steps"][0]["loss"] == "nan"
    back = History.from_jsonl(tmp_path / "metrics.jsonl")
    assert math.isnan(back.steps[0]["loss"]) and back.epochs[0]["loss"] == INF

    r = Readings()
    r.steps.append({"step": 1, "loss": -INF, "params": {"inf": {"grad_norm": NAN}}})
    r.to_jsonl(tmp_path / "diagnostics.jsonl")
    text = (tmp_path / "diagnostics.jsonl").read_text()
    assert '"loss": "-inf"' in text and '"grad_norm": "nan"' in text
    step = Readings.from_jsonl(tmp_path / "diagnostics.jsonl").steps[0]
    assert step["loss"] == -INF and "inf" in step["params"]  # a name stays a name

    assert dumps({"type": "metrics", "loss": NAN, "curve": [1.0, INF]}) == \
        '{"type":"metrics","loss":null,"curve":[1.0,null]}'
    path = write_definition(tmp_path, {"space": {}, "best": NAN})
    assert json.loads(open(path).read())["best"] is None


def test_atomic_write_text_writes_utf8_and_a_failure_keeps_the_old_file(tmp_path, monkeypatch):
    from backprop import serialization
    target = tmp_path / "config.json"
    atomic_write_text(target, "{\"name\": \"r\u00e9sum\u00e9\"}\n")
    assert target.read_bytes() == "{\"name\": \"r\u00e9sum\u00e9\"}\n".encode("utf-8")

    def boom(fd):
        raise OSError("disk full")
    monkeypatch.setattr(serialization.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new", "write_config")
    assert target.read_bytes() == "{\"name\": \"r\u00e9sum\u00e9\"}\n".encode("utf-8")
    assert os.listdir(tmp_path) == ["config.json"]  # no temporary left behind


def test_a_plot_that_fails_mid_write_keeps_the_old_png(tmp_path):
    pytest.importorskip("matplotlib")
    from backprop.diagnostics import plots
    from backprop.train.history import History

    h = History(steps=[{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}])
    path = plots.plot_loss(h, tmp_path / "loss.png")
    before = open(path, "rb").read()
    assert before.startswith(b"\x89PNG")

    fig = plots.new_figure()

    def savefig(fh, **kwargs):
        fh.write(b"half a png")
        raise RuntimeError("renderer died")
    fig.savefig = savefig
    with pytest.raises(RuntimeError, match="renderer died"):
        plots._save(fig, path)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["loss.png"]


def test_plots_leave_matplotlibs_backend_alone(tmp_path):
    """Both loss plots draw on a figure of their own (Agg canvas): no pyplot, no
    matplotlib.use() as a side effect of importing or plotting."""
    pytest.importorskip("matplotlib")
    import subprocess
    import sys
    code = (
        "import sys, math, matplotlib; matplotlib.use('svg')\n"
        "from backprop.train.history import History\n"
        "from backprop.train.experiment import plot_history\n"
        "from backprop.diagnostics import plots\n"
        "h = History(steps=[{'step': 1, 'loss': 1.0}, {'step': 2, 'loss': math.inf}],\n"
        "            epochs=[{'epoch': 1, 'step': 2, 'loss': 0.5, 'accuracy': 0.7}])\n"
        "assert plot_history(h, sys.argv[1] + '/curve.png', title='t')\n"
        "plots.write_plots(None, h, sys.argv[1])\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "False"]
    assert sorted(os.listdir(tmp_path)) == ["curve.png", "loss_steps.png"]


def test_every_report_looks_rows_up_by_name_the_same_way():
    from types import SimpleNamespace as Row

    from backprop.diagnostics.doctor import Finding, Report
    from backprop.diagnostics.gradients import GradientReport
    from backprop.diagnostics.selfcheck import SelfCheckReport
    from backprop.explain.blame import BlameTable

    def row(name):
        return Row(name=name, passed=True, grad_norm=1.0, grad_abs_sum=1.0)
    reports = [
        GradientReport([row("0.weight"), row("0.bias")], loss=0.0, eps=1e-6, atol=1e-5,
                       rtol=1e-3, mode="full", seconds=0.0),
        BlameTable([row("0.weight"), row("0.bias")]),
        SelfCheckReport([row("0.weight"), row("0.bias")], seconds=0.0),
        Report([Finding("0.weight", "error", "s", {}, "a"), Finding("0.bias", "info", "s", {}, "a")]),
    ]
    for report in reports:
        kind = type(report).__name__
        assert report.names() == ["0.weight", "0.bias"], kind
        assert report["0.bias"] is report[1] is report.get("0.bias"), kind
        assert "0.weight" in report and "nope" not in report and report[0] in report, kind
        assert report.get("nope", 7) == 7 and len(report) == 2, kind
        assert [r.name for r in report] == ["0.weight", "0.bias"], kind
        with pytest.raises(KeyError, match=rf"{kind}: no \w+ named 'nope'; the names are "
                                           r"0.weight, 0.bias"):
            report["nope"]
    assert isinstance(reports[3][:1], Report) and reports[3][:1].names() == ["0.weight"]
