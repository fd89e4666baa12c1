"""Fuzzing the command line: hundreds of generated bad invocations, and never a traceback.

Every case is built to be invalid: a value out of its documented range or of the wrong
type, an over-large size, a malformed, mistyped or deeply nested file. They come from a
seeded generator over each subcommand's options, so every run checks the same cases. Each
must exit with status 2 and print exactly one line on stderr (``backprop ...: error:
...``), before anything is trained or allocated, and raise no warning. Most run in process
through ``main(argv)``; a few run the installed ``backprop`` script in a subprocess under a
memory limit, to show that the real entry point says the same.
"""
import copy
import importlib
import dataclasses
import json
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from backprop.cli import main
from backprop.train import experiment as ex
van = importlib.import_module("backprop.explain.vanishing")  # the module: the package's
# ``vanishing`` is the function

SEED = 20240611
N_TRAIN_FLAGS, N_TRAIN_CONFIGS, N_DOCTOR, N_EXPLAIN, N_LAB = 170, 90, 110, 60, 25


# -- running one case ---------------------------------------------------------------------
def _in_process(capsys, argv) -> tuple:
    """(status, stderr, problem): problem is None when the case behaved, else what went wrong."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            status = main(list(argv))
        except BaseException as e:  # noqa: BLE001 -- any escape is the failure being looked for
            capsys.readouterr()
            return None, "", f"raised {type(e).__name__}: {str(e)[:200]}"
    err = capsys.readouterr().err
    if caught:
        w = caught[0]
        return status, err, f"warned {w.category.__name__}: {str(w.message)[:200]}"
    return status, err, _judge(status, err)


def _judge(status, err: str):
    if status != 2:
        return f"exit status {status}, stderr {err[-300:]!r}"
    if "Traceback" in err or err.count("\n") != 1 or not err.endswith("\n"):
        return f"stderr is not one line: {err[-300:]!r}"
    if not err.startswith("backprop") or ": error: " not in err:
        return f"stderr is not a backprop error: {err[:300]!r}"
    return None


def _check_all(capsys, cases) -> None:
    failures = []
    for argv in cases:
        _, _, problem = _in_process(capsys, argv)
        if problem:
            shown = [a if len(a) < 80 else a[:60] + f"...({len(a)} chars)" for a in argv]
            failures.append(f"{shown}: {problem}")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + \
        "\n".join(failures[:25])


# -- bad values ---------------------------------------------------------------------------
_NOT_A_NUMBER = ["", " ", "x", "nan", "inf", "-inf", "1e400", "0x10", "1,5", "--", "None",
                 "1 2", "\n"]
_NOT_AN_INT = _NOT_A_NUMBER + ["1.5", "1e3", "2.0", "+-1"]


def _huge(rng) -> int:
    return 10 ** rng.randint(7, 400) + rng.randint(0, 99)


def _bad_int(rng, low, high=None) -> str:
    """A string that is not an int in [low, high]: not an int at all, or out of range."""
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(_NOT_AN_INT)
    if high is None or pick < 0.6:
        return str(low - rng.choice([1, 2, 10, 1000, _huge(rng)]))
    return str(high + rng.choice([1, 7, 1000, _huge(rng)]))


def _bad_float(rng, low, high, low_open=False, high_open=False) -> str:
    """A string that is not a finite number in the range (open ends excluded)."""
    pick = rng.random()
    if pick < 0.35:
        return rng.choice(_NOT_A_NUMBER)
    if pick < 0.65 or high is None:
        below = [low - 1e-9, low - 1, -1e308] if low else [-1e-9, -1.0, -1e308]
        if low_open:
            below.append(low)
        return repr(rng.choice(below))
    above = [high * 1.0001 + 1e-9, high + 1, 1e308, high * 10 ** rng.randint(1, 300)]
    if high_open:
        above.append(high)
    return repr(rng.choice(above))


def _bad_name(rng, known) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz_-0123456789 éσ\t"
    while True:
        name = "".join(rng.choice(letters) for _ in range(rng.randint(0, 12)))
        if rng.random() < 0.1:
            name = name * 500  # a very long name: the error still fits one line
        if name not in known and name.replace("-", "_").lower() not in known:
            return name


def _bad_layers(rng) -> str:
    kind = rng.randrange(8)
    if kind == 0:   # a width beyond any memory
        return f"2-{_huge(rng)}-3"
    if kind == 1:   # too many parameters, every width allowed
        w = rng.randint(7100, ex.MAX_WIDTH)
        return f"2-{w}-{w}-3"
    if kind == 2:   # too wide
        return f"2-{rng.randint(ex.MAX_WIDTH + 1, 10 * ex.MAX_WIDTH)}-3"
    if kind == 3:   # too many layers
        return "-".join(["2"] * rng.randint(ex.MAX_LAYERS + 1, 3 * ex.MAX_LAYERS))
    if kind == 4:   # no toy set has 5 features
        return f"5-{rng.randint(1, 64)}-3"
    if kind == 5:   # a zero width
        return rng.choice(["2-0-3", "0-2", "2-16-0"])
    if kind == 6:   # not widths joined by '-'
        return rng.choice(["", "-", "2", "2--3", "2-x-3", "2-3.5-3", " 2-3", "2_0-3", "٢-3",
                           "2-+3", "2-3-", "-2-3", "2;3", "2 - 3", "2-1e3-3", "2-3\n"])
    return "2-" + "9" * rng.randint(19, 6000) + "-3"  # more digits than int() takes


# -- backprop train -----------------------------------------------------------------------
def _train_flag(rng) -> list:
    """One bad --flag VALUE for backprop train."""
    option = rng.choice([
        "n-samples", "batch-size", "epochs", "seed", "warmup-steps", "diagnostics-interval",
        "noise", "test-fraction", "lr", "clip", "weight-decay", "momentum", "dataset",
        "activation", "optimizer", "schedule", "layers", "layers", "layers", "out",
        "activations", "unknown"])
    if option == "n-samples":
        value = _bad_int(rng, 2, ex.MAX_SAMPLES)
    elif option == "batch-size":
        value = _bad_int(rng, 1, ex.MAX_SAMPLES)
    elif option == "epochs":
        value = _bad_int(rng, 1, ex.MAX_EPOCHS)
    elif option == "seed":
        value = _bad_int(rng, 0, ex.MAX_SEED)
    elif option == "warmup-steps":
        value = _bad_int(rng, 0)
    elif option == "diagnostics-interval":
        value = _bad_int(rng, 1)
    elif option == "noise":
        value = _bad_float(rng, 0, ex.MAX_NOISE)
    elif option == "test-fraction":
        value = _bad_float(rng, 0, 1, high_open=True)
    elif option == "lr":
        value = _bad_float(rng, 0, ex.MAX_LR, low_open=True)
    elif option == "clip":
        value = _bad_float(rng, 0, None, low_open=True)
    elif option == "weight-decay":
        value = _bad_float(rng, 0, 1)
    elif option == "momentum":
        value = _bad_float(rng, 0, 1, high_open=True)
    elif option == "dataset":
        value = _bad_name(rng, ex.DATASETS)
    elif option == "activation":
        value = _bad_name(rng, ex.ACTIVATIONS)
    elif option == "optimizer":
        value = _bad_name(rng, ex.OPTIMIZERS)
    elif option == "schedule":
        value = _bad_name(rng, ex.SCHEDULES)
    elif option == "layers":
        value = _bad_layers(rng)
    elif option == "out":
        value = rng.choice(["", " ", "   "])
    elif option == "activations":  # one batch holding too many activation values
        width = rng.randint(100, ex.MAX_WIDTH)
        return ["--n-samples", str(ex.MAX_SAMPLES), "--batch-size", str(ex.MAX_SAMPLES),
                "--layers", f"2-{width}-3"]
    else:
        return [rng.choice(["--frobnicate", "--lr=1=2", "-x", "--layer", "--epochz"]), "1"]
    # "--lr=-1" keeps argparse from taking a leading "-" for an option; both forms are tried.
    return [f"--{option}={value}"] if rng.random() < 0.5 else [f"--{option}", value]


_HARMLESS = [["--no-progress"], ["--dataset", "moons"], ["--optimizer", "sgd"],
             ["--schedule", "cosine"], ["--activation", "tanh"], ["--no-diagnostics"],
             ["--overwrite"], ["--epochs", "1"], ["--clip", "1"]]


def _train_flag_cases(rng, tmp: Path) -> list:
    cases = []
    for i in range(N_TRAIN_FLAGS):
        argv = ["train"]
        for _ in range(rng.randint(0, 2)):  # first: a repeated flag's last value wins
            argv += rng.choice(_HARMLESS)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            argv += _train_flag(rng)
        if not any(a.startswith("--out") for a in argv):
            argv += ["--out", str(tmp / f"flags-{i}")]
        order = rng.random()
        if order < 0.1:
            argv = ["train", "--resume", *argv[1:]]
        cases.append(argv)
    return cases


# -- backprop train --config --------------------------------------------------------------
_WRONG_JSON_TYPES = ["0.1", "x", "", [1], {"a": 1}, True, False, [[]], {"": None}]


def _bad_config_value(rng, key: str):
    """A JSON value ``key`` can't take in a config.json."""
    limits = {"lr": (0, ex.MAX_LR), "batch_size": (1, ex.MAX_SAMPLES),
              "epochs": (1, ex.MAX_EPOCHS), "seed": (0, ex.MAX_SEED),
              "n_samples": (2, ex.MAX_SAMPLES), "noise": (0, ex.MAX_NOISE),
              "weight_decay": (0, 1), "momentum": (0, 1), "test_fraction": (0, 1),
              "clip": (0, None), "warmup_steps": (0, None)}
    if key in ("dataset", "activation", "optimizer", "schedule"):
        return rng.choice([None, 5, 1.5, [], {}, True, _bad_name(rng, ex.DATASETS + tuple(
            ex.ACTIVATIONS) + tuple(ex.OPTIMIZERS) + ex.SCHEDULES)])
    if key == "layers":
        return rng.choice([[2, "x", 3], [2, 3.5, 3], [], [2], {}, 5, True, [2, _huge(rng), 3],
                           [2, True, 3], [2, None, 3], [2, [8], 3], _bad_layers(rng)])
    if key == "out":
        return rng.choice(["", " ", 5, [], {}, True, "a\0b"])
    low, high = limits[key]
    pick = rng.random()
    if pick < 0.4:
        wrong = list(_WRONG_JSON_TYPES)
        if key in ("batch_size", "epochs", "seed", "n_samples", "warmup_steps"):
            wrong += [2.0, 1e3]  # a float is not an int, even a whole one
        if key in ("lr", "batch_size", "epochs", "seed", "weight_decay", "momentum",
                   "test_fraction"):
            wrong.append(None)  # no default to fall back on
        return rng.choice(wrong)
    if pick < 0.5:
        return rng.choice([float("nan"), float("inf"), -float("inf")])
    if pick < 0.75 or high is None:
        return rng.choice([low - 1, -_huge(rng), -1e308] + ([low] if key in ("lr", "clip")
                                                             else []))
    over = [high * 2, high + 1, _huge(rng) + int(high)]
    if key in ("momentum", "test_fraction"):
        over.append(1)
    if key == "weight_decay":
        over.append(1.5)
    return rng.choice(over)


