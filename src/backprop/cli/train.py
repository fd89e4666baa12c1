"""``backprop train``: train an MLP on a toy set or the digits and write a run folder.

    backprop train --dataset spiral --layers 2-16-16-3 --activation relu --optimizer adam \\
        --lr 0.01 --batch-size 32 --epochs 200 --schedule warmup-cosine --clip 1.0 \\
        --seed 0 --out runs/spiral
    backprop train --config runs/spiral/config.json      # the same run again
    backprop train --resume --out runs/spiral             # continue it from its last checkpoint

Parsing and printing only: :func:`backprop.train.experiment.run_experiment` does the work.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from functools import partial

from backprop.cli._common import fail
from backprop.diagnostics import Monitor
from backprop.diagnostics.monitor import DEFAULT_INTERVAL
from backprop.train import CheckpointError
from backprop.train.experiment import (
    ACTIVATIONS,
    DATASETS,
    MAX_ACTIVATIONS,
    MAX_EPOCHS,
    MAX_LAYERS,
    MAX_LR,
    MAX_NOISE,
    MAX_PARAMETERS,
    MAX_SAMPLES,
    MAX_WIDTH,
    OPTIMIZERS,
    SCHEDULES,
    ConfigError,
    RunConfig,
    TrainingDiverged,
    load_run_config,
    run_experiment,
)

__all__ = ["add_parser", "run", "add_config_options", "add_diagnostics_options"]

# Flags that map onto RunConfig fields (dest name == field name).
_CONFIG_FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``train`` with its options."""
    p = subparsers.add_parser(
        "train", help="train an MLP on a toy dataset or the 8x8 digits",
        description=f"Train a multi-layer perceptron and write a run folder: config.json, "
                    f"metrics.jsonl, history.json, diagnostics.jsonl (for backprop doctor), "
                    f"last/best checkpoints and loss_curve.png (with matplotlib). Sizes are "
                    f"checked before anything is allocated: at most {MAX_LAYERS:,} layers of "
                    f"{MAX_WIDTH:,} units and {MAX_PARAMETERS:,} parameters, and a batch "
                    f"times the sum of the widths at most {MAX_ACTIVATIONS:,} values.",
        argument_default=argparse.SUPPRESS)  # absent flags leave the config's value alone
    add_config_options(p)
    run_group = p.add_argument_group("run")
    run_group.add_argument("--out", metavar="DIR", help="the run folder (default runs/DATASET)")
    run_group.add_argument("--config", metavar="FILE",
                           help="start from a config.json (flags given beside override it)")
    run_group.add_argument("--resume", action="store_true",
                           help="continue the run in --out from its last checkpoint")
    run_group.add_argument("--overwrite", action="store_true",
                           help="replace a different run already in --out")
    run_group.add_argument("--no-progress", dest="no_progress", action="store_true",
                           help="no progress bar")
    add_diagnostics_options(run_group)
    p.set_defaults(run=run)
    return p


