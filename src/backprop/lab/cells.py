"""The stability map: short runs over a grid of learning rates x one other setting.

The other axis (the map's rows) is one of :data:`AXES`: the batch size (the default), the
initialisation, the depth, or the momentum. Each cell is a
:class:`~backprop.lab.session.LabSession` of its own, trained in a worker process of a
:class:`~backprop.lab.pool.CellPool` (or a Ray pool); ``LabSession.stability_map`` starts
them and yields the cells as they finish. A :class:`CellCache` (one per server) keeps the
cells already trained, keyed by everything a cell's result depends on, so a map asked for
again comes back at once and only its missing cells run.
"""
from __future__ import annotations

import collections
import copy
import hashlib
import json
import threading

from backprop.lab.pool import CellPool, default_workers
from backprop.lab.rounding import finite_or_none, rounded
from backprop.lab.settings import INITS, MAX_HIDDEN_LAYERS, SETTINGS, LabError, shown, validate

__all__ = ["AXES", "CELL_CHUNK", "CellCache", "STABILITY_BATCHES", "STABILITY_LRS",
           "STABILITY_STEPS", "axis_changes", "map_axis", "run_cells", "stability_cell",
           "stability_grid", "stability_jobs"]

STABILITY_LRS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
STABILITY_BATCHES = (1, 4, 16, 64, 256)
STABILITY_STEPS = 200
CELL_CHUNK = 10             # a stability cell looks whether it was cancelled this often (steps)

AXES = ("batch_size", "init", "depth", "momentum")
"""What a map's rows can vary besides the learning rate (its columns):

- ``batch_size``: the batch size;
- ``init``: the initialisation, a categorical axis of the menu's choices (:data:`INITS`:
  the lab's initialisations have no numeric scale);
- ``depth``: the number of hidden layers (0 to 6), each as wide as the first hidden layer
  now (8, the default width, when there is none);
- ``momentum``: SGD+momentum's ``momentum``, or Adam's and AdamW's ``beta1`` (plain SGD and
  RMSprop have no momentum: a momentum map of them is refused).
"""
AXIS_DEFAULTS = {"init": list(INITS), "depth": [0, 1, 2, 3, 4], "momentum": [0.0, 0.5, 0.9, 0.99]}


def grid_values(values, name: str, setting: str, settings: dict) -> list:
    """A stability map's axis (``lrs``, ``batch_sizes``), each value checked as ``setting``.

    An error names the axis (the page must not flag its ``lr`` control for a bad ``lrs``).
    """
    return _checked(values, name, lambda value: validate({setting: value}, settings)[setting])


def _checked(values, name: str, check) -> list:
    if not isinstance(values, (list, tuple)) or not values:
        raise LabError(f"{name} must be a non-empty list, got {shown(values)}", name)
    checked = []
    for k, value in enumerate(values):
        try:
            checked.append(check(value))
        except LabError as e:
            raise LabError(f"{name}[{k}]: {e}", name) from None
    return checked


def _momentum_setting(settings: dict) -> str:
    """The setting the momentum axis varies for the optimiser in use."""
    optimizer = settings["optimizer"]
    if optimizer == "momentum":
        return "momentum"
    if optimizer in ("adam", "adamw"):
        return "beta1"
    raise LabError(f"a momentum map needs an optimiser with momentum (momentum, adam or "
                   f"adamw); {optimizer} has none", "axis")


def _depth_width(settings: dict) -> int:
    return settings["hidden"][0] if settings["hidden"] else SETTINGS["hidden"]["default"][0]


def axis_changes(axis: str, value, settings: dict) -> dict:
    """The settings a cell changes for ``value`` of ``axis`` (unchecked)."""
    if axis == "depth":
        return {"hidden": [_depth_width(settings)] * value}
    if axis == "momentum":
        return {_momentum_setting(settings): value}
    return {axis: value}