def _nested(rng) -> str:
    depth = rng.randint(2_000, 100_000)
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


def _config_text(rng) -> str:
    pick = rng.random()
    if pick < 0.1:
        return _nested(rng)
    if pick < 0.15:
        return '{"layers": ' + _nested(rng) + "}"
    if pick < 0.25:
        return rng.choice(["", "{", "{'lr': 1}", "[]", "5", '"x"', "null", "true",
                           '{"lr": 1', "\x00", '{"lr": ' + "9" * 5000 + "}"])
    config = {}
    if pick < 0.35:
        config[_bad_name(rng, {f.name for f in dataclasses.fields(ex.RunConfig)})] = 1
    keys = ["lr", "batch_size", "epochs", "seed", "n_samples", "noise", "weight_decay",
            "momentum", "test_fraction", "clip", "warmup_steps", "dataset", "activation",
            "optimizer", "schedule", "layers", "layers", "out"]
    for key in rng.sample(keys, rng.choice([1, 1, 2, 3])):
        config[key] = _bad_config_value(rng, key)
    if "warmup_steps" in config and rng.random() < 0.5:
        config.setdefault("schedule", "warmup-cosine")
    return json.dumps(config)  # NaN and Infinity as Python's json writes and reads them


def _train_config_cases(rng, tmp: Path) -> list:
    cases = []
    for i in range(N_TRAIN_CONFIGS):
        path = tmp / f"config-{i}.json"
        text = _config_text(rng)
        if rng.random() < 0.05:
            path.write_bytes(b"\xff\xfe{" + os.urandom(20))  # not UTF-8 at all
        else:
            path.write_text(text, encoding="utf-8")
        # --out beside --config would override a bad "out" in the file
        out = [] if '"out"' in text else ["--out", str(tmp / f"config-run-{i}")]
        cases.append(["train", "--config", str(path), *out, "--no-progress"])
    return cases


