"""What backprop's ``Monitor`` costs a PyTorch training loop: with and without it, same run.

    python benchmarks/torch_monitor_overhead.py     # [--threads N] [--quick] [--repeats R]
    taskset -c 0 python benchmarks/torch_monitor_overhead.py --threads 1   # the reference

Two PyTorch models, each trained for ``--steps`` optimizer steps (200 by default) of a
plain loop (``zero_grad``, forward, ``cross_entropy``, ``backward``, ``step``) on random
data held in memory:

- ``mlp``: 784-256-128-10 with ReLU modules, SGD with momentum, batches of 64
  (``--batch``);
- ``cnn``: conv(1->16, 3x3, pad 1)-ReLU-maxpool 2-conv(16->32, 3x3, pad 1)-ReLU-maxpool
  2-Linear(1568->10) on 28x28 images, the same optimizer and batches.

Each is timed three ways, interleaved within every repeat so a noisy phase of this
shared machine hits them alike:

- ``plain``: no monitor;
- ``Monitor``: ``Monitor(model, opt)`` with its defaults (every 25th step recorded;
  per-parameter norms and update ratios, activation statistics and histograms, the
  gradient noise over 8-step windows; a cheap NaN/Inf check on the other steps), and
  ``mon.log_loss(loss)`` every step: the two lines the README asks a user to add;
- ``Monitor + file``: the same, also writing diagnostics.jsonl.

The overhead is the median over repeats of each repeat's ratio to its own plain run,
with the spread of those ratios. The target (issue 14) is at most 10%.

``--inside`` also times the Monitor's own calls (``log_loss`` and the optimizer step
hooks, and a recorded step's whole forward, hooks included, less a plain forward) in one
monitored run of 3000 steps, by kind of step: plain (the NaN/Inf check only), in a noise
window, recorded, and the step before a recorded one (which attaches the forward hooks).
The 25th percentile of each kind, weighted by how often it comes, estimates the cost a
step with less of this machine's noise than the wall clock has.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile

from _timing import interleaved, load_torch, parser, set_threads

p = parser(__doc__.split("\n")[0], threads=1)
p.add_argument("--steps", type=int, default=200, help="optimizer steps per run (default 200)")
p.add_argument("--models", default="mlp,cnn", help="which models, comma-separated")
p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
p.add_argument("--inside", action="store_true",
               help="also time the Monitor's own calls, by kind of step (see above)")
ARGS = p.parse_args()
set_threads(ARGS.threads)  # before NumPy (and its BLAS) is imported

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
torch = load_torch(ARGS.threads)
if torch is None:
    sys.exit("this benchmark measures a PyTorch loop: pip install torch")

from backprop.diagnostics import Monitor  # noqa: E402

REPEATS = ARGS.repeats or (3 if ARGS.quick else 9)
STEPS = 40 if ARGS.quick else ARGS.steps
BATCH = ARGS.batch
TARGET = 0.10


def mlp():
    nn = torch.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128),
                         nn.ReLU(), nn.Linear(128, 10))


def cnn():
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


MODELS = {"mlp": mlp, "cnn": cnn}


def data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(8 * BATCH, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (8 * BATCH,), generator=g)
    return [(X[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(X), BATCH)]


def training(make, batches, monitored: bool, path: bool = False):
    """A timed function: STEPS steps from the same initial weights, optionally monitored."""
    def run():
        torch.manual_seed(0)
        model = make()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        mon = None
        if monitored:
            folder = tempfile.mkdtemp(prefix="bp-torch-mon-") if path else None
            mon = Monitor(model, opt, path=os.path.join(folder, "diagnostics.jsonl")
                          if folder else None)
        for step in range(STEPS):
            x, y = batches[step % len(batches)]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            if mon is not None:
                mon.log_loss(loss)
            opt.step()
        if mon is not None:
            mon.close()
            assert len(mon.readings.steps) == (STEPS - 1) // 25 + 1
    return run


def inside(make, batches, steps: int = 3000) -> None:
    """Time the Monitor's own calls in one run, by kind of step (see the module's doc)."""
    import time

    durations: dict = {}

    def timed(name):
        fn = getattr(Monitor, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                durations.setdefault(name, []).append(time.perf_counter() - start)
        return wrapper

    originals = {n: getattr(Monitor, n) for n in ("log_loss", "_pre_step", "_post_step")}
    for name in originals:
        setattr(Monitor, name, timed(name))
    try:
        torch.manual_seed(0)
        model = make()
        opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
        mon = Monitor(model, opt)
        interval, window = mon.interval, mon.noise_window
        forwards = []
        for step in range(steps):
            x, y = batches[step % len(batches)]
            opt.zero_grad()
            start = time.perf_counter()
            out = model(x)
            forwards.append(time.perf_counter() - start)
            loss = torch.nn.functional.cross_entropy(out, y)
            loss.backward()
            mon.log_loss(loss)
            opt.step()
        mon.close()
    finally:
        for name, fn in originals.items():
            setattr(Monitor, name, fn)

    def kind(s):
        if (s - 1) % interval == 0:
            return "recorded"
        if s % interval == 0:
            return "attach"
        return "window" if (1 - s) % interval < window else "plain"

    def p25(values):
        return sorted(values)[len(values) // 4]

    kinds = [kind(s) for s in range(1, steps + 1)]
    plain_forward = p25([f for f, k in zip(forwards, kinds) if k != "recorded"])
    by_kind: dict = {}
    for i, k in enumerate(kinds):
        cost = sum(durations[n][i] for n in originals)
        if k == "recorded":
            cost += forwards[i] - plain_forward
        by_kind.setdefault(k, []).append(cost)
    total = 0.0
    for k in ("plain", "window", "attach", "recorded"):
        share = len(by_kind[k]) / steps
        total += p25(by_kind[k]) * share
        print(f"  inside: {k:<9} {p25(by_kind[k]) * 1e6:8.1f} µs (25th percentile), "
              f"{share:.0%} of steps")
    print(f"  inside: about {total * 1e6:.0f} µs a step")


def main():
    batches = data()
    print(f"PyTorch {torch.__version__}, {ARGS.threads} thread(s), {STEPS} steps of batch "
          f"{BATCH}, {REPEATS} repeats (median; ratio spread in brackets)")
    worst = 0.0
    for name in ARGS.models.split(","):
        make = MODELS[name]
        fns = {"plain": training(make, batches, False),
               "Monitor": training(make, batches, True),
               "Monitor + file": training(make, batches, True, path=True)}
        times = interleaved(fns, REPEATS, warmup=1, samples=True)
        plain = times["plain"]
        print(f"\n{name}: plain loop {statistics.median(plain) / STEPS * 1e3:.2f} ms/step")
        for label in ("Monitor", "Monitor + file"):
            ratios = [t / base for t, base in zip(times[label], plain)]
            over = statistics.median(ratios) - 1
            worst = max(worst, over) if label == "Monitor" else worst
            print(f"  {label:<15} {statistics.median(times[label]) / STEPS * 1e3:.2f} ms/step  "
                  f"overhead {over:+.1%}  [{min(ratios) - 1:+.1%} .. {max(ratios) - 1:+.1%}]")
        if ARGS.inside:
            inside(make, batches)
    print(f"\nworst default-Monitor overhead {worst:+.1%} (target <= {TARGET:.0%}): "
          f"{'met' if worst <= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
