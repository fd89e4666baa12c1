"""``backprop doctor``: diagnose a run folder written by ``backprop train``.

    backprop doctor runs/spiral                  # findings, and plots into the folder
    backprop doctor runs/spiral --plots figs/    # plots elsewhere
    backprop doctor runs/spiral --no-plots

Reads ``diagnostics.jsonl`` (the readings ``backprop train`` records) and the
history (``history.json``, else ``metrics.jsonl``), prints the doctor's findings and
writes the diagnostic plots when matplotlib is installed. Exit status 0 when the
diagnosis ran (whatever it found), 2 when there is nothing to diagnose, 1 when a
file cannot be read. Parsing and printing only: the work is
:func:`backprop.diagnostics.diagnose` and :mod:`backprop.diagnostics.plots`.
"""
from __future__ import annotations

import argparse
import os
import sys
from functools import partial

from backprop.cli._common import fail
from backprop.diagnostics import Readings, diagnose
from backprop.diagnostics import plots as _plots
from backprop.train import History

__all__ = ["add_parser", "run"]

DIAGNOSTICS_FILE = "diagnostics.jsonl"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``doctor`` with its options."""
    p = subparsers.add_parser(
        "doctor", help="diagnose a training run: what went wrong and what to try",
        description="Read the diagnostics that `backprop train` recorded in a run folder, "
                    "print the findings (vanishing or exploding gradients, divergence, dead "
                    "units, ...) with advice, and write plots into the folder.")
    p.add_argument("run_dir", metavar="RUN",
                   help="a run folder written by `backprop train` (or its diagnostics.jsonl)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--plots", metavar="DIR", help="write the plots here (default: RUN)")
    where.add_argument("--no-plots", dest="no_plots", action="store_true",
                       help="write no plots")
    p.set_defaults(run=run)
    return p


_fail = partial(fail, "doctor")
"""Print a one-line ``backprop doctor: error: ...`` and return the exit status (2 by default)."""


def _print(text: str = "") -> None:
    """Print; when the reader has gone (``backprop doctor RUN | head``), print nothing more
    and carry on: the plots are still written."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _history(run_dir: str):
    """The run's History from history.json, else metrics.jsonl, else None."""
    for name, load in (("history.json", History.from_json),
                       ("metrics.jsonl", History.from_jsonl)):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            return load(path)
    return None


def _describe(readings, history) -> str:
    interval = readings.meta.get("interval")
    every = f", every {interval} steps" if interval and interval > 1 else ""
    n = len(readings.steps)
    parts = [f"{n} recorded step{'' if n == 1 else 's'}{every}"]
    last = history.steps[-1]["step"] if history is not None and history.steps else None
    if last is not None:
        parts.append(f"{last} steps in all")
    if history is not None and history.epochs:
        parts.append(f"{len(history.epochs)} epochs")
    return ", ".join(parts)


def run(args) -> int:
    """Run ``backprop doctor`` with parsed arguments; returns the exit status."""
    run_dir = args.run_dir
    if os.path.isfile(run_dir) and os.path.basename(run_dir) == DIAGNOSTICS_FILE:
        run_dir = os.path.dirname(run_dir) or "."  # the run's own file: its folder is the run
    elif os.path.exists(run_dir) and not os.path.isdir(run_dir):
        return _fail(f"{run_dir} is a file, not a run folder; give the folder that "
                     f"`backprop train --out` wrote (the one holding {DIAGNOSTICS_FILE})", 2)
    if not os.path.isdir(run_dir):
        return _fail(f"no run folder {run_dir}; make one with: backprop train --out {run_dir}",
                     2)
    path = os.path.join(run_dir, DIAGNOSTICS_FILE)
    if not os.path.exists(path):
        return _fail(f"{run_dir} has no {DIAGNOSTICS_FILE}: train the run again with "
                     f"`backprop train --out {run_dir} --overwrite` (without --no-diagnostics) "
                     f"to record one", 2)
    try:
        readings = Readings.from_jsonl(path)
        history = _history(run_dir)
    except (OSError, ValueError, TypeError) as e:
        return _fail(f"cannot read the run in {run_dir}: {e}", 1)
    report = diagnose(readings, history)
    _print(f"backprop doctor {run_dir} ({_describe(readings, history)})\n\n{report}")
    if args.no_plots:
        return 0
    folder = args.plots or run_dir
    try:
        written = _plots.write_plots(readings, history, folder)
    except _plots.PlotDependencyError as e:
        _print(f"\nplots skipped: {e}")
        return 0
    except OSError as e:
        return _fail(f"cannot write the plots into {folder}: {e.strerror or e}", 1)
    if written:
        names = ", ".join(os.path.basename(p) for p in written)
        _print(f"\nplots in {os.path.join(folder, '')}: {names}")  # one separator at the end
    return 0
