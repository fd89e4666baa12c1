"""A sweep's results without Ray: the sweep.jsonl writer, records of real trials, the table,
the summary, the heat map, ``load`` and the CLI's --report and input errors."""
from __future__ import annotations

import json
import os
import sys

import pytest

from backprop.cli import main
from backprop.sweep import Space, SweepError, SweepResult, load, run
from backprop.sweep.results import SweepLog, read_definition, read_log, write_definition
from backprop.sweep.trial import run_trial


def _record(tid, lr, batch, test_loss, *, diverged=False, findings=(), accuracy=0.5):
    return {"trial_id": tid, "config": {"lr": lr, "batch_size": batch},
            "final": {"train_loss": test_loss, "test_loss": test_loss, "accuracy": accuracy},
            "best": None, "diverged": diverged, "reason": "nan loss" if diverged else None,
            "findings": list(findings), "epochs": 3, "seconds": 0.5, "run_dir": f"/x/{tid}"}


def _sweep():
    records = []
    for i, (lr, b) in enumerate((lr, b) for lr in (0.01, 0.1, 1.0, 10.0) for b in (16, 64)):
        diverged = lr >= 1.0 and b == 16 or lr == 10.0
        findings = ["divergence"] if diverged else (["dead_relus"] if lr == 0.1 else [])
        loss = None if diverged else 1.0 / (1 + i)
        records.append(_record(f"t{i:03d}", lr, b, loss, diverged=diverged, findings=findings))
    return SweepResult(records, {"space": {"lr": [], "batch_size": []}, "metric": "test_loss"})


# -- sweep.jsonl: one writer, each trial once ------------------------------------------------
def test_log_appends_each_trial_exactly_once(tmp_path):
    path = tmp_path / "sweep.jsonl"
    log = SweepLog(path)
    assert log.append(_record("t000", 0.1, 16, 0.5))
    assert not log.append(_record("t000", 0.1, 16, 0.4))   # the same trial again: refused
    assert log.append(_record("t001", 1.0, 16, 0.6))
    again = SweepLog(path)                                 # a resumed driver
    assert "t000" in again and "t001" in again
    assert not again.append(_record("t001", 1.0, 16, 0.7))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["trial_id"] for line in lines] == ["t000", "t001"]
    assert json.loads(lines[0])["final"]["test_loss"] == 0.5


def test_log_cuts_a_partial_last_line_of_a_killed_driver(tmp_path):
    path = tmp_path / "sweep.jsonl"
    SweepLog(path).append(_record("t000", 0.1, 16, 0.5))
    with open(path, "a") as f:
        f.write('{"trial_id": "t001", "conf')               # killed mid-line
    assert [r["trial_id"] for r in read_log(path)] == ["t000"]
    log = SweepLog(path)
    assert "t001" not in log
    log.append(_record("t001", 1.0, 16, 0.6))
    assert [r["trial_id"] for r in read_log(path)] == ["t000", "t001"]


def test_log_writes_strict_json_and_reads_first_of_duplicates(tmp_path):
    path = tmp_path / "sweep.jsonl"
    SweepLog(path).append(_record("t000", 0.1, 16, float("nan")))
    assert "NaN" not in path.read_text()
    assert read_log(path)[0]["final"]["test_loss"] is None
    with open(path, "a") as f:                                # a line written by hand
        f.write(json.dumps(_record("t000", 0.1, 16, 9.0)) + "\n")
    assert [r["final"]["test_loss"] for r in read_log(path)] == [None]
    with open(path, "a") as f:
        f.write("not json\n")
    with pytest.raises(SweepError, match="line 3"):
        read_log(path)
    with pytest.raises(SweepError, match="trial_id"):
        SweepLog(tmp_path / "other.jsonl").append({"config": {}})


def test_definition_round_trips(tmp_path):
    definition = {"base": {"epochs": 3}, "space": {"lr": [0.1, 1.0],
                                                   "momentum": Space.uniform(0, 0.9)},
                  "samples": 2, "seed": 5, "metric": "train_loss"}
    write_definition(tmp_path, definition)
    back = read_definition(tmp_path)
    assert back["space"] == {"lr": [0.1, 1.0], "momentum": Space.uniform(0, 0.9)}
    assert (back["samples"], back["seed"], back["metric"]) == (2, 5, "train_loss")
    with pytest.raises(SweepError, match="sweep.json is missing"):
        read_definition(tmp_path / "nothing")


