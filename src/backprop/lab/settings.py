"""Every control of the lab in one table, its checks, and its URL form.

:data:`SETTINGS` maps a setting's name to its spec, a plain dict the page receives as
JSON (``GET /api/settings``) and builds its controls from::

    {"type": "float" | "int" | "choice" | "bool" | "list",
     "default": ..., "min": number | None, "max": number | None,
     "log": bool,                 # a log-scale slider
     "choices": [str] | None,     # for "choice" (and for the items of a list of choices)
     "item": None | {"type": "int" | "choice", "min", "max", "choices"},   # for "list"
     "min_len": int | None, "max_len": int | None,                        # for "list"
     "nullable": bool,            # None is a value ("activations": None = all the same)
     "effect": "live" | "reset",  # live: takes effect at the next step, weights kept;
                                  # reset: rebuilds the data and the network
     "group": "data" | "features" | "network" | "training" | "regularisation" | "run",
     "label": str, "help": str}

The table's order is the order the page shows the controls in.

:func:`validate` checks a dict of changes against the table and returns the whole
new settings dict; a bad value raises :class:`LabError` naming the setting and the value::

    validate({"lr": 50}, defaults())
    # LabError: lr must be between 1e-05 and 10, got 50

URL form (the page keeps the whole state in its query string so a link can be shared):
one ``name=value`` pair per setting that differs from its default; numbers in decimal or
exponent notation (``lr=0.003``, ``lr=1e-05``), bools as ``true``/``false``, lists joined
by commas (``hidden=8,8``, ``features=x1,x2,x1*x2``), an empty value for an empty list
(``hidden=``) or for None (``activations=``); every pair percent-encoded as usual
(``features=x1%2Cx2%2Csin%20x1``). :func:`to_query` / :func:`from_query` are the Python
side of that form.
"""
from __future__ import annotations

import copy
import math
import numbers
import reprlib
from urllib.parse import parse_qsl, urlencode

from backprop.errors import BackpropError

__all__ = [
    "ACTIVATIONS", "DATASETS", "FEATURES", "INITS", "LabError", "OPTIMIZERS", "SCHEDULES",
    "SETTINGS", "defaults", "from_query", "public_table", "shown", "to_query", "validate",
]


class LabError(BackpropError, ValueError):
    """A lab request that can't be done; ``field`` names the setting at fault (or None)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


DATASETS = ("spiral", "moons", "circles", "xor", "blobs", "sine", "plane", "bumps", "digits",
            "csv")
"""Data the lab trains on; ``csv`` is the user's own upload, ``digits`` needs scikit-learn."""

REGRESSION_SETS = ("sine", "plane", "bumps")
"""Toy sets with a real-valued target (MSE loss, one output); the rest are classification."""

FEATURES = ("x1", "x2", "x1^2", "x2^2", "x1*x2", "sin x1", "sin x2")
"""Input features computed from the two coordinates of a 2-D set (``x1`` only for sine)."""

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu")
INITS = ("default", "xavier", "he", "too_small", "too_large")
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw")
SCHEDULES = ("constant", "warmup_cosine")

MAX_HIDDEN_LAYERS = 6
MAX_NEURONS = 32
MAX_SAMPLES = 2000
MAX_SPEED = 1000
"""``speed`` at its maximum means "as fast as the machine goes"."""


def _spec(type_, default, label, help_, group, effect, *, min=None, max=None, log=False,
          choices=None, item=None, min_len=None, max_len=None, nullable=False) -> dict:
    return {"type": type_, "default": default, "min": min, "max": max, "log": log,
            "choices": list(choices) if choices is not None else None, "item": item,
            "min_len": min_len, "max_len": max_len, "nullable": nullable, "effect": effect,
            "group": group, "label": label, "help": help_}


