"""The MLP of benchmarks/run.py written the way most users write it, against PyTorch CPU and
a hand-written NumPy step (issue 15's idiomatic MLP rows).

    python benchmarks/mlp_idiomatic.py [--threads N] [--quick]   # pin it: taskset -c 0 ...
                                       # [--json PATH]: the figures as JSON too

The network is 784-256-128-10: ``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``, trained
with ``optim.SGD(lr=0.01, momentum=0.9)`` on ``F.cross_entropy``; one timed sample is an
epoch of 4096 samples at batch 32 and at batch 256. The NumPy step does the same maths by
hand, the same momentum update included (PyTorch's: buf = momentum·buf + grad, the first
step's buf = grad; p -= lr·buf), allocating its temporaries as plain NumPy code does. All
three start from the same weights. Figures are medians of interleaved repeats; the ratios
are taken within each repeat (throughput of backprop over the other), so above 1 means
backprop is faster.
"""
from __future__ import annotations

import os
import statistics
import sys

from _timing import interleaved, load_torch, parser, run_info, set_threads, spread, write_json

if __name__ == "__main__":
    ARGS = parser(__doc__.split("\n")[0], threads=1, json=True).parse_args()
    set_threads(ARGS.threads)  # before NumPy (and its BLAS) is imported

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
import backprop as bp  # noqa: E402
from backprop.autograd.engine import ENGINE  # noqa: E402

SIZES = (784, 256, 128, 10)
N_TRAIN = 4096
LR, MOMENTUM = 0.01, 0.9


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N_TRAIN, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], N_TRAIN).astype(np.int64)
    return X, y


def make_model(T):
    """The network for an engine module ``T`` (backprop or torch)."""
    n, layers = T.nn, []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        layers += [n.Linear(fan_in, fan_out), n.ReLU()]
    return n.Sequential(*layers[:-1])


def epoch_fn(T, model, batch: int):
    """One epoch of idiomatic training for ``T``; the same code drives either engine."""
    X, y = _data()
    Xt, yt = T.from_numpy(X), T.from_numpy(y)
    batches = [(Xt[i:i + batch], yt[i:i + batch]) for i in range(0, N_TRAIN, batch)]
    opt = T.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    cross_entropy = T.nn.functional.cross_entropy

    def epoch():
        for xb, yb in batches:
            opt.zero_grad()
            loss = cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        return loss
    return epoch


def numpy_epoch_fn(state: dict, batch: int):
    """The same network, loss and momentum update written out by hand in NumPy."""
    X, y = _data()
    params = [state[f"{i}.{kind}"].copy() for i in (0, 2, 4) for kind in ("weight", "bias")]
    bufs = [None] * len(params)
    batches = [(X[i:i + batch], y[i:i + batch]) for i in range(0, N_TRAIN, batch)]

    def epoch():
        W1, b1, W2, b2, W3, b3 = params
        for xb, yb in batches:
            rows = np.arange(len(yb))
            z1 = xb @ W1.T + b1
            h1 = np.maximum(z1, 0)
            z2 = h1 @ W2.T + b2
            h2 = np.maximum(z2, 0)
            z3 = h2 @ W3.T + b3
            e = np.exp(z3 - z3.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            d3 = p
            d3[rows, yb] -= 1
            d3 /= len(yb)
            d2 = (d3 @ W3) * (z2 > 0)
            d1 = (d2 @ W2) * (z1 > 0)
            grads = [d1.T @ xb, d1.sum(0), d2.T @ h1, d2.sum(0), d3.T @ h2, d3.sum(0)]
            for k, (param, grad) in enumerate(zip(params, grads)):
                if bufs[k] is None:
                    bufs[k] = grad
                else:
                    bufs[k] *= MOMENTUM
                    bufs[k] += grad
                param -= LR * bufs[k]
    return epoch


def engines(batch: int, torch=None) -> dict:
    """{name: epoch function} for backprop, PyTorch (where installed) and NumPy by hand."""
    ours = make_model(bp)
    state = {k: v.numpy().copy() for k, v in ours.state_dict().items()}
    fns = {"backprop": epoch_fn(bp, ours, batch)}
    if torch is not None:
        theirs = make_model(torch)
        theirs.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
        fns["pytorch"] = epoch_fn(torch, theirs, batch)
    fns["numpy by hand"] = numpy_epoch_fn(state, batch)
    return fns


def main() -> None:
    torch = load_torch(ARGS.threads)
    repeats = ARGS.repeats or (3 if ARGS.quick else 15)
    out = {"benchmark": "mlp_idiomatic.py", **run_info(ARGS.threads, torch),
           "quick": ARGS.quick, "repeats": repeats, "mlp_idiomatic": {}}
    print(f"backprop {bp.__version__} ({ENGINE}) | numpy {np.__version__} | "
          f"torch {torch.__version__ if torch else 'not installed'} | threads {ARGS.threads}")
    print(f"MLP 784-256-128-10, nn.Sequential + SGD(momentum={MOMENTUM}) + cross_entropy: "
          f"training samples/s, median of {repeats} interleaved repeats")
    for batch in (32, 256):
        raw = interleaved(engines(batch, torch), repeats, warmup=1, samples=True)
        print(f"   batch {batch}:")
        figures: dict = {"samples_per_s": {}, "ratios": {}}
        for name, ts in raw.items():
            print(f"     {name:14s} {N_TRAIN / statistics.median(ts):10,.0f} samples/s")
            figures["samples_per_s"][name] = N_TRAIN / statistics.median(ts)
        for other in ("pytorch", "numpy by hand"):
            if other in raw:
                ratios = sorted(o / b for b, o in zip(raw["backprop"], raw[other]))
                print(f"     ratio backprop/{other:<13} = {statistics.median(ratios):.2f}   "
                      f"(repeats {ratios[0]:.2f} to {ratios[-1]:.2f})")
                # backprop's throughput over the other's: above 1, backprop is faster
                figures["ratios"][other] = spread(ratios)
        out["mlp_idiomatic"][str(batch)] = figures
    if ARGS.json:
        write_json(ARGS.json, out)


if __name__ == "__main__":
    main()
