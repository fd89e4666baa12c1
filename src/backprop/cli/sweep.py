"""``backprop sweep``: many ``backprop train`` runs over a grid or random samples, on Ray.

    backprop sweep --dataset spiral --layers 2-16-16-3 --grid lr=1e-4:10:log:7 \\
        --grid batch-size=1,4,16,64,256 --epochs 30 --out sweeps/spiral
    backprop sweep --dataset moons --sample lr=loguniform:1e-4:1 --samples 40 --out sweeps/m
    backprop sweep --resume --out sweeps/spiral       # run the trials not finished yet
    backprop sweep --report sweeps/spiral              # print the table and summary again

Parsing and printing only: :func:`backprop.sweep.run` does the work.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from functools import partial

from backprop.cli._common import fail
from backprop.cli.train import add_config_options, add_diagnostics_options
from backprop.diagnostics.monitor import DEFAULT_INTERVAL
from backprop.sweep import SweepError, load
from backprop.sweep import run as run_sweep
from backprop.sweep.results import METRICS
from backprop.sweep.runner import plan
from backprop.sweep.space import DEFAULT_MAX_TRIALS, field_name, parse_grid, parse_sample
from backprop.train.experiment import ConfigError, RunConfig, load_run_config

__all__ = ["add_parser", "run"]

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"out"}
_SWEEP_ONLY = ("grid", "sample", "samples", "asha", "metric", "address", "storage",
               "max_trials", "heatmap", "config", "max_retries", "cpus_per_trial")

_fail = partial(fail, "sweep")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sweep`` with every ``train`` option and its own."""
    p = subparsers.add_parser(
        "sweep", help="run many training runs over a grid or random samples (on Ray)",
        description="Sweep training options: each trial is a real `backprop train` run "
                    "with its own run folder under OUT/trials/ (so `backprop doctor` works "
                    "on any of them), run on an embedded local Ray or an existing cluster. "
                    "Writes OUT/sweep.jsonl (one record per trial), OUT/sweep.json (the "
                    "sweep's definition) and OUT/heatmap.png, and prints the trials best "
                    "first with the doctor's findings counted. Training options given "
                    "without --grid/--sample are shared by every trial. Needs Ray: "
                    "pip install 'backprop[ray]'.",
        argument_default=argparse.SUPPRESS)
    add_config_options(p)
    space = p.add_argument_group("sweep")
    space.add_argument("--grid", action="append", metavar="KEY=SPEC", default=[],
                       help="a grid axis: a list a,b,c or a range lo:hi:log:N / lo:hi:lin:N "
                            "(N values, both ends included); repeat for more axes, e.g. "
                            "--grid lr=1e-4:1:log:5 --grid batch-size=16,64")
    space.add_argument("--sample", action="append", metavar="KEY=DIST", default=[],
                       help="a random axis: loguniform:LOW:HIGH, uniform:LOW:HIGH or "
                            "choice:a,b; drawn --samples times per grid point")
    space.add_argument("--samples", type=int, metavar="N", default=None,
                       help="how many times the grid is run, each drawing the random axes "
                            "afresh (default 1); --seed seeds the draws")
    space.add_argument("--metric", default="test_loss",
                       help=f"what ranks the trials: {' or '.join(METRICS)} (default "
                            f"test_loss; train_loss without a test set)")
    space.add_argument("--asha", action="store_true", default=False,
                       help="stop hopeless trials early (Ray Tune's ASHA on --metric per "
                            "epoch)")
    space.add_argument("--max-trials", dest="max_trials", type=int, metavar="N",
                       default=DEFAULT_MAX_TRIALS,
                       help=f"refuse sweeps of more trials than this (default "
                            f"{DEFAULT_MAX_TRIALS})")
    space.add_argument("--heatmap", metavar="X,Y", default=None,
                       help="the two swept options of OUT/heatmap.png (default: the first "
                            "two swept)")
    where = p.add_argument_group("where it runs")
    where.add_argument("--address", default=None,
                       help="an existing Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                            "(default: an embedded Ray on this machine's cores)")
    where.add_argument("--storage", metavar="DIR", default=None,
                       help="the folder for the trials' run folders that every node of the "
                            "cluster sees (default: --out)")
    where.add_argument("--cpus-per-trial", dest="cpus_per_trial", type=int, metavar="N",
                       default=1, help="CPUs each trial reserves (default 1)")
    where.add_argument("--max-retries", dest="max_retries", type=int, metavar="N", default=3,
                       help="retries of a trial whose worker died, from its last checkpoint "
                            "(default 3)")
    run_group = p.add_argument_group("run")
    run_group.add_argument("--out", metavar="DIR", default=None,
                           help="the sweep's folder (required, except with --report)")
    run_group.add_argument("--config", metavar="FILE",
                           help="start every trial from a config.json (flags override it)")
    run_group.add_argument("--resume", action="store_true", default=False,
                           help="continue the sweep in --out: run only the trials not in "
                                "its sweep.jsonl")
    run_group.add_argument("--overwrite", action="store_true", default=False,
                           help="replace a sweep already in --out")
    run_group.add_argument("--report", metavar="DIR", default=None,
                           help="print the table and summary of the sweep in DIR again (no "
                                "Ray needed)")
    run_group.add_argument("--no-progress", dest="no_progress", action="store_true",
                           default=False, help="no progress bar and no per-trial lines")
    add_diagnostics_options(run_group)
    p.set_defaults(run=run)
    return p


def _space(given: dict) -> dict:
    space = {}
    for parse, specs in ((parse_grid, given["grid"]), (parse_sample, given["sample"])):
        for spec in specs:
            field, values = parse(spec)
            if field in space:
                raise SweepError(f"{field.replace('_', '-')} is swept twice; give one --grid "
                                 f"or --sample for it")
            if field in given:
                raise SweepError(f"--{field.replace('_', '-')} is both set and swept; drop "
                                 f"one")
            space[field] = values
    return space


def _base(given: dict) -> dict:
    base = load_run_config(given["config"]).to_dict() if "config" in given else {}
    base.pop("out", None)
    base.update({k: v for k, v in given.items() if k in _CONFIG_FIELDS})
    return base


def _interval(given: dict):
    if given.get("no_diagnostics"):
        if "diagnostics_interval" in given:
            raise SweepError("--diagnostics-interval and --no-diagnostics contradict each "
                             "other")
        return None
    interval = given.get("diagnostics_interval", DEFAULT_INTERVAL)
    if interval < 1:
        raise SweepError(f"--diagnostics-interval must be an integer >= 1, got {interval}")
    return interval


def _heatmap_axes(given: dict, keys: list):
    if given["heatmap"] is not None:
        parts = [p.strip() for p in given["heatmap"].split(",")]
        if len(parts) != 2 or not all(parts):
            raise SweepError(f"--heatmap needs X,Y (two swept options), got "
                             f"{given['heatmap']!r}")
        axes = tuple(field_name(p) for p in parts)
        for axis in axes:
            if axis not in keys:
                raise SweepError(f"--heatmap: {axis.replace('_', '-')} is not swept; the "
                                 f"sweep varies {', '.join(k.replace('_', '-') for k in keys)}")
        if axes[0] == axes[1]:
            raise SweepError("--heatmap needs two different options")
        return axes
    if len(keys) < 2:
        return None
    try:
        import matplotlib  # noqa: F401  (the default map is drawn only when it can be)
    except ImportError:
        return None
    return keys[0], keys[1]


def _print_result(result, out: str | None) -> None:
    print(result.table(limit=50))
    print()
    print(result.summary())
    if out is not None:
        heatmap = os.path.join(out, "heatmap.png")
        if os.path.exists(heatmap):
            print(f"heat map: {heatmap}")
    best = result.best()
    if best is not None:
        print(f"see a trial: backprop doctor {best['run_dir']}")


def run(args) -> int:
    """Run ``backprop sweep`` with parsed arguments; returns the exit status."""
    given = {k: v for k, v in vars(args).items() if k not in ("command", "run")}
    try:
        if given["report"] is not None:
            extra = [k for k in given if k in _CONFIG_FIELDS] + [
                k for k in ("out", "resume", "overwrite") if given.get(k)] + [
                k for k in ("grid", "sample") if given[k]]
            if extra:
                raise SweepError(f"--report prints a finished sweep; drop "
                                 f"{', '.join('--' + k.replace('_', '-') for k in extra)}")
            if not given["report"].strip():
                raise SweepError("--report needs the sweep's folder")
            _print_result(load(given["report"]), given["report"])
            return 0
        out = given["out"]
        if out is None or not out.strip():
            raise SweepError("--out DIR is required: the sweep's folder (or --report DIR to "
                             "print a finished sweep)")
        if given["metric"].replace("-", "_") not in METRICS:
            raise SweepError(f"--metric must be {' or '.join(METRICS)}, got "
                             f"{given['metric']!r}")
        metric = given["metric"].replace("-", "_")
        interval = _interval(given)
        if given["resume"]:
            extra = [k for k in given if k in _CONFIG_FIELDS] + [
                k for k in ("grid", "sample") if given[k]] + (
                ["samples"] if given["samples"] is not None else []) + (
                ["config"] if "config" in given else [])
            if extra:
                raise SweepError(f"--resume continues the sweep with its saved definition; "
                                 f"drop {', '.join('--' + k.replace('_', '-') for k in extra)}")
            if given["overwrite"]:
                raise SweepError("--resume and --overwrite contradict each other")
            from backprop.sweep.results import read_definition
            definition = read_definition(out)
            base, space = definition["base"], definition["space"]
            samples, seed = definition.get("samples"), definition.get("seed", 0)
            metric = definition.get("metric", metric)
            asha = bool(definition.get("asha")) or given["asha"]
        else:
            space = _space(given)
            if not space:
                raise SweepError("nothing to sweep: give at least one --grid KEY=SPEC or "
                                 "--sample KEY=DIST")
            base = _base(given)
            samples, seed, asha = given["samples"], base.get("seed", 0), given["asha"]
        trials = plan(base, space, samples=samples, seed=seed, max_trials=given["max_trials"])
        heatmap = _heatmap_axes(given, list(space))
        if given["overwrite"]:  # only once the new sweep is known to be valid
            for name in ("sweep.jsonl", "sweep.json", "heatmap.png"):
                path = os.path.join(out, name)
                if os.path.exists(path):
                    os.remove(path)
        where = given["address"] or "an embedded Ray"
        print(f"backprop sweep{' --resume' if given['resume'] else ''}: {len(trials)} trial{'' if len(trials) == 1 else 's'} "
              f"of {base.get('dataset', 'spiral')} on {where} -> {out}", flush=True)
        result = run_sweep(base, space, out=out, samples=samples, seed=seed, asha=asha,
                           metric=metric, address=given["address"], storage=given["storage"],
                           max_trials=given["max_trials"], resume=given["resume"],
                           max_retries=given["max_retries"],
                           progress=not given["no_progress"],
                           cpus_per_trial=given["cpus_per_trial"], heatmap=heatmap,
                           diagnostics_interval=interval)
    except (SweepError, ConfigError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot write the sweep: {e.strerror or e}", status=1)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return _fail(f"interrupted; run the trials not finished yet with: backprop sweep "
                     f"--resume --out {given.get('out')}", status=130)
    _print_result(result, out)
    return 1 if result.failed else 0
