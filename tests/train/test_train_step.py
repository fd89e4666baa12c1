"""Trainer.train_step: the one training step that fit, the lab and its exported script share."""
import math

import numpy as np
import pytest

import backprop
from backprop import nn, optim
from backprop.train import Trainer, TrainingDiverged

from .common import assert_same_params, mlp, moons_loaders


def _trainer(model, **kwargs):
    kwargs.setdefault("progress", False)
    return Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5), **kwargs)


def test_fit_is_train_step_over_the_batches():
    backprop.manual_seed(0)
    a, b = mlp(), mlp()
    b.load_state_dict(a.state_dict())
    train, _ = moons_loaders(shuffle=False)
    history = _trainer(a, clip_grad_norm=0.5).fit(train, epochs=2)
    manual = _trainer(b, clip_grad_norm=0.5)
    records = [manual.train_step(batch) for _ in range(2) for batch in train]
    assert_same_params(a, b)
    assert [r["loss"] for r in records] == history.step_metric("loss")
    assert [r["grad_norm"] for r in records] == history.step_metric("grad_norm")
    assert [r["step"] for r in records] == list(range(1, 13))


def test_train_step_clips_as_clip_grad_norm_does():
    backprop.manual_seed(1)
    a, b = mlp(), mlp()
    b.load_state_dict(a.state_dict())
    batch = next(iter(moons_loaders()[0]))
    trainer = Trainer(a, nn.CrossEntropyLoss(), optim.SGD(a.parameters(), lr=0.0),
                      clip_grad_norm=0.05, progress=False)
    record = trainer.train_step(batch)
    loss = nn.CrossEntropyLoss()(b(batch[0]), batch[1])
    loss.backward()
    norm = nn.utils.clip_grad_norm_(b.parameters(), 0.05)
    assert record["clipped"] and record["grad_norm"] == pytest.approx(float(norm), rel=1e-6)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())      # bit for bit
    loose = Trainer(a, nn.CrossEntropyLoss(), optim.SGD(a.parameters(), lr=0.0),
                    clip_grad_norm=1e6, progress=False)
    assert loose.train_step(batch)["clipped"] is False


def test_the_regularizer_is_in_the_gradient_not_in_the_recorded_loss():
    backprop.manual_seed(2)
    a, b = mlp(), mlp()
    b.load_state_dict(a.state_dict())
    w0 = a[0].weight.detach().numpy().copy()
    batch = next(iter(moons_loaders()[0]))
    l2 = 0.1
    plain = _trainer(a).train_step(batch)
    reg = _trainer(b, regularizer=lambda m: (m[0].weight * m[0].weight).sum() * l2)
    record = reg.train_step(batch)
    assert record["loss"] == plain["loss"]
    # SGD at lr 0.5: the penalty's gradient 2 l2 w0 moves the first layer 0.5 * 2 l2 w0 more
    diff = b[0].weight.detach().numpy() - a[0].weight.detach().numpy()
    np.testing.assert_allclose(diff, -0.5 * 2 * l2 * w0, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(b[2].weight.detach().numpy(), a[2].weight.detach().numpy())
    with pytest.raises(TypeError, match="regularizer must be a function"):
        _trainer(a, regularizer=0.1)


def test_train_step_divergence():
    model = mlp()
    x = backprop.tensor([[math.nan, 0.0]])
    y = backprop.tensor([0])
    with pytest.raises(TrainingDiverged) as e:
        _trainer(model).train_step((x, y))
    assert e.value.quantity == "loss" and e.value.step == 1
    with pytest.warns(RuntimeWarning, match="training stopped"):
        assert _trainer(model, on_divergence="stop").train_step((x, y)) is None
