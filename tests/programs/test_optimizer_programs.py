"""Training programs written as PyTorch users write them, run on backprop and on torch.

Each program below is plain PyTorch code that takes the library as its ``torch``
argument: once it runs with ``backprop``, once with ``torch`` (the oracle), from the same
initial weights on the same batches, in float64, and the losses must agree step by step.

- ``regression``: a small MLP regression trained with minibatches in the style of the
  PyTorch tutorials, with each of the optimizers Adadelta, Adamax, NAdam, RAdam.
- ``time_sequence_prediction``: the official PyTorch example's task (learn sine waves,
  then predict their future) with L-BFGS and a strong-Wolfe line search; an MLP over
  windows of the past stands in for the example's LSTM cells.
"""
from __future__ import annotations

import numpy as np
import pytest

import backprop


def _same_weights(model, weights: dict, torch) -> None:
    """Load the shared initial weights (NumPy arrays) into ``model``."""
    model.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})


# -- program 1: minibatch regression ---------------------------------------------------
def regression(torch, optimizer_name: str, kwargs: dict, weights: dict, batches: list,
               epochs: int = 10) -> list:
    nn = torch.nn
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    _same_weights(model, weights, torch)
    loss_fn = nn.MSELoss()
    optimizer = getattr(torch.optim, optimizer_name)(model.parameters(), **kwargs)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.95)

    everything = (torch.tensor(np.concatenate([b[0] for b in batches])),
                  torch.tensor(np.concatenate([b[1] for b in batches])))
    with torch.no_grad():
        losses = [loss_fn(model(everything[0]), everything[1]).item()]
    for _ in range(epochs):
        model.train()
        for x, y in batches:
            x, y = torch.tensor(x), torch.tensor(y)
            pred = model(x)
            loss = loss_fn(pred, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    model.eval()
    with torch.no_grad():
        losses.append(loss_fn(model(everything[0]), everything[1]).item())
    return losses  # the loss on all data before, every batch's, all data's after


def _regression_data():
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, (96, 4))
    y = 0.8 * x[:, :1] - 0.5 * x[:, 1:2] + 0.5 * np.tanh(x[:, 2:3] * x[:, 3:])
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 96, 16)]
    weights = {"0.weight": rng.standard_normal((16, 4)) * 0.5, "0.bias": np.zeros(16),
               "2.weight": rng.standard_normal((1, 16)) * 0.25, "2.bias": np.zeros(1)}
    return weights, batches


@pytest.mark.parametrize("name, kwargs", [
    ("Adadelta", dict(lr=1.0)),
    ("Adamax", dict(lr=0.02, weight_decay=1e-3)),
    ("NAdam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.01)),
    ("RAdam", dict(lr=0.03)),
])
def test_regression_program_trains_as_torch_does(oracle, name, kwargs):
    weights, batches = _regression_data()
    ours = regression(backprop, name, kwargs, weights, batches)
    if name == "NAdam":  # torch keeps NAdam's mu_product in its default dtype
        old = oracle.get_default_dtype()
        oracle.set_default_dtype(oracle.float64)
        try:
            theirs = regression(oracle, name, kwargs, weights, batches)
        finally:
            oracle.set_default_dtype(old)
    else:
        theirs = regression(oracle, name, kwargs, weights, batches)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    assert ours[-1] < 0.5 * ours[0]  # it learned


# -- program 2: time sequence prediction with L-BFGS -----------------------------------
WINDOW = 8


def sine_waves(n: int = 12, length: int = 120, period: float = 20.0, seed: int = 2):
    """The example's data: n sine waves with random phase shifts, sampled at integers."""
    rng = np.random.default_rng(seed)
    x = np.arange(length) + rng.integers(-4 * int(period), 4 * int(period), n)[:, None]
    return np.sin(x / period)


def windows(series: np.ndarray):
    """(inputs, targets): every WINDOW consecutive values and the value after them."""
    idx = np.arange(WINDOW)[None, :] + np.arange(series.shape[1] - WINDOW)[:, None]
    return series[:, idx].reshape(-1, WINDOW), series[:, WINDOW:].reshape(-1, 1)


def time_sequence_prediction(torch, weights: dict, data: np.ndarray, steps: int = 4,
                             future: int = 30):
    nn = torch.nn

    class Sequence(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(WINDOW, 24)
            self.out = nn.Linear(24, 1)

        def forward(self, window):
            return self.out(torch.tanh(self.hidden(window)))

        def predict(self, history, future):
            """Roll the model forward: each prediction becomes part of the next window."""
            outputs = []
            window = history[:, -WINDOW:]
            for _ in range(future):
                nxt = self(window)
                outputs.append(nxt)
                window = torch.cat([window[:, 1:], nxt], dim=1)
            return torch.cat(outputs, dim=1)

    train, test = data[3:], data[:3]
    x, y = (torch.tensor(a) for a in windows(train))
    model = Sequence().double()
    _same_weights(model, weights, torch)
    criterion = nn.MSELoss()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.8, line_search_fn="strong_wolfe")

    losses = []
    for _ in range(steps):
        def closure():
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            return loss
        losses.append(optimizer.step(closure).item())

    with torch.no_grad():
        split = data.shape[1] - future
        history, truth = torch.tensor(test[:, :split]), torch.tensor(test[:, split:])
        prediction = model.predict(history, future)
        test_loss = criterion(prediction, truth).item()
    state = optimizer.state[next(iter(model.parameters()))]
    return dict(losses=losses, test_loss=test_loss, prediction=prediction.numpy(),
                counters=(state["func_evals"], state["n_iter"]))


def _sequence_weights():
    rng = np.random.default_rng(5)
    return {"hidden.weight": rng.standard_normal((24, WINDOW)) * 0.3,
            "hidden.bias": rng.standard_normal(24) * 0.1,
            "out.weight": rng.standard_normal((1, 24)) * 0.3,
            "out.bias": np.zeros(1)}


def test_time_sequence_prediction_with_lbfgs_follows_torch(oracle):
    weights, data = _sequence_weights(), sine_waves()
    ours = time_sequence_prediction(backprop, weights, data)
    theirs = time_sequence_prediction(oracle, weights, data)
    assert ours["counters"] == theirs["counters"]  # the same iterations and evaluations
    # 80 L-BFGS iterations amplify rounding differences (backprop's matmul sums in another
    # order; torch itself, from weights one ulp away, drifts by 3e-10 in the losses and
    # 5e-9 in the predictions, backprop by 2e-9 and 3e-8): agreement to 1e-7, not 1e-15.
    np.testing.assert_allclose(ours["losses"], theirs["losses"], rtol=1e-7)
    np.testing.assert_allclose(ours["test_loss"], theirs["test_loss"], rtol=1e-5)
    np.testing.assert_allclose(ours["prediction"], theirs["prediction"], rtol=0, atol=1e-6)
    # It learned the waves: the training loss fell a hundredfold and 30 values predicted
    # into the future (each from the model's own earlier predictions) stay on the sine.
    assert ours["losses"][-1] < 1e-2 * ours["losses"][0]
    assert ours["test_loss"] < 1e-3
