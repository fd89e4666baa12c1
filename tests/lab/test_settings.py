"""The lab's settings table: checks, messages and the URL form."""
import json

import pytest

from backprop.lab.settings import (
    FEATURES, SETTINGS, LabError, defaults, from_query, public_table, to_query, validate,
)

SPEC_KEYS = {"type", "default", "min", "max", "log", "choices", "item", "min_len", "max_len",
             "nullable", "effect", "group", "label", "help"}


def test_table_is_complete_and_json():
    json.dumps(public_table())  # the page gets it as JSON
    for name, spec in SETTINGS.items():
        assert set(spec) == SPEC_KEYS, name
        assert spec["effect"] in ("live", "reset"), name
        assert spec["type"] in ("float", "int", "choice", "bool", "list"), name
        assert spec["label"] and spec["help"], name
    # every default passes its own checks, and validating nothing changes nothing
    assert validate({}) == defaults()
    for name in SETTINGS:
        assert validate({name: defaults()[name]}) == defaults(), name


def test_required_controls_and_effects():
    live = {"lr", "batch_size", "optimizer", "momentum", "beta1", "beta2", "schedule", "clip",
            "weight_decay", "dropout", "activation", "activations", "speed"}
    reset = {"dataset", "noise", "train_fraction", "n_samples", "features", "hidden", "init",
             "seed"}
    for name in live:
        assert SETTINGS[name]["effect"] == "live", name
    for name in reset:
        assert SETTINGS[name]["effect"] == "reset", name
    assert SETTINGS["lr"]["log"] and SETTINGS["lr"]["min"] == 1e-5 and SETTINGS["lr"]["max"] == 10
    assert defaults()["lr"] == 0.03 and defaults()["batch_size"] == 16
    assert SETTINGS["optimizer"]["choices"] == ["sgd", "momentum", "rmsprop", "adam", "adamw"]
    assert SETTINGS["hidden"]["max_len"] == 6 and SETTINGS["hidden"]["item"]["max"] == 32


def test_out_of_range_message_names_field_and_value():
    with pytest.raises(LabError, match=r"^lr must be between 1e-05 and 10, got 50$") as e:
        validate({"lr": 50})
    assert e.value.field == "lr"
    with pytest.raises(LabError, match="batch_size must be between 1 and 2000, got 0"):
        validate({"batch_size": 0})


@pytest.mark.parametrize("name, value, pattern", [
    ("lr", "fast", "lr must be a number, got 'fast'"),
    ("lr", True, "lr must be a number"),
    ("lr", float("nan"), "lr must be a finite number"),
    ("batch_size", 16.5, "batch_size must be an integer, got 16.5"),
    ("optimizer", "lbfgs", "optimizer must be one of sgd, momentum, rmsprop, adam, adamw, "
                           "got 'lbfgs'"),
    ("hidden", [8] * 7, "hidden must have 0 to 6 entries, got 7"),
    ("hidden", [8, 40], r"hidden\[1\] must be between 1 and 32, got 40"),
    ("hidden", "8,8", "hidden must be a list"),
    ("features", [], "features must have 1 to 7 entries, got 0"),
    ("features", ["x3"], r"features\[0\] must be one of"),
    ("activations", ["relu"], r"activations must name one activation per hidden layer \(2\)"),
])
def test_bad_values(name, value, pattern):
    with pytest.raises(LabError, match=pattern) as e:
        validate({name: value})
    assert e.value.field == name


def test_unknown_setting_and_non_dict():
    with pytest.raises(LabError, match="unknown setting 'learning_rate'") as e:
        validate({"learning_rate": 0.1})
    assert e.value.field == "learning_rate"
    with pytest.raises(LabError, match="settings must be an object"):
        validate([("lr", 0.1)])


def test_normalisation_and_cross_field_rules():
    current = defaults()
    new = validate({"batch_size": 32.0, "lr": 1, "features": ["sin x1", "x1", "x1"]}, current)
    assert new["batch_size"] == 32 and isinstance(new["batch_size"], int)
    assert new["lr"] == 1.0 and isinstance(new["lr"], float)
    assert new["features"] == ["x1", "sin x1"]          # table order, no repeats
    assert current == defaults()                        # not modified
    per_layer = validate({"activations": ["relu", "tanh"]})
    # changing the layers alone keeps the per-layer choices that still exist
    assert validate({"hidden": [4, 4, 4]}, per_layer)["activations"] == ["relu", "tanh", "tanh"]
    assert validate({"hidden": [4]}, per_layer)["activations"] == ["relu"]
    assert validate({"hidden": []}, per_layer)["activations"] is None
    # one activation for all replaces the per-layer list
    assert validate({"activation": "gelu"}, per_layer)["activations"] is None
    assert set(FEATURES) >= set(defaults()["features"])


def test_query_round_trip():
    settings = validate({"lr": 0.003, "hidden": [4, 2], "features": ["x1", "x1*x2", "sin x2"],
                         "dataset": "moons", "activations": ["relu", "gelu"], "clip": 1.5})
    query = to_query(settings)
    assert "speed" not in query and "seed" not in query     # defaults are left out
    assert validate(from_query(query)) == settings
    assert validate(from_query("?" + query)) == settings
    assert to_query(defaults()) == ""
    no_hidden = validate({"hidden": []})
    assert from_query(to_query(no_hidden)) == {"hidden": []}
    assert from_query("activations=") == {"activations": None}
    assert from_query("lr=1e-05&batch_size=8") == {"lr": 1e-05, "batch_size": 8}
    everything = to_query(defaults(), all_settings=True)
    assert validate(from_query(everything)) == defaults()


def test_query_errors():
    with pytest.raises(LabError, match="unknown setting 'bogus' in the link"):
        from_query("bogus=1&lr=0.1")
    assert from_query("bogus=1&lr=0.1", strict=False) == {"lr": 0.1}
    with pytest.raises(LabError, match="lr must be a number, got 'abc'") as e:
        from_query("lr=abc")
    assert e.value.field == "lr"
    with pytest.raises(LabError, match=r"hidden\[1\] must be an integer"):
        validate(from_query("hidden=4,2.5"))


HUGE = 10 ** 400      # a JSON number any client may send


@pytest.mark.parametrize("name, value", [
    ("lr", HUGE), ("lr", -HUGE), ("noise", HUGE), ("batch_size", HUGE), ("seed", HUGE),
    ("speed", -HUGE), ("schedule_steps", HUGE), ("hidden", [4, HUGE]),
], ids=["lr", "-lr", "noise", "batch_size", "seed", "-speed", "schedule_steps", "hidden"])
def test_huge_integers_are_refused_by_name_without_overflow(name, value):
    # math.isfinite and float() raise OverflowError on such an int: it must be a LabError
    with pytest.raises(LabError, match="an? (negative )?integer of 401 digits") as e:
        validate({name: value})
    assert e.value.field == name
    assert str(e.value).startswith(name)
    assert len(str(e.value)) < 120            # the 401 digits are not echoed back


def test_long_values_are_quoted_short():
    with pytest.raises(LabError) as e:
        validate({"optimizer": "x" * 10_000})
    assert e.value.field == "optimizer" and len(str(e.value)) < 200
    with pytest.raises(LabError) as e:
        validate({"y" * 10_000: 1})
    assert len(str(e.value)) < 600
