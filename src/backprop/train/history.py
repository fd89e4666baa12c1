"""``History``: what a training run recorded, step by step and epoch by epoch.

Two lists of flat dicts of plain Python values:

- ``history.steps``: one record per optimizer step, ``{"step", "epoch", "loss", "lr",
  "grad_norm"}`` plus ``"accuracy"`` (of that step's batch) for classification;
- ``history.epochs``: one record per epoch, ``{"epoch", "step", "loss", "lr", "time"}``
  plus ``"accuracy"``, ``"val_loss"``, ``"val_accuracy"`` and any custom metrics
  where they apply.

Steps and epochs count from 1: step 1 is the first optimizer step, epoch 1 the first
pass over the data. ``loss`` in an epoch record is the mean training loss over the
epoch (weighted by batch size), measured while training; ``time`` is the seconds the
epoch took, validation included.

Example::

    history = fit(model, loss_fn, optimizer, loader, epochs=10, val_data=val_loader)
    history.epoch_metric("val_loss")          # [0.91, 0.62, ...], one per epoch
    history.to_jsonl("metrics.jsonl")
    History.from_jsonl("metrics.jsonl").epochs[-1]
"""
from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np

from backprop.serialization import atomic_write_text, json_dumps, json_restore_nonfinite, json_safe

__all__ = ["History"]


def _plain(record: dict, where: str) -> dict:
    if not isinstance(record, dict):
        raise TypeError(f"History: {where} must be dicts, got {type(record).__name__}")
    return {str(k): json_restore_nonfinite(v) for k, v in record.items()}


