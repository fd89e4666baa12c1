"""Callbacks: early stopping, checkpoints and exact resume, loggers, the progress bar."""
import csv
import io
import json

import pytest

import backprop
from backprop import nn, optim
from backprop.train import (
    CSVLogger, EarlyStopping, History, JSONLinesLogger, ModelCheckpoint, ProgressBar, Trainer,
    fit, load_checkpoint,
)

from tests.train.common import adam, assert_same_params, fresh, moons_loaders


# -- early stopping ---------------------------------------------------------------------------
def test_early_stopping_stops_after_patience():
    train, val = moons_loaders(n=32, batch_size=16)
    model = fresh()
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.0),
                      callbacks=[stopper], progress=False)
    history = trainer.fit(train, epochs=20, val_data=val)
    assert len(history) == 3                       # best at epoch 1, then 2 without progress
    assert stopper.best_epoch == 1 and stopper.stopped_epoch == 3
    assert "val_loss has not improved for 2 epochs" in trainer.stop_reason


def test_early_stopping_restore_best_and_mode_max():
    train, val = moons_loaders(n=64, batch_size=16)
    model = fresh()
    stopper = EarlyStopping(monitor="val_accuracy", mode="max", patience=3, restore_best=True)
    kept = {}

    def remember(trainer, record):
        kept[record["epoch"]] = [p.detach().numpy().copy() for p in trainer.model.parameters()]

    from backprop.train import LambdaCallback
    fit(model, nn.CrossEntropyLoss(), adam(model, 0.5), train, epochs=12, val_data=val,
        callbacks=[stopper, LambdaCallback(on_epoch_end=remember)], progress=False)
    best = stopper.best_epoch
    assert_same_params(model, kept[best])


def test_early_stopping_needs_validation_data_and_checks_arguments():
    train, _ = moons_loaders(n=32)
    model = fresh()
    with pytest.raises(ValueError, match="needs validation data"):
        fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=1,
            callbacks=[EarlyStopping()], progress=False)
    with pytest.raises(ValueError, match="monitored metric 'nope'"):
        fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=1,
            callbacks=[EarlyStopping(monitor="nope")], progress=False)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="lowest")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


# -- checkpoints ------------------------------------------------------------------------------
def test_checkpoint_files_exist_and_load(tmp_path):
    train, val = moons_loaders(n=32, batch_size=16)
    model = fresh()
    ckpt = ModelCheckpoint(tmp_path / "run", monitor="val_loss")
    history = fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=3, val_data=val,
                  callbacks=[ckpt], progress=False)
    assert (tmp_path / "run" / "last.safetensors").exists()
    assert (tmp_path / "run" / "best.safetensors").exists()
    other = fresh(seed=1)
    state = load_checkpoint(ckpt.last_path, other)
    assert_same_params(other, model)
    assert state["epoch"] == 3 and state["step"] == 6
    assert state["history"] == history
    assert {"model", "optimizer", "scheduler", "rng", "callbacks"} <= set(state)
    best = load_checkpoint(ckpt.best_path)
    assert best["epoch"] == ckpt.best_epoch
    assert best["history"].epochs[-1]["val_loss"] == ckpt.best_score == min(
        history.epoch_metric("val_loss"))
    with pytest.raises(ValueError, match="not a training checkpoint"):
        backprop.save(model.state_dict(), tmp_path / "plain.safetensors")
        load_checkpoint(tmp_path / "plain.safetensors")


def _resume_setup(loader_generator=None):
    """A run with every source of state: dropout, shuffling, Adam, a per-step schedule."""
    train, val = moons_loaders(n=48, batch_size=16, generator=loader_generator)
    backprop.manual_seed(0)
    from tests.train.common import mlp
    model = mlp(sizes=(2, 16, 16, 2), dropout=0.2)
    opt = optim.Adam(model.parameters(), lr=0.02)
    sched = optim.lr_scheduler.warmup_cosine(opt, warmup_steps=3, total_steps=18)
    return model, opt, sched, train, val