def _check_depth(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            and not (isinstance(value, float) and value.is_integer()):
        raise LabError(f"depth must be an integer, got {shown(value)}", "depth")
    if not 0 <= value <= MAX_HIDDEN_LAYERS:
        raise LabError(f"depth must be between 0 and {MAX_HIDDEN_LAYERS} hidden layers, got "
                       f"{shown(value)}", "depth")
    return int(value)


def map_axis(settings: dict, n_train: int, axis=None, values=None, batch_sizes=None) -> tuple:
    """The checked rows ``(axis, values)`` of a map (defaults filled).

    ``batch_sizes`` alone (the older form of the message) means the batch-size axis.
    """
    if axis is None:
        axis = "batch_size"
    if not isinstance(axis, str) or axis not in AXES:
        raise LabError(f"axis must be one of {', '.join(AXES)}, got {shown(axis)}", "axis")
    if batch_sizes is not None:
        if axis != "batch_size":
            raise LabError(f"batch_sizes are the rows of a batch-size map; a map over {axis} "
                           f"takes values", "batch_sizes")
        if values is not None:
            raise LabError("give batch_sizes or values, not both", "values")
        return axis, grid_values(batch_sizes, "batch_sizes", "batch_size", settings)
    if values is None:
        if axis == "batch_size":
            values = sorted({min(b, n_train) for b in STABILITY_BATCHES})
        else:
            values = AXIS_DEFAULTS[axis]
    if axis == "depth":
        values = _checked(values, "values", _check_depth)
    else:
        setting = _momentum_setting(settings) if axis == "momentum" else axis
        values = grid_values(values, "values", setting, settings)
    for value in values:        # the whole cell's settings are valid (depth's activations)
        validate(axis_changes(axis, value, settings), settings)
    return axis, values


def stability_grid(settings: dict, n_train: int, limits: dict, lrs=None, batch_sizes=None,
                   steps=None, max_cells=None, *, axis=None, values=None) -> tuple:
    """The checked grid ``(lrs, values, steps)`` of a stability map (defaults filled):
    ``values`` are the rows of ``axis`` (:data:`AXES`; batch sizes by default)."""
    if lrs is None:
        lrs = list(STABILITY_LRS)
    if steps is None:
        steps = STABILITY_STEPS
    lrs = grid_values(lrs, "lrs", "lr", settings)
    axis, values = map_axis(settings, n_train, axis, values, batch_sizes)
    if isinstance(steps, bool) or not isinstance(steps, int) \
            or not 1 <= steps <= limits["max_stability_steps"]:
        raise LabError(f"steps must be an integer between 1 and "
                       f"{limits['max_stability_steps']}, got {shown(steps)}", "steps")
    cells = len(lrs) * len(values)
    cap = limits["max_stability_cells"] if max_cells is None else max_cells
    if cells > cap:
        raise LabError(f"a stability map of {len(lrs)} x {len(values)} = {cells} cells "
                       f"is too big; at most {cap}")
    return lrs, values, steps


def stability_jobs(settings: dict, csv_data: dict | None, lrs, values, steps,
                   axis: str = "batch_size") -> list:
    """One job per cell: ``(i, j, settings of the cell, csv, steps, axis, value)``."""
    base = copy.deepcopy(settings)
    if base["dataset"] != "csv":
        csv_data = None
    elif csv_data is not None:
        csv_data = {k: csv_data[k] for k in ("X", "y", "task")}
    jobs: list = []
    for j, value in enumerate(values):
        row = validate(axis_changes(axis, value, base), base)
        jobs.extend((i, j, {**row, "lr": lr}, csv_data, steps, axis, value)
                    for i, lr in enumerate(lrs))
    return jobs


def stability_cell(job, should_stop=None) -> dict | None:
    """One cell of a stability map (runs in a worker process).

    Trains in chunks of :data:`CELL_CHUNK` steps and returns None as soon as
    ``should_stop()`` says so (the map was cancelled or the page left).
    """
    from backprop.lab.session import LabSession  # the session starts maps of these cells

    i, j, settings, csv_data, steps, axis, value = job
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
            "axis": axis, "value": value,
            "i": i, "j": j, "final_loss": None if final is None else rounded(final, 4),
            "test_loss": None if test is None else rounded(test, 4), "diverged": diverged,
            "steps": done}


# -- the cells already trained --------------------------------------------------------------------
_PLACE = ("i", "j", "axis", "value")          # where a cell sits in its map, not what it found
_NOT_TRAINING = ("speed",)                    # settings a cell's training never reads


def _csv_digest(csv_data: dict | None) -> str | None:
    if csv_data is None:
        return None
    h = hashlib.sha256(str(csv_data["task"]).encode())
    for name in ("X", "y"):
        a = csv_data[name]
        h.update(f"|{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cell_key(job) -> str:
    """Everything a cell's result depends on: its settings (the seed, the data set and its
    noise among them), the CSV's content and the steps, as one string."""
    _, _, settings, csv_data, steps, _, _ = job
    trained = {k: v for k, v in settings.items() if k not in _NOT_TRAINING}
    return json.dumps([trained, _csv_digest(csv_data), steps], sort_keys=True)


class CellCache:
    """The results of cells already trained, at most ``max_cells`` (least recently used
    first out); safe to share between the threads of a server.

    Example::

        cache = CellCache(1000)
        cells = run_cells(jobs, pool, cache=cache)     # the second time: no job runs
    """

    def __init__(self, max_cells: int = 4096):
        if isinstance(max_cells, bool) or not isinstance(max_cells, int) or max_cells < 0:
            raise ValueError(f"CellCache: max_cells must be an int >= 0, got {max_cells!r}")
        self.max_cells = max_cells
        self._cells: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._cells)

    def get(self, job) -> dict | None:
        """The cell ``job`` would give, placed as ``job`` says; None if not known."""
        key = cell_key(job)
        with self._lock:
            found = self._cells.get(key)
            if found is None:
                return None
            self._cells.move_to_end(key)
        i, j, _, _, _, axis, value = job
        return {**found, "i": i, "j": j, "axis": axis, "value": value}

    def put(self, job, cell: dict) -> None:
        """Keep the finished ``cell`` of ``job`` (never a cancelled one: it has no result)."""
        if self.max_cells == 0:
            return
        key = cell_key(job)
        found = {k: v for k, v in cell.items() if k not in _PLACE}
        with self._lock:
            self._cells[key] = found
            self._cells.move_to_end(key)
            while len(self._cells) > self.max_cells:
                self._cells.popitem(last=False)


def run_cells(jobs: list, pool: CellPool | None, workers: int | None = None, cancel=None,
              cache: CellCache | None = None):
    """The cells of ``jobs`` as they finish, on ``pool`` (or a pool of its own).

    With ``cache``, the cells it knows come first, at once, and only the others run (each
    kept in the cache as it finishes).
    """
    missing = jobs
    if cache is not None:
        missing = []
        for job in jobs:
            cell = cache.get(job)
            if cell is None:
                missing.append(job)
            else:
                yield cell
        if not missing:
            return
    by_place = {(job[0], job[1]): job for job in missing}
    runner = CellPool(workers or min(default_workers(), len(missing))) if pool is None else pool
    try:
        for cell in runner.submit(stability_cell, missing, cancel=cancel):
            if cache is not None:
                cache.put(by_place[cell["i"], cell["j"]], cell)
            yield cell
    finally:
        if pool is None:
            runner.close()