# -- reading the results -------------------------------------------------------------------
def test_table_is_best_first_with_diverged_last():
    result = _sweep()
    ranked = [r["trial_id"] for r in result.ranked()]
    assert ranked[:5] == ["t005", "t003", "t002", "t001", "t000"]  # lowest test_loss first
    assert {r["diverged"] for r in result.ranked()[-3:]} == {True}
    lines = result.table().splitlines()
    assert lines[0].split()[:5] == ["#", "trial", "lr", "batch_size", "test_loss"]
    assert lines[1].split()[:4] == ["1", "t005", "1", "64"]
    assert "diverged" in lines[-1] and "divergence" in lines[-1]
    assert result.best()["trial_id"] == "t005"
    assert len(result.table(limit=2).splitlines()) == 4       # header, 2 rows, "... more"


def test_summary_counts_findings_and_finds_the_threshold():
    summary = _sweep().summary()
    assert "diverged in 3 of 8 trials, all at lr >= 1" not in summary  # lr=1, b=64 is fine
    assert "diverged in 3 of 8 trials" in summary
    assert "dead_relus in 2 of 8 trials, all at lr = 0.1" not in summary
    assert "dead_relus in 2 of 8 trials" in summary
    records = [_record("a", 0.01, 16, 0.5), _record("b", 1.0, 16, None, diverged=True,
                                                  findings=["divergence"]),
               _record("c", 10.0, 16, None, diverged=True), _record("d", 0.1, 16, 0.4)]
    summary = SweepResult(records).summary()
    assert "diverged in 2 of 4 trials, all at lr >= 1" in summary
    assert summary.startswith("best: d (lr=0.1, batch_size=16): test_loss 0.4")


def test_summary_counts_the_doctors_divergence_on_a_finite_loss():
    records = [_record("a", 0.01, 16, 0.5), _record("b", 10.0, 16, 40.0,
                                                  findings=["divergence"]),
               _record("c", 100.0, 16, None, diverged=True)]
    assert "diverged in 2 of 3 trials, all at lr >= 10 (1 stopped at a NaN/Inf loss)" in \
        SweepResult(records).summary()


def test_best_is_none_when_every_trial_diverged():
    result = SweepResult([_record("a", 10.0, 16, None, diverged=True)])
    assert result.best() is None
    assert "diverged in 1 of 1 trials, all at lr = 10" in result.summary()
    assert SweepResult([]).summary() == "no trials finished"
    assert "diverged in 0 of 1 trials" in SweepResult([_record("a", 0.1, 16, 0.5)]).summary()
    with pytest.raises(SweepError, match="metric"):
        result.ranked("accuracy")


def test_heatmap_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    backend = matplotlib.get_backend()
    path = _sweep().heatmap("lr", "batch-size", tmp_path / "map.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend               # no global backend switch
    with pytest.raises(SweepError, match="not a training option"):
        _sweep().heatmap("lr", "bogus", tmp_path / "x.png")
    with pytest.raises(SweepError, match="the sweep varies"):
        _sweep().heatmap("lr", "momentum", tmp_path / "x.png")


def test_heatmap_without_matplotlib_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(SweepError, match=r"pip install 'backprop\[plot\]'"):
        _sweep().heatmap("lr", "batch_size", tmp_path / "map.png")


# -- real trials, without Ray ----------------------------------------------------------------
BASE = {"dataset": "moons", "layers": "2-8-2", "epochs": 2, "n_samples": 64, "batch_size": 16}


def test_a_trial_is_a_real_run_folder_with_its_record(tmp_path):
    reports = []
    record = run_trial("t000-lr=0.05", {"lr": 0.05}, BASE, str(tmp_path),
                       report=reports.append)
    run_dir = tmp_path / "t000-lr=0.05"
    assert record["run_dir"] == str(run_dir)
    for name in ("config.json", "metrics.jsonl", "diagnostics.jsonl", "last.safetensors"):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "config.json").read_text())["lr"] == 0.05
    assert record["config"] == {"lr": 0.05} and record["epochs"] == 2
    assert not record["diverged"] and record["reason"] is None
    assert record["final"]["test_loss"] > 0 and 0 <= record["final"]["accuracy"] <= 1
    assert record["best"]["epoch"] in (1, 2)
    assert [r["epoch"] for r in reports] == [1, 2]          # one report per epoch (ASHA)
    assert reports[-1]["test_loss"] == pytest.approx(record["best"]["test_loss"]) or \
        record["best"]["epoch"] == 1
    assert isinstance(record["findings"], list)
    assert main(["doctor", str(run_dir), "--no-plots"]) == 0


