"""``backprop train`` records diagnostics.jsonl and ``backprop doctor`` reads it, end to end."""
from __future__ import annotations

import os

import pytest

from backprop.cli import main
from backprop.diagnostics import Readings, plots

# lr 10 with plain SGD on the spiral set: the loss climbs far above where it started.
DIVERGING = ["--dataset", "spiral", "--lr", "10", "--optimizer", "sgd", "--epochs", "5",
             "--no-progress"]
# ... and a rate so high the loss turns NaN at step 3: `backprop train` stops with status 1.
BLOWS_UP = ["--dataset", "spiral", "--lr", "1e6", "--optimizer", "sgd", "--epochs", "2",
            "--no-progress"]
HEALTHY = ["--dataset", "moons", "--n-samples", "160", "--epochs", "10", "--no-progress"]


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def _pngs(folder):
    return sorted(n for n in os.listdir(folder) if n in plots.PLOT_FILES.values())


def test_a_run_that_turns_nan_is_diagnosed(tmp_path, capsys):
    run = tmp_path / "nan"
    status, out, err = _run(capsys, "train", *BLOWS_UP, "--out", run)
    assert status == 1
    assert "training diverged: loss became nan at step 3" in err
    assert err.count("\n") == 1 and f"see why: backprop doctor {run}" in out
    readings = Readings.from_jsonl(run / "diagnostics.jsonl")  # left behind by the Monitor
    assert readings.nonfinite["step"] == 3 and readings.nonfinite["kind"] in ("loss",
                                                                            "parameter")
    assert [s["step"] for s in readings.steps] == [1]
    status, out, err = _run(capsys, "doctor", run, "--no-plots")
    assert status == 0, err
    assert out.startswith(f"backprop doctor {run} (1 recorded step, ")
    assert "1. ERROR: divergence" in out and "became nan" in out
    assert "lower it about ten times" in out.lower()
    assert _pngs(run) == []


def test_lr_10_on_spiral_is_diagnosed_as_divergence_with_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "lr10"
    status, out, err = _run(capsys, "train", *DIVERGING, "--out", run)
    assert status == 0, err
    assert "diagnostics.jsonl" in out  # listed among the files written
    status, out, err = _run(capsys, "doctor", run)
    assert status == 0, err
    assert "ERROR: divergence" in out and "learning rate 10" in out
    assert _pngs(run) == sorted(plots.PLOT_FILES.values())
    assert f"plots in {run}{os.sep}: loss_steps.png, grad_norms.png" in out
    for name in _pngs(run):
        assert (run / name).stat().st_size > 1000
    elsewhere = tmp_path / "figs"
    assert _run(capsys, "doctor", run, "--plots", elsewhere)[0] == 0
    assert _pngs(elsewhere) == sorted(plots.PLOT_FILES.values())


def test_a_healthy_run_gets_a_clean_report(tmp_path, capsys):
    run = tmp_path / "ok"
    assert _run(capsys, "train", *HEALTHY, "--out", run)[0] == 0
    status, out, _ = _run(capsys, "doctor", run, "--no-plots")
    assert status == 0 and "No problems found" in out, out


def test_diagnostics_interval_and_opting_out(tmp_path, capsys):
    run = tmp_path / "every"
    tiny = ["--dataset", "moons", "--n-samples", "80", "--layers", "2-8-2", "--epochs", "2",
            "--batch-size", "16", "--no-progress"]
    assert _run(capsys, "train", *tiny, "--diagnostics-interval", "3", "--out", run)[0] == 0
    readings = Readings.from_jsonl(run / "diagnostics.jsonl")
    assert readings.meta["interval"] == 3
    assert [s["step"] for s in readings.steps] == [1, 4, 7]  # 8 steps in all
    assert [e["epoch"] for e in readings.epochs] == [1, 2]

    bare = tmp_path / "bare"
    assert _run(capsys, "train", *tiny, "--no-diagnostics", "--out", bare)[0] == 0
    assert not (bare / "diagnostics.jsonl").exists()
    status, out, err = _run(capsys, "doctor", bare)
    assert status == 2 and out == ""
    assert err.count("\n") == 1
    assert f"{bare} has no diagnostics.jsonl" in err and f"backprop train --out {bare}" in err

    status, _, err = _run(capsys, "train", *tiny, "--no-diagnostics", "--diagnostics-interval",
                          "5", "--out", tmp_path / "x")
    assert status == 2 and "contradict" in err
    status, _, err = _run(capsys, "train", *tiny, "--diagnostics-interval", "0",
                          "--out", tmp_path / "y")
    assert status == 2 and "--diagnostics-interval must be an integer >= 1, got 0" in err


def test_doctor_errors_are_one_line(tmp_path, capsys):
    status, out, err = _run(capsys, "doctor", tmp_path / "nowhere")
    assert status == 2 and out == ""
    assert err == (f"backprop doctor: error: no run folder {tmp_path / 'nowhere'}; make one "
                   f"with: backprop train --out {tmp_path / 'nowhere'}\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "diagnostics.jsonl").write_text('not json\n{}\n')  # no readable line
    status, out, err = _run(capsys, "doctor", broken)
    assert status == 2 and err.startswith("backprop doctor: error: cannot read the run in ")
    assert err.count("\n") == 1
    assert _run(capsys, "doctor", "--plots", "a", "--no-plots", broken)[0] == 2


def test_doctor_without_matplotlib_still_reports(tmp_path, capsys, monkeypatch):
    run = tmp_path / "nan"
    assert _run(capsys, "train", *BLOWS_UP, "--out", run)[0] == 1

    def missing():
        raise plots.PlotDependencyError("backprop's plots need matplotlib, which is not "
                                        "installed: pip install backprop[plot]")
    monkeypatch.setattr(plots, "require_matplotlib", missing)
    status, out, err = _run(capsys, "doctor", run)
    assert status == 0, err
    assert "ERROR: divergence" in out
    assert "plots skipped: backprop's plots need matplotlib" in out
    assert "pip install backprop[plot]" in out


def test_doctor_takes_the_diagnostics_file_and_refuses_other_files(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    steps = [{"step": s, "loss": 1.0 / s, "grad_norm": 0.5, "params": {}, "activations": {}}
             for s in (1, 11)]
    Readings({"interval": 10}, steps).to_jsonl(run / "diagnostics.jsonl")
    status, out, err = _run(capsys, "doctor", run / "diagnostics.jsonl", "--no-plots")
    assert status == 0, err
    assert out.startswith(f"backprop doctor {run} (2 recorded steps, every 10 steps)")
    (run / "config.json").write_text("{}")
    status, out, err = _run(capsys, "doctor", run / "config.json")
    assert status == 2 and out == ""
    assert err == (f"backprop doctor: error: {run / 'config.json'} is a file, not a run folder; "
                   f"give the folder that `backprop train --out` wrote (the one holding "
                   f"diagnostics.jsonl)\n")
