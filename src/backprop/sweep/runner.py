"""``backprop.sweep.run``: expand a space into trials, run those not yet logged, report."""
from __future__ import annotations

import os

from backprop.sweep.results import (
    LOG_FILE,
    METRICS,
    SweepLog,
    SweepResult,
    read_definition,
    write_definition,
)
from backprop.sweep.space import DEFAULT_MAX_TRIALS, SweepError, expand, normalize, trial_id
from backprop.sweep.trial import trial_config
from backprop.train.experiment import ConfigError, RunConfig

__all__ = ["run", "plan"]


def _base_dict(base) -> dict:
    if base is None:
        base = {}
    if isinstance(base, RunConfig):
        base = base.to_dict()
    if not isinstance(base, dict):
        raise SweepError(f"base must be a RunConfig or a dict of its fields, got "
                         f"{type(base).__name__}")
    try:
        config = RunConfig.from_dict({k: v for k, v in base.items() if k != "out"})
    except (ConfigError, TypeError) as e:
        raise SweepError(f"base configuration: {e}") from None
    data = config.to_dict()
    data.pop("out")
    return data


def plan(base, space, *, samples=None, seed=0, max_trials=DEFAULT_MAX_TRIALS) -> list:
    """The sweep's trials as ``[(trial_id, point), ...]``, each checked as a RunConfig."""
    base = _base_dict(base)
    points = expand(space, samples=samples, seed=seed, max_trials=max_trials)
    trials = [(trial_id(i, p, len(points)), p) for i, p in enumerate(points)]
    for tid, point in trials:
        try:
            trial_config(base, point, tid).check()
        except ConfigError as e:
            raise SweepError(f"trial {tid}: {e}") from None
    return trials


def run(base, space, *, out, samples=None, seed=0, asha=False, metric="test_loss",
        address=None, storage=None, max_trials=DEFAULT_MAX_TRIALS, resume=False,
        max_retries=3, progress=True, cpus_per_trial=1, heatmap=None,
        diagnostics_interval=25) -> SweepResult:
    """Run a sweep: every trial a real training run, on an embedded Ray or a cluster.

    Args:
        base: the settings every trial shares: a RunConfig or a dict of its fields.
        space: field -> list of values (a grid axis) or a :class:`Space` sampler.
        out: the sweep's folder: sweep.json, sweep.jsonl, heatmap.png (and trials/).
        samples: rounds of the grid, each drawing the random axes afresh (default 1).
        seed: seed of the random axes (each trial's training seed is the ``seed`` field).
        asha: stop hopeless trials early (Tune's ASHA on ``metric`` per epoch).
        metric: ``"test_loss"`` or ``"train_loss"``, what ranks the trials.
        address: None for an embedded local Ray; ``"auto"``, ``"HOST:PORT"`` or
            ``"ray://HOST:PORT"`` for an existing cluster.
        storage: the folder for trial run folders that every node sees (default ``out``).
        max_trials: refuse larger sweeps (SweepError).
        resume: run only trials not yet in sweep.jsonl (the space may be left out: None).
        max_retries: retries of a trial whose worker died (from its last checkpoint).
        progress: a bar over trials on a terminal and a line per finished trial, on stderr.
        cpus_per_trial: CPUs each trial reserves.
        heatmap: ``(x, y)`` to draw ``out/heatmap.png`` over those swept fields.

    Returns:
        a :class:`SweepResult` of every logged trial.

    Example::

        from backprop.sweep import run, Space
        result = run({"dataset": "spiral", "epochs": 20},
                     {"lr": [1e-3, 1e-2, 1e-1], "batch_size": [16, 64]}, out="sweeps/s")
        print(result.table())
    """
    if metric not in METRICS:
        raise SweepError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise SweepError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    if isinstance(cpus_per_trial, bool) or not isinstance(cpus_per_trial, (int, float)) \
            or not cpus_per_trial > 0:
        raise SweepError(f"cpus_per_trial must be a number > 0, got {cpus_per_trial!r}")
    if address is None and cpus_per_trial > len(os.sched_getaffinity(0)):
        # The embedded Ray has this machine's cores only: a trial asking for more would
        # wait for them for ever.
        raise SweepError(f"cpus_per_trial={cpus_per_trial} is more than the "
                         f"{len(os.sched_getaffinity(0))} CPUs of this machine")
    out = os.fspath(out)
    if not out.strip():
        raise SweepError("out needs a folder name")
    defined = os.path.exists(os.path.join(out, "sweep.json"))
    if resume:
        if not defined:
            raise SweepError(f"nothing to resume in {out}: sweep.json is missing")
        saved = read_definition(out)
        if space is None:
            base, space = saved["base"], saved["space"]
            samples, seed, metric = saved.get("samples"), saved.get("seed", 0), \
                saved.get("metric", metric)
        definition = {"base": _base_dict(base), "space": normalize(space), "samples": samples,
                      "seed": seed, "metric": metric}
        mine = {**definition, "space": normalize(definition["space"])}
        if {k: saved.get(k) for k in mine if k != "metric"} != \
                {k: v for k, v in mine.items() if k != "metric"}:
            raise SweepError(f"{out} holds a different sweep; resume it without changing "
                             f"its options, or choose another --out")
    else:
        definition = {"base": _base_dict(base), "space": normalize(space), "samples": samples,
                      "seed": seed, "metric": metric}
    trials = plan(definition["base"], definition["space"], samples=samples, seed=seed,
                  max_trials=max_trials)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise SweepError(f"cannot create the sweep folder {out}: {e.strerror or e}") from None
    log_path = os.path.join(out, LOG_FILE)
    if not resume and defined and os.path.exists(log_path) and os.path.getsize(log_path):
        raise SweepError(f"{out} already holds a sweep; continue it with --resume, or choose "
                         f"another --out")
    if not resume:
        if os.path.exists(log_path):
            os.remove(log_path)
        write_definition(out, {**definition, "asha": bool(asha)})
    log = SweepLog(log_path)
    pending = [(tid, p) for tid, p in trials if tid not in log]
    root = os.path.abspath(storage or out)
    failed = {}
    if pending:
        from backprop.sweep import _ray  # the one module that imports Ray

        failed = _ray.execute(pending, definition["base"], os.path.join(root, "trials"), log,
                              total=len(trials), asha=asha, metric=metric, address=address,
                              tune_dir=os.path.join(root, ".tune"), max_retries=max_retries,
                              progress=progress, cpus_per_trial=cpus_per_trial,
                              interval=diagnostics_interval)
    order = {tid: i for i, (tid, _) in enumerate(trials)}
    records = sorted((r for r in log.records if r["trial_id"] in order),
                     key=lambda r: order[r["trial_id"]])
    result = SweepResult(records, {**definition, "asha": bool(asha)}, failed)
    if heatmap is not None:
        x, y = heatmap
        result.heatmap(x, y, os.path.join(out, "heatmap.png"))
    return result


