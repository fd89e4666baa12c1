"""Training throughput of the digits MLP: backprop next to PyTorch CPU, in the same run.

    python benchmarks/digits_mlp.py                 # [--threads N] [--quick] [--repeats R]

The network is the 8x8-digits classifier of examples/digits.py: 64-128-64-10 with
ReLU, CrossEntropyLoss and Adam (lr 1e-3), trained on the 1,437 training images
in shuffled mini-batches of 64 and of 256. Three ways of training it are timed:

- ``backprop``: the PyTorch-style loop written with ``backprop.nn`` / ``backprop.optim``;
- ``backprop fit()``: the same model through ``backprop.train.fit`` and a shuffling
  ``DataLoader`` (what the loop's records, accuracy and gradient norm cost);
- ``pytorch``: the same loop, word for word, with ``torch.nn`` / ``torch.optim`` on the CPU.

Both loops draw each epoch's batches by indexing the data with a permutation. Every
engine runs with the same BLAS / torch thread count, set before NumPy and torch are
imported; timing repeats of the engines are interleaved so that a noisy phase of a
shared machine hits all of them alike, and the median is shown. Without PyTorch the
comparison is skipped; without scikit-learn, random data of the same shape is used.
"""
from __future__ import annotations

import argparse
import os
import sys

from _timing import interleaved, set_threads


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                   help="BLAS / torch threads for every engine (default: 2)")
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (median shown)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per timing repeat (default 2)")
    return p.parse_args()


ARGS = _parse()
set_threads(ARGS.threads)  # before NumPy (and its BLAS) is imported

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
import backprop as bp  # noqa: E402
from backprop.autograd.engine import ENGINE  # noqa: E402
from backprop import nn as bnn  # noqa: E402
from backprop import optim as boptim  # noqa: E402
from backprop.data import DataLoader, TensorDataset  # noqa: E402
from backprop.train import fit  # noqa: E402
from _digits import digits_data  # noqa: E402

try:
    import torch  # noqa: E402

    torch.set_num_threads(ARGS.threads)
except ImportError:  # pragma: no cover
    torch = None

REPEATS = ARGS.repeats or (3 if ARGS.quick else 9)
SIZES = (64, 128, 64, 10)
LR = 1e-3


def initial_weights(seed: int = 0) -> list:
    """PyTorch's default Linear initialisation, drawn once and given to every engine."""
    rng = np.random.default_rng(seed)
    weights = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1 / np.sqrt(fan_in)
        weights.append((rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32),
                        rng.uniform(-bound, bound, fan_out).astype(np.float32)))
    return weights


def backprop_model():
    model = bnn.Sequential(bnn.Linear(64, 128), bnn.ReLU(), bnn.Linear(128, 64), bnn.ReLU(),
                           bnn.Linear(64, 10))
    linears = [m for m in model if isinstance(m, bnn.Linear)]
    with bp.no_grad():
        for layer, (W, b) in zip(linears, initial_weights()):
            layer.weight.copy_(bp.from_numpy(W))
            layer.bias.copy_(bp.from_numpy(b))
    return model


def torch_model():
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for layer, (W, b) in zip(linears, initial_weights()):
            layer.weight.copy_(torch.from_numpy(W))
            layer.bias.copy_(torch.from_numpy(b))
    return model


def training_loop(T, model, criterion, optimizer, X, y, batch):
    """The PyTorch-style loop, written once for an engine module ``T`` (backprop or torch)."""
    Xt, yt = T.from_numpy(X), T.from_numpy(y)
    rng = np.random.default_rng(0)
    losses = []

    def run():
        for _ in range(ARGS.epochs):
            order = T.from_numpy(rng.permutation(len(X)))
            for i in range(0, len(X), batch):
                idx = order[i:i + batch]
                xb, yb = Xt[idx], yt[idx]
                optimizer.zero_grad()
                loss = criterion(model(xb), yb)
                loss.backward()
                optimizer.step()
        losses.append(loss.item())
    return run, losses


def loop_backprop(X, y, batch):
    model = backprop_model()
    return training_loop(bp, model, bnn.CrossEntropyLoss(),
                         boptim.Adam(model.parameters(), lr=LR), X, y, batch)


def fit_backprop(X, y, batch):
    model = backprop_model()
    criterion = bnn.CrossEntropyLoss()
    optimizer = boptim.Adam(model.parameters(), lr=LR)
    loader = DataLoader(TensorDataset(bp.from_numpy(X), bp.from_numpy(y)), batch_size=batch,
                        shuffle=True, generator=bp.Generator(0))
    losses = []

    def run():
        history = fit(model, criterion, optimizer, loader, epochs=ARGS.epochs, progress=False)
        losses.append(history.steps[-1]["loss"])
    return run, losses


def loop_torch(X, y, batch):
    model = torch_model()
    return training_loop(torch, model, torch.nn.CrossEntropyLoss(),
                         torch.optim.Adam(model.parameters(), lr=LR), X, y, batch)


def main() -> None:
    X, y, source = digits_data()
    print(f"backprop {bp.__version__} ({ENGINE}) | numpy {np.__version__} | "
          f"torch {torch.__version__ if torch else 'not installed'} | threads {ARGS.threads} | "
          f"median of {REPEATS}, engines interleaved")
    print(f"MLP 64-128-64-10 (ReLU), CrossEntropyLoss, Adam: training samples/s on "
          f"{len(X)} {source}, {ARGS.epochs} epochs per repeat")
    if torch is None:
        print("   (PyTorch is not installed: pip install 'backprop[oracle]' for the comparison)")
    for batch in (64, 256):
        makers = {"backprop": loop_backprop, "backprop fit()": fit_backprop}
        if torch is not None:
            makers["pytorch"] = loop_torch
        runs = {name: make(X, y, batch) for name, make in makers.items()}
        t = interleaved({name: run for name, (run, _) in runs.items()}, REPEATS)
        rates = {name: len(X) * ARGS.epochs / v for name, v in t.items()}
        print(f"   batch {batch}:")
        for name, rate in rates.items():
            print(f"     {name:15s} {rate:10,.0f} samples/s   (last loss "
                  f"{runs[name][1][-1]:.3f})")
        if "pytorch" in rates:
            print(f"     ratio backprop/pytorch       = {rates['backprop'] / rates['pytorch']:.2f}")
            print(f"     ratio backprop fit()/pytorch = "
                  f"{rates['backprop fit()'] / rates['pytorch']:.2f}")


if __name__ == "__main__":
    main()