# -- backprop doctor ----------------------------------------------------------------------
_RUN = {
    "meta": {"format": "backprop.diagnostics.readings/1", "interval": 1,
             "params": ["0.weight", "0.bias", "2.weight", "2.bias"], "layers": ["1", "2"],
             "batch_size": 8},
    "step": {"step": 1, "epoch": 1, "loss": 1.0, "lr": 0.1, "grad_norm": 0.5,
             "params": {"0.weight": {"grad_norm": 0.5, "weight_norm": 1.0,
                                     "update_ratio": 0.001, "grad_abs_mean": 0.1},
                        "2.weight": {"grad_norm": 0.4, "weight_norm": 1.0,
                                     "update_ratio": 0.002, "grad_abs_mean": 0.1}},
             "activations": {"1": {"kind": "relu", "mean": 0.1, "std": 0.2,
                                   "dead_fraction": 0.1,
                                   "hist": {"edges": [0.0, 0.5, 1.0], "counts": [3, 5]}}},
             "noise": {"batches": 2, "batch_size": 8, "trace_cov": 0.1, "grad_sq_norm": 0.2,
                       "b_noise": 4.0}},
    "epoch": {"epoch": 1, "step": 1, "loss": 1.0, "val_loss": 1.1},
    "nonfinite": {"step": 1, "kind": "loss", "name": "loss", "detail": "nan"},
}
_HISTORY = {"steps": [{"step": 1, "epoch": 1, "loss": 1.0, "lr": 0.1, "grad_norm": 0.5}],
            "epochs": [{"epoch": 1, "step": 1, "loss": 1.0, "lr": 0.1, "time": 0.1}]}

