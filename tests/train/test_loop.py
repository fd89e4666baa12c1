"""The training loop: learning, records, accumulation, clipping, schedules, divergence."""
import math
import warnings

import numpy as np
import pytest

import backprop
from backprop import nn, optim
from backprop.data import DataLoader, TensorDataset, sine
from backprop.train import (
    Callback, LambdaCallback, ModelCheckpoint, Trainer, TrainingDiverged, fit, load_checkpoint,
)

from tests.train.common import adam, assert_same_params, fresh, mlp, moons_loaders, params_of


def test_fit_learns_moons():
    train, val = moons_loaders(n=128)
    model = fresh(sizes=(2, 32, 2))
    history = fit(model, nn.CrossEntropyLoss(), adam(model, 0.03), train, epochs=25,
                  val_data=val, progress=False)
    losses = history.epoch_metric("loss")
    assert losses[-1] < 0.3 * losses[0]
    assert history.epoch_metric("accuracy")[-1] >= 0.95
    assert history.epoch_metric("val_accuracy")[-1] >= 0.95


def test_history_records():
    train, val = moons_loaders(n=40, batch_size=16)          # 3 batches: 16, 16, 8
    model = fresh()
    history = fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=2, val_data=val,
                  progress=False)
    assert len(history.steps) == 6 and len(history) == 2
    first = history.steps[0]
    assert set(first) == {"step", "epoch", "loss", "lr", "grad_norm", "accuracy"}
    assert [r["step"] for r in history.steps] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in history.steps] == [1, 1, 1, 2, 2, 2]
    assert all(r["grad_norm"] > 0 and r["lr"] == 0.01 for r in history.steps)
    epoch = history.epochs[0]
    assert set(epoch) == {"epoch", "step", "loss", "accuracy", "lr", "val_loss",
                          "val_accuracy", "time"}
    assert epoch["step"] == 3 and history.epochs[1]["step"] == 6
    # the epoch loss is the batch-size weighted mean of its step losses
    steps = history.steps[:3]
    expected = (steps[0]["loss"] * 16 + steps[1]["loss"] * 16 + steps[2]["loss"] * 8) / 40
    assert epoch["loss"] == pytest.approx(expected, rel=1e-12)
    assert 0 <= epoch["accuracy"] <= 1


def test_regression_has_no_accuracy_and_custom_metric():
    X, y = sine(n_samples=64, seed=0)
    loader = DataLoader(TensorDataset(X, y), batch_size=16)
    model = fresh(sizes=(1, 16, 1))

    def mae(output, target):
        return (output - target).abs().mean().item()

    history = fit(model, nn.MSELoss(), adam(model), loader, epochs=2, val_data=loader,
                  metrics=[mae], progress=False)
    assert "accuracy" not in history.epochs[0]
    assert {"mae", "val_mae"} <= set(history.epochs[0])
    with pytest.raises(ValueError, match="accuracy needs class logits"):
        fit(model, nn.MSELoss(), adam(model), loader, epochs=1, metrics=["accuracy"],
            progress=False)


def test_accuracy_matches_argmax_and_ignores_ignore_index():
    logits = backprop.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    target = backprop.tensor([0, 1, 1, -100])
    from backprop.train.loop import _accuracy_counts
    assert _accuracy_counts(logits, target, nn.CrossEntropyLoss()) == (2, 3)
    probs = backprop.tensor([[0.9], [0.2]])
    assert _accuracy_counts(probs, backprop.tensor([[1.0], [1.0]]), nn.BCELoss()) == (1, 2)
    assert _accuracy_counts(probs, backprop.tensor([[1.0], [1.0]]), nn.MSELoss()) is None


def _accumulation_run(batch_size, accumulate, n=24, opt="adam", epochs=2):
    X, y = moons_loaders(n=n)[0].dataset.tensors
    X = X.double()
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size)
    backprop.manual_seed(0)
    model = mlp(sizes=(2, 8, 2), dtype="float64")
    optimizer = (optim.Adam(model.parameters(), lr=0.05) if opt == "adam"
                 else optim.SGD(model.parameters(), lr=0.5, momentum=0.9))
    history = fit(model, nn.CrossEntropyLoss(), optimizer, loader, epochs=epochs,
                  accumulate_steps=accumulate, progress=False)
    return model, history


