"""Engine benchmarks against PyTorch CPU, measured in the same run with the same thread count.

    make bench                      # or: python benchmarks/run.py [--threads N] [--quick]
                                    #     [--json PATH]: the figures as JSON too

Prints, side by side:
  1. per-op overhead: a forward+backward chain of small (16x16) element-wise ops;
  2. training throughput of a 784-256-128-10 ReLU MLP written with raw tensor ops
     (matmul, +, relu, log_softmax, indexing, mean; SGD step), at batch 256 and 32,
     for backprop, PyTorch, and the same MLP written by hand in NumPy with no autograd
     (the floor of Python-side cost);
  3. the machine's float32 matrix-multiply GFLOP/s (the physical ceiling).

The machine is shared and noisy, so every figure is the median of several repeats,
and what matters is the ratio between engines measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

from _timing import add_json_option, interleaved, run_info, set_threads, spread, write_json


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                   help="BLAS / torch threads for every engine (default: 2)")
    p.add_argument("--quick", action="store_true", help="fewer repeats (for a smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (median is shown)")
    add_json_option(p)
    return p.parse_args()


ARGS = _parse()
set_threads(ARGS.threads)  # before NumPy (and its BLAS) is imported

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
import backprop as bp  # noqa: E402
from backprop.autograd.engine import ENGINE  # noqa: E402

try:
    import torch  # noqa: E402

    torch.set_num_threads(ARGS.threads)
except ImportError:  # pragma: no cover
    torch = None

REPEATS = ARGS.repeats or (3 if ARGS.quick else 15)


def median_time(fn, repeats=REPEATS, warmup=2) -> float:
    return interleaved({"_": fn}, repeats, warmup)["_"]




# -- 1. per-op overhead ----------------------------------------------------------------
CHAIN = 200  # ops per forward pass (each op is one multiply or one add)
CHAINS = 10  # forward + backward passes per timed sample


def _times(fn, n):
    def run():
        for _ in range(n):
            fn()
    return run


def chain_backprop():
    x = bp.randn(16, 16, requires_grad=True)
    a = bp.full((16, 16), 0.999)
    b = bp.randn(16, 16, requires_grad=True)

    def step():
        y = x
        for _ in range(CHAIN // 2):
            y = y * a
            y = y + b
        y.sum().backward()
        x.grad = None
        b.grad = None
    return step


def chain_torch():
    x = torch.randn(16, 16, requires_grad=True)
    a = torch.full((16, 16), 0.999)
    b = torch.randn(16, 16, requires_grad=True)

    def step():
        y = x
        for _ in range(CHAIN // 2):
            y = y * a
            y = y + b
        y.sum().backward()
        x.grad = None
        b.grad = None
    return step


# -- 2. MLP training ---------------------------------------------------------------------
SIZES = (784, 256, 128, 10)
N_TRAIN = 4096
LR = 0.01


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N_TRAIN, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], N_TRAIN).astype(np.int64)
    Ws = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1 / np.sqrt(fan_in)
        Ws.append((rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32),
                   rng.uniform(-bound, bound, fan_out).astype(np.float32)))
    return X, y, Ws


def mlp_raw_ops(T, batch):
    """The MLP written once with raw tensor ops, for an engine module ``T`` (backprop or torch)."""
    X, y, Ws = _data()
    params = []
    for W, b in Ws:
        params += [T.tensor(W, requires_grad=True), T.tensor(b, requires_grad=True)]
    W1, b1, W2, b2, W3, b3 = params
    Xt, yt = T.from_numpy(X), T.from_numpy(y)
    batches = [(Xt[i:i + batch], yt[i:i + batch]) for i in range(0, N_TRAIN, batch)]
    rows = T.arange(batch)
    losses = []

    def epoch():
        for xb, yb in batches:
            h1 = (xb @ W1 + b1).relu()
            h2 = (h1 @ W2 + b2).relu()
            logits = h2 @ W3 + b3
            loss = -logits.log_softmax(dim=1)[rows, yb].mean()
            loss.backward()
            with T.no_grad():
                for p in params:
                    p -= LR * p.grad
                    p.grad = None
        losses.append(loss.item())
    return epoch, losses


def mlp_backprop(batch):
    return mlp_raw_ops(bp, batch)


def mlp_torch(batch):
    return mlp_raw_ops(torch, batch)


def mlp_numpy(batch):
    """The same network and update, forward and backward written out by hand."""
    X, y, Ws = _data()
    (W1, b1), (W2, b2), (W3, b3) = [(W.copy(), b.copy()) for W, b in Ws]
    batches = [(X[i:i + batch], y[i:i + batch]) for i in range(0, N_TRAIN, batch)]
    rows = np.arange(batch)
    losses = []

    def epoch():
        nonlocal W1, b1, W2, b2, W3, b3
        for xb, yb in batches:
            z1 = xb @ W1 + b1
            h1 = np.maximum(z1, 0)
            z2 = h1 @ W2 + b2
            h2 = np.maximum(z2, 0)
            z3 = h2 @ W3 + b3
            m = z3.max(axis=1, keepdims=True)
            e = np.exp(z3 - m)
            s = e.sum(axis=1, keepdims=True)
            logp = z3 - m - np.log(s)
            loss = -logp[rows, yb].mean()
            d3 = e / s
            d3[rows, yb] -= 1
            d3 /= len(yb)
            dW3, db3 = h2.T @ d3, d3.sum(0)
            d2 = (d3 @ W3.T) * (z2 > 0)
            dW2, db2 = h1.T @ d2, d2.sum(0)
            d1 = (d2 @ W2.T) * (z1 > 0)
            dW1, db1 = xb.T @ d1, d1.sum(0)
            W1 -= LR * dW1
            b1 -= LR * db1
            W2 -= LR * dW2
            b2 -= LR * db2
            W3 -= LR * dW3
            b3 -= LR * db3
        losses.append(float(loss))
    return epoch, losses


def matmul_gflops(n=1024) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    t = median_time(lambda: a @ b, repeats=max(5, REPEATS))
    return 2 * n ** 3 / t / 1e9


def main() -> None:
    out = {"benchmark": "run.py", **run_info(ARGS.threads, torch), "quick": ARGS.quick,
           "repeats": REPEATS}
    print(f"backprop {bp.__version__} ({ENGINE}) | numpy {np.__version__} | "
          f"torch {torch.__version__ if torch else 'not installed'} | threads {ARGS.threads} | "
          f"median of {REPEATS}, engines interleaved")
    print()
    print("1. Per-op overhead: forward + backward of a chain of 16x16 element-wise ops")
    engines = {"backprop": chain_backprop()}
    if torch is not None:
        engines["pytorch"] = chain_torch()
    # One chain takes well under a millisecond, so each timed sample runs CHAINS of them,
    # and the ratio is the median of the ratios within each repeat (a slow phase of the
    # machine hits both engines of a repeat alike); the best repeats are shown beside.
    raw = interleaved({name: _times(fn, CHAINS) for name, fn in engines.items()},
                      repeats=max(REPEATS, 21), samples=True)
    per_op_out: dict = {"us_per_op": {}, "best_us_per_op": {}}
    for name, times in raw.items():
        per_op = [t / (CHAIN * CHAINS) * 1e6 for t in times]
        print(f"   {name:10s} {statistics.median(per_op):8.2f} us/op   (best {min(per_op):.2f})")
        per_op_out["us_per_op"][name] = statistics.median(per_op)
        per_op_out["best_us_per_op"][name] = min(per_op)
    if torch is not None:
        ratios = sorted(b / p for b, p in zip(raw["backprop"], raw["pytorch"]))
        best = min(raw["backprop"]) / min(raw["pytorch"])
        # backprop's time over PyTorch's: below 1, backprop is faster
        per_op_out["ratio_to_pytorch"] = {**spread(ratios), "best_against_best": best}
        print(f"   ratio backprop/pytorch = {statistics.median(ratios):.2f}   (target <= 0.5; "
              f"repeats {ratios[0]:.2f} to {ratios[-1]:.2f}, best against best {best:.2f})")
    out["per_op"] = per_op_out
    print()
    print("2. MLP 784-256-128-10 (ReLU), SGD, raw tensor ops: training samples/s")
    for batch in (256, 32):
        makers = {"backprop": mlp_backprop, "pytorch": mlp_torch, "numpy by hand": mlp_numpy}
        if torch is None:
            del makers["pytorch"]
        epochs = {name: make(batch)[0] for name, make in makers.items()}
        raw = interleaved(epochs, repeats=max(5, REPEATS), warmup=1, samples=True)
        n_used = (N_TRAIN // batch) * batch
        print(f"   batch {batch}:")
        mlp_out: dict = {"samples_per_s": {}, "ratios": {}}
        for name, times in raw.items():
            print(f"     {name:14s} {n_used / statistics.median(times):10,.0f} samples/s")
            mlp_out["samples_per_s"][name] = n_used / statistics.median(times)
        for other, label, target in (("pytorch", "pytorch", 1.5),
                                     ("numpy by hand", "numpy  ", 0.7)):
            if other in raw:
                # throughput ratio within each repeat, then the median (as for per-op)
                ratios = sorted(o / b for b, o in zip(raw["backprop"], raw[other]))
                print(f"     ratio backprop/{label} = {statistics.median(ratios):.2f}   "
                      f"(target >= {target}; repeats {ratios[0]:.2f} to {ratios[-1]:.2f})")
                # backprop's throughput over the other's: above 1, backprop is faster
                mlp_out["ratios"][other] = spread(ratios)
        out.setdefault("mlp_raw", {})[str(batch)] = mlp_out
    print()
    out["matmul_gflops"] = gflops = matmul_gflops()
    print(f"3. float32 matmul 1024x1024: {gflops:.1f} GFLOP/s (the ceiling)")
    if ARGS.json:
        write_json(ARGS.json, out)


if __name__ == "__main__":
    main()