SETTINGS = {
    # -- data (any change rebuilds the data and the network) ------------------------------
    "dataset": _spec(
        "choice", "spiral", "Data", "The data set: 2-D classification (spiral has 3 classes), "
        "regression (sine, plane, bumps), the 8x8 digits, or your uploaded CSV.",
        "data", "reset", choices=DATASETS),
    "noise": _spec(
        "float", 0.1, "Noise", "How much the toy data is jittered.", "data", "reset",
        min=0.0, max=1.0),
    "n_samples": _spec(
        "int", 300, "Samples", "Points in the toy data set (train and test together).",
        "data", "reset", min=20, max=MAX_SAMPLES),
    "train_fraction": _spec(
        "float", 0.7, "Training share", "The share of the data used for training; the rest "
        "is the test set.", "data", "reset", min=0.1, max=0.9),
    "features": _spec(
        "list", ["x1", "x2"], "Input features", "Features computed from the two coordinates "
        "and fed to the network.", "features", "reset",
        item={"type": "choice", "min": None, "max": None, "choices": list(FEATURES)},
        choices=FEATURES, min_len=1, max_len=len(FEATURES)),
    # -- network ----------------------------------------------------------------------------
    "hidden": _spec(
        "list", [8, 8], "Hidden layers", "Neurons in each hidden layer (0 to 6 layers of 1 to "
        "32 neurons).", "network", "reset",
        item={"type": "int", "min": 1, "max": MAX_NEURONS, "choices": None},
        min_len=0, max_len=MAX_HIDDEN_LAYERS),
    "activation": _spec(
        "choice", "tanh", "Activation", "The non-linearity after each hidden layer; changing "
        "it keeps the weights.", "network", "live", choices=ACTIVATIONS),
    "activations": _spec(
        "list", None, "Per-layer activations", "One activation per hidden layer, or none to "
        "use the one above everywhere.", "network", "live",
        item={"type": "choice", "min": None, "max": None, "choices": list(ACTIVATIONS)},
        choices=ACTIVATIONS, min_len=0, max_len=MAX_HIDDEN_LAYERS, nullable=True),
    "init": _spec(
        "choice", "default", "Initialisation", "How the weights start: PyTorch's default, "
        "Xavier, He, or deliberately too small / too large.", "network", "reset",
        choices=INITS),
    # -- training ---------------------------------------------------------------------------
    "lr": _spec(
        "float", 0.03, "Learning rate", "Step size of each update.", "training", "live",
        min=1e-5, max=10.0, log=True),
    "batch_size": _spec(
        "int", 16, "Batch size", "Samples per step (at most the training set).", "training",
        "live", min=1, max=MAX_SAMPLES, log=True),
    "optimizer": _spec(
        "choice", "adam", "Optimiser", "The update rule; switching keeps the weights.",
        "training", "live", choices=OPTIMIZERS),
    "momentum": _spec(
        "float", 0.9, "Momentum", "Momentum of SGD+momentum.", "training", "live",
        min=0.0, max=0.999),
    "beta1": _spec(
        "float", 0.9, "Beta 1", "Adam's decay of the mean gradient.", "training", "live",
        min=0.0, max=0.999),
    "beta2": _spec(
        "float", 0.999, "Beta 2", "Adam's decay of the squared gradient.", "training", "live",
        min=0.0, max=0.9999),
    "schedule": _spec(
        "choice", "constant", "Schedule", "Learning rate over time: constant, or a linear "
        "warmup then a cosine decay (starting when chosen).", "training", "live",
        choices=SCHEDULES),
    "schedule_steps": _spec(
        "int", 1000, "Schedule length", "Steps of warmup + cosine (the first 10% warm up); "
        "the learning rate stays at 0 after.", "training", "live", min=10, max=100000,
        log=True),
    # -- regularisation ---------------------------------------------------------------------
    "clip": _spec(
        "float", 0.0, "Gradient clipping", "Largest gradient norm allowed (0: off).",
        "regularisation", "live", min=0.0, max=100.0),
    "weight_decay": _spec(
        "float", 0.0, "Weight decay", "L2 penalty (decoupled for AdamW).", "regularisation",
        "live", min=0.0, max=1.0),
    "l1": _spec(
        "float", 0.0, "L1", "Adds L1 x the sum of |w| over every layer's weights (not the "
        "biases) to the training loss: pushes weights to exactly 0.", "regularisation",
        "live", min=0.0, max=0.1),
    "l2": _spec(
        "float", 0.0, "L2", "Adds L2 x the sum of w\u00b2 over every layer's weights (not the "
        "biases) to the training loss: shrinks large weights. The curves show the data "
        "loss alone.", "regularisation", "live", min=0.0, max=0.1),
    "dropout": _spec(
        "float", 0.0, "Dropout", "Share of hidden activations zeroed in each training step.",
        "regularisation", "live", min=0.0, max=0.9),
    # -- run --------------------------------------------------------------------------------
    "speed": _spec(
        "int", 100, "Speed", f"Training steps per second while playing ({MAX_SPEED}: as fast "
        f"as possible).", "run", "live", min=1, max=MAX_SPEED, log=True),
    "seed": _spec(
        "int", 0, "Seed", "Seed of the data, the weights and the batch order.", "run", "reset",
        min=0, max=2**31 - 1),
}
"""name -> spec of every control (see the module docstring)."""