class History:
    """Per-step and per-epoch training records, with JSON and JSON-lines round trips.

    Args:
        steps: step records (dicts), oldest first.
        epochs: epoch records (dicts), oldest first.

    Example::

        h = History()
        h.add_step({"step": 1, "epoch": 1, "loss": 2.3, "lr": 0.01, "grad_norm": 1.7})
        h.add_epoch({"epoch": 1, "step": 1, "loss": 2.3, "lr": 0.01, "time": 0.1})
        h.epoch_metric("loss")                  # [2.3]
    """

    def __init__(self, steps=None, epochs=None) -> None:
        self.steps: list[dict] = [] if steps is None else [_plain(r, "steps") for r in steps]
        self.epochs: list[dict] = [] if epochs is None else [_plain(r, "epochs") for r in epochs]
        self._caches = (_ColumnCache(), _ColumnCache())  # for _to_checkpoint

    # -- recording --------------------------------------------------------------------
    def add_step(self, record: dict) -> None:
        """Append one step record."""
        self.steps.append(record)

    def add_epoch(self, record: dict) -> None:
        """Append one epoch record."""
        self.epochs.append(record)

    # -- reading ----------------------------------------------------------------------
    def epoch_metric(self, name: str) -> list:
        """The values of ``name`` in every epoch record, in order (None where it is missing).

        Raises:
            KeyError: no epoch record has ``name``; the message lists those that exist.
        """
        return self._column(self.epochs, name, "epoch")

    def step_metric(self, name: str) -> list:
        """The values of ``name`` in every step record, in order (None where it is missing)."""
        return self._column(self.steps, name, "step")

    @staticmethod
    def _column(records: list, name: str, kind: str) -> list:
        if records and not any(name in r for r in records):
            known = sorted({k for r in records for k in r})
            raise KeyError(f"History: no {kind} record has {name!r}; {kind} records have "
                           f"{', '.join(known)}")
        return [r.get(name) for r in records]

    def best_epoch(self, monitor: str = "val_loss", mode: str = "min") -> dict | None:
        """The epoch record with the best finite ``monitor`` value (the first if tied), or None."""
        if mode not in ("min", "max"):
            raise ValueError(f"History.best_epoch: mode must be 'min' or 'max', got {mode!r}")
        best = None
        for record in self.epochs:
            value = record.get(monitor)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            if best is None or (value < best[monitor] if mode == "min" else value > best[monitor]):
                best = record
        return best

    @property
    def last_epoch(self) -> dict | None:
        """The latest epoch record, or None before the first epoch ends."""
        return self.epochs[-1] if self.epochs else None

    @property
    def last_step(self) -> dict | None:
        """The latest step record, or None before the first step."""
        return self.steps[-1] if self.steps else None

    def __len__(self) -> int:
        return len(self.epochs)

    def __eq__(self, other) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        last = self.last_epoch
        shown = "" if last is None else ", last: " + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in last.items())
        return f"History({len(self.epochs)} epochs, {len(self.steps)} steps{shown})"

    # -- saving and loading -----------------------------------------------------------
    def to_dict(self) -> dict:
        """``{"steps": [...], "epochs": [...]}`` of plain JSON values (NaN/inf as strings)."""
        return json_safe({"steps": self.steps, "epochs": self.epochs})

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """Rebuild a history from :meth:`to_dict`'s output."""
        if not isinstance(d, dict) or not {"steps", "epochs"} <= set(d):
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"History.from_dict: expected a dict with 'steps' and 'epochs', "
                             f"got {got}")
        return cls(d["steps"], d["epochs"])

    def _to_checkpoint(self) -> dict:
        """A compact form for training checkpoints: columns of NumPy arrays."""
        return {"steps": self._caches[0].columns_of(self.steps),
                "epochs": self._caches[1].columns_of(self.epochs)}

    @classmethod
    def _from_checkpoint(cls, d: dict) -> History:
        return cls(_columns_from_arrays(d["steps"]), _columns_from_arrays(d["epochs"]))

    def to_json(self, path) -> None:
        """Write :meth:`to_dict` as one JSON document to ``path`` (atomically)."""
        atomic_write_text(path, json_dumps(self.to_dict()) + "\n")

    @classmethod
    def from_json(cls, path) -> History:
        """Read a history written by :meth:`to_json`."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_jsonl(self, path) -> None:
        """Write every record as one JSON line ``{"kind": "step"|"epoch", ...}``, in time order.

        Step records come before the record of the epoch they belong to; this is the
        format :class:`~backprop.train.JSONLinesLogger` writes during training.
        """
        atomic_write_text(path, "".join(json_line(kind, r) for kind, r in self.records()))

    @classmethod
    def from_jsonl(cls, path) -> History:
        """Read a JSON-lines file written by :meth:`to_jsonl` or ``JSONLinesLogger``.

        Unreadable lines are skipped with a warning (see :func:`read_json_lines`).
        """
        steps: list[dict] = []
        epochs: list[dict] = []
        for kind, record in read_json_lines(path, ("step", "epoch"), "History.from_jsonl"):
            (steps if kind == "step" else epochs).append(record)
        return cls(steps, epochs)

    def records(self):
        """Yield ``(kind, record)`` for every record in time order (steps before their epoch)."""
        return in_time_order(self.steps, self.epochs)

    def truncate(self, step: int) -> None:
        """Drop the records after optimizer step ``step`` (used when resuming)."""
        self.steps = [r for r in self.steps if r.get("step", 0) <= step]
        self.epochs = [r for r in self.epochs if r.get("step", 0) <= step]


_MISSING = object()


def _columns_to_arrays(records: list) -> dict:
    """Records as columns: an int64/float64 array per numeric key, JSON for the rest.

    Checkpoints hold the whole history and are written often; columns of arrays go
    into the file as raw bytes, where a list of dicts would be encoded node by node.
    """
    keys: list = []
    for r in records:
        keys += [k for k in r if k not in keys]
    arrays, other = {}, {}
    for key in keys:
        values = [r.get(key, _MISSING) for r in records]
        if all(type(v) is int for v in values):
            arrays[key] = np.array(values, dtype=np.int64)
        elif all(type(v) is float for v in values):
            arrays[key] = np.array(values, dtype=np.float64)
        else:  # missing somewhere, mixed ints and floats, or not a number (a list of rates)
            other[key] = json_dumps([[i, v] for i, v in enumerate(values) if v is not _MISSING])
    return {"n": len(records), "keys": keys, "arrays": arrays, "other": other}


class _ColumnCache:
    """The columns of a growing list of records, converting only the records added since.

    Saving a checkpoint every epoch would otherwise convert the whole history each time
    (quadratic in the run's length). Any surprise (a new key, a non-numeric value, a
    shorter or replaced list) falls back to converting everything.
    """

    def __init__(self):
        self.records_id = None
        self.n = 0
        self.columns = None

    def columns_of(self, records: list) -> dict:
        fresh = self.columns is None or id(records) != self.records_id or len(records) < self.n
        if not fresh and len(records) == self.n:
            return self.columns
        if not fresh:
            chunk = _columns_to_arrays(records[self.n:])
            if chunk["other"] or chunk["keys"] != self.columns["keys"] or self.columns["other"]:
                fresh = True
            else:
                old = self.columns["arrays"]
                if any(chunk["arrays"][k].dtype != old[k].dtype for k in old):
                    fresh = True  # e.g. an int column received a float: convert it all
                else:
                    arrays = {k: np.concatenate([old[k], chunk["arrays"][k]]) for k in old}
                    self.columns = {"n": len(records), "keys": chunk["keys"], "arrays": arrays,
                                    "other": {}}
        if fresh:
            self.columns = _columns_to_arrays(records)
        self.records_id, self.n = id(records), len(records)
        return self.columns


def _columns_from_arrays(columns: dict) -> list:
    n = int(columns["n"])
    records: list[dict] = [{} for _ in range(n)]
    for key in columns["keys"]:
        if key in columns["arrays"]:
            values = np.asarray(columns["arrays"][key]).tolist()
            if len(values) != n:
                raise ValueError(f"History: the checkpoint's column {key!r} holds {len(values)} "
                                 f"values for {n} records")
            for record, value in zip(records, values, strict=True):
                record[key] = value
        else:
            for i, value in json.loads(columns["other"][key]):
                records[i][key] = json_restore_nonfinite(value)
    return records


def in_time_order(steps: list, epochs: list):
    """Yield ``("step", record)`` and ``("epoch", record)`` in time order: each epoch after the
    steps it covers (its ``"step"``), then any steps after the last epoch."""
    i = 0
    for epoch in epochs:
        last_step = epoch.get("step") or 0
        while i < len(steps) and (steps[i].get("step") or 0) <= last_step:
            yield "step", steps[i]
            i += 1
        yield "epoch", epoch
    for record in steps[i:]:
        yield "step", record


def read_json_lines(path, kinds, reader: str, check=None) -> list:
    """The ``(kind, record)`` pairs of a JSON-lines file of ``{"kind": ..., ...}`` objects.

    One policy for every JSON-lines file backprop reads (``metrics.jsonl``,
    ``diagnostics.jsonl``), which are appended to while a run trains:

    - a line that is not a JSON object with a ``"kind"`` in ``kinds`` (or that ``check``
      refuses) is skipped, and one warning names the file and every line skipped: one
      damaged line must not cost the records around it;
    - a last line cut short (no newline, not JSON: the writer was killed mid-line) is
      skipped silently;
    - a file with lines but none readable raises ValueError: it is not such a file.

    Args:
        path: the file.
        kinds: the accepted values of ``"kind"``.
        reader: the caller's name, for the messages (``"History.from_jsonl"``).
        check: optional ``check(kind, record) -> record``; for a record it refuses it
            raises ValueError with the problem, to follow "line N " (``"needs ..."``).

    Returns:
        ``[(kind, record)]`` in file order, ``"kind"`` removed from each record.

    Example::

        read_json_lines("runs/x/metrics.jsonl", ("step", "epoch"), "History.from_jsonl")
    """
    path = os.fspath(path)
    with open(path, "rb") as f:  # bytes: a line of binary garbage must not sink the file
        lines = f.readlines()
    records, skipped = [], []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError as e:  # also UnicodeDecodeError
            if number == len(lines) and not raw.endswith(b"\n"):
                break  # the writer died mid-line: everything before it stands
            skipped.append((number, f"is not JSON: {e}"))
            continue
        kind = record.pop("kind", None) if isinstance(record, dict) else None
        if kind not in kinds:
            skipped.append((number, f"needs \"kind\": one of {', '.join(kinds)}; "
                                    f"got {_short(kind)}"))
            continue
        try:
            records.append((kind, record if check is None else check(kind, record)))
        except ValueError as e:
            skipped.append((number, str(e)))
    if skipped and not records:
        number, problem = skipped[0]
        raise ValueError(f"{reader}: {path} has no readable record: line {number} {problem}")
    if skipped:
        shown = "; ".join(f"line {number} {problem}" for number, problem in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(f"{reader}: skipped {len(skipped)} unreadable "
                      f"line{'s' if len(skipped) > 1 else ''} of {path}: {shown}{more}",
                      stacklevel=3)
    return records


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def json_line(kind: str, record: dict) -> str:
    """One JSON-lines record: ``{"kind": kind, **record}`` and a newline."""
    out = {"kind": kind}
    out.update(record)
    return json_dumps(out) + "\n"