def add_config_options(p) -> None:
    """Add the options that set RunConfig fields (groups data, model, training) to ``p``.

    ``backprop train`` and ``backprop sweep`` share them; each option's dest is its field's
    name, and an absent option is absent from the parsed namespace (the parser is built
    with ``argument_default=argparse.SUPPRESS``).
    """
    data = p.add_argument_group("data")
    data.add_argument("--dataset", metavar="NAME",
                      help=f"one of {', '.join(DATASETS)} (default spiral); regression sets "
                           f"(sine, plane, bumps) train one output with MSE")
    data.add_argument("--noise", type=float, metavar="X",
                      help=f"noise of a toy set, 0 to {MAX_NOISE:g} (default: its own)")
    data.add_argument("--n-samples", dest="n_samples", type=int, metavar="N",
                      help=f"samples in a toy set, 2 to {MAX_SAMPLES:,} (default: its own)")
    data.add_argument("--test-fraction", dest="test_fraction", type=float, metavar="F",
                      help="share held out for testing, in [0, 1) (default 0.2; 0 for "
                           "none)")
    model = p.add_argument_group("model")
    model.add_argument("--layers", metavar="SIZES",
                       help=f"layer widths from input to output, e.g. 2-16-16-3 (default: "
                            f"inputs-32-32-outputs; 64-128-64-10 for digits); at most "
                            f"{MAX_LAYERS:,} widths, each at most {MAX_WIDTH:,}, and "
                            f"{MAX_PARAMETERS:,} parameters")
    model.add_argument("--activation", metavar="NAME",
                       help=f"one of {', '.join(ACTIVATIONS)} (default relu)")
    training = p.add_argument_group("training")
    training.add_argument("--optimizer", metavar="NAME",
                          help=f"one of {', '.join(OPTIMIZERS)} (default adam)")
    training.add_argument("--lr", type=float,
                          help=f"learning rate, above 0 and at most {MAX_LR:,.0f} "
                               f"(default 0.01)")
    training.add_argument("--batch-size", dest="batch_size", type=int, metavar="N",
                          help=f"samples per step, 1 to {MAX_SAMPLES:,} (default 32)")
    training.add_argument("--epochs", type=int, metavar="N",
                          help=f"passes over the data, 1 to {MAX_EPOCHS:,} (default 100)")
    training.add_argument("--schedule", metavar="NAME",
                          help=f"one of {', '.join(SCHEDULES)} (default none)")
    training.add_argument("--warmup-steps", dest="warmup_steps", type=int, metavar="N",
                          help="warmup of warmup-cosine (default 5%% of the steps)")
    training.add_argument("--clip", type=float, metavar="NORM",
                          help="clip the gradient norm to this (default: no clipping)")
    training.add_argument("--weight-decay", dest="weight_decay", type=float, metavar="WD",
                          help="weight decay, 0 to 1 (default 0)")
    training.add_argument("--momentum", type=float, metavar="M",
                          help="momentum of sgd / rmsprop, in [0, 1) (default 0)")
    training.add_argument("--seed", type=int, metavar="N",
                          help="seed of data, weights and order, 0 to 2^63-1 (default 0)")


def add_diagnostics_options(group) -> None:
    """Add ``--diagnostics-interval`` and ``--no-diagnostics`` to an argument group."""
    group.add_argument("--diagnostics-interval", dest="diagnostics_interval", type=int,
                       metavar="N", help="record gradients and activations into "
                       "diagnostics.jsonl every N steps (default 25)")
    group.add_argument("--no-diagnostics", dest="no_diagnostics", action="store_true",
                       help="do not write diagnostics.jsonl")


_fail = partial(fail, "train")
"""Print a one-line ``backprop train: error: ...`` and return the exit status (2 by default)."""


def _config_from_args(given: dict) -> RunConfig:
    if "out" in given and not given["out"].strip():
        # An empty --out would quietly become runs/DATASET (or, with --resume, this folder).
        raise ConfigError(f"--out needs a folder name, got {given['out']!r}; leave it out for "
                          f"runs/DATASET")
    if given.get("resume"):
        if "out" not in given:
            raise ConfigError("--resume needs --out, the folder of the run to continue")
        extra = sorted(set(given) & _CONFIG_FIELDS - {"out"}) + (
            ["config"] if "config" in given else [])
        if extra:
            flags = ", ".join("--" + name.replace("_", "-") for name in extra)
            raise ConfigError(f"--resume continues the run with its saved configuration; "
                              f"drop {flags}")
        path = os.path.join(given["out"], "config.json")
        if not os.path.exists(path):
            raise ConfigError(f"no run to resume in {given['out']}: config.json is missing")
        return dataclasses.replace(load_run_config(path), out=given["out"])
    base = load_run_config(given["config"]) if "config" in given else RunConfig()
    overrides = {k: v for k, v in given.items() if k in _CONFIG_FIELDS}
    return dataclasses.replace(base, **overrides)


