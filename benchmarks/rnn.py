"""Recurrent layers against PyTorch CPU: one training step of an LSTM and of a GRU.

    python benchmarks/rnn.py [--threads N] [--quick]      # pin it: taskset -c 0 python ...

Each step is forward + backward + an SGD update on a (seq 100, batch 32, input 32) batch
with hidden size 128, the loss the mean of the output squared, the same weights in both
engines. Timings are medians of interleaved repeats (backprop and PyTorch take turns in
the same process, at the same thread count); the ratio is backprop / PyTorch, so below
1 means backprop is faster.
"""
from __future__ import annotations

import os
import sys

from _timing import interleaved, load_torch, parser, set_threads


def _parse():
    p = parser(__doc__.split("\n")[0], threads=1)
    p.add_argument("--seq", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--input", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    return p.parse_args()


ARGS = _parse()
set_threads(ARGS.threads)  # before NumPy (and its BLAS) is imported

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
import backprop as bp  # noqa: E402
from backprop import nn  # noqa: E402

torch = load_torch(ARGS.threads)
REPEATS = ARGS.repeats or (3 if ARGS.quick else 15)


def _train_step(model, opt, x):
    """One training step as a function of nothing; the same code drives either engine."""
    def step():
        opt.zero_grad()
        out, _ = model(x)
        loss = (out * out).mean()
        loss.backward()
        opt.step()
    return step


def bench(kind: str) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ARGS.seq, ARGS.batch, ARGS.input)).astype(np.float32)
    ours = getattr(nn, kind)(ARGS.input, ARGS.hidden)
    fns = {"backprop": _train_step(ours, bp.optim.SGD(ours.parameters(), lr=0.01),
                                   bp.tensor(x))}
    if torch is not None:
        theirs = getattr(torch.nn, kind)(ARGS.input, ARGS.hidden)
        theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
        fns["torch"] = _train_step(theirs, torch.optim.SGD(theirs.parameters(), lr=0.01),
                                   torch.tensor(x))
    return interleaved(fns, REPEATS, warmup=2)


def main() -> None:
    print(f"recurrent layers, one training step (forward + backward + SGD): seq {ARGS.seq}, "
          f"batch {ARGS.batch}, input {ARGS.input}, hidden {ARGS.hidden}, float32, "
          f"{ARGS.threads} thread(s), median of {REPEATS}")
    print(f"{'layer':<6} {'backprop ms':>12} {'torch ms':>10} {'ratio':>7}")
    for kind in ("LSTM", "GRU", "RNN"):
        t = bench(kind)
        ours = t["backprop"] * 1e3
        if "torch" in t:
            theirs = t["torch"] * 1e3
            print(f"{kind:<6} {ours:12.2f} {theirs:10.2f} {ours / theirs:7.2f}")
        else:
            print(f"{kind:<6} {ours:12.2f} {'-':>10} {'-':>7}")


if __name__ == "__main__":
    main()