def test_a_diverging_trial_stops_and_says_why(tmp_path):
    record = run_trial("t001", {"lr": 1e6, "optimizer": "sgd"}, BASE, str(tmp_path))
    assert record["diverged"] is True
    assert "nan" in record["reason"].lower() or "inf" in record["reason"].lower()
    assert record["epochs"] <= 1                              # stopped at once
    assert "divergence" in record["findings"]


def test_a_trial_continues_its_checkpoint_with_the_same_numbers(tmp_path):
    whole = run_trial("t", {"lr": 0.05}, {**BASE, "epochs": 3}, str(tmp_path / "a"))
    # a worker died after epoch 1: the folder holds the checkpoint of epoch 1 (made here
    # by a 1-epoch run, with the 3-epoch run's config.json)
    folder = tmp_path / "b" / "t"
    folder.mkdir(parents=True)
    first = run_trial("t", {"lr": 0.05}, {**BASE, "epochs": 1}, str(tmp_path / "c"))
    for name in os.listdir(folder):
        os.remove(folder / name)
    for name in os.listdir(tmp_path / "c" / "t"):
        if name != "config.json":
            os.replace(tmp_path / "c" / "t" / name, folder / name)
    config = json.loads((tmp_path / "a" / "t" / "config.json").read_text())
    config["out"] = str(folder)
    (folder / "config.json").write_text(json.dumps(config))
    reports = []
    resumed = run_trial("t", {"lr": 0.05}, {**BASE, "epochs": 3}, str(tmp_path / "b"),
                        report=reports.append)
    assert [r["epoch"] for r in reports] == [2, 3]            # it continued, from epoch 2
    assert first["epochs"] == 1 and resumed["epochs"] == 3
    assert resumed["final"] == whole["final"]


def test_run_without_ray_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SweepError, match=r"needs Ray: pip install 'backprop\[ray\]'"):
        run(BASE, {"lr": [0.1]}, out=tmp_path / "s", progress=False)


def test_run_refuses_bad_input_before_starting_ray(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)   # reaching Ray would be a different error
    with pytest.raises(SweepError, match="cap of 5"):
        run(BASE, {"lr": [0.1] * 6}, out=tmp_path / "s", max_trials=5)
    with pytest.raises(SweepError, match="empty"):
        run(BASE, {"lr": []}, out=tmp_path / "s")
    with pytest.raises(SweepError, match="metric"):
        run(BASE, {"lr": [0.1]}, out=tmp_path / "s", metric="accuracy")
    with pytest.raises(SweepError, match="nothing to resume"):
        run(BASE, None, out=tmp_path / "none", resume=True)