@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_accumulation_equals_big_batch(opt):
    big, h_big = _accumulation_run(batch_size=12, accumulate=1, opt=opt)
    small, h_small = _accumulation_run(batch_size=4, accumulate=3, opt=opt)
    assert len(h_big.steps) == len(h_small.steps) == 4
    assert_same_params(big, small, exact=False, rtol=1e-12)
    np.testing.assert_allclose(h_big.step_metric("loss"), h_small.step_metric("loss"),
                               rtol=1e-12)
    np.testing.assert_allclose(h_big.step_metric("grad_norm"),
                               h_small.step_metric("grad_norm"), rtol=1e-12)


def test_accumulation_partial_group_at_epoch_end_uses_the_mean():
    # 20 samples in batches of 4 accumulated by 3: groups of 12 and 8, like batches of 12
    big, _ = _accumulation_run(batch_size=12, accumulate=1, n=20)
    small, _ = _accumulation_run(batch_size=4, accumulate=3, n=20)
    assert_same_params(big, small, exact=False, rtol=1e-12)


def test_clipping_is_applied_and_the_preclip_norm_recorded():
    train, _ = moons_loaders(n=16, batch_size=16, shuffle=False)
    xb, yb = next(iter(train))
    backprop.manual_seed(0)
    reference = mlp(sizes=(2, 8, 2))
    nn.CrossEntropyLoss()(reference(xb), yb).backward()
    grads = [p.grad.numpy().copy() for p in reference.parameters()]
    norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    max_norm = norm / 4

    backprop.manual_seed(0)
    model = mlp(sizes=(2, 8, 2))
    before = params_of(model)
    history = fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1.0), train,
                  epochs=1, clip_grad_norm=max_norm, progress=False)
    assert history.steps[0]["grad_norm"] == pytest.approx(norm, rel=1e-5)
    update = [b - a for a, b in zip(params_of(model), before)]      # = lr * clipped grad
    update_norm = math.sqrt(sum(float((u.astype(np.float64) ** 2).sum()) for u in update))
    assert update_norm == pytest.approx(max_norm, rel=1e-4)
    for u, g in zip(update, grads):
        np.testing.assert_allclose(u, g * (max_norm / (norm + 1e-6)), rtol=1e-4, atol=1e-7)


def test_clip_grad_value():
    train, _ = moons_loaders(n=16, batch_size=16, shuffle=False)
    seen = []
    model = fresh(sizes=(2, 8, 2))
    cb = LambdaCallback(on_batch_end=lambda t, r: seen.append(
        max(float(np.abs(p.grad.numpy()).max()) for p in t.model.parameters())))
    fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=1, clip_grad_value=1e-3,
        callbacks=[cb], progress=False)
    assert seen and seen[0] <= np.float32(1e-3)


def test_scheduler_per_step_and_per_epoch():
    train, _ = moons_loaders(n=32, batch_size=16)
    model = fresh()
    opt = optim.SGD(model.parameters(), lr=1.0)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = fit(model, nn.CrossEntropyLoss(), opt, train, epochs=3, scheduler=sched,
            scheduler_interval="step", progress=False)
    assert h.step_metric("lr") == [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]
    model = fresh()
    opt = optim.SGD(model.parameters(), lr=1.0)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = fit(model, nn.CrossEntropyLoss(), opt, train, epochs=3, scheduler=sched, progress=False)
    assert h.step_metric("lr") == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert h.epoch_metric("lr") == [1.0, 0.5, 0.25]


def test_reduce_lr_on_plateau_gets_the_monitored_metric():
    train, val = moons_loaders(n=32, batch_size=32)
    model = fresh()
    opt = optim.SGD(model.parameters(), lr=0.0)   # nothing changes: the metric plateaus
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    seen = []
    original = sched.step
    sched.step = lambda metric: (seen.append(metric), original(metric))
    h = fit(model, nn.CrossEntropyLoss(), opt, train, epochs=2, val_data=val, scheduler=sched,
            progress=False)
    assert seen == h.epoch_metric("val_loss")
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        Trainer(model, nn.CrossEntropyLoss(), opt, scheduler=sched, scheduler_interval="step")


