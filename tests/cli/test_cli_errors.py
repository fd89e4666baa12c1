"""The bad invocations of issue 11 one by one: a one-line error and exit status 2 (never a
traceback, a warning or an allocation), or for NaN losses a diagnosis with its plots."""
import json
import tracemalloc
import warnings

import pytest

from backprop.cli import main
from backprop.diagnostics import plots


def _run(capsys, *argv):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert not caught, [str(w.message) for w in caught]
    return status, out.out, out.err


def _refused(capsys, *argv) -> str:
    """Run; assert status 2 and one line on stderr; return the line."""
    status, _, err = _run(capsys, *argv)
    assert status == 2, err
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    return err


# -- sizes: refused before anything is allocated ----------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["train", "--layers", "2-100000-100000-3"],
     "backprop train: error: layers 2-100000-100000-3 has 10,000,700,003 parameters; the "
     "limit is 50,000,000\n"),
    (["train", "--layers", "2-99999999999-3"],
     "backprop train: error: layers 2-99999999999-3 has 599,999,999,997 parameters; the "
     "limit is 50,000,000\n"),
    (["train", "--layers", "2-20000-3"],
     "backprop train: error: layers 2-20000-3 has a layer of 20,000 units; the limit is "
     "10,000 per layer\n"),
    (["train", "--layers", "-".join(["2"] * 1001)], "has 1,001 widths; the limit is 1,000\n"),
    (["train", "--layers", "2-" + "9" * 5000 + "-3"],
     "has a width of 5000 digits; the limit is 10,000 units per layer\n"),
    (["train", "--n-samples", "1000000000"],
     "backprop train: error: n_samples must be at most 1,000,000, got 1000000000\n"),
    (["train", "--n-samples", "1000000", "--batch-size", "1000000", "--layers", "2-1000-3"],
     "a batch of 1,000,000 samples through layers 2-1000-3 holds 1,005,000,000 activation "
     "values; the limit is 100,000,000"),
    (["train", "--epochs", "99999999999999999999"], "epochs must be at most 1,000,000"),
    (["explain", "vanishing", "--width", "100000000"],
     "backprop explain: error: vanishing: width 100,000,000 is over the limit of 4,096\n"),
    (["explain", "vanishing", "--depth", "100000"],
     "backprop explain: error: vanishing: depth 100,000 is over the limit of 1,000\n"),
    (["explain", "vanishing", "--depth", "1000", "--width", "200"],
     "depth 1,000 × width 200² is 40,000,000 weights; the limit is 10,000,000\n"),
    (["explain", "vanishing", "--depth", "1000", "--width", "100", "--batch", "200"],
     "is 20,000,000 activation values; the limit is 10,000,000\n"),
])
def test_sizes_over_their_limit_are_refused_before_allocating(tmp_path, capsys, argv,
                                                              message):
    if argv[0] == "train":
        argv = [*argv, "--out", tmp_path / "run"]
    tracemalloc.start()  # NumPy reports its buffers to tracemalloc
    try:
        err = _refused(capsys, *argv)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.endswith(message) if message.endswith("\n") else message in err
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB allocated before refusing"
    assert not (tmp_path / "run").exists()  # nothing written either


def test_sizes_in_a_config_file_are_refused_too(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"layers": "2-100000-100000-3", "n_samples": 10**9}))
    err = _refused(capsys, "train", "--config", config, "--out", tmp_path / "run")
    assert "layers 2-100000-100000-3 has 10,000,700,003 parameters" in err
    config.write_text(json.dumps({"noise": 10**400}))  # a JSON int no float can hold
    err = _refused(capsys, "train", "--config", config, "--out", tmp_path / "run")
    assert "noise must be at most 100, got 1000000000000000000" in err


