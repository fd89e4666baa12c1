"""``Readings``: what a :class:`~backprop.diagnostics.Monitor` measured, as plain data.

Four parts, all plain Python values (dicts, lists, floats, ints, strings, None):

- ``meta``: ``{"interval", "params" (names in model order), "layers" (modules that
  produced activation statistics, in forward order), "batch_size", "framework"
  (``"backprop"`` or ``"torch"``: what trained the network; the doctor words its advice
  for it), "framework_version" (PyTorch's), ...}``;
- ``steps``: one record per recorded optimizer step, in order::

      {"step", "epoch", "loss", "lr", "grad_norm",
       "params": {name: {"grad_norm", "weight_norm", "update_ratio", "grad_abs_mean"}},
       "activations": {layer: {"kind", "mean", "std", "dead_fraction",
                               "saturated_fraction", "hist": {"edges", "counts"}}},
       "noise": None | {"batches", "batch_size", "trace_cov", "grad_sq_norm", "b_noise"}}

- ``epochs``: ``{"epoch", "step", "loss", "val_loss"?, "accuracy"?, "val_accuracy"?, "lr"?}``;
- ``nonfinite``: None, or the first NaN/Inf seen: ``{"step", "kind", "name", "detail"}``
  with ``kind`` one of ``"loss"``, ``"activation"``, ``"gradient"``, ``"parameter"``.

On disk it is a JSON-lines file, one object per line with a ``"kind"`` of ``"meta"``,
``"step"``, ``"epoch"`` or ``"nonfinite"``: the record's own keys follow, except for
``nonfinite``, whose record (it has a ``"kind"`` of its own) is nested under the
``"nonfinite"`` key. NaN and infinities are written as the
strings ``"nan"``, ``"inf"``, ``"-inf"`` (as :mod:`backprop.train.history` does) and
read back as floats. Several ``meta`` lines merge, later keys winning: the Monitor's
live file adds one whenever it learns something new (the layers, the batch size).

Example::

    readings = monitor.readings
    readings.param_series("layers.0.weight", "grad_norm")   # one value per recorded step
    readings.to_jsonl("runs/x/diagnostics.jsonl")
    Readings.from_jsonl("runs/x/diagnostics.jsonl").last()["grad_norm"]
"""
from __future__ import annotations

import os
from typing import Any, TextIO

from backprop.serialization import atomic_write_text, json_dumps, json_restore_nonfinite, json_safe
from backprop.train.history import in_time_order, read_json_lines

__all__ = ["Readings", "ReadingsWriter"]

FORMAT = "backprop.diagnostics.readings/1"
_KINDS = ("meta", "step", "epoch", "nonfinite")
# Values under these keys are names or prose, never numbers: a layer called "inf" stays a string.
_TEXT_KEYS = frozenset({"kind", "name", "detail", "format"})
_NAME_LIST_KEYS = frozenset({"params", "layers"})  # meta's lists of names (not step["params"])