def defaults() -> dict:
    """The default value of every setting (a fresh dict; lists are copies).

    Example::

        defaults()["lr"]     # 0.03
    """
    return {name: copy.deepcopy(spec["default"]) for name, spec in SETTINGS.items()}


def public_table() -> dict:
    """:data:`SETTINGS` as the JSON the page gets (a deep copy it may not change)."""
    return copy.deepcopy(SETTINGS)


# -- checks -------------------------------------------------------------------------------------
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxdict = 8
_SHORT.maxlevel = 3
_LOG10_2 = math.log10(2)
_EXACT_DIGITS_BITS = 10_000     # about 3000 digits: below str()'s limit of 4300


def shown(value) -> str:
    """``repr(value)`` cut to a readable length, for error messages.

    Values come from the page or from any client that connects, so a message may carry a
    400-digit number or a 10,000-character name: errors quote them shortened.

    Example::

        shown(10 ** 400)       # 'an integer of 401 digits'
        shown("x" * 100)       # "'xxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxxxxxxxxxx'"
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        kind = "a negative integer" if value < 0 else "an integer"
        if value.bit_length() <= _EXACT_DIGITS_BITS:
            return f"{kind} of {len(str(abs(value)))} digits"
        # str() refuses ints beyond 4300 digits (and is slow): estimate from the bits
        return f"{kind} of about {int(value.bit_length() * _LOG10_2) + 1} digits"
    return _SHORT.repr(value)


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:g}"
    return shown(x) if isinstance(x, (str, int)) and not isinstance(x, bool) else str(x)


def _number(name: str, value, spec: dict, integer: bool):
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LabError(f"{name} must be {kind}, got {shown(value)}", name)
    if isinstance(value, numbers.Integral):
        value = int(value)      # exact, however large: compared with the range below as is
    else:
        try:
            value = float(value)
        except OverflowError:   # a huge Fraction or Decimal
            raise LabError(f"{name} must be a finite number, got {shown(value)}", name) from None
        if not math.isfinite(value):
            raise LabError(f"{name} must be a finite number, got {shown(value)}", name)
        if integer:
            if not value.is_integer():
                raise LabError(f"{name} must be an integer, got {shown(value)}", name)
            value = int(value)
    lo, hi = spec["min"], spec["max"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise LabError(f"{name} must be between {_fmt(lo)} and {_fmt(hi)}, got {_fmt(value)}",
                       name)
    if not integer:
        try:
            value = float(value)
        except OverflowError:   # an int beyond float range, in a setting without bounds
            raise LabError(f"{name} must be a finite number, got {shown(value)}", name) from None
    return value


def _choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise LabError(f"{name} must be one of {', '.join(choices)}, got {shown(value)}", name)
    return value


def _check_value(name: str, value, spec: dict):
    kind = spec["type"]
    if value is None and spec["nullable"]:
        return None
    if kind == "float":
        return _number(name, value, spec, integer=False)
    if kind == "int":
        return _number(name, value, spec, integer=True)
    if kind == "choice":
        return _choice(name, value, spec["choices"])
    if kind == "bool":
        if not isinstance(value, bool):
            raise LabError(f"{name} must be true or false, got {shown(value)}", name)
        return value
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            raise LabError(f"{name} must be a list, got {shown(value)}", name)
        if not spec["min_len"] <= len(value) <= spec["max_len"]:
            raise LabError(f"{name} must have {spec['min_len']} to {spec['max_len']} entries, "
                           f"got {len(value)}", name)
        item = spec["item"]
        out = []
        for i, v in enumerate(value):
            where = f"{name}[{i}]"
            if item["type"] == "int":
                try:
                    out.append(_number(where, v, item, integer=True))
                except LabError as e:
                    raise LabError(str(e), name) from None
            else:
                try:
                    out.append(_choice(where, v, item["choices"]))
                except LabError as e:
                    raise LabError(str(e), name) from None
        return out
    raise AssertionError(f"setting {name} has an unknown type {kind!r}")  # a bug in SETTINGS


def validate(changes, current: dict | None = None) -> dict:
    """Check ``changes`` and return the whole new settings (``current`` with them applied).

    Args:
        changes: ``{name: value}`` of settings to change.
        current: the settings now (default: :func:`defaults`); not modified.

    Returns:
        A new dict with every setting: values normalised (ints as int, floats as float,
        ``features`` in the table's order without repeats; ``activations`` fitted to the
        number of hidden layers when only ``hidden`` changed).

    Raises:
        LabError: an unknown name or a bad value; ``field`` names it.

    Example::

        validate({"lr": 0.1, "hidden": [4]})["hidden"]    # [4]
    """
    if not isinstance(changes, dict):
        raise LabError(f"settings must be an object of name: value, got "
                       f"{type(changes).__name__}")
    new = defaults() if current is None else copy.deepcopy(current)
    for name, value in changes.items():
        if name not in SETTINGS:
            raise LabError(f"unknown setting {shown(name)}; known settings are "
                           f"{', '.join(SETTINGS)}", name if isinstance(name, str) else None)
        new[name] = _check_value(name, value, SETTINGS[name])
    if "features" in changes:
        chosen = set(new["features"])
        new["features"] = [f for f in FEATURES if f in chosen]
    if "activation" in changes and "activations" not in changes:
        new["activations"] = None  # one activation chosen for all layers replaces per-layer ones
    per_layer = new["activations"]
    if per_layer is not None and len(per_layer) != len(new["hidden"]):
        if "activations" in changes:
            raise LabError(f"activations must name one activation per hidden layer "
                           f"({len(new['hidden'])}), got {len(per_layer)}", "activations")
        # hidden changed alone: keep the layers' choices that still exist, fill the rest.
        fill = [new["activation"]] * len(new["hidden"])
        new["activations"] = (per_layer + fill)[:len(new["hidden"])] if new["hidden"] else None
    return new


# -- URL form -----------------------------------------------------------------------------------
def _query_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_query_value(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_query(settings: dict, *, all_settings: bool = False) -> str:
    """The URL query string of ``settings`` (only those that differ from the defaults).

    Example::

        to_query({**defaults(), "lr": 0.3, "hidden": [4, 2]})    # 'hidden=4%2C2&lr=0.3'
    """
    base = defaults()
    pairs = [(name, _query_value(settings[name])) for name in SETTINGS
             if name in settings and (all_settings or settings[name] != base[name])]
    return urlencode(sorted(pairs))


def _parse_scalar(name: str, text: str, kind: str):
    try:
        if kind == "int":
            number = float(text)
            return int(number) if number == int(number) else number
        if kind == "float":
            return float(text)
    except (ValueError, OverflowError):
        raise LabError(f"{name} must be {'an integer' if kind == 'int' else 'a number'}, got "
                       f"{text!r}", name) from None
    if kind == "bool":
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise LabError(f"{name} must be true or false, got {text!r}", name)
    return text


def from_query(query: str, *, strict: bool = True) -> dict:
    """Parse a URL query string into ``{name: value}`` changes (checked by :func:`validate`).

    Args:
        query: ``"lr=0.3&hidden=4,2"`` (a leading ``?`` is ignored).
        strict: raise on an unknown name (else skip it: links from a newer lab still work).

    Example::

        from_query("lr=0.3&hidden=4,2")      # {'lr': 0.3, 'hidden': [4, 2]}
    """
    changes: dict = {}
    for name, text in parse_qsl(query.lstrip("?"), keep_blank_values=True):
        spec = SETTINGS.get(name)
        if spec is None:
            if strict:
                raise LabError(f"unknown setting {name!r} in the link", name)
            continue
        if spec["type"] == "list":
            if text == "":
                changes[name] = None if spec["nullable"] else []
            else:
                item = spec["item"]["type"]
                changes[name] = [_parse_scalar(name, part.strip(), item)
                                 for part in text.split(",")]
        else:
            changes[name] = _parse_scalar(name, text, spec["type"])
    return changes