def test_help_states_the_limits(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for limit in ("50,000,000 parameters", "1,000 widths", "each at most 10,000",
                  "2 to 1,000,000", "at most 1,000,000", "0 to 100"):
        assert limit in text, limit
    assert main(["explain", "vanishing", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for limit in ("2 to 1,000", "1 to 4,096", "1 to 10,000", "10,000,000 weights"):
        assert limit in text, limit


# -- values out of range, and empty paths ---------------------------------------------------
def test_an_empty_out_is_refused_not_replaced_by_runs_dataset(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _refused(capsys, "train", "--out", "", "--epochs", "1")
    assert "--out needs a folder name, got ''" in err
    assert "--out needs a folder name" in _refused(capsys, "train", "--resume", "--out", " ")
    (tmp_path / "config.json").write_text('{"out": ""}')
    assert "out must be a folder path, got ''" in _refused(capsys, "train", "--config",
                                                            "config.json")
    assert list(tmp_path.iterdir()) == [tmp_path / "config.json"]  # no runs/spiral


@pytest.mark.parametrize("argv, message", [
    (["--noise", "1e308"], "noise must be at most 100, got 1e+308"),
    (["--noise", "nan"], "noise must be a non-negative number, got nan"),
    (["--lr", "1e308"], "lr must be at most 1,000,000, got 1e+308"),
    (["--lr", "inf"], "lr must be a positive number, got inf"),
    (["--momentum", "1", "--optimizer", "sgd"], "momentum must be in [0, 1), got 1.0"),
    (["--weight-decay", "2"], "weight_decay must be at most 1, got 2.0"),
    (["--seed", "99999999999999999999999"], "seed must be at most 9,223,372,036,854,775,807"),
    (["--batch-size", "99999999999999999999"], "batch_size must be at most 1,000,000"),
    (["--layers", "2_0-3"], "layers must be widths joined by '-'"),
    (["--layers", "٢-3"], "layers must be widths joined by '-'"),
    (["--lr=--"], "argument --lr: expected one argument"),
])
def test_train_values_out_of_range_are_refused(tmp_path, capsys, argv, message):
    assert message in _refused(capsys, "train", *argv, "--out", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_no_training_samples_left_for_digits_is_one_line(tmp_path, capsys):
    err = _refused(capsys, "train", "--dataset", "digits", "--test-fraction", "0.9999",
                   "--out", tmp_path / "run", "--no-progress")
    assert "test_fraction 0.9999 leaves no training samples" in err


def test_deeply_nested_config_is_one_line(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text("[" * 100_000 + "]" * 100_000)
    err = _refused(capsys, "train", "--config", config, "--out", tmp_path / "run")
    assert f"{config} is nested too deeply to be a run configuration" in err


def test_explain_values_out_of_range(capsys):
    assert "seed must be an int >= 0, got -1" in _refused(capsys, "explain", "vanishing",
                                                          "--seed", "-1")
    assert "lr must be at most 1,000,000, got 1e+308" in _refused(capsys, "explain", "--lr",
                                                                  "1e308")
    assert "graph --out needs a file name" in _refused(capsys, "explain", "graph", "--out", "")


def test_other_commands_refuse_empty_and_missing_values(capsys):
    assert "-k needs a name or pattern" in _refused(capsys, "gradcheck", "-k", "")
    assert "argument --port: expected one argument" in _refused(capsys, "lab", "--port=--")
    assert "--host needs an address" in _refused(capsys, "lab", "--host", "", "--no-browser")
    # Not encodable as a host name: refused without a DNS lookup, and before the warning
    # that a non-loopback host would get (so the error is the only line).
    err = _refused(capsys, "lab", "--host", "a" * 300, "--no-browser")
    assert "is not a host name or IP address" in err and "warning" not in err


def test_a_line_break_in_a_value_stays_on_one_line(tmp_path, capsys):
    err = _refused(capsys, "train", "--dataset", "spi\nral", "--out", tmp_path / "run")
    assert "unknown dataset 'spi\\nral'" in err
    err = _refused(capsys, "train", "--layers", "2-3\n", "--out", tmp_path / "run")
    assert "got '2-3\\n'" in err


# -- backprop doctor on files that are no run ---------------------------------------------
def _diagnostics(folder, *records):
    folder.mkdir()
    (folder / "diagnostics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.mark.parametrize("record, message", [
    ({"kind": "step", "step": "a", "loss": 1.0},
     "diagnostics.jsonl step record 1: 'step' must be a whole number"),
    ({"kind": "step", "step": 1, "loss": [1]},
     "diagnostics.jsonl step record 1: 'loss' must be a number or null, got [1]"),
    ({"kind": "step", "step": 1, "params": 5},
     "diagnostics.jsonl step record 1: 'params' must be an object, got 5"),
    ({"kind": "step", "step": 1, "params": {"w": {"grad_norm": "x"}}},
     "step record 1, params 'w': 'grad_norm' must be a number or null, got 'x'"),
    ({"kind": "step", "step": 1, "activations": {"a": {"hist": {"edges": ["x"]}}}},
     "activations 'a': 'hist.edges' must be a list of numbers"),
    ({"kind": "meta", "interval": "x"}, "diagnostics.jsonl meta: 'interval' must be"),
    ({"kind": "meta", "params": 5, "layers": "x"},
     "diagnostics.jsonl meta: 'params' must be a list of names, got 5"),
    ({"kind": "step", "step": 10**400}, "'step' must be a whole number from 0 to"),
])
def test_doctor_refuses_values_of_the_wrong_type(tmp_path, capsys, record, message):
    run = _diagnostics(tmp_path / "run", record)
    err = _refused(capsys, "doctor", run, "--no-plots")
    assert err.startswith(f"backprop doctor: error: cannot read the run in {run}: ")
    assert message in err


def test_doctor_refuses_a_mistyped_history(tmp_path, capsys):
    run = _diagnostics(tmp_path / "run", {"kind": "step", "step": 1, "loss": 1.0})
    (run / "history.json").write_text(json.dumps(
        {"steps": [{"step": 1, "loss": "high"}], "epochs": []}))
    assert "history step record 1: 'loss' must be a number or null, got 'high'" in \
        _refused(capsys, "doctor", run)


def test_doctor_refuses_deeply_nested_json(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "diagnostics.jsonl").write_text('{"kind": "step", "step": 1, "loss": ' +
                                           "[" * 100_000 + "]" * 100_000 + "}\n")
    assert "a record is nested too deeply" in _refused(capsys, "doctor", run)


def test_doctor_refuses_empty_folders(tmp_path, capsys):
    assert "RUN needs a run folder, got ''" in _refused(capsys, "doctor", "")
    run = _diagnostics(tmp_path / "run", {"kind": "step", "step": 1, "loss": 1.0})
    assert "--plots needs a folder, got ''" in _refused(capsys, "doctor", run, "--plots", "")


def test_doctor_plots_a_run_whose_losses_are_all_nan(tmp_path, capsys):
    """A run NaN from its first step is a real run to diagnose: the loss plot falls back to
    a linear scale (matplotlib refused a log scale with no positive value)."""
    pytest.importorskip("matplotlib")
    steps = [{"kind": "step", "step": s, "loss": "nan", "grad_norm": "nan", "params": {},
              "activations": {}} for s in (1, 2, 3)]
    run = _diagnostics(tmp_path / "run", *steps)
    status, out, err = _run(capsys, "doctor", run)
    assert status == 0 and err == "", err
    assert "ERROR: divergence" in out
    assert (run / plots.PLOT_FILES["loss"]).stat().st_size > 0


def test_version_names_the_engine_and_the_array_kernels_running(capsys):
    from backprop.autograd.engine import ENGINE
    from backprop.ops._kernels import KERNELS, KERNELS_IN

    status, out, _ = _run(capsys, "--version")
    assert status == 0
    line = " ".join(out.split())  # argparse wraps the line at the terminal's width
    assert line.startswith("backprop ") and f"engine: {ENGINE}" in line
    assert f"array kernels: {KERNELS_IN}" in line
    assert (KERNELS_IN == "C") == (KERNELS is not None)
