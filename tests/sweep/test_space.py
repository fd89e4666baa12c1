"""The sweep's space: --grid/--sample parsing, the expansion into trials, ids and caps (no Ray)."""
from __future__ import annotations

import math
import sys

import pytest

from backprop.sweep import Space, SweepError
from backprop.sweep.runner import plan
from backprop.sweep.space import (count_trials, expand, field_name, parse_grid, parse_sample,
                                  trial_id)


def test_import_backprop_sweep_does_not_import_ray():
    import subprocess
    code = ("import sys, backprop, backprop.sweep, backprop.cli; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_only_the_ray_module_imports_ray():
    import ast
    import pathlib

    import backprop
    root = pathlib.Path(backprop.__file__).parent
    importers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level \
                else []
            if any(n == "ray" or n.startswith("ray.") for n in names):
                importers.add(path.relative_to(root).as_posix())
    assert importers == {"sweep/_ray.py"}


@pytest.mark.parametrize("spec, field, values", [
    ("lr=1e-3:1:log:4", "lr", [0.001, 0.01, 0.1, 1.0]),
    ("lr=0:1:lin:3", "lr", [0.0, 0.5, 1.0]),
    ("batch-size=1:256:log:5", "batch_size", [1, 4, 16, 64, 256]),
    ("batch_size=16,64", "batch_size", [16, 64]),
    ("batch-size=1:3:lin:5", "batch_size", [1, 2, 3]),      # rounded, repeats dropped
    ("optimizer=sgd,adam", "optimizer", ["sgd", "adam"]),
    ("layers=2-8-3,2-16-16-3", "layers", ["2-8-3", "2-16-16-3"]),
    ("clip=none,1", "clip", [None, 1.0]),
    ("--weight-decay=0,1e-4", "weight_decay", [0.0, 1e-4]),
    ("lr=0.5:0.5:log:1", "lr", [0.5]),
])
def test_parse_grid(spec, field, values):
    assert parse_grid(spec) == (field, values)


@pytest.mark.parametrize("spec, message", [
    ("lr", "KEY=VALUES"),
    ("=1,2", "KEY=VALUES"),
    ("lr=", "no values"),
    ("lr=,,", "no values"),
    ("bogus=1,2", "not a training option"),
    ("out=a,b", "not a training option"),
    ("lr=0:1:log:3", "above 0"),
    ("lr=1e-3:1:log:0", "at least 1"),
    ("lr=1e-3:1:log:x", "not an integer"),
    ("lr=a:1:log:3", "not a number"),
    ("lr=nan,1", "not a finite number"),
    ("batch-size=1.5,2", "not an integer"),
    ("optimizer=1:2:lin:3", "numeric"),
    ("lr=1e-3:1:log:999999999", "absurd"),
])
def test_parse_grid_errors_are_sweep_errors(spec, message):
    with pytest.raises(SweepError, match=message):
        parse_grid(spec)


def test_parse_sample():
    assert parse_sample("lr=loguniform:1e-4:1") == ("lr", Space.loguniform(1e-4, 1.0))
    assert parse_sample("momentum=uniform:0:0.9") == ("momentum", Space.uniform(0.0, 0.9))
    assert parse_sample("optimizer=choice:sgd,adam") == ("optimizer",
                                                         Space.choice(["sgd", "adam"]))
    assert parse_sample("batch-size=choice:16,64") == ("batch_size", Space.choice([16, 64]))


@pytest.mark.parametrize("spec, message", [
    ("lr=normal:0:1", "unknown distribution"),
    ("lr=loguniform:1", "LOW:HIGH"),
    ("lr=loguniform:0:1", "0 < low < high"),
    ("lr=uniform:1:1", "low < high"),
    ("lr=choice:", "needs values"),
    ("optimizer=uniform:0:1", "numeric"),
])
def test_parse_sample_errors(spec, message):
    with pytest.raises(SweepError, match=message):
        parse_sample(spec)


def test_field_names_take_both_spellings():
    assert field_name("batch-size") == field_name("batch_size") == "batch_size"
    with pytest.raises(SweepError, match="choose from"):
        field_name("learning_rate")


def test_grid_is_the_cartesian_product_last_axis_fastest():
    trials = expand({"lr": [0.1, 1.0], "batch_size": [16, 32, 64]})
    assert trials == [{"lr": lr, "batch_size": b} for lr in (0.1, 1.0) for b in (16, 32, 64)]
    assert count_trials({"lr": [0.1, 1.0], "batch_size": [16, 32, 64]}, samples=2) == 12


def test_samples_repeat_the_grid_with_fresh_seeded_draws():
    space = {"batch_size": [16, 64], "lr": Space.loguniform(1e-4, 1.0)}
    a = expand(space, samples=3, seed=7)
    assert len(a) == 6
    assert [t["batch_size"] for t in a] == [16, 64] * 3
    assert all(1e-4 <= t["lr"] <= 1.0 for t in a)
    assert len({t["lr"] for t in a}) == 6            # every trial draws afresh
    assert expand(space, samples=3, seed=7) == a      # seeded: the same trials again
    assert expand(space, samples=3, seed=8) != a
    assert list(a[0]) == ["batch_size", "lr"]         # the space's key order


def test_loguniform_spreads_over_the_decades():
    draws = [t["lr"] for t in expand({"lr": Space.loguniform(1e-4, 1.0)}, samples=400,
                                     seed=0, max_trials=400)]
    below = sum(d < 1e-2 for d in draws) / len(draws)
    assert 0.4 < below < 0.6  # half of the log range lies below 1e-2


def test_choice_draws_only_its_values():
    draws = {t["optimizer"] for t in expand({"optimizer": Space.choice(["sgd", "adam"])},
                                            samples=50, seed=1)}
    assert draws == {"sgd", "adam"}


def test_cap_on_trials_names_the_count_and_the_way_out():
    space = {"lr": [0.1] * 40, "batch_size": list(range(1, 41))}
    with pytest.raises(SweepError, match=r"1,600 trials.*cap of 1,000.*--max-trials 1600"):
        expand(space)
    assert len(expand(space, max_trials=1600)) == 1600
    with pytest.raises(SweepError, match="cap of 10"):
        expand({"lr": [0.1, 0.2]}, samples=6, max_trials=10)


def test_a_huge_grid_is_refused_before_it_is_built():
    # 10^6 x 10^6 points: counting must not expand them
    space = {"lr": [0.1] * 1_000_000, "momentum": [0.0] * 1_000_000}
    with pytest.raises(SweepError, match="1,000,000,000,000 trials"):
        expand(space)


def test_empty_grid_and_empty_space_are_errors():
    with pytest.raises(SweepError, match="empty"):
        expand({"lr": []})
    with pytest.raises(SweepError, match="empty"):
        expand({})
    with pytest.raises(SweepError, match="samples"):
        expand({"lr": [0.1]}, samples=0)


def test_trial_id_is_deterministic_and_folder_safe():
    assert trial_id(3, {"lr": 0.01, "batch_size": 32}) == "t003-lr=0.01-batch_size=32"
    assert trial_id(3, {"lr": 0.01}, total=5000) == "t0003-lr=0.01"
    assert trial_id(0, {"lr": 1e-4 * 3.3333333}) == "t000-lr=0.0003333"
    name = trial_id(1, {"layers": "2-16/../3", "optimizer": "adam w"})
    assert "/" not in name and " " not in name
    assert len(trial_id(1, {"layers": "-".join(["16"] * 200)})) <= 120


def test_plan_checks_every_trial_as_a_run_config():
    trials = plan({"epochs": 2}, {"lr": [0.1, 1.0]})
    assert [t for t, _ in trials] == ["t000-lr=0.1", "t001-lr=1"]
    with pytest.raises(SweepError, match="t001-lr=-1.*lr"):
        plan({"epochs": 2}, {"lr": [0.1, -1.0]})
    with pytest.raises(SweepError, match="base configuration"):
        plan({"epochs": 2, "bogus": 1}, {"lr": [0.1]})
    with pytest.raises(SweepError, match="activation"):
        plan({}, {"activation": ["relu", "nope"]})


def test_space_round_trips_through_its_dict_form():
    for space in (Space.loguniform(1e-3, 1), Space.uniform(-1, 1), Space.choice([1, "a"])):
        assert Space.from_dict(space.to_dict()) == space
    assert not math.isnan(Space.uniform(0, 1).args[0])
