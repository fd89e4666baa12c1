"""The search space of a sweep: grid axes, random samples, and the trials they expand to.

A space maps RunConfig field names to a list of values (a grid axis) or a sampler
(:meth:`Space.loguniform`, :meth:`Space.uniform`, :meth:`Space.choice`). Grids multiply;
each grid point is repeated ``samples`` times with fresh draws, as Ray Tune combines them.
The expansion is plain Python and deterministic (seeded), so a trial's id names the same
trial in every run of the sweep: resume and retries find the same folder.

Example::

    space = {"lr": [1e-3, 1e-2, 1e-1], "batch_size": Space.choice([16, 64])}
    points = expand(space, samples=2, seed=0)   # 6 dicts of field -> value
"""
from __future__ import annotations

import dataclasses
import math
import random
import re
from typing import Any

from backprop.errors import BackpropError
from backprop.train.experiment import RunConfig

__all__ = ["Space", "SweepError", "FIELDS", "field_name", "parse_grid", "parse_sample",
           "count_trials", "expand", "trial_id", "DEFAULT_MAX_TRIALS"]

DEFAULT_MAX_TRIALS = 1000
"""Sweeps larger than this are refused unless the cap is raised (``max_trials``)."""


class SweepError(BackpropError, ValueError):
    """A sweep that can't run: a bad space, too many trials, no Ray, an unreachable cluster."""


# RunConfig fields a sweep may vary ("out" is the sweep's own), with the type of a value.
_TYPES = {"dataset": str, "layers": str, "activation": str, "optimizer": str, "lr": float,
          "batch_size": int, "epochs": int, "schedule": str, "warmup_steps": int,
          "clip": float, "weight_decay": float, "momentum": float, "seed": int,
          "noise": float, "n_samples": int, "test_fraction": float}
FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name in _TYPES)
"""The RunConfig fields a sweep can vary."""


def field_name(key: str) -> str:
    """The RunConfig field of a CLI (``batch-size``) or field (``batch_size``) spelling."""
    name = str(key).strip().lstrip("-").replace("-", "_")
    if name not in _TYPES:
        raise SweepError(f"cannot sweep {key!r}: not a training option; choose from "
                         f"{', '.join(f.replace('_', '-') for f in FIELDS)}")
    return name


class Space:
    """A random axis of a sweep: draws one value per trial from a distribution.

    Example::

        Space.loguniform(1e-4, 1)     # lr spread evenly over the decades
        Space.uniform(0.0, 0.9)       # momentum
        Space.choice(["sgd", "adam"])
    """

    def __init__(self, kind: str, args: tuple):
        self.kind, self.args = kind, tuple(args)

    @classmethod
    def loguniform(cls, low: float, high: float) -> Space:
        """Values between ``low`` and ``high`` (both > 0), uniform in their logarithm."""
        low, high = _number(low, "loguniform"), _number(high, "loguniform")
        if not 0 < low < high:
            raise SweepError(f"loguniform needs 0 < low < high, got {low:g} and {high:g}")
        return cls("loguniform", (low, high))

    @classmethod
    def uniform(cls, low: float, high: float) -> Space:
        """Values uniform between ``low`` and ``high``."""
        low, high = _number(low, "uniform"), _number(high, "uniform")
        if not low < high:
            raise SweepError(f"uniform needs low < high, got {low:g} and {high:g}")
        return cls("uniform", (low, high))

    @classmethod
    def choice(cls, values) -> Space:
        """One of ``values``, each equally likely."""
        values = list(values)
        if not values:
            raise SweepError("choice needs at least one value")
        return cls("choice", tuple(values))

    def draw(self, rng: random.Random):
        if self.kind == "loguniform":
            low, high = self.args
            return math.exp(rng.uniform(math.log(low), math.log(high)))
        if self.kind == "uniform":
            return rng.uniform(*self.args)
        return self.args[rng.randrange(len(self.args))]

    def to_dict(self) -> dict:
        return {"sample": self.kind, "args": list(self.args)}

    @classmethod
    def from_dict(cls, d: dict) -> Space:
        kind, args = d["sample"], d["args"]
        if kind == "choice":
            return cls.choice(args)
        return getattr(cls, kind)(*args)

    def __eq__(self, other):
        return isinstance(other, Space) and (self.kind, self.args) == (other.kind, other.args)

    def __repr__(self):
        if self.kind == "choice":
            return f"Space.choice({list(self.args)!r})"
        return f"Space.{self.kind}({self.args[0]!r}, {self.args[1]!r})"


