"""One trial of a sweep: a real ``run_experiment`` into its own run folder, and its record.

No Ray here: the Ray executor (:mod:`backprop.sweep._ray`) calls :func:`run_trial` inside
a worker; tests and a plain loop can call it directly.

Example::

    record = run_trial("t000-lr=0.1", {"lr": 0.1}, {"epochs": 5}, "sweeps/a/trials")
    record["final"]["test_loss"]
"""
from __future__ import annotations

import dataclasses
import os
import time
import warnings

from backprop.diagnostics import Monitor, Readings, diagnose
from backprop.diagnostics.monitor import DEFAULT_INTERVAL
from backprop.train import Callback, History
from backprop.train.experiment import ConfigError, RunConfig, load_run_config, run_experiment
from backprop.train.loop import TrainingDiverged

__all__ = ["run_trial", "trial_config", "record_from_folder", "doctor_findings",
           "epoch_metrics"]


def trial_config(base: dict, point: dict, run_dir: str) -> RunConfig:
    """The RunConfig of a trial: ``base`` with the trial's swept values, into ``run_dir``."""
    return RunConfig.from_dict({**base, **point, "out": run_dir})


def epoch_metrics(record: dict) -> dict:
    """An epoch's history record in the sweep's names (train_loss, test_loss, accuracy)."""
    metrics = {"epoch": record.get("epoch"), "train_loss": record.get("loss"),
               "test_loss": record.get("val_loss")}
    if "val_accuracy" in record or "accuracy" in record:
        metrics["accuracy"] = record.get("val_accuracy", record.get("accuracy"))
    return metrics


class _Reporter(Callback):
    """Hands each epoch's metrics to ``report`` (Tune's, for ASHA and the progress)."""

    def __init__(self, report):
        self.report = report

    @property
    def state_key(self) -> str:
        return "SweepReporter"

    def on_epoch_end(self, trainer, record: dict) -> None:
        metrics = epoch_metrics(record)
        if metrics["test_loss"] is None:  # no test set: rank by the training loss
            metrics["test_loss"] = metrics["train_loss"]
        self.report(metrics)


def doctor_findings(run_dir: str) -> list:
    """The names of the doctor's findings on a run folder ([] without diagnostics)."""
    path = os.path.join(run_dir, "diagnostics.jsonl")
    if not os.path.exists(path):
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            readings = Readings.from_jsonl(path)
            history = _history(run_dir)
            return list(diagnose(readings, history).names())
    except (OSError, ValueError, TypeError, KeyError):
        return []


def _history(run_dir: str):
    for name, load in (("history.json", History.from_json),
                       ("metrics.jsonl", History.from_jsonl)):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            try:
                return load(path)
            except (OSError, ValueError, TypeError, KeyError):
                continue
    return None


def _best(history, monitor: str) -> dict | None:
    if history is None or not history.epochs:
        return None
    if not any(monitor in r for r in history.epochs):
        monitor = "loss"
    record = history.best_epoch(monitor, "min")
    return None if record is None else epoch_metrics(record)


def record_from_folder(trial_id: str, point: dict, run_dir: str, *,
                       seconds: float | None = None,
                       diverged: bool = False, reason: str | None = None,
                       stopped_early: bool = False, final: dict | None = None) -> dict:
    """A trial's sweep record from what its run folder holds (history, diagnostics)."""
    history = _history(run_dir)
    epochs = len(history.epochs) if history is not None else 0
    if seconds is None:  # the training time of the epochs the folder records
        seconds = sum(r.get("time", 0.0) for r in history.epochs) if history is not None else 0
    if final is None:
        last = history.epochs[-1] if history is not None and history.epochs else {}
        final = {k: v for k, v in epoch_metrics(last).items() if k != "epoch"} if last else \
            {"train_loss": None, "test_loss": None, "accuracy": None}
    return {"trial_id": trial_id, "config": dict(point), "final": final,
            "best": _best(history, "val_loss"), "diverged": bool(diverged), "reason": reason,
            "stopped_early": bool(stopped_early), "findings": doctor_findings(run_dir),
            "epochs": epochs, "seconds": round(float(seconds), 3), "run_dir": run_dir}


def _can_resume(config: RunConfig) -> bool:
    """True when the folder holds this trial's own run with a checkpoint to continue."""
    out = config.out_dir
    if not os.path.exists(os.path.join(out, "last.safetensors")):
        return False
    try:
        saved = load_run_config(os.path.join(out, "config.json"))
    except (ConfigError, OSError):
        return False
    mine = config if config.layers is not None else dataclasses.replace(config,
                                                                        layers=saved.layers)
    return saved.to_dict() == mine.to_dict()


def run_trial(trial_id: str, point: dict, base: dict, trials_dir: str, *, report=None,
              diagnostics_interval: int = DEFAULT_INTERVAL) -> dict:
    """Run one trial (continuing its folder's checkpoint if it has one) and return its record.

    Args:
        trial_id: the trial's folder name under ``trials_dir``.
        point: the swept values of this trial.
        base: the other RunConfig fields (a dict).
        trials_dir: the folder of all trials (on storage every node sees).
        report: called with each epoch's metrics (``train_loss``, ``test_loss``, ...).
        diagnostics_interval: steps between the Monitor's records in diagnostics.jsonl
            (None: no diagnostics.jsonl, and no doctor's findings).

    A divergence ends the trial at once and is recorded (``diverged``, ``reason``); other
    errors propagate (the executor retries the trial).
    """
    run_dir = os.path.join(os.fspath(trials_dir), trial_id)
    config = trial_config(base, point, run_dir)
    resume = _can_resume(config)
    path = os.path.join(run_dir, "diagnostics.jsonl")
    # Callbacks, and factories of callbacks that need the model and optimizer (Monitor).
    callbacks: list = [] if diagnostics_interval is None else [
        lambda model, optimizer: Monitor(model, interval=diagnostics_interval, path=path)]
    if report is not None:
        callbacks.append(_Reporter(report))
    started = time.perf_counter()
    try:
        result = run_experiment(config, resume=resume, overwrite=not resume, progress=False,
                                callbacks=callbacks)
    except TrainingDiverged as e:
        return record_from_folder(trial_id, point, run_dir,
                                  seconds=time.perf_counter() - started, diverged=True,
                                  reason=str(e))
    train, test = result["train"] or {}, result["test"]
    final = {"train_loss": train.get("loss"), "test_loss": (test or {}).get("loss"),
             "accuracy": (test or train).get("accuracy")}
    if "accuracy" in train:
        final["train_accuracy"] = train["accuracy"]
    return record_from_folder(trial_id, point, run_dir, seconds=time.perf_counter() - started,
                              final=final)
