"""What a default ``Monitor`` costs: the same training with and without it, in the same run.

    python benchmarks/diagnostics_overhead.py       # [--threads N] [--quick] [--repeats R]

The network is the digits MLP of benchmarks/digits_mlp.py (64-128-64-10, ReLU,
CrossEntropyLoss, Adam lr 1e-3), trained with ``backprop.train.fit`` on the 1,437
training images (random data of that shape without scikit-learn) in shuffled
mini-batches of 32 and of 256, for the same number of optimizer steps at both sizes
(200 by default, over as many epochs as that takes). Three runs are timed for each:

- ``fit``: no monitor;
- ``fit + Monitor``: ``Monitor(model)`` with its defaults (every 25th step recorded:
  per-parameter norms and update ratios, activation statistics and histograms,
  gradient noise over 8-step windows; a cheap NaN check on steps the
  Trainer does not already check);
- ``fit + Monitor(path)``: the same, also writing the live JSON-lines file.

Each repeat builds fresh models and monitors from the same initial weights; the runs
are interleaved within every repeat so a noisy phase of this shared machine hits them
alike; the overhead is the median over repeats of each repeat's ratio to its own plain run,
shown with the spread of those ratios. The target is under 10% for the default Monitor.
"""
from __future__ import annotations

import argparse
import statistics
import os
import sys
import tempfile

from _timing import interleaved, set_threads


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                   help="BLAS threads (default: 2)")
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (median shown)")
    p.add_argument("--steps", type=int, default=200,
                   help="optimizer steps per timing repeat, for each batch size (default 200)")
    return p.parse_args()


ARGS = _parse()
set_threads(ARGS.threads)  # before NumPy (and its BLAS) is imported

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
import backprop as bp  # noqa: E402
from backprop.autograd.engine import ENGINE  # noqa: E402
from backprop import nn, optim  # noqa: E402
from _digits import digits_data  # noqa: E402  (the same data as digits_mlp.py)
from backprop.data import DataLoader, TensorDataset  # noqa: E402
from backprop.diagnostics import Monitor  # noqa: E402
from backprop.train import fit  # noqa: E402

REPEATS = ARGS.repeats or (3 if ARGS.quick else 9)
SIZES = (64, 128, 64, 10)
TARGET = 0.10



def make_model():
    bp.manual_seed(0)  # the same initial weights for every run
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def training(X, y, batch, monitor=None):
    """A timed function: one fit of ARGS.steps steps, from fresh weights and monitor."""
    data = TensorDataset(bp.from_numpy(X), bp.from_numpy(y))
    folder = tempfile.mkdtemp(prefix="bp-diag-bench-")
    recorded = []

    def run():
        model = make_model()
        opt = optim.Adam(model.parameters(), lr=1e-3)
        loader = DataLoader(data, batch_size=batch, shuffle=True, generator=bp.Generator(0))
        callbacks = []
        mon = None
        if monitor == "memory":
            mon = Monitor(model)
        elif monitor == "file":
            mon = Monitor(model, path=os.path.join(folder, "diagnostics.jsonl"))
        if mon is not None:
            callbacks.append(mon)
        fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=-(-ARGS.steps // len(loader)),
            max_steps=ARGS.steps, callbacks=callbacks, progress=False)
        if mon is not None:
            mon.close()
            recorded.append(len(mon.readings))
    return run, recorded


def main() -> None:
    X, y, source = digits_data()
    print(f"backprop {bp.__version__} ({ENGINE}) | numpy {np.__version__} | threads {ARGS.threads} | "
          f"median of {REPEATS}, runs interleaved")
    print(f"MLP 64-128-64-10 (ReLU), Adam, fit(): {ARGS.steps} steps on {len(X)} {source}")
    worst = 0.0
    steps = ARGS.steps
    for batch in (32, 256):
        runs = {"fit": training(X, y, batch),
                "fit + Monitor": training(X, y, batch, "memory"),
                "fit + Monitor(path)": training(X, y, batch, "file")}
        raw = interleaved({name: run for name, (run, _) in runs.items()}, REPEATS, samples=True)
        print(f"   batch {batch} ({steps} steps, {runs['fit + Monitor'][1][-1]} recorded):")
        for name, times in raw.items():
            extra = ""
            if name != "fit":
                # The overhead of each repeat against the plain run of the same repeat, then
                # the median: a slow phase of the machine cancels out within a repeat.
                ratios = sorted(t / b - 1 for t, b in zip(times, raw["fit"]))
                mid = statistics.median(ratios)
                extra = (f"   overhead {100 * mid:+6.1f}% (repeats from {100 * ratios[0]:+.1f}% "
                         f"to {100 * ratios[-1]:+.1f}%)")
                if name == "fit + Monitor":
                    worst = max(worst, mid)
            print(f"     {name:20s} {statistics.median(times) / steps * 1e3:8.3f} ms/step{extra}")
    verdict = "within" if worst < TARGET else "OVER"
    print(f"   worst default-Monitor overhead {100 * worst:+.1f}% ({verdict} the "
          f"{100 * TARGET:.0f}% target)")


if __name__ == "__main__":
    main()