def _number(text, what: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise SweepError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SweepError(f"{what}: {text!r} is not a finite number")
    return value


def _value(field: str, text):
    """A CLI string (or a Python value) as a value of ``field``."""
    kind = _TYPES[field]
    if not isinstance(text, str):
        if kind is float and isinstance(text, int) and not isinstance(text, bool):
            return float(text)
        return text
    text = text.strip()
    if text.lower() == "none" and field in ("layers", "warmup_steps", "clip", "noise",
                                             "n_samples"):
        return None
    if kind is str:
        if not text:
            raise SweepError(f"{field.replace('_', '-')}: an empty value")
        return text
    if kind is int:
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not number.is_integer():
                raise SweepError(f"{field.replace('_', '-')}: {text!r} is not an "
                                 f"integer") from None
            return int(number)
    return _number(text, field.replace("_", "-"))


_RANGE = re.compile(r"^([^:]+):([^:]+):(log|lin):([^:]+)$")


def parse_grid(spec: str) -> tuple:
    """``KEY=SPEC`` of ``--grid`` as ``(field, values)``.

    SPEC is ``a,b,c`` (a list) or ``lo:hi:log:N`` / ``lo:hi:lin:N`` (N values from lo to
    hi, both included, evenly spaced in the logarithm or linearly; rounded for integer
    fields, repeats dropped).

    Example::

        parse_grid("lr=1e-3:1:log:4")        # ("lr", [0.001, 0.01, 0.1, 1.0])
        parse_grid("batch-size=16,64")       # ("batch_size", [16, 64])
    """
    key, _, text = _split(spec, "--grid")
    field = field_name(key)
    match = _RANGE.match(text.strip())
    if match:
        lo, hi = _number(match.group(1), f"--grid {key}"), _number(match.group(2),
                                                                    f"--grid {key}")
        try:
            n = int(match.group(4))
        except ValueError:
            raise SweepError(f"--grid {key}: the count {match.group(4)!r} is not an "
                             f"integer") from None
        if _TYPES[field] not in (int, float):
            raise SweepError(f"--grid {key}: a range needs a numeric option; list the "
                             f"values instead (a,b,c)")
        if n < 1:
            raise SweepError(f"--grid {key}: the count must be at least 1, got {n}")
        if n > DEFAULT_MAX_TRIALS * 1000:
            raise SweepError(f"--grid {key}: {n} values is absurd")
        if match.group(3) == "log":
            if lo <= 0 or hi <= 0:
                raise SweepError(f"--grid {key}: a log range needs lo and hi above 0, got "
                                 f"{lo:g} and {hi:g}")
            values = [lo] if n == 1 else [
                math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (n - 1))
                for i in range(n)]
        else:
            values = [lo] if n == 1 else [lo + i * (hi - lo) / (n - 1) for i in range(n)]
        if _TYPES[field] is int:
            values = [int(round(v)) for v in values]
        else:
            values = [float(f"{v:.6g}") for v in values]  # 0.001, not 0.0010000000000000002
        values = list(dict.fromkeys(values))
    else:
        values = [_value(field, part) for part in text.split(",") if part.strip()]
        if not values:
            raise SweepError(f"--grid {key}: no values (give a,b,c or lo:hi:log:N)")
    return field, values


