"""``backprop doctor``: diagnose a run folder written by ``backprop train``.

    backprop doctor runs/spiral                  # findings, and plots into the folder
    backprop doctor runs/spiral --plots figs/    # plots elsewhere
    backprop doctor runs/spiral --no-plots

Reads ``diagnostics.jsonl`` (the readings ``backprop train`` records) and the
history (``history.json``, else ``metrics.jsonl``), prints the doctor's findings and
writes the diagnostic plots when matplotlib is installed. Exit status 0 when the
diagnosis ran (whatever it found); 2 when there is nothing to diagnose or the files
hold something other than a run's records (not JSON, nested too deeply, values of the
wrong type); 1 when a file cannot be opened or a plot cannot be written. Parsing and
printing only: the work is :func:`backprop.diagnostics.diagnose` and
:mod:`backprop.diagnostics.plots`.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from functools import partial

from backprop.cli._common import fail, one_line
from backprop.diagnostics import Readings, diagnose
from backprop.diagnostics import plots as _plots
from backprop.errors import shorten
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
    last = history.steps[-1].get("step") if history is not None and history.steps else None
    if last is not None:
        parts.append(f"{last} steps in all")
    if history is not None and history.epochs:
        parts.append(f"{len(history.epochs)} epochs")
    return ", ".join(parts)


def run(args) -> int:
    """Run ``backprop doctor`` with parsed arguments; returns the exit status."""
    run_dir = args.run_dir
    if not run_dir.strip():
        return _fail(f"RUN needs a run folder, got {run_dir!r}", 2)
    if args.plots is not None and not args.plots.strip():
        # "" would quietly mean the run folder: say which folder was meant instead.
        return _fail(f"--plots needs a folder, got {args.plots!r}; leave it out to write "
                     f"the plots into the run folder", 2)
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
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            readings = Readings.from_jsonl(path)
            history = _history(run_dir)
        _check_run(readings, history)
    except OSError as e:
        return _fail(f"cannot read the run in {run_dir}: {e.strerror or e}", 1)
    except (ValueError, TypeError) as e:
        return _fail(f"cannot read the run in {run_dir}: {e}")
    except RecursionError:  # json's decoder recurses once per level of nesting
        return _fail(f"cannot read the run in {run_dir}: a record is nested too deeply to be "
                     f"a run's record")
    for w in caught:  # skipped lines, say: one line each, the run is still diagnosed
        print(f"backprop doctor: warning: {one_line(w.message)}", file=sys.stderr)
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


# -- checking what was read -----------------------------------------------------------------
# The readers parse JSON lines; they do not promise the values' types. The doctor's rules and
# the plots assume the types a Monitor and a Trainer write, so a hand-edited or foreign file
# is checked here first: one line naming the record and the key, instead of a TypeError deep
# inside a rule or a plot.
_STEP_NUMBERS = ("loss", "lr", "grad_norm", "accuracy")
_PARAM_NUMBERS = ("grad_norm", "weight_norm", "update_ratio", "grad_abs_mean")
_ACTIVATION_NUMBERS = ("mean", "std", "dead_fraction", "saturated_fraction")
_NOISE_NUMBERS = ("batches", "batch_size", "trace_cov", "grad_sq_norm", "b_noise")
_EPOCH_NUMBERS = ("loss", "val_loss", "accuracy", "val_accuracy", "lr", "time")
_MAX_COUNT = 10**15
"""The largest step or epoch number taken: far past any run, and exact as a float (plots)."""


def _is_number(value) -> bool:
    """A JSON number that fits a float (non-finite floats included: they are readings too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, float) or abs(value) <= 1e300


def _need(ok: bool, where: str, key: str, what: str, value) -> None:
    if not ok:
        raise ValueError(f"{where}: {key!r} must be {what}, got {shorten(value)}")


def _check_count(record: dict, key: str, where: str, required: bool = False) -> None:
    if key not in record and not required:
        return
    value = record.get(key)
    if value is None and not required:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_COUNT
    _need(ok, where, key, f"a whole number from 0 to {_MAX_COUNT:,}", value)


def _check_numbers(record: dict, keys, where: str) -> None:
    for key in keys:
        value = record.get(key)
        _need(value is None or _is_number(value), where, key, "a number or null", value)


def _check_mapping(value, where: str, key: str) -> dict:
    """``value`` as a dict (None as {}), or ValueError naming ``key``."""
    _need(value is None or isinstance(value, dict), where, key, "an object", value)
    return value or {}


def _check_step(record: dict, where: str) -> None:
    """One recorded step of ``diagnostics.jsonl``: its numbers, params and activations."""
    _check_count(record, "step", where, required=True)
    _check_count(record, "epoch", where)
    _check_numbers(record, _STEP_NUMBERS, where)
    for name, reading in _check_mapping(record.get("params"), where, "params").items():
        inner = f"{where}, params {shorten(name)}"
        _check_numbers(_check_mapping(reading, inner, name), _PARAM_NUMBERS, inner)
    for name, reading in _check_mapping(record.get("activations"), where,
                                        "activations").items():
        inner = f"{where}, activations {shorten(name)}"
        reading = _check_mapping(reading, inner, name)
        _check_numbers(reading, _ACTIVATION_NUMBERS, inner)
        kind = reading.get("kind")
        _need(kind is None or isinstance(kind, str), inner, "kind", "a string", kind)
        hist = _check_mapping(reading.get("hist"), inner, "hist")
        for key in ("edges", "counts"):
            values = hist.get(key, [])
            _need(isinstance(values, list) and all(_is_number(v) for v in values), inner,
                  f"hist.{key}", "a list of numbers", values)
    _check_numbers(_check_mapping(record.get("noise"), where, "noise"), _NOISE_NUMBERS,
                   f"{where}, noise")


def _check_epoch(record: dict, where: str) -> None:
    _check_count(record, "epoch", where)
    _check_count(record, "step", where)
    _check_numbers(record, _EPOCH_NUMBERS, where)


def _check_run(readings, history) -> None:
    """ValueError naming the first record (and key) whose value has the wrong type."""
    meta, file = readings.meta, DIAGNOSTICS_FILE
    where = f"{file} meta"
    _check_count(meta, "interval", where)
    _need(meta.get("interval") != 0, where, "interval", "at least 1", 0)
    _check_numbers(meta, ("batch_size", "lr"), where)
    for key in ("params", "layers"):
        names = meta.get(key)
        _need(names is None or (isinstance(names, list) and all(isinstance(n, str)
                                                                for n in names)),
              where, key, "a list of names", names)
    for i, record in enumerate(readings.steps, 1):
        _check_step(record, f"{file} step record {i}")
    for i, record in enumerate(readings.epochs, 1):
        _check_epoch(record, f"{file} epoch record {i}")
    nonfinite = readings.nonfinite
    if nonfinite is not None:
        where = f"{file} nonfinite record"
        _check_count(nonfinite, "step", where)
        for key in ("kind", "name", "detail"):
            value = nonfinite.get(key)
            _need(value is None or isinstance(value, str), where, key, "a string", value)
    if history is None:
        return
    for i, record in enumerate(history.steps, 1):
        where = f"history step record {i}"
        _check_count(record, "step", where)
        _check_count(record, "epoch", where)
        _check_numbers(record, _STEP_NUMBERS, where)
    for i, record in enumerate(history.epochs, 1):
        _check_epoch(record, f"history epoch record {i}")
