"""The stability map: short runs over a grid of learning rates x batch sizes.

Each cell is a :class:`~backprop.lab.session.LabSession` of its own, trained in a worker
process of a :class:`~backprop.lab.pool.CellPool` (or a Ray pool); ``LabSession.
stability_map`` starts them and yields the cells as they finish.
"""
from __future__ import annotations

import copy

from backprop.lab.pool import CellPool, default_workers
from backprop.lab.rounding import finite_or_none, rounded
from backprop.lab.settings import LabError, shown, validate

__all__ = ["CELL_CHUNK", "STABILITY_BATCHES", "STABILITY_LRS", "STABILITY_STEPS",
           "run_cells", "stability_cell", "stability_grid", "stability_jobs"]

STABILITY_LRS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
STABILITY_BATCHES = (1, 4, 16, 64, 256)
STABILITY_STEPS = 200
CELL_CHUNK = 10             # a stability cell looks whether it was cancelled this often (steps)


def grid_values(values, name: str, setting: str, settings: dict) -> list:
    """A stability map's axis (``lrs``, ``batch_sizes``), each value checked as ``setting``.

    An error names the axis (the page must not flag its ``lr`` control for a bad ``lrs``).
    """
    if not isinstance(values, (list, tuple)) or not values:
        raise LabError(f"{name} must be a non-empty list, got {shown(values)}", name)
    checked = []
    for k, value in enumerate(values):
        try:
            checked.append(validate({setting: value}, settings)[setting])
        except LabError as e:
            raise LabError(f"{name}[{k}]: {e}", name) from None
    return checked


def stability_grid(settings: dict, n_train: int, limits: dict, lrs=None, batch_sizes=None,
                   steps=None, max_cells=None) -> tuple:
    """The checked grid ``(lrs, batch_sizes, steps)`` of a stability map (defaults filled)."""
    if lrs is None:
        lrs = list(STABILITY_LRS)
    if batch_sizes is None:
        batch_sizes = sorted({min(b, n_train) for b in STABILITY_BATCHES})
    if steps is None:
        steps = STABILITY_STEPS
    lrs = grid_values(lrs, "lrs", "lr", settings)
    batch_sizes = grid_values(batch_sizes, "batch_sizes", "batch_size", settings)
    if isinstance(steps, bool) or not isinstance(steps, int) \
            or not 1 <= steps <= limits["max_stability_steps"]:
        raise LabError(f"steps must be an integer between 1 and "
                       f"{limits['max_stability_steps']}, got {shown(steps)}", "steps")
    cells = len(lrs) * len(batch_sizes)
    cap = limits["max_stability_cells"] if max_cells is None else max_cells
    if cells > cap:
        raise LabError(f"a stability map of {len(lrs)} x {len(batch_sizes)} = {cells} cells "
                       f"is too big; at most {cap}")
    return lrs, batch_sizes, steps


def stability_jobs(settings: dict, csv_data: dict | None, lrs, batch_sizes, steps) -> list:
    """One job per cell: ``(i, j, settings with that lr and batch size, csv, steps)``."""
    base = copy.deepcopy(settings)
    if base["dataset"] != "csv":
        csv_data = None
    elif csv_data is not None:
        csv_data = {k: csv_data[k] for k in ("X", "y", "task")}
    return [(i, j, {**base, "lr": lr, "batch_size": bs}, csv_data, steps)
            for j, bs in enumerate(batch_sizes) for i, lr in enumerate(lrs)]


def stability_cell(job, should_stop=None) -> dict | None:
    """One cell of a stability map (runs in a worker process).

    Trains in chunks of :data:`CELL_CHUNK` steps and returns None as soon as
    ``should_stop()`` says so (the map was cancelled or the page left).
    """
    from backprop.lab.session import LabSession  # the session starts maps of these cells

    i, j, settings, csv_data, steps = job
    session = LabSession(settings, diagnostics=False, _csv=csv_data)
    done = 0
    while done < steps and session.diverged is None:
        if should_stop is not None and should_stop():
            return None
        done += session.step(min(CELL_CHUNK, steps - done))
    final = test = None
    if session.diverged is None:
        m = session.metrics()
        final, test = finite_or_none(m["train_loss"]), finite_or_none(m["test_loss"])
    diverged = session.diverged is not None or final is None
    return {"type": "stability_cell", "lr": settings["lr"], "batch_size": settings["batch_size"],
            "i": i, "j": j, "final_loss": None if final is None else rounded(final, 4),
            "test_loss": None if test is None else rounded(test, 4), "diverged": diverged,
            "steps": done}


def run_cells(jobs: list, pool: CellPool | None, workers: int | None = None, cancel=None):
    """The cells of ``jobs`` as they finish, on ``pool`` (or a pool of its own)."""
    runner = CellPool(workers or min(default_workers(), len(jobs))) if pool is None else pool
    try:
        yield from runner.submit(stability_cell, jobs, cancel=cancel)
    finally:
        if pool is None:
            runner.close()