def _trainer(model, opt, sched, *callbacks):
    return Trainer(model, nn.CrossEntropyLoss(), opt, scheduler=sched, scheduler_interval="step",
                   callbacks=list(callbacks), progress=False)


@pytest.mark.parametrize("own_generator", [False, True])
def test_resume_after_an_epoch_equals_uninterrupted(tmp_path, own_generator):
    gen = (lambda: backprop.Generator(7)) if own_generator else (lambda: None)
    model, opt, sched, train, val = _resume_setup(gen())
    stopper = EarlyStopping(patience=100)
    full = _trainer(model, opt, sched, stopper).fit(train, epochs=6, val_data=val)
    reference = [p.detach().numpy().copy() for p in model.parameters()]

    # the same run, interrupted after epoch 3 ...
    model, opt, sched, train, val = _resume_setup(gen())
    ckpt = ModelCheckpoint(tmp_path, monitor="val_loss")
    _trainer(model, opt, sched, ckpt, EarlyStopping(patience=100)).fit(train, epochs=3,
                                                                      val_data=val)
    # ... resumed by new objects after the random state has moved on
    backprop.manual_seed(123)
    model, opt, sched, train, val = _resume_setup(gen())
    backprop.randn(10)
    stopper2 = EarlyStopping(patience=100)
    resumed = _trainer(model, opt, sched, stopper2).fit(train, epochs=6, val_data=val,
                                                        resume_from=ckpt.last_path)
    assert_same_params(model, reference)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in full.epochs]
    assert [{k: v for k, v in r.items() if k != "time"} for r in resumed.epochs] == strip
    assert resumed.steps == full.steps
    assert (stopper2.best_score, stopper2.best_epoch) == (stopper.best_score, stopper.best_epoch)


def test_resume_mid_epoch_equals_uninterrupted(tmp_path):
    model, opt, sched, train, val = _resume_setup()
    _trainer(model, opt, sched).fit(train, epochs=4)
    reference = [p.detach().numpy().copy() for p in model.parameters()]

    model, opt, sched, train, val = _resume_setup()
    ckpt = ModelCheckpoint(tmp_path, every_n_steps=5, every_n_epochs=None, save_best=False,
                           save_last=False)
    _trainer(model, opt, sched, ckpt).fit(train, epochs=4, max_steps=5)   # step 5: epoch 2
    assert backprop.load(ckpt.last_path)["epoch_position"]["batches"] == 2
    model, opt, sched, train, val = _resume_setup()
    trainer = _trainer(model, opt, sched)
    trainer.load_checkpoint(ckpt.last_path)
    history = trainer.fit(train, epochs=4)
    assert_same_params(model, reference)
    assert len(history.steps) == 12 and [r["epoch"] for r in history.epochs] == [1, 2, 3, 4]


def test_resume_of_a_finished_run_trains_nothing(tmp_path):
    model, opt, sched, train, val = _resume_setup()
    ckpt = ModelCheckpoint(tmp_path, save_best=False)
    _trainer(model, opt, sched, ckpt).fit(train, epochs=2)
    before = [p.detach().numpy().copy() for p in model.parameters()]
    h = _trainer(model, opt, sched).fit(train, epochs=2, resume_from=ckpt.last_path)
    assert len(h.epochs) == 2
    assert_same_params(model, before)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        _trainer(model, opt, sched).fit(train, epochs=2, resume_from=tmp_path / "missing")


# -- loggers ----------------------------------------------------------------------------------
def test_jsonl_and_csv_loggers(tmp_path):
    train, val = moons_loaders(n=32, batch_size=16)
    model = fresh()
    jsonl = JSONLinesLogger(tmp_path / "metrics.jsonl")
    table = CSVLogger(tmp_path / "metrics.csv")
    history = fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=3, val_data=val,
                  callbacks=[jsonl, table], progress=False)
    assert History.from_jsonl(tmp_path / "metrics.jsonl") == history
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines[:3]] == ["step", "step", "epoch"]
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and list(rows[0]) == list(history.epochs[0])
    assert [float(r["val_loss"]) for r in rows] == history.epoch_metric("val_loss")
    with open(tmp_path / "metrics_steps.csv", newline="") as f:
        steps = list(csv.DictReader(f))
    assert [int(r["step"]) for r in steps] == [1, 2, 3, 4, 5, 6]
    assert [float(r["grad_norm"]) for r in steps] == history.step_metric("grad_norm")


