"""Sweeps: many training runs over a search space, run by Ray Tune, read as data.

- :func:`run` expands a space (grids and random samples) into trials, each a real
  ``run_experiment`` with its own run folder, and runs them on an embedded Ray or a
  cluster; ``sweep.jsonl`` holds one record per finished trial;
- :func:`load` reads a sweep folder back as a :class:`SweepResult` (table, summary, heat map).

Ray is imported only by :mod:`backprop.sweep._ray`, and only when a sweep runs.

Example::

    from backprop.sweep import Space, run
    result = run({"dataset": "spiral", "layers": "2-16-16-3", "epochs": 20},
                 {"lr": Space.loguniform(1e-3, 1), "batch_size": [16, 64]},
                 samples=4, out="sweeps/spiral")
    print(result.table())
    print(result.summary())
"""
from backprop.sweep.results import SweepResult, load
from backprop.sweep.runner import run
from backprop.sweep.space import Space, SweepError

__all__ = ["run", "load", "Space", "SweepError", "SweepResult"]
