"""A small CNN's training step against PyTorch CPU (issue 15's CNN row).

    python benchmarks/cnn.py [--threads N] [--quick] [--profile]   # pin it: taskset -c 0 ...
                             # [--json PATH]: the figures as JSON too

The step: a batch of 64 1x28x28 images through conv(1->16, 3x3, pad 1) - ReLU - maxpool 2 -
conv(16->32, 3x3, pad 1) - ReLU - maxpool 2 - flatten - Linear(1568->10), written with nn
modules, F.cross_entropy and optim.SGD; zero_grad, forward, backward, step. Both engines
start from the same weights and see the same batch. Times are medians of interleaved repeats
(the engines take turns in one process, at the same thread count); the ratio is the median
of backprop / PyTorch within each repeat, so below 1 means backprop is faster.

``--profile`` prints where backprop's step spends its time instead: the forward and the
backward of every op (conv, pool, relu, linear, loss, ...), the optimizer and zero_grad,
each the median over steps; what is left is the engine and the modules' Python. Beside each
time, the page faults it took: a large array on memory that the C allocator gave back to
the system at the end of the previous step is faulted in again, page by page.
``--no-fast-paths`` times backprop's general convolution and pooling code instead.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

from _timing import interleaved, load_torch, parser, run_info, set_threads, spread, write_json


def _parse(argv=None):
    p = parser(__doc__.split("\n")[0], threads=1, json=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--profile", action="store_true",
                   help="time each op's forward and backward in backprop's step")
    p.add_argument("--no-fast-paths", action="store_true",
                   help="run backprop's general convolution and pooling code "
                        "(backprop.ops.conv.FAST_PATHS off), to measure what the fast paths buy")
    return p.parse_args(argv)


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    set_threads(ARGS.threads)  # before NumPy (and its BLAS) is imported

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
import backprop as bp  # noqa: E402
from backprop.autograd.engine import ENGINE  # noqa: E402
from backprop.autograd.function import Function  # noqa: E402

LR = 0.01


def make_model(T):
    """The network, for an engine module ``T`` (backprop or torch)."""
    n = T.nn
    return n.Sequential(
        n.Conv2d(1, 16, 3, padding=1), n.ReLU(), n.MaxPool2d(2),
        n.Conv2d(16, 32, 3, padding=1), n.ReLU(), n.MaxPool2d(2),
        n.Flatten(), n.Linear(32 * 7 * 7, 10))


def data(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    return x, y


def train_step(T, model, x, y):
    """One training step as a function of nothing; the same code drives either engine."""
    opt = T.optim.SGD(model.parameters(), lr=LR)
    cross_entropy = T.nn.functional.cross_entropy

    def step():
        opt.zero_grad()
        loss = cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def engines(batch: int, torch=None) -> dict:
    """{name: step function}: backprop's, and PyTorch's with the same initial weights."""
    x, y = data(batch)
    ours = make_model(bp)
    fns = {"backprop": train_step(bp, ours, bp.tensor(x), bp.tensor(y))}
    if torch is not None:
        theirs = make_model(torch)
        theirs.load_state_dict({k: torch.tensor(v.numpy())
                                for k, v in ours.state_dict().items()})
        fns["pytorch"] = train_step(torch, theirs, torch.tensor(x), torch.tensor(y))
    return fns


# -- the per-op profile -------------------------------------------------------------------------
def _faults() -> int:
    """Minor page faults so far: each fresh page a large new array touches costs one."""
    try:
        import resource
    except ImportError:  # pragma: no cover (not on Windows)
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class _OpTimer:
    """Wraps every Function's forward and backward with a timer for the duration of a ``with``.

    Each op call in a step gets a label: its class name and its rank among the calls of that
    class (``Conv2d#1``, ``Conv2d#2``); the backward of a node is charged to its forward's label.
    """

    def __init__(self):
        self.times: dict = {}
        self.faults: dict = {}
        self._seen: dict = {}
        self._saved: list = []

    def new_step(self) -> None:
        self._seen = {}

    def _add(self, key, dt, faults) -> None:
        self.times.setdefault(key, []).append(dt)
        self.faults.setdefault(key, []).append(faults)

    def _wrap(self, cls):
        fwd, bwd = cls.__dict__["forward"].__func__, cls.__dict__["backward"].__func__
        timer = self

        def forward(ctx, *args, **kwargs):
            rank = timer._seen[cls.__name__] = timer._seen.get(cls.__name__, 0) + 1
            label = f"{cls.__name__}#{rank}"
            ctx.__dict__["_profile_label"] = label
            f0, t0 = _faults(), time.perf_counter()
            out = fwd(ctx, *args, **kwargs)
            timer._add((label, "forward"), time.perf_counter() - t0, _faults() - f0)
            return out

        def backward(ctx, grad_output):
            f0, t0 = _faults(), time.perf_counter()
            out = bwd(ctx, grad_output)
            timer._add((ctx.__dict__.get("_profile_label", cls.__name__), "backward"),
                       time.perf_counter() - t0, _faults() - f0)
            return out
        return forward, backward

    def __enter__(self):
        for cls in set(Function.registry.values()):
            if "forward" in cls.__dict__ and "backward" in cls.__dict__ and \
                    isinstance(cls.__dict__["forward"], staticmethod):
                self._saved.append((cls, cls.__dict__["forward"], cls.__dict__["backward"]))
                fwd, bwd = self._wrap(cls)
                cls.forward, cls.backward = staticmethod(fwd), staticmethod(bwd)
        return self

    def __exit__(self, *exc):
        for cls, fwd, bwd in self._saved:
            cls.forward, cls.backward = fwd, bwd
        self._saved = []


def profile(batch: int, steps: int) -> None:
    x, y = data(batch)
    model = make_model(bp)
    xb, yb = bp.tensor(x), bp.tensor(y)
    opt = bp.optim.SGD(model.parameters(), lr=LR)
    timer = _OpTimer()
    totals, step_faults = [], []
    parts: dict = {"zero_grad": [], "optimizer step": []}

    def step():
        f0, t0 = _faults(), time.perf_counter()
        opt.zero_grad()
        t1 = time.perf_counter()
        loss = bp.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return t1 - t0, t3 - t2, t3 - t0, _faults() - f0

    for _ in range(3):
        step()
    with timer:
        for _ in range(3):  # warm the wrapped path too
            timer.new_step()
            step()
        timer.times.clear()
        timer.faults.clear()
        for _ in range(steps):
            timer.new_step()
            z, o, total, faults = step()
            parts["zero_grad"].append(z)
            parts["optimizer step"].append(o)
            totals.append(total)
            step_faults.append(faults)
    med = {k: statistics.median(v) for k, v in timer.times.items()}
    flt = {k: statistics.median(v) for k, v in timer.faults.items()}
    step_ms = statistics.median(totals) * 1e3
    print(f"backprop's CNN step, batch {batch}: {step_ms:.2f} ms, "
          f"{statistics.median(step_faults):.0f} page faults (medians of {steps} steps, timers "
          f"on); per op, ms (page faults):")
    labels = list(dict.fromkeys(label for label, _ in timer.times))
    print(f"   {'op':<22} {'forward':>14} {'backward':>14} {'total':>8}")
    accounted = 0.0
    for label in labels:
        f = med.get((label, "forward"), 0.0) * 1e3
        b = med.get((label, "backward"), 0.0) * 1e3
        accounted += f + b
        ff, fb = flt.get((label, "forward"), 0), flt.get((label, "backward"), 0)
        print(f"   {label:<22} {f:7.3f} ({ff:4.0f}) {b:7.3f} ({fb:4.0f}) {f + b:8.3f}")
    for name, ts in parts.items():
        t = statistics.median(ts) * 1e3
        accounted += t
        print(f"   {name:<22} {'':>14} {'':>14} {t:8.3f}")
    print(f"   {'the rest (engine, modules)':<52} {step_ms - accounted:8.3f}")


def main() -> None:
    torch = load_torch(ARGS.threads)
    if ARGS.no_fast_paths:
        from backprop.ops import conv
        conv.FAST_PATHS = False
    repeats = ARGS.repeats or (5 if ARGS.quick else 31)
    print(f"backprop {bp.__version__} ({ENGINE}) | numpy {np.__version__} | "
          f"torch {torch.__version__ if torch else 'not installed'} | threads {ARGS.threads}")
    if ARGS.profile:
        profile(ARGS.batch, repeats)
        return
    out = {"benchmark": "cnn.py", **run_info(ARGS.threads, torch), "quick": ARGS.quick,
           "repeats": repeats, "batch": ARGS.batch, "fast_paths": not ARGS.no_fast_paths,
           "ms_per_step": {}, "best_ms": {}, "p90_ms": {}}
    fns = engines(ARGS.batch, torch)
    raw = interleaved(fns, repeats, warmup=3, samples=True)
    print(f"CNN training step (conv-relu-pool x2, linear; SGD), batch {ARGS.batch}, float32, "
          f"median of {repeats} interleaved repeats")
    for name, ts in raw.items():
        ms = sorted(t * 1e3 for t in ts)
        print(f"   {name:10s} {statistics.median(ms):8.2f} ms/step   "
              f"(best {ms[0]:.2f}, p90 {ms[int(0.9 * (len(ms) - 1))]:.2f})")
        out["ms_per_step"][name] = statistics.median(ms)
        out["best_ms"][name] = ms[0]
        out["p90_ms"][name] = ms[int(0.9 * (len(ms) - 1))]
    if "pytorch" in raw:
        ratios = sorted(b / p for b, p in zip(raw["backprop"], raw["pytorch"]))
        print(f"   ratio backprop/pytorch = {statistics.median(ratios):.2f}   (target <= 1.0; "
              f"repeats {ratios[0]:.2f} to {ratios[-1]:.2f})")
        out["ratio_to_pytorch"] = spread(ratios)  # backprop's time over PyTorch's
    if ARGS.json:
        write_json(ARGS.json, out)


if __name__ == "__main__":
    main()
