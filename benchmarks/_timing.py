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


def parser(description: str, threads: int = 1, json: bool = False) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes: ``--threads`` (default
    ``threads``), ``--quick`` and ``--repeats`` (and ``--json PATH`` where ``json``, for a
    benchmark that writes its figures); add a benchmark's own to it."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=threads,
                   help=f"BLAS / torch threads for every engine (default: {threads})")
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="timing repeats (median shown)")
    if json:
        add_json_option(p)
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


# -- figures as JSON (benchmarks/table.py reads them) ------------------------------------------
def add_json_option(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--json PATH``: after printing, also write the measured figures to PATH."""
    p.add_argument("--json", metavar="PATH", default=None,
                   help="also write the measured figures as JSON to PATH")
    return p


def spread(values) -> dict:
    """The median of ``values`` and their range: how a ratio taken per repeat is reported."""
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1],
            "n": len(values)}


def run_info(threads: int, torch=None) -> dict:
    """What ran: versions, backprop's engine and array kernels, the thread count. Call it
    after the benchmark has imported NumPy and backprop."""
    import platform

    import numpy as np

    import backprop as bp
    from backprop.autograd.engine import ENGINE
    try:
        from backprop.ops._kernels import KERNELS_IN
    except ImportError:  # pragma: no cover (an older tree)
        KERNELS_IN = None
    return {"threads": threads, "engine": ENGINE, "kernels": KERNELS_IN,
            "versions": {"backprop": bp.__version__, "numpy": np.__version__,
                         "torch": torch.__version__ if torch is not None else None,
                         "python": platform.python_version()}}


def write_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` as JSON, all-or-nothing (backprop's own atomic write: a
    reader never sees half a file), creating its folder."""
    import json

    from backprop.serialization import atomic_write_text

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n", "write_json")
