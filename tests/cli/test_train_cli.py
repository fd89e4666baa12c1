"""``backprop train`` end to end, in process: run folder, --config, --resume, one-line errors."""
import json
import re

import numpy as np
import pytest

import backprop
from backprop.cli import main
from backprop.train import History, load_checkpoint
from backprop.train import experiment

TINY = ["--dataset", "moons", "--n-samples", "80", "--layers", "2-8-2", "--epochs", "4",
        "--batch-size", "16", "--lr", "0.05", "--no-progress"]


def _run(capsys, *argv):
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def _weights(path):
    state = backprop.load(path)
    return {k: v.numpy() for k, v in state["model"].items()}


def test_train_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, stderr = _run(capsys, "train", *TINY, "--schedule", "warmup-cosine",
                                  "--clip", "1.0", "--out", str(out))
    assert status == 0, stderr
    for name in ("config.json", "metrics.jsonl", "history.json", "last.safetensors",
                 "best.safetensors"):
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "moons" and config["layers"] == "2-8-2"
    assert config["schedule"] == "warmup-cosine" and config["clip"] == 1.0
    history = History.from_json(out / "history.json")
    assert len(history) == 4 and len(history.steps) == 16          # 64 train samples / 16
    assert History.from_jsonl(out / "metrics.jsonl") == history
    assert load_checkpoint(out / "last.safetensors")["epoch"] == 4
    assert "finished 4 epochs (16 steps)" in stdout
    assert "train  loss" in stdout and "test   loss" in stdout and "accuracy" in stdout
    assert "best   epoch" in stdout and str(out) in stdout
    try:
        import matplotlib  # noqa: F401
        assert (out / "loss_curve.png").exists()
    except ImportError:
        assert "loss_curve.png skipped: matplotlib is not installed" in stdout
    assert stderr == ""