def _describe(config: RunConfig) -> str:
    layers = config.layers or "default layers"
    schedule = "" if config.schedule == "none" else f", {config.schedule}"
    clip = "" if config.clip is None else f", clip {config.clip:g}"
    return (f"{config.dataset}: {layers} {config.activation}, {config.optimizer} lr "
            f"{config.lr:g}{schedule}{clip}, batch {config.batch_size}, {config.epochs} epochs")


def _metrics_line(label: str, metrics: dict | None) -> str | None:
    if metrics is None:
        return None
    line = f"  {label:<6} loss {metrics['loss']:.4f}"
    if "accuracy" in metrics:
        line += f"  accuracy {metrics['accuracy']:.2%}"
    return line


def _print_summary(result: dict, resumed: bool) -> None:
    verb = "resumed and finished" if resumed else "finished"
    print(f"{verb} {result['epochs']} epochs ({result['steps']} steps) in "
          f"{result['time']:.1f} s of training")
    if result["stop_reason"]:
        print(f"  stopped early: {result['stop_reason']}")
    for line in (_metrics_line("train", result["train"]), _metrics_line("test", result["test"])):
        if line:
            print(line)
    best = result["best"]
    if best is not None:
        label = "test" if result["monitor"] == "val_loss" else "train"
        acc_key = "val_accuracy" if label == "test" else "accuracy"
        acc = f", {label} accuracy {best[acc_key]:.2%}" if acc_key in best else ""
        print(f"  best   epoch {best['epoch']}: {label} loss {best[result['monitor']]:.4f}{acc}"
              f" (best.safetensors)")
    print(f"  files  {result['out']}{os.sep}: {', '.join(result['files'])}")
    for note in result["notes"]:
        print(f"  note   {note}")


def _diagnostics(given: dict, out: str) -> list:
    """The Monitor that writes diagnostics.jsonl, as a callback factory (it needs the model)."""
    if given.get("no_diagnostics"):
        if "diagnostics_interval" in given:
            raise ConfigError("--diagnostics-interval and --no-diagnostics contradict each other")
        return []
    interval = given.get("diagnostics_interval", DEFAULT_INTERVAL)
    if interval < 1:
        raise ConfigError(f"--diagnostics-interval must be an integer >= 1, got {interval}")
    path = os.path.join(out, "diagnostics.jsonl")
    return [lambda model, optimizer: Monitor(model, interval=interval, path=path)]


def run(args) -> int:
    """Run ``backprop train`` with parsed arguments; returns the exit status."""
    given = {k: v for k, v in vars(args).items() if k not in ("command", "run")}
    resume = bool(given.get("resume"))
    config = callbacks = None
    try:
        config = _config_from_args(given)
        config.check()
        callbacks = _diagnostics(given, config.out_dir)
        print(f"backprop train {'--resume ' if resume else ''}{_describe(config)} -> "
              f"{config.out_dir}", flush=True)
        result = run_experiment(config, resume=resume, overwrite=bool(given.get("overwrite")),
                                progress=not given.get("no_progress"), callbacks=callbacks)
    except (ConfigError, CheckpointError) as e:
        return _fail(str(e))
    except OSError as e:  # the run folder became unwritable mid-run (disk full, removed)
        where = config.out_dir if config is not None else "the run folder"
        return _fail(f"cannot write the run in {where}: {e.strerror or e}", status=1)
    except TrainingDiverged as e:
        status = _fail(f"training diverged: {e}", status=1)
        if callbacks and config is not None \
                and os.path.exists(os.path.join(config.out_dir, "diagnostics.jsonl")):
            # on stdout: stderr keeps its one-line error
            print(f"  see why: backprop doctor {config.out_dir}")
        return status
    except KeyboardInterrupt:
        print(file=sys.stderr)
        if config is None:  # before anything was written
            return _fail("interrupted", status=130)
        return _fail(f"interrupted; continue from the last epoch's checkpoint with: "
                     f"backprop train --resume --out {config.out_dir}", status=130)
    _print_summary(result, resume)
    return 0