# -- the CLI, without Ray ------------------------------------------------------------------------
def test_report_prints_the_table_and_summary_again(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    write_definition(out, {"base": BASE, "space": {"lr": [0.01, 10.0]}, "samples": None,
                           "seed": 0, "metric": "test_loss"})
    log = SweepLog(out / "sweep.jsonl")
    log.append(_record("t000-lr=0.01", 0.01, 16, 0.3))
    log.append(_record("t001-lr=10", 10.0, 16, None, diverged=True))
    assert main(["sweep", "--report", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].split()[:4] == ["#", "trial", "lr", "test_loss"]
    assert lines[1].split()[:4] == ["1", "t000", "0.01", "0.3"]
    assert lines[2].split()[:3] == ["2", "t001", "10"] and "diverged" in lines[2]
    assert "diverged in 1 of 2 trials, all at lr >= 10" in printed
    assert load(out).best()["trial_id"] == "t000-lr=0.01"


@pytest.mark.parametrize("argv, message", [
    (["--grid", "lr=0.1", "--bogus"], "unrecognized arguments: --bogus"),
    (["--grid", "lr=", "--out", "X"], "no values"),
    (["--grid", "lr=1e-3:1:log:50", "--grid", "batch-size=1:500:lin:50", "--out", "X"],
     "2,500 trials, more than the cap of 1,000; raise it with --max-trials 2500"),
    (["--grid", "lr=0.1"], "--out DIR is required"),
    (["--out", "X"], "nothing to sweep"),
    (["--grid", "lr=0.1", "--lr", "0.2", "--out", "X"], "both set and swept"),
    (["--grid", "lr=0.1", "--sample", "lr=uniform:0:1", "--out", "X"], "swept twice"),
    (["--grid", "lr=0.1", "--grid", "momentum=0", "--heatmap", "lr", "--out", "X"],
     "--heatmap needs X,Y"),
    (["--grid", "lr=0.1", "--metric", "accuracy", "--out", "X"], "--metric must be"),
    (["--report", "NOWHERE"], "no sweep folder"),
    (["--report", "NOWHERE", "--grid", "lr=1"], "--report prints a finished sweep"),
    (["--resume", "--out", "X", "--grid", "lr=1"], "drop --grid"),
    (["--grid", "activation=relu,nope", "--out", "X"], "activation"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["sweep", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "X").exists()                      # nothing written


def test_sweep_help_lists_train_options_and_its_own(capsys):
    assert main(["sweep", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--layers", "--lr", "--batch-size", "--schedule", "--clip",
                 "--grid", "--sample", "--samples", "--asha", "--address", "--storage",
                 "--max-trials", "--resume", "--report", "--heatmap", "--out"):
        assert flag in text, flag


def test_a_doctor_found_divergence_is_diverged_in_the_table_summary_and_map():
    # One test of "diverged" for all three: a finite loss the doctor calls a divergence is
    # marked in the table's status, counted in the summary, and ranked after the good trials.
    from backprop.sweep.results import SweepResult

    records = [
        {"trial_id": "t000-lr=0.01", "config": {"lr": 0.01}, "final": {"test_loss": 0.5},
         "best": {}, "diverged": False, "findings": [], "epochs": 5},
        {"trial_id": "t001-lr=10", "config": {"lr": 10}, "final": {"test_loss": 0.4},
         "best": {}, "diverged": False, "findings": ["divergence"], "epochs": 5},
    ]
    result = SweepResult(records, {"metric": "test_loss"})
    assert [r["trial_id"] for r in result.ranked()] == ["t000-lr=0.01", "t001-lr=10"]
    rows = result.table().splitlines()
    assert "diverged" in rows[-1] and "t001" in rows[-1] and "ok" in rows[1]
    assert "diverged in 1 of 2 trials" in result.summary()


# -- review: hand-edited files, --overwrite, cpus per trial --------------------------------------
@pytest.mark.parametrize("definition, line, message", [
    ('{"space": [1, 2]}', None, "not a sweep definition"),
    ('[1]', None, "not a sweep definition"),
    ('{"space": {"lr": [0.1]}}', '{"trial_id": "t0", "config": 3, "final": {}}',
     "config is not an object"),
    ('{"space": {"lr": [0.1]}}', '{"trial_id": "t0", "config": {}, "final": [1]}',
     "final is not an object"),
    ('{"space": {"lr": [0.1]}}',
     '{"trial_id": "t0", "config": {"lr": 0.1}, "final": {"test_loss": "a"}}',
     "final.test_loss is not a number"),
    ('{"space": {"lr": [0.1]}}', '{"trial_id": "t0", "config": {}, "findings": "x"}',
     "findings is not a list"),
])
def test_report_of_a_hand_edited_sweep_is_one_line(definition, line, message, tmp_path,
                                                   capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "sweep.json").write_text(definition)
    if line is not None:
        (out / "sweep.jsonl").write_text(line + "\n")
    assert main(["sweep", "--report", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_overwrite_keeps_the_old_sweep_when_the_new_one_is_refused(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "s"
    out.mkdir()
    write_definition(out, {"base": BASE, "space": {"lr": [0.01]}, "samples": None,
                           "seed": 0, "metric": "test_loss"})
    SweepLog(out / "sweep.jsonl").append(_record("t000-lr=0.01", 0.01, 16, 0.3))
    assert main(["sweep", "--out", str(out), "--overwrite", "--grid", "batch-size=0"]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert [r["trial_id"] for r in load(out).trials] == ["t000-lr=0.01"]


@pytest.mark.parametrize("cpus, message", [(0, "> 0"), (-1, "> 0"), ("2", "> 0"),
                                           (10_000, "CPUs of this machine")])
def test_cpus_per_trial_is_checked_before_ray_starts(cpus, message, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)   # reaching Ray would be a different error
    with pytest.raises(SweepError, match=message):
        run(BASE, {"lr": [0.1]}, out=tmp_path / "s", cpus_per_trial=cpus, progress=False)
