"""Resuming from a checkpoint that can't be resumed from: one clear error, nothing changed.

``backprop train --resume`` is run in process (``backprop.cli.main``), as a user runs it.
"""
import os
import shutil

import numpy as np
import pytest

import backprop
from backprop import nn, optim
from backprop.cli import main
from backprop.train import CheckpointError, ModelCheckpoint, Trainer
from backprop.train.experiment import build_mlp

from tests.train.common import moons_loaders, params_of

TINY = ["--dataset", "moons", "--n-samples", "80", "--layers", "2-8-2", "--epochs", "2",
        "--batch-size", "16", "--lr", "0.05", "--no-progress"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run folder of 2 epochs, with every file `backprop train` writes."""
    out = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


def _snapshot(folder) -> dict:
    """Every path under ``folder`` with its bytes (None for a folder)."""
    files = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs:
            files[os.path.relpath(os.path.join(root, name), folder)] = None
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _empty(path):
    path.write_bytes(b"")


def _folder(path):
    path.unlink()
    path.mkdir()
    (path / "inside.txt").write_text("not a checkpoint\n")


def _other_architecture(path):
    state = backprop.load(path)
    state["model"] = build_mlp("2-4-2").state_dict()
    backprop.save(state, path)


def _plain_state_dict(path):
    backprop.save(build_mlp("2-8-2").state_dict(), path)


@pytest.mark.parametrize("damage, expected", [
    (_empty, "too short for a safetensors file"),
    (_truncate, "truncated"),
    (_other_architecture, "size mismatch for 0.weight"),
    (_folder, "it is a folder, not a checkpoint file"),
    (_plain_state_dict, "is not a training checkpoint"),
], ids=["empty", "truncated", "other-architecture", "folder", "plain-state-dict"])
def test_resume_from_an_unusable_checkpoint_is_one_line_and_changes_nothing(
        finished_run, tmp_path, capsys, damage, expected):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    damage(out / "last.safetensors")
    before = _snapshot(out)
    capsys.readouterr()
    status = main(["train", "--resume", "--out", str(out), "--no-progress"])
    stderr = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("backprop train: error: ") and expected in lines[0]
    assert "last.safetensors" in lines[0]
    assert _snapshot(out) == before


def _setup():
    backprop.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    opt = optim.Adam(model.parameters(), lr=0.05)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, scheduler=sched, progress=False)
    return trainer, model, opt, sched


def test_a_failed_load_leaves_the_trainer_as_it_was(tmp_path):
    trainer, model, opt, sched = _setup()
    train, _ = moons_loaders(n=32, batch_size=16)
    trainer.add_callback(ModelCheckpoint(tmp_path, save_best=False))
    trainer.fit(train, epochs=1)
    state = backprop.load(tmp_path / "last.safetensors")
    state["history"] = "not a history"              # the model, optimizer and schedule fit
    backprop.save(state, tmp_path / "broken.safetensors")

    trainer, model, opt, sched = _setup()
    weights, opt_state, lr = params_of(model), opt.state_dict(), sched.get_last_lr()
    with pytest.raises(CheckpointError, match="broken.safetensors does not fit this run"):
        trainer.load_checkpoint(tmp_path / "broken.safetensors")
    for a, b in zip(params_of(model), weights):
        np.testing.assert_array_equal(a, b)
    assert opt.state_dict()["state"] == opt_state["state"] == {}
    assert sched.get_last_lr() == lr and trainer.step == 0 and not trainer.resuming
    # CheckpointError is a ValueError, as the old "not a training checkpoint" error was
    assert issubclass(CheckpointError, ValueError)
