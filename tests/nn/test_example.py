"""The issue's example model: it builds, prints as PyTorch's, runs, and learns."""
from __future__ import annotations

import numpy as np

import backprop
from backprop import nn

from tests.nn.common import assert_close, copy_to_torch


def _model(m):
    return m.Sequential(m.Linear(784, 256), m.ReLU(), m.Dropout(0.5),
                        m.Linear(256, 128), m.ReLU(), m.Dropout(0.3), m.Linear(128, 10))


def test_example_model_builds_prints_and_runs(oracle, rng):
    model = _model(nn)
    assert repr(model) == repr(_model(oracle.nn))
    assert list(model.state_dict()) == list(_model(oracle.nn).state_dict())
    x = backprop.tensor(rng.standard_normal((32, 784)).astype(np.float32))
    y = backprop.tensor(rng.integers(0, 10, 32))
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()
    assert loss.dtype == backprop.float32
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_example_model_matches_torch_in_eval(oracle, rng):
    model = _model(nn).double().eval()
    tmodel = copy_to_torch(model, _model(oracle.nn).double().eval(), oracle)
    x = rng.standard_normal((16, 784))
    y = rng.integers(0, 10, 16)
    out = model(backprop.tensor(x))
    tout = tmodel(oracle.tensor(x))
    assert_close(out, tout, atol=1e-12)
    loss = nn.CrossEntropyLoss()(out, backprop.tensor(y))
    tloss = oracle.nn.CrossEntropyLoss()(tout, oracle.tensor(y))
    loss.backward()
    tloss.backward()
    for (name, p), tp in zip(model.named_parameters(), tmodel.parameters()):
        assert_close(p.grad, tp.grad, atol=1e-12, msg=name)


def test_a_small_network_learns(rng):
    backprop.manual_seed(0)
    x = rng.standard_normal((64, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)   # XOR-like quadrants
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    xb, yb = backprop.tensor(x), backprop.tensor(y)
    losses = []
    for _ in range(200):
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        with backprop.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