def parse_sample(spec: str) -> tuple:
    """``KEY=loguniform:lo:hi|uniform:lo:hi|choice:a,b`` of ``--sample`` as ``(field, Space)``."""
    key, _, text = _split(spec, "--sample")
    field = field_name(key)
    kind, _, rest = text.strip().partition(":")
    if kind in ("loguniform", "uniform"):
        parts = rest.split(":")
        if len(parts) != 2:
            raise SweepError(f"--sample {key}: write {kind}:LOW:HIGH, got {text!r}")
        if _TYPES[field] is str:
            raise SweepError(f"--sample {key}: {kind} needs a numeric option; use choice:a,b")
        space = getattr(Space, kind)(_number(parts[0], f"--sample {key}"),
                                     _number(parts[1], f"--sample {key}"))
        return field, space
    if kind == "choice":
        values = [_value(field, part) for part in rest.split(",") if part.strip()]
        if not values:
            raise SweepError(f"--sample {key}: choice needs values, e.g. choice:sgd,adam")
        return field, Space.choice(values)
    raise SweepError(f"--sample {key}: unknown distribution {kind!r}; use "
                     f"loguniform:LOW:HIGH, uniform:LOW:HIGH or choice:a,b")


def _split(spec: str, flag: str) -> tuple:
    key, sep, text = str(spec).partition("=")
    if not sep or not key.strip():
        raise SweepError(f"{flag} needs KEY=VALUES, got {spec!r}")
    return key.strip(), sep, text


def normalize(space: dict) -> dict:
    """``space`` with field names checked and values as lists or :class:`Space` objects."""
    if not isinstance(space, dict):
        raise SweepError(f"a sweep space is a dict of option -> values, got "
                         f"{type(space).__name__}")
    out: dict[str, Any] = {}
    for key, values in space.items():
        field = field_name(key)
        if field in out:
            raise SweepError(f"{field.replace('_', '-')} is swept twice")
        if isinstance(values, Space):
            out[field] = values
            continue
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        values = [_value(field, v) for v in values]
        if not values:
            raise SweepError(f"the grid of {field.replace('_', '-')} is empty: no trials "
                             f"to run")
        out[field] = values
    return out


def count_trials(space: dict, samples: int | None = None) -> int:
    """How many trials ``space`` expands to (without expanding it)."""
    space = normalize(space)
    n = 1
    for values in space.values():
        if not isinstance(values, Space):
            n *= len(values)
    return n * _samples(samples)


def _samples(samples) -> int:
    if samples is None:
        return 1
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise SweepError(f"samples must be an integer >= 1, got {samples!r}")
    return samples


def expand(space: dict, samples: int | None = None, seed: int = 0,
           max_trials: int = DEFAULT_MAX_TRIALS) -> list:
    """The trials of ``space`` as a list of ``{field: value}`` dicts, in a fixed order.

    Each of ``samples`` rounds walks the grid (the last axis fastest) and draws every
    random axis afresh for each point, from a generator seeded with ``seed``.
    More than ``max_trials`` trials, or none, is a :class:`SweepError`.
    """
    space = normalize(space)
    n = count_trials(space, samples)
    if n > max_trials:
        raise SweepError(f"the sweep has {n:,} trials, more than the cap of {max_trials:,}; "
                         f"raise it with --max-trials {n} (max_trials={n} in Python) if you "
                         f"mean it")
    if not space:
        raise SweepError("the sweep space is empty: give at least one --grid or --sample")
    grid = [(k, v) for k, v in space.items() if not isinstance(v, Space)]
    random_axes = [(k, v) for k, v in space.items() if isinstance(v, Space)]
    points: list[dict] = [{}]
    for key, values in grid:
        points = [{**p, key: v} for p in points for v in values]
    rng = random.Random(seed)
    trials = []
    for _ in range(_samples(samples)):
        for point in points:
            trial = dict(point)
            for key, sampler in random_axes:
                trial[key] = sampler.draw(rng)
            trials.append({k: trial[k] for k in space})  # the space's key order
    return trials


def _show(value) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9.+\-_]", "_", text)


def trial_id(index: int, point: dict, total: int = 1000) -> str:
    """A trial's folder name, from its place in the sweep and its values.

    Example::

        trial_id(3, {"lr": 0.01, "batch_size": 32})   # "t003-lr=0.01-batch_size=32"
    """
    width = max(3, len(str(max(total - 1, 0))))
    parts = [f"t{index:0{width}d}"] + [f"{k}={_show(v)}" for k, v in point.items()]
    name = "-".join(parts)
    return name if len(name) <= 120 else name[:120]
