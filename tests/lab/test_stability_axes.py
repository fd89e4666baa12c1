"""The stability map's other axes (init, depth, momentum) and its cache of cells."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from backprop.lab import cells
from backprop.lab.cells import CellCache, cell_key, run_cells
from backprop.lab.pool import CellPool
from backprop.lab.session import LabSession
from backprop.lab.settings import INITS, SETTINGS, LabError, defaults
from tests.lab.bounded import collect


class CountingPool:
    """Runs cells in this process, one at a time as they are asked for; counts the jobs."""

    max_cells = None

    def __init__(self):
        self.submitted: list = []

    def submit(self, function, jobs, cancel=None):
        self.submitted.append(list(jobs))
        return (function(job, None) for job in jobs)


def session(**settings):
    return LabSession({"dataset": "moons", "n_samples": 60, **settings}, diagnostics=False)


# -- the axes -------------------------------------------------------------------------------------
def test_each_axis_has_checked_defaults():
    s = session(optimizer="momentum")
    assert s.stability_grid(axis="init")[1] == list(INITS)      # the menu: a categorical axis
    assert s.stability_grid(axis="depth")[1] == [0, 1, 2, 3, 4]
    assert s.stability_grid(axis="momentum")[1] == [0.0, 0.5, 0.9, 0.99]
    assert s.stability_grid()[1] == s.stability_grid(axis="batch_size")[1] == [1, 4, 16, 42]


@pytest.mark.parametrize("settings, kw, pattern, field", [
    ({}, {"axis": "width"}, "axis must be one of batch_size, init, depth, momentum", "axis"),
    ({}, {"axis": "init", "values": ["he", "huge"]},
     r"values\[1\]: init must be one of default, xavier, he, too_small, too_large, got 'huge'",
     "values"),
    ({}, {"axis": "depth", "values": [2, 7]},
     r"values\[1\]: depth must be between 0 and 6 hidden layers, got 7", "values"),
    ({}, {"axis": "depth", "values": [1.5]}, r"values\[0\]: depth must be an integer", "values"),
    ({}, {"axis": "depth", "values": [10 ** 400]}, "an integer of 401 digits", "values"),
    ({"optimizer": "adam"}, {"axis": "momentum", "values": [0.5, 1.0]},
     r"values\[1\]: beta1 must be between 0 and 0.999, got 1", "values"),
    ({"optimizer": "sgd"}, {"axis": "momentum"},
     "a momentum map needs an optimiser with momentum .*; sgd has none", "axis"),
    ({"optimizer": "rmsprop"}, {"axis": "momentum", "values": [0.5]}, "rmsprop has none", "axis"),
    ({}, {"axis": "init", "batch_sizes": [4]}, "batch_sizes are the rows of a batch-size map",
     "batch_sizes"),
    ({}, {"batch_sizes": [4], "values": [8]}, "give batch_sizes or values, not both", "values"),
    ({}, {"axis": "batch_size", "values": [0]}, r"values\[0\]: batch_size must be between",
     "values"),
    ({}, {"axis": "init", "lrs": [0.1] * 13}, "13 x 5 = 65 cells is too big; at most 64", None),
])
def test_bad_axes_and_values_are_refused_naming_the_field(settings, kw, pattern, field):
    with pytest.raises(LabError, match=pattern) as e:
        session(**settings).stability_grid(**kw)
    assert e.value.field == field


def test_each_cell_changes_only_its_axis_and_the_learning_rate():
    base = session(hidden=[5, 3], activations=["relu", "tanh"], optimizer="adam").settings
    for axis, value, changed in [("batch_size", 8, {"batch_size": 8}),
                                 ("init", "too_large", {"init": "too_large"}),
                                 ("depth", 3, {"hidden": [5, 5, 5],
                                               "activations": ["relu", "tanh", "tanh"]}),
                                 ("depth", 0, {"hidden": [], "activations": None}),
                                 ("momentum", 0.5, {"beta1": 0.5})]:
        (job,) = cells.stability_jobs(base, None, [0.2], [value], 30, axis)
        i, j, settings, csv, steps, job_axis, job_value = job
        assert (i, j, csv, steps, job_axis, job_value) == (0, 0, None, 30, axis, value)
        assert {k: v for k, v in settings.items() if v != base[k]} == {**changed, "lr": 0.2}
    momentum = {**base, "optimizer": "momentum"}
    (job,) = cells.stability_jobs(momentum, None, [0.2], [0.5], 30, "momentum")
    assert job[2]["momentum"] == 0.5 and job[2]["beta1"] == base["beta1"]
    no_layers = {**base, "hidden": [], "activations": None}      # depth then uses the default width
    (job,) = cells.stability_jobs(no_layers, None, [0.2], [2], 30, "depth")
    assert job[2]["hidden"] == [SETTINGS["hidden"]["default"][0]] * 2


@pytest.mark.parametrize("axis, values", [("init", ["default", "too_large"]), ("depth", [0, 2]),
                                          ("momentum", [0.0, 0.9])])
def test_a_map_over_each_axis_trains_what_it_says(axis, values):
    s = session(optimizer="momentum")
    got = list(s.stability_map([0.05], axis=axis, values=values, steps=20,
                               pool=CountingPool()))
    assert [(c["axis"], c["value"], c["i"], c["j"]) for c in got] == \
        [(axis, v, 0, j) for j, v in enumerate(values)]
    # each cell is the run of those settings on its own (a LabSession trained by hand)
    for cell, value in zip(got, values, strict=True):
        change = cells.axis_changes(axis, value, s.settings)
        alone = LabSession({**s.settings, **change, "lr": 0.05}, diagnostics=False)
        alone.step(20)
        assert cell["final_loss"] == round(alone.metrics()["train_loss"], 4)
    assert got[0]["final_loss"] != got[1]["final_loss"]         # the axis made a difference


# -- the cache ------------------------------------------------------------------------------------
def test_a_second_identical_map_runs_no_job_and_gives_the_same_cells():
    s = session(dataset="sine")
    cache = CellCache()
    pool = CellPool(1)
    try:
        grid = dict(lrs=[0.01, 10.0], axis="init", values=["he", "too_small"], steps=20)
        first = collect(s.stability_map(**grid, pool=pool, cache=cache))
        assert len(first) == 4 and len(cache) == 4
        counting = CountingPool()
        second = list(s.stability_map(**grid, pool=counting, cache=cache))
        assert counting.submitted == []                 # nothing ran
        place = lambda cells_: {(c["i"], c["j"]): c for c in cells_}   # noqa: E731
        assert place(second) == place(first)
        # half of it known: only the other half runs
        third = list(s.stability_map(lrs=[0.01, 0.1], axis="init", values=["he", "too_small"],
                                     steps=20, pool=counting, cache=cache))
        assert [[job[2]["lr"] for job in jobs] for jobs in counting.submitted] == [[0.1, 0.1]]
        assert place(third)[0, 1] == place(first)[0, 1]
    finally:
        pool.close()


def test_the_same_cell_placed_in_another_map_keeps_its_result_and_takes_its_place():
    s = session()
    cache = CellCache()
    pool = CountingPool()
    (by_batch,) = list(s.stability_map([0.1], axis="batch_size", values=[16], steps=10,
                                       pool=pool, cache=cache))
    # the session's own batch size (16) in a map over init: its "default" row is that cell
    cells_ = list(s.stability_map([0.3, 0.1], axis="init", values=["he", "default"], steps=10,
                                  pool=pool, cache=cache))
    assert len(pool.submitted[-1]) == 3                    # 4 cells, one known
    known = next(c for c in cells_ if c["i"] == 1 and c["j"] == 1)
    assert known["axis"] == "init" and known["value"] == "default"
    assert known["final_loss"] == by_batch["final_loss"]


def _other_value(name, value):
    spec = SETTINGS[name]
    if spec["type"] == "choice":
        return next(c for c in spec["choices"] if c != value)
    if spec["type"] == "list":
        return {"hidden": [3], "features": ["x1"], "activations": ["relu", "relu"]}[name]
    if spec["type"] == "int":
        return value + 1
    return value / 2 if value else 0.05


def test_every_setting_a_cell_trains_with_is_in_its_key():
    base = defaults()
    job = (0, 0, base, None, 50, "batch_size", 16)
    keys = {cell_key(job)}
    for name, value in base.items():
        changed = (0, 0, {**base, name: _other_value(name, value)}, None, 50, "batch_size", 16)
        if name == "speed":         # how fast the page plays: never read by a cell
            assert cell_key(changed) == cell_key(job)
        else:
            keys.add(cell_key(changed))
    assert len(keys) == len(base)                       # one per setting but speed, all apart
    assert cell_key((0, 0, base, None, 51, "batch_size", 16)) not in keys      # the steps
    assert cell_key((3, 1, base, None, 50, "init", "x")) == cell_key(job)      # not the place


def test_a_csv_of_other_content_misses_the_cache():
    def csv(y):
        return {"X": np.arange(12.0).reshape(6, 2), "y": np.array(y), "task": "classification"}

    settings = {**defaults(), "dataset": "csv"}
    key = cell_key((0, 0, settings, csv([0, 1, 0, 1, 0, 1]), 50, "batch_size", 16))
    assert key == cell_key((0, 0, settings, csv([0, 1, 0, 1, 0, 1]), 50, "batch_size", 16))
    assert key != cell_key((0, 0, settings, csv([0, 1, 0, 1, 1, 1]), 50, "batch_size", 16))
    assert key != cell_key((0, 0, settings, None, 50, "batch_size", 16))


def test_changing_a_setting_misses_the_cache_and_runs_every_cell():
    cache = CellCache()
    pool = CountingPool()
    grid = dict(lrs=[0.1], axis="depth", values=[1, 2], steps=10)
    list(session().stability_map(**grid, pool=pool, cache=cache))
    list(session(noise=0.2).stability_map(**grid, pool=pool, cache=cache))
    list(session(seed=1).stability_map(**grid, pool=pool, cache=cache))
    list(session(seed=1).stability_map(**{**grid, "steps": 11}, pool=pool, cache=cache))
    assert [len(jobs) for jobs in pool.submitted] == [2, 2, 2, 2]
    list(session(noise=0.2).stability_map(**grid, pool=pool, cache=cache))
    assert len(pool.submitted) == 4 and len(cache) == 8


def test_a_cancelled_map_keeps_only_the_cells_that_finished():
    cache = CellCache()
    jobs = cells.stability_jobs(session().settings, None, [0.1, 0.2, 0.3], [16], 10)
    map_ = run_cells(jobs, CountingPool(), cache=cache)
    first = next(map_)
    map_.close()                      # the page cancelled: the other two never finish
    assert len(cache) == 1 and cache.get(jobs[0]) == first
    assert cache.get(jobs[1]) is None and cache.get(jobs[2]) is None


def test_the_cache_is_bounded_and_forgets_the_least_recently_used():
    cache = CellCache(2)
    jobs = cells.stability_jobs(session().settings, None, [0.1, 0.2, 0.3], [16], 10)
    for job in jobs[:2]:
        cache.put(job, {"type": "stability_cell", "final_loss": job[2]["lr"]})
    assert cache.get(jobs[0])["final_loss"] == 0.1          # used: the newest now
    cache.put(jobs[2], {"type": "stability_cell", "final_loss": 0.3})
    assert len(cache) == 2 and cache.get(jobs[1]) is None and cache.get(jobs[0]) is not None
    with pytest.raises(ValueError, match="max_cells must be an int >= 0"):
        CellCache(-1)


def test_the_cache_is_safe_to_share_between_threads():
    cache = CellCache(50)
    jobs = cells.stability_jobs(session().settings, None, [0.01 * k for k in range(1, 41)],
                                [16], 10)

    def fill():
        for job in jobs:
            cache.put(job, {"final_loss": job[2]["lr"]})
            got = cache.get(job)
            assert got is None or got["final_loss"] == job[2]["lr"]

    threads = [threading.Thread(target=fill) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(cache) == 40
    assert all(cache.get(job)["final_loss"] == job[2]["lr"] for job in jobs)