def test_train_and_eval_modes():
    train, val = moons_loaders(n=32, batch_size=16)
    modes = []

    class Spy(nn.Module):
        def forward(self, x):
            modes.append((self.training, backprop.is_grad_enabled()))
            return x

    model = nn.Sequential(fresh(dropout=0.5), Spy())
    model.eval()
    fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=1, val_data=val,
        progress=False)
    assert modes == [(True, True), (True, True), (False, False)]
    assert model.training is False  # restored


def test_request_stop_and_max_steps_and_handles():
    train, _ = moons_loaders(n=64, batch_size=16)
    model = fresh()
    trainer = Trainer(model, nn.CrossEntropyLoss(), adam(model), progress=False)
    calls = []
    handle = trainer.add_callback(LambdaCallback(
        on_batch_end=lambda t, r: (calls.append(r["step"]),
                                   t.request_stop("enough") if r["step"] == 2 else None)))
    history = trainer.fit(train, epochs=5)
    assert calls == [1, 2] and trainer.stop_reason == "enough"
    assert len(history.epochs) == 1 and history.epochs[0]["step"] == 2
    handle.remove()
    assert trainer.callbacks == []
    trainer.fit(train, epochs=10, max_steps=7)
    assert trainer.step == 7 and calls == [1, 2]


def test_callback_order_and_events():
    train, val = moons_loaders(n=32, batch_size=16)
    events = []

    class Recorder(Callback):
        def __init__(self, name, order):
            self.name, self.order = name, order

        def on_fit_start(self, trainer):
            events.append((self.name, "fit_start"))

        def on_epoch_start(self, trainer, epoch):
            events.append((self.name, "epoch_start", epoch))

        def on_before_optimizer_step(self, trainer):
            assert all(p.grad is not None for p in trainer.model.parameters())
            events.append((self.name, "before_step"))

        def on_batch_end(self, trainer, record):
            events.append((self.name, "batch_end", record["step"]))

        def on_epoch_end(self, trainer, record):
            events.append((self.name, "epoch_end", record["epoch"]))

        def on_fit_end(self, trainer):
            events.append((self.name, "fit_end"))

    model = fresh()
    fit(model, nn.CrossEntropyLoss(), adam(model), train, epochs=1, val_data=val,
        callbacks=[Recorder("late", 5), Recorder("early", -5)], progress=False)
    assert events[:2] == [("early", "fit_start"), ("late", "fit_start")]
    assert [e for e in events if e[0] == "early"] == [
        ("early", "fit_start"), ("early", "epoch_start", 1), ("early", "before_step"),
        ("early", "batch_end", 1), ("early", "before_step"), ("early", "batch_end", 2),
        ("early", "epoch_end", 1), ("early", "fit_end")]


def test_evaluate():
    train, val = moons_loaders(n=32, batch_size=16)
    model = fresh()
    trainer = Trainer(model, nn.CrossEntropyLoss(), adam(model), progress=False)
    result = trainer.evaluate(val)
    X, y = val.dataset.tensors
    with backprop.no_grad():
        expected = nn.CrossEntropyLoss()(model(X), y).item()
        acc = (model(X).argmax(1) == y).float().mean().item()
    assert result["loss"] == pytest.approx(expected, rel=1e-6)
    assert result["accuracy"] == pytest.approx(acc)


# -- divergence -------------------------------------------------------------------------------
def _exploding(tmp_path, on_divergence="raise", lr=10.0):
    X, y = sine(n_samples=128, seed=0)
    loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True)
    model = fresh(sizes=(1, 32, 32, 1))
    ckpt = ModelCheckpoint(tmp_path, every_n_steps=1, save_best=False)
    trainer = Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=lr),
                      callbacks=[ckpt], on_divergence=on_divergence, progress=False)
    return trainer, loader, ckpt


pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]


