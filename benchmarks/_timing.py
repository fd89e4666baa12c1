"""What every benchmark here shares: its common options, fixing thread counts, loading
PyTorch, and interleaved timing.

Import this before NumPy: ``set_threads`` must run before NumPy loads its BLAS.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import time


def parser(description: str, threads: int = 1) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes: ``--threads`` (default
    ``threads``), ``--quick`` and ``--repeats``; add a benchmark's own to it."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=threads,
                   help=f"BLAS / torch threads for every engine (default: {threads})")
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (median shown)")
    return p


def set_threads(n: int) -> None:
    """Give every engine the same thread count (call before importing NumPy or torch)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def load_torch(threads: int):
    """PyTorch, set to ``threads`` threads, or None where it is not installed (the
    benchmarks then time backprop alone)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    torch.set_num_threads(threads)
    return torch


def interleaved(fns: dict, repeats: int, warmup: int = 1, samples: bool = False) -> dict:
    """Median time of each function, running them in turn within every repeat.

    Interleaving means a slow phase of this shared machine hits every engine alike,
    so the ratios between them stay meaningful even when absolute times wander. The
    order rotates from one repeat to the next, so no function always runs first.
    ``samples=True`` returns every repeat's time (lists, repeat by repeat) instead, for
    ratios taken within each repeat.

    A full garbage collection runs before the timed repeats: the collector's debt from
    importing the engines (a full pass over ~170k objects with torch loaded, ~90 ms)
    would otherwise land on whichever engine happens to allocate next. The collector
    stays on while timing, as in a user's program.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    gc.collect()
    names = list(fns)
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    if samples:
        return times
    return {name: statistics.median(ts) for name, ts in times.items()}