# -- JSON with NaN and infinities (serialization.json_safe's "string" form) --------------------
def _decode(value):
    """Undo ``json_safe``: ``"nan"``/``"inf"``/``"-inf"`` become floats, except under the
    keys that hold names or prose."""
    if isinstance(value, dict):
        return {k: (v if k in _TEXT_KEYS or (k in _NAME_LIST_KEYS and isinstance(v, list))
                    else _decode(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return json_restore_nonfinite(value)


def _line(kind: str, record: dict) -> str:
    out: dict[str, Any] = {"kind": kind}
    if kind == "nonfinite":  # its record has a "kind" of its own: nest it
        out["nonfinite"] = record
    else:
        out.update(record)
    return json_dumps(out) + "\n"


def _default_meta() -> dict:
    return {"format": FORMAT, "interval": None, "params": [], "layers": [], "batch_size": None}


# -- the readings -------------------------------------------------------------------------------
class Readings:
    """Per-step measurements of a training run: ``meta``, ``steps``, ``epochs``, ``nonfinite``.

    Args:
        meta: run facts (``interval``, ``params``, ``layers``, ``batch_size``...); missing
            keys get defaults.
        steps: step records, oldest first.
        epochs: epoch records, oldest first.
        nonfinite: None, or the first non-finite value seen.

    Example::

        r = Readings(meta={"interval": 1, "params": ["fc.weight", "fc.bias"]})
        r.steps.append({"step": 1, "grad_norm": 0.5,
                        "params": {"fc.weight": {"grad_norm": 0.4, "weight_norm": 2.0,
                                                 "update_ratio": 0.01, "grad_abs_mean": 0.1}}})
        r.param_series("fc.weight", "grad_norm")      # [0.4]
        r.layer_weight_names()                        # ['fc.weight']
    """

    def __init__(self, meta: dict | None = None, steps=None, epochs=None, nonfinite=None):
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"Readings: meta must be a dict, got {type(meta).__name__}")
        if nonfinite is not None and not isinstance(nonfinite, dict):
            raise TypeError(f"Readings: nonfinite must be None or a dict, got "
                            f"{type(nonfinite).__name__}")
        self.meta: dict = _default_meta()
        self.meta.update(meta or {})
        self.steps: list[dict] = list(steps or [])
        self.epochs: list[dict] = list(epochs or [])
        self.nonfinite: dict | None = nonfinite

    # -- reading --------------------------------------------------------------------------
    def __len__(self) -> int:
        """The number of recorded steps."""
        return len(self.steps)

    def __repr__(self) -> str:
        span = f", steps {self.steps[0]['step']}..{self.steps[-1]['step']}" if self.steps else ""
        bad = ""
        if self.nonfinite is not None:
            bad = (f", non-finite {self.nonfinite.get('kind')} {self.nonfinite.get('name')!r} "
                   f"at step {self.nonfinite.get('step')}")
        return (f"Readings({len(self.steps)} recorded steps{span}, {len(self.epochs)} epochs, "
                f"{len(self.meta.get('params') or [])} params, "
                f"{len(self.meta.get('layers') or [])} layers{bad})")

    def last(self) -> dict | None:
        """The latest step record, or None before the first."""
        return self.steps[-1] if self.steps else None

    def step_numbers(self) -> list[int]:
        """The optimizer step of every record: the x axis of the ``*_series`` lists."""
        return [r["step"] for r in self.steps]

    def series(self, key: str) -> list:
        """A top-level value (``"loss"``, ``"grad_norm"``, ``"lr"``...) of every step record.

        None where a record lacks it.
        """
        return [r.get(key) for r in self.steps]

    def param_series(self, name: str, key: str) -> list:
        """One parameter's ``key`` (``"grad_norm"``, ``"weight_norm"``, ``"update_ratio"``,
        ``"grad_abs_mean"``) in every step record, None where it was not measured
        (the parameter had no gradient at that step).

        Raises:
            KeyError: ``name`` is not a parameter of the run; the message lists them.

        Example::

            readings.param_series("layers.0.weight", "update_ratio")   # [0.012, 0.009, ...]
        """
        known = self.meta.get("params") or []
        if name not in known and not any(name in r.get("params", {}) for r in self.steps):
            raise KeyError(f"Readings.param_series: no parameter {name!r}; the parameters are "
                           f"{', '.join(known) or '(none)'}")
        return [(r.get("params") or {}).get(name, {}).get(key) for r in self.steps]

    def activation_series(self, layer: str, key: str) -> list:
        """One layer's activation statistic ``key`` (``"mean"``, ``"std"``,
        ``"dead_fraction"``...) in every step record, None where it is missing.

        Raises:
            KeyError: no record has activations of ``layer``; the message lists the layers.
        """
        known = self.meta.get("layers") or []
        if layer not in known and not any(layer in (r.get("activations") or {})
                                          for r in self.steps):
            raise KeyError(f"Readings.activation_series: no layer {layer!r}; the layers are "
                           f"{', '.join(known) or '(none)'}")
        return [((r.get("activations") or {}).get(layer) or {}).get(key) for r in self.steps]

    def layer_weight_names(self) -> list[str]:
        """The names of the ``.weight`` parameters, in model order (one per layer with weights)."""
        return [n for n in self.meta.get("params") or [] if n.rsplit(".", 1)[-1] == "weight"]

    def records(self):
        """Yield ``(kind, record)`` for steps and epochs in time order (steps before their
        epoch)."""
        return in_time_order(self.steps, self.epochs)

    def truncate(self, step: int) -> None:
        """Drop what happened after optimizer step ``step`` (used when a run resumes)."""
        self.steps = [r for r in self.steps if (r.get("step") or 0) <= step]
        self.epochs = [r for r in self.epochs if (r.get("step") or 0) <= step]
        if self.nonfinite is not None and (self.nonfinite.get("step") or 0) > step:
            self.nonfinite = None

    # -- saving and loading ---------------------------------------------------------------
    def to_dict(self) -> dict:
        """``{"meta", "steps", "epochs", "nonfinite"}`` as JSON-ready values (NaN, inf as
        strings)."""
        return json_safe({"meta": self.meta, "steps": self.steps, "epochs": self.epochs,
                          "nonfinite": self.nonfinite})

    @classmethod
    def from_dict(cls, d: dict) -> Readings:
        """Rebuild readings from :meth:`to_dict`'s output."""
        if not isinstance(d, dict) or not {"meta", "steps", "epochs"} <= set(d):
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"Readings.from_dict: expected a dict with 'meta', 'steps' and "
                             f"'epochs', got {got}")
        return cls(_decode(d["meta"]), _decode(d["steps"]), _decode(d["epochs"]),
                   _decode(d.get("nonfinite")))

    def lines(self):
        """Yield the JSON lines of this file, in the order :meth:`to_jsonl` writes them."""
        yield _line("meta", self.meta)
        for kind, record in self.records():
            yield _line(kind, record)
        if self.nonfinite is not None:
            yield _line("nonfinite", self.nonfinite)

    def to_jsonl(self, path) -> None:
        """Write the readings to ``path`` as JSON lines, atomically (all or nothing).

        Example::

            monitor.readings.to_jsonl("diagnostics.jsonl")
        """
        atomic_write_text(path, "".join(self.lines()), "Readings.to_jsonl")

    @classmethod
    def from_jsonl(cls, path) -> Readings:
        """Read a file written by :meth:`to_jsonl` or by a Monitor's ``path=`` (live file).

        The policy of every JSON-lines reader (``train.history.read_json_lines``): a last
        line cut short (the run was killed while writing it) is ignored; any other line
        that is not a JSON record of a known kind is skipped with one warning naming the
        file and the lines; a file with no readable line raises ValueError.
        """
        meta, steps, epochs, nonfinite = {}, [], [], None
        for kind, record in read_json_lines(path, _KINDS, "Readings.from_jsonl", _check_line):
            if kind == "meta":
                meta.update(record)
            elif kind == "step":
                steps.append(record)
            elif kind == "epoch":
                epochs.append(record)
            elif nonfinite is None:  # only the first one counts
                nonfinite = record
        return cls(meta, steps, epochs, nonfinite)


def _check_line(kind: str, record: dict) -> dict:
    """One line's record, decoded (a nonfinite line's record is nested: unwrap it)."""
    if kind == "nonfinite":
        inner = record.get("nonfinite")
        if not isinstance(inner, dict):
            raise ValueError('needs its record under "nonfinite" (a nonfinite line)')
        record = inner
    return _decode(record)


class ReadingsWriter:
    """Appends readings lines to a JSON-lines file as they arrive, flushing after each.

    The Monitor's live file: a run that crashes or diverges keeps every line written
    before. Opening rewrites the file (atomically) with ``readings`` so far, so a
    resumed run's file holds exactly the run.

    Args:
        path: the file (its folder is created if needed).
        readings: what to write first (None: an empty file).
        atomic: write ``readings`` to a temporary file renamed into place, so that a
            crash never leaves the old file half rewritten (False: a plain write, for a
            file that holds nothing worth keeping yet).

    Example::

        writer = ReadingsWriter("diagnostics.jsonl", Readings(meta={"interval": 10}))
        writer.write("step", {"step": 1, "grad_norm": 0.3})
        writer.close()
    """

    def __init__(self, path, readings: Readings | None = None, atomic: bool = True):
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        self._file: TextIO | None
        if readings is not None and atomic:
            # Replace the file all or nothing (a resumed run's records), then append.
            readings.to_jsonl(self.path)
            self._file = open(self.path, "a", encoding="utf-8")
        else:  # a plain new file, without the fsyncs of an atomic write
            self._file = open(self.path, "w", encoding="utf-8")
            if readings is not None:
                self._file.writelines(readings.lines())
                self._file.flush()

    @property
    def closed(self) -> bool:
        return self._file is None

    def write(self, kind: str, record: dict) -> None:
        """Append one ``{"kind": kind, ...record}`` line and flush it to the OS."""
        if kind not in _KINDS:
            raise ValueError(f"ReadingsWriter.write: kind must be one of {', '.join(_KINDS)}, "
                             f"got {kind!r}")
        if self._file is None:
            raise ValueError(f"ReadingsWriter.write: {self.path} is closed")
        self._file.write(_line(kind, record))
        self._file.flush()

    def close(self) -> None:
        """Close the file (safe to call twice)."""
        if self._file is not None:
            self._file.close()
            self._file = None