def test_loggers_rewrite_the_resumed_history(tmp_path):
    model, opt, sched, train, val = _resume_setup()
    ckpt = ModelCheckpoint(tmp_path, save_best=False)
    log = tmp_path / "metrics.jsonl"
    _trainer(model, opt, sched, ckpt, JSONLinesLogger(log)).fit(train, epochs=2)
    with open(log, "a") as f:          # records written after the checkpoint (a crash)
        f.write('{"kind": "step", "step": 99, "epoch": 3, "loss": 1.0}\n')
    model, opt, sched, train, val = _resume_setup()
    history = _trainer(model, opt, sched, JSONLinesLogger(log)).fit(
        train, epochs=3, resume_from=ckpt.last_path)
    assert History.from_jsonl(log) == history
    assert len(history.steps) == 9


def test_csv_logger_adds_a_column_that_appears_later(tmp_path):
    from backprop.train.callbacks import _CSVTable
    table = _CSVTable(str(tmp_path / "t.csv"))
    table.open([])
    table.add({"epoch": 1, "loss": 0.5})
    table.add({"epoch": 2, "loss": 0.4, "val_loss": 0.6})
    table.close()
    with open(tmp_path / "t.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"epoch": "1", "loss": "0.5", "val_loss": ""},
                    {"epoch": "2", "loss": "0.4", "val_loss": "0.6"}]


# -- progress bar -----------------------------------------------------------------------------
def test_progress_bar_is_off_when_not_a_terminal(capsys):
    train, val = moons_loaders(n=32, batch_size=16)
    model = fresh()
    fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=2, val_data=val, progress=True)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_progress_bar_when_forced_draws_tqdm_frames():
    train, val = moons_loaders(n=32, batch_size=16)
    model = fresh()
    stream = io.StringIO()
    bar = ProgressBar(file=stream, enabled=True, min_interval=0.0)
    fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=2, val_data=val, progress=bar)
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    frames = text.rstrip("\n").split("\r")
    assert any(f.startswith("epoch 1/2: 100%") and " 2/2 " in f for f in frames)
    last = frames[-1].rstrip()
    assert last.startswith("epoch 2/2: 100%") and " 2/2 " in last and "step/s" in last
    assert "loss " in last and "acc " in last and last.endswith("lr 1.0e-02]")
    assert "val_loss " in last and "val_acc " in last


def test_progress_bar_use_tqdm_is_a_deprecated_no_op():
    with pytest.warns(DeprecationWarning, match="use_tqdm"):
        bar = ProgressBar(file=io.StringIO(), enabled=True, use_tqdm=False, min_interval=0.0)
    train, _ = moons_loaders(n=32, batch_size=16)
    model = fresh()
    fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=1, progress=bar)
    assert bar.file.getvalue().rstrip().split("\r")[-1].startswith("epoch 1/1: 100%")


def test_progress_bar_closes_on_an_error():
    stream = io.StringIO()
    bar = ProgressBar(file=stream, enabled=True, min_interval=0.0)
    y = backprop.tensor([0, 1, 0, 1])
    batches = [(backprop.zeros(4, 2), y), (backprop.full((4, 2), float("nan")), y)]
    model = fresh()
    from backprop.train import TrainingDiverged
    with pytest.raises(TrainingDiverged):
        fit(model, nn.CrossEntropyLoss(), adam(model), batches, epochs=1, progress=bar)
    assert not bar._active
    assert "\repoch 1/1: " in stream.getvalue() and stream.getvalue().endswith("\n")