# (record, path to the value, what the value is)
_FIELDS = [
    ("meta", ("interval",), "count+"), ("meta", ("params",), "names"),
    ("meta", ("layers",), "names"), ("meta", ("batch_size",), "number"),
    ("step", ("step",), "count!"), ("step", ("epoch",), "count"),
    ("step", ("loss",), "number"), ("step", ("lr",), "number"),
    ("step", ("grad_norm",), "number"), ("step", ("params",), "object"),
    ("step", ("params", "0.weight"), "object"),
    ("step", ("params", "2.weight", "grad_norm"), "number"),
    ("step", ("params", "0.weight", "update_ratio"), "number"),
    ("step", ("params", "0.weight", "weight_norm"), "number"),
    ("step", ("activations",), "object"), ("step", ("activations", "1"), "object"),
    ("step", ("activations", "1", "kind"), "string"),
    ("step", ("activations", "1", "std"), "number"),
    ("step", ("activations", "1", "dead_fraction"), "number"),
    ("step", ("activations", "1", "hist"), "object"),
    ("step", ("activations", "1", "hist", "edges"), "numbers"),
    ("step", ("activations", "1", "hist", "counts"), "numbers"),
    ("step", ("noise",), "object"), ("step", ("noise", "b_noise"), "number"),
    ("step", ("noise", "batch_size"), "number"),
    ("epoch", ("epoch",), "count"), ("epoch", ("step",), "count"),
    ("epoch", ("loss",), "number"), ("epoch", ("val_loss",), "number"),
    ("nonfinite", ("step",), "count"), ("nonfinite", ("kind",), "string"),
    ("nonfinite", ("name",), "string"), ("nonfinite", ("detail",), "string"),
    ("history-step", ("step",), "count"), ("history-step", ("loss",), "number"),
    ("history-step", ("lr",), "number"), ("history-epoch", ("epoch",), "count"),
    ("history-epoch", ("loss",), "number"), ("history-epoch", ("time",), "number"),
]


def _wrong(rng, what: str):
    """A JSON value of the wrong type (or range) for a field holding ``what``."""
    big = 10 ** rng.randint(301, 1000)  # an int no float can hold
    choices = {
        "count": ["x", "1", -1, -_huge(rng), 1.5, True, [1], {"a": 1}, "nan", 10 ** 20, big],
        "number": ["x", "1.0", "", [1.0], {"v": 1}, True, False, big, -big],
        "names": ["x", 5, {"a": 1}, [1], [None], [["a"]], True],
        "object": ["x", 5, [1], True, 1.5, [{}]],
        "string": [5, [], {}, True, 1.5],
        "numbers": ["x", 5, {}, ["a"], [None], [[1]], [True], [big]],
    }
    if what == "count!":
        return rng.choice(choices["count"] + [None])
    if what == "count+":
        return rng.choice(choices["count"] + [0])
    return rng.choice(choices[what])