def test_config_reproduces_the_run(tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert _run(capsys, "train", *TINY, "--out", str(first))[0] == 0
    assert _run(capsys, "train", "--config", str(first / "config.json"), "--out",
                str(second), "--no-progress")[0] == 0
    a, b = _weights(first / "last.safetensors"), _weights(second / "last.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # re-running the same configuration into its own folder replaces the run
    status, stdout, _ = _run(capsys, "train", "--config", str(first / "config.json"),
                             "--no-progress")
    assert status == 0 and "replacing the previous run" in stdout
    # a different configuration is refused, unless --overwrite
    status, _, stderr = _run(capsys, "train", *TINY, "--seed", "3", "--out", str(first))
    assert status == 2 and "already holds a different run" in stderr
    assert _run(capsys, "train", *TINY, "--seed", "3", "--out", str(first),
                "--overwrite")[0] == 0


def test_resume_continues_to_the_same_weights(tmp_path, capsys, monkeypatch):
    full, part = tmp_path / "full", tmp_path / "part"
    assert _run(capsys, "train", *TINY, "--out", str(full))[0] == 0

    class Interrupt(experiment.Trainer):      # Ctrl-C after epoch 2's checkpoint is written
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            from backprop.train import LambdaCallback

            def stop(trainer, record):
                if record["epoch"] == 2:
                    raise KeyboardInterrupt
            cb = LambdaCallback(on_epoch_end=stop)
            cb.order = 1000
            self.add_callback(cb)

    monkeypatch.setattr(experiment, "Trainer", Interrupt)
    status, _, stderr = _run(capsys, "train", *TINY, "--out", str(part))
    assert status == 130 and f"backprop train --resume --out {part}" in stderr
    assert load_checkpoint(part / "last.safetensors")["epoch"] == 2
    monkeypatch.undo()

    status, stdout, stderr = _run(capsys, "train", "--resume", "--out", str(part),
                                  "--no-progress")
    assert status == 0, stderr
    assert "resumed and finished 4 epochs" in stdout
    a, b = _weights(full / "last.safetensors"), _weights(part / "last.safetensors")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert History.from_jsonl(part / "metrics.jsonl").epoch_metric("loss") == \
        History.from_json(full / "history.json").epoch_metric("loss")


def test_regression_dataset_trains_with_mse(tmp_path, capsys):
    status, stdout, stderr = _run(capsys, "train", "--dataset", "sine", "--n-samples", "64",
                                  "--epochs", "2", "--no-progress", "--test-fraction", "0",
                                  "--out", str(tmp_path / "sine"))
    assert status == 0, stderr
    assert "accuracy" not in stdout and "test   loss" not in stdout
    config = json.loads((tmp_path / "sine" / "config.json").read_text())
    assert config["layers"] == "1-32-32-1"


def test_digits(tmp_path, capsys):
    pytest.importorskip("sklearn")
    status, stdout, stderr = _run(capsys, "train", "--dataset", "digits", "--epochs", "1",
                                  "--batch-size", "128", "--no-progress", "--out",
                                  str(tmp_path / "digits"))
    assert status == 0, stderr
    assert json.loads((tmp_path / "digits" / "config.json").read_text())["layers"] == \
        "64-128-64-10"


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "mnist3"], "unknown dataset 'mnist3'; choose from"),
    (["--activation", "swish"], "unknown activation 'swish'; choose from"),
    (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'; choose from"),
    (["--schedule", "linear"], "unknown schedule 'linear'"),
    (["--layers", "2-8-4"], "end with 4 outputs but moons has 2 classes; use e.g. 2-8-2"),
    (["--layers", "3-8-2"], "start with 3 inputs but moons has 2 features"),
    (["--layers", "2-x-2"], "layers must be widths joined by '-'"),
    (["--lr", "-1"], "lr must be a positive number, got -1.0"),
    (["--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
    (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
    (["--test-fraction", "1.5"], "test_fraction must be in [0, 1)"),
    (["--momentum", "0.9"], "momentum applies to sgd and rmsprop"),
    (["--warmup-steps", "5"], "warmup_steps applies to the warmup-cosine schedule only"),
    (["--schedule", "warmup-cosine", "--warmup-steps", "1000"], "must be fewer than"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_arguments_give_one_line_and_status_2(tmp_path, capsys, argv, message):
    args = [a for a in TINY if a not in ("--layers", "2-8-2")] if "--layers" in argv else TINY
    status, stdout, stderr = _run(capsys, "train", *args, *argv, "--out", str(tmp_path / "r"))
    assert status == 2
    assert stderr.count("\n") == 1 and re.match(r"backprop( train)?: error: ", stderr)
    assert message in stderr
    assert "Traceback" not in stderr + stdout


def test_unwritable_out_and_resume_errors(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    status, _, stderr = _run(capsys, "train", *TINY, "--out", str(blocker / "run"))
    assert status == 2 and "cannot write to the run folder" in stderr and stderr.count("\n") == 1
    status, _, stderr = _run(capsys, "train", "--resume")
    assert status == 2 and "--resume needs --out" in stderr
    status, _, stderr = _run(capsys, "train", "--resume", "--out", str(tmp_path / "none"))
    assert status == 2 and "no run to resume" in stderr
    status, _, stderr = _run(capsys, "train", "--resume", "--out", str(tmp_path), "--lr", "1")
    assert status == 2 and "drop --lr" in stderr
    status, _, stderr = _run(capsys, "train", "--config", str(tmp_path / "missing.json"))
    assert status == 2 and "can't read the configuration" in stderr
    (tmp_path / "bad.json").write_text('{"dataset": "moons", "colour": "red"}')
    status, _, stderr = _run(capsys, "train", "--config", str(tmp_path / "bad.json"))
    assert status == 2 and "unknown configuration keys colour" in stderr


def test_digits_without_scikit_learn_is_a_clear_error(tmp_path, capsys, monkeypatch):
    def missing(**kwargs):
        raise ImportError("the digits dataset needs scikit-learn: pip install "
                          "'backprop[datasets]'")
    monkeypatch.setattr(experiment, "load_digits", missing)
    status, _, stderr = _run(capsys, "train", "--dataset", "digits", "--out", str(tmp_path))
    assert status == 2 and "needs scikit-learn" in stderr and stderr.count("\n") == 1


def test_divergence_is_reported_in_one_line(tmp_path, capsys):
    status, _, stderr = _run(capsys, "train", "--dataset", "sine", "--optimizer", "sgd",
                             "--lr", "10", "--epochs", "20", "--no-progress",
                             "--out", str(tmp_path / "boom"))
    assert status == 1
    assert stderr.startswith("backprop train: error: training diverged: ")
    assert "at step" in stderr and "learning rate 10" in stderr and stderr.count("\n") == 1
    assert (tmp_path / "boom" / "history.json").exists()


def test_main_without_a_command_and_help(capsys):
    assert main([]) == 2
    assert "choose a command: train" in capsys.readouterr().err
    assert main(["train", "--help"]) == 0
    assert "--dataset" in capsys.readouterr().out