def test_divergence_raises_with_step_lr_and_last_loss(tmp_path):
    trainer, loader, ckpt = _exploding(tmp_path)
    with pytest.raises(TrainingDiverged) as info:
        trainer.fit(loader, epochs=20)
    err = info.value
    message = str(err)
    assert f"at step {err.step} (epoch {err.epoch})" in message
    assert "learning rate 10;" in message
    assert err.last_finite_step == err.step - 1 == trainer.step
    assert f"last finite loss {err.last_finite_loss:.4g} at step {err.last_finite_step}" in message
    assert "learning rate is probably too high" in message or "gradients exploded" in message
    assert err.checkpoint == ckpt.last_path and ckpt.last_path in message
    assert isinstance(err, RuntimeError) and isinstance(err, backprop.BackpropError)
    # the last good checkpoint is intact, finite and loadable
    model = fresh(sizes=(1, 32, 32, 1))
    state = load_checkpoint(ckpt.last_path, model)
    assert state["step"] == err.step - 1
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.parameters())
    # the model keeps the weights of its last finite step: they equal the checkpoint's
    assert_same_params(model, trainer.model)


def test_divergence_on_nan_data_names_the_step():
    X, y = sine(n_samples=64, seed=0)
    X = X.clone()
    X[40] = float("nan")                                    # in batch 3 (samples 32..47)
    loader = DataLoader(TensorDataset(X, y), batch_size=16)
    model = fresh(sizes=(1, 8, 1))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 3 \(epoch 1\), "
                                               r"learning rate 0.01; last finite loss .* at "
                                               r"step 2: the learning rate is probably too high"):
        fit(model, nn.MSELoss(), adam(model), loader, epochs=1, progress=False)
    X[:] = float("nan")
    with pytest.raises(TrainingDiverged, match="no earlier step had a finite loss"):
        fit(model, nn.MSELoss(), adam(model), loader, epochs=1, progress=False)


def test_divergence_of_the_gradient_norm():
    train, _ = moons_loaders(n=16, batch_size=16)
    model = fresh()

    def sqrt_loss(output, target):   # finite loss (0) whose gradient is NaN
        return (output * 0).sum().sqrt()

    with pytest.raises(TrainingDiverged, match="gradient norm became nan at step 1"):
        fit(model, sqrt_loss, adam(model), train, epochs=1, progress=False)


def test_divergence_stop_mode(tmp_path):
    trainer, loader, ckpt = _exploding(tmp_path, on_divergence="stop")
    with pytest.warns(RuntimeWarning, match="training stopped: .* became"):
        history = trainer.fit(loader, epochs=20)
    assert isinstance(trainer.diverged, TrainingDiverged)
    assert trainer.should_stop and "became" in trainer.stop_reason
    assert history.steps[-1]["step"] == trainer.step == trainer.diverged.step - 1
    assert backprop.load(ckpt.last_path)["step"] == trainer.step


def test_argument_checks():
    model = fresh()
    opt = adam(model)
    loss = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="accumulate_steps"):
        Trainer(model, loss, opt, accumulate_steps=0)
    with pytest.raises(ValueError, match="clip_grad_norm must be a positive number, got -1"):
        Trainer(model, loss, opt, clip_grad_norm=-1)
    with pytest.raises(ValueError, match="scheduler_interval"):
        Trainer(model, loss, opt, scheduler_interval="batch")
    with pytest.raises(ValueError, match="on_divergence"):
        Trainer(model, loss, opt, on_divergence="ignore")
    with pytest.raises(ValueError, match="device 'cuda'"):
        Trainer(model, loss, opt, device="cuda")
    with pytest.raises(TypeError, match="optimizer"):
        Trainer(model, loss, "adam")
    with pytest.raises(TypeError, match="Callback"):
        Trainer(model, loss, opt, callbacks=[print])
    with pytest.raises(ValueError, match="epochs"):
        fit(model, loss, opt, [], epochs=-1)
    with pytest.raises(TypeError, match=r"\(inputs, targets\) pair, got a dict"):
        fit(model, loss, opt, [{"x": 1}], epochs=1, progress=False)


def test_fit_with_a_plain_list_of_batches():
    X, y = moons_loaders(n=32)[0].dataset.tensors
    batches = [(X[:16], y[:16]), (X[16:], y[16:])]
    model = fresh()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = fit(model, nn.CrossEntropyLoss(), adam(model), batches, epochs=2, progress=False)
    assert len(h.steps) == 4