def _put(record: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        record = record[key]
        if not isinstance(record, dict):  # an earlier change replaced the parent: it is bad
            return
    record[path[-1]] = value


def _doctor_case(rng, folder: Path) -> list:
    folder.mkdir()
    run = copy.deepcopy(_RUN)
    history = copy.deepcopy(_HISTORY)
    pick = rng.random()
    extra_lines = []
    if pick < 0.08:     # a record nested too deeply for json
        extra_lines.append('{"kind": "step", "step": 2, "loss": ' + _nested(rng) + "}")
    elif pick < 0.12:   # a history.json nested too deeply
        (folder / "history.json").write_text(_nested(rng))
    elif pick < 0.16:   # not one readable line
        lines = rng.choice([["not json"], ["[]", "5"], ['{"kind": "bogus"}'], ["{"] * 3])
        (folder / "diagnostics.jsonl").write_text("\n".join(lines) + "\n")
        return ["doctor", str(folder), "--no-plots"]
    elif pick < 0.2:    # a history.json that is no history
        (folder / "history.json").write_text(json.dumps(rng.choice(
            [[], 5, {"steps": 5, "epochs": []}, {"steps": [5], "epochs": []}, {"steps": []}])))
    else:
        for record, path, what in rng.sample(_FIELDS, rng.choice([1, 1, 2])):
            value = _wrong(rng, what)
            if record.startswith("history-"):
                kind = "steps" if record == "history-step" else "epochs"
                _put(history[kind][0], path, value)
            else:
                _put(run[record], path, value)
    lines = [json.dumps({"kind": "meta", **run["meta"]}), json.dumps({"kind": "step",
                                                                       **run["step"]}),
             json.dumps({"kind": "epoch", **run["epoch"]}),
             json.dumps({"kind": "nonfinite", "nonfinite": run["nonfinite"]}), *extra_lines]
    (folder / "diagnostics.jsonl").write_text("\n".join(lines) + "\n")
    if not (folder / "history.json").exists():
        (folder / "history.json").write_text(json.dumps(history))
    return ["doctor", str(folder), "--no-plots"]


def _doctor_cases(rng, tmp: Path) -> list:
    cases = [_doctor_case(rng, tmp / f"doctor-{i}") for i in range(N_DOCTOR)]
    cases += [["doctor", ""], ["doctor", " "], ["doctor", str(tmp), "--plots", ""],
              ["doctor", str(tmp / "nowhere")], ["doctor", "--plots"], ["doctor"],
              ["doctor", str(tmp), "--no-plots", "--plots", "x"]]
    return cases


# -- backprop explain, gradcheck, lab and the top level -----------------------------------
def _explain_cases(rng) -> list:
    cases = []
    for _ in range(N_EXPLAIN):
        pick = rng.randrange(7)
        if pick == 0:
            cases.append(["explain", f"--lr={_bad_float(rng, 0, 1e6)}"])
        elif pick == 1:  # one size out of its range
            option, low, high = rng.choice([("depth", 2, van.MAX_DEPTH),
                                            ("width", 1, van.MAX_WIDTH),
                                            ("batch", 1, van.MAX_BATCH), ("seed", 0, None)])
            cases.append(["explain", "vanishing", f"--{option}={_bad_int(rng, low, high)}"])
        elif pick == 2:  # each size allowed, together too many weights
            width = rng.randint(1000, van.MAX_WIDTH)
            depth = rng.randint(van.MAX_PARAMETERS // width ** 2 + 1, van.MAX_DEPTH)
            cases.append(["explain", "vanishing", "--depth", str(depth), "--width", str(width)])
        elif pick == 3:  # ... or too many activation values
            width = rng.randint(100, 999)
            depth = rng.randint(2, min(van.MAX_DEPTH, van.MAX_PARAMETERS // width ** 2))
            batch = van.MAX_ACTIVATIONS // (width * depth) + rng.randint(1, 100)
            if batch > van.MAX_BATCH:
                batch = rng.randint(van.MAX_BATCH + 1, 10 * van.MAX_BATCH)
            cases.append(["explain", "vanishing", "--depth", str(depth), "--width", str(width),
                          "--batch", str(batch)])
        elif pick == 4:
            option = rng.choice(["activation", "init"])
            known = ex.ACTIVATIONS if option == "activation" else van.INITS
            cases.append(["explain", "vanishing", f"--{option}={_bad_name(rng, known)}"])
        elif pick == 5:
            cases.append(["explain", "graph", rng.choice(
                ["--out=", "--out= ", f"--format={_bad_name(rng, ('mermaid', 'dot'))}"])])
        else:
            cases.append(["explain", _bad_name(rng, ("vanishing", "graph", ""))])
    return cases


def _lab_cases(rng) -> list:
    cases = []
    for _ in range(N_LAB):
        if rng.random() < 0.7:
            cases.append(["lab", "--no-browser", f"--port={_bad_int(rng, 1, 65535)}"])
        else:  # refused without a DNS lookup: empty, or not encodable as a host name
            host = rng.choice(["", " ", "a..b", "a" * rng.randint(64, 300), ".." * 3,
                               "x." + "b" * 70 + ".org"])
            cases.append(["lab", "--no-browser", "--port", "8000", f"--host={host}"])
    return cases


def _other_cases(rng) -> list:
    cases = [["gradcheck", "-k", rng.choice(["", " "])] for _ in range(3)]
    cases += [["gradcheck", "-k", "qqzz" + _bad_name(rng, ())] for _ in range(4)]
    cases += [["gradcheck", "--bogus"], ["gradcheck", "-k"], [], ["--bogus"], ["bogus"],
              [_bad_name(rng, ("train", "doctor", "explain", "gradcheck", "lab"))],
              ["train", "--lr"], ["train", "--epochs"], ["doctor", "a", "b"],
              ["explain", "vanishing", "extra"], ["lab", "--port"]]
    return cases


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    rng = random.Random(SEED)
    return {"train": _train_flag_cases(rng, tmp), "config": _train_config_cases(rng, tmp),
            "doctor": _doctor_cases(rng, tmp), "explain": _explain_cases(rng),
            "lab": _lab_cases(rng), "other": _other_cases(rng)}


# -- the tests ----------------------------------------------------------------------------
@pytest.mark.parametrize("group", ["train", "config", "doctor", "explain", "lab", "other"])
def test_bad_invocations_are_one_line_and_status_2(cases, capsys, group):
    _check_all(capsys, cases[group])


def test_the_doctor_template_itself_is_healthy(tmp_path, capsys):
    """The doctor cases are bad because of what was changed, not because of the template."""
    folder = tmp_path / "good"
    folder.mkdir()
    lines = [json.dumps({"kind": "meta", **_RUN["meta"]}),
             json.dumps({"kind": "step", **_RUN["step"]}),
             json.dumps({"kind": "epoch", **_RUN["epoch"]}),
             json.dumps({"kind": "nonfinite", "nonfinite": _RUN["nonfinite"]})]
    (folder / "diagnostics.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "history.json").write_text(json.dumps(_HISTORY))
    assert main(["doctor", str(folder), "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "recorded step" in captured.out


def test_there_are_hundreds_of_cases(cases):
    assert sum(len(c) for c in cases.values()) >= 400


# -- the real entry point -----------------------------------------------------------------
def _script() -> Path:
    return Path(sys.executable).with_name("backprop")


def _limit_memory():  # pragma: no cover - runs in the child
    import resource
    limit = 3 * 1024 ** 3  # far below what any refused size would allocate
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_AS is POSIX")
def test_the_installed_script_behaves_the_same(cases, capsys, tmp_path):
    """A handful of the cases through the real ``backprop`` script, with 3 GB of address
    space: each is refused before it allocates, with the same line as in process."""
    if not _script().exists():
        pytest.skip("the backprop script is not installed next to this Python")
    rng = random.Random(SEED + 1)
    chosen = [["train", "--layers", "2-100000-100000-3", "--out", str(tmp_path / "a")],
              ["train", "--n-samples", "1000000000", "--out", str(tmp_path / "b")],
              ["explain", "vanishing", "--depth", "100000"],
              ["explain", "vanishing", "--width", "100000000"],
              rng.choice(cases["config"]), rng.choice(cases["doctor"][:N_DOCTOR]),
              rng.choice(cases["train"]), rng.choice(cases["lab"])]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    for argv in chosen:
        proc = subprocess.run([str(_script()), *argv], capture_output=True, text=True,
                              timeout=120, env=env, preexec_fn=_limit_memory)
        assert _judge(proc.returncode, proc.stderr) is None, (argv, proc.stderr[-2000:])
        status, err, problem = _in_process(capsys, argv)
        assert problem is None and err == proc.stderr, (argv, err, proc.stderr)
