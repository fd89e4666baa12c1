"""The lab's WebSocket messages: what the page may send, what it gets back, and the checks.

Every message is one JSON object with a ``"type"``. The server never evaluates anything
the page sends; :func:`parse_message` turns text into a :class:`Command` or raises
:class:`ProtocolError` (answered with an ``error`` message; the session keeps running).

Size limits: :data:`MAX_MESSAGE_BYTES` (16 KB) for most messages and
:data:`MAX_CSV_MESSAGE_BYTES` (4 MB) for ``upload_csv`` (whose CSV text the session limits
to ``LIMITS["max_csv_bytes"]``, 1 MB: the message has room for its JSON escapes). A bigger
message is answered with an ``error`` and the session carries on, up to
:data:`WS_MAX_MESSAGE_BYTES` (16 MB), the server's WebSocket limit: beyond that the socket
itself is closed (1009) before the lab sees the message. The page checks a file's size
before it sends it.

Page -> server
--------------
::

    {"type": "hello", "settings": {name: value, ...}?}   first message; optional settings
                      (e.g. from the URL) replace the defaults; bad entries are reported one
                      by one (error with "field") and skipped, the rest apply. Sending hello
                      again applies its settings and re-sends everything. (Any other
                      message first starts a session with the default settings.)
    {"type": "play"}  {"type": "pause"}                  start / stop training
    {"type": "step"}       pause, train exactly one step, send "step_detail" and a state frame
    {"type": "reset", "lr": float?}   fresh weights from the seed, step 0, the diverged
                      state cleared; with lr, start again with that learning rate (the
                      divergence banner's recovery: the diverged record's recovery_lr)
    {"type": "set", "values": {name: value, ...}}         change settings (all or nothing:
                      one bad value rejects the message, an "error" names it and the current
                      "settings" follow so the controls can snap back)
    {"type": "stability_map", "lrs": [float]?, "axis": str?, "values": [...]?,
     "batch_sizes": [int]?, "steps": int?}    a map of short runs, lrs x the values of axis:
                      "batch_size" (the default), "init" (values: its choices), "depth"
                      (hidden layers, 0-6, each as wide as the first now) or "momentum"
                      (SGD+momentum's momentum, Adam's beta1); batch_sizes alone is the
                      older form of axis "batch_size" with those values. Cells already
                      made for the same settings (this server keeps them) come at once.
    {"type": "cancel_stability"}                          stop a running stability map
    {"type": "upload_csv", "text": "x1,x2,label\\n...", "name": str?}   your own data: two
                      feature columns and a label, an optional header row (dataset "csv")
    {"type": "export", "what": "script" | "checkpoint"}

Setting names and ranges are in ``GET /api/settings`` (see below).

Server -> page
--------------
::

    {"type": "settings", "values": {name: value, ...}}    after hello, every accepted set,
                      reset and upload (the full current settings)
    {"type": "status", "running": bool, "step": int}       after play / pause / step / reset
                      (and when training stops by itself, e.g. on divergence)
    {"type": "state", ...}                                  a state frame (below), at most
                      max_fps (10) per second and only while something changed; a slow
                      page gets the latest frame, never a backlog
    {"type": "step_detail", ...}                            after "step" (below)
    {"type": "error", "message": str, "field": str | None} a rejected message or setting
    {"type": "csv_loaded", "rows", "task", "classes", "class_labels", "header"}
                      class_labels: the label values (numbers or text) of classes 0, 1, ...
    {"type": "stability_start", "lrs": [...], "axis": str, "values": [...], "steps": int,
     "batch_sizes": [...] (axis "batch_size" only)}
    {"type": "stability_cell", "lr", "batch_size", "axis", "value", "i", "j",
     "final_loss" (float | null), "test_loss", "diverged": bool, "steps"}
                      i indexes lrs, j values (value: the cell's value of axis);
                      cells arrive in the order they finish
    {"type": "stability_done", "cells": int, "cancelled": bool}
    {"type": "export", "what": "script", "filename": "backprop-lab-spiral-step120.py",
     "text": "..."}
    {"type": "export", "what": "checkpoint", "filename": "....safetensors", "base64": "..."}

A state frame (``LabSession.snapshot``); floats have 4-5 significant digits, NaN/Inf are
null::

    {"type": "state", "step": int, "epoch": int (completed passes), "samples_seen": int,
     "running": bool,                        training is playing
     "settings": {...},                       the settings this frame was trained with
     "settings_step": int,                    the step at which they took effect (a frame
                                              with step > settings_step was trained with them)
     "lr_now": float (after the schedule), "batch_size_now": int (capped at n_train),
     "n_train": int, "n_test": int,
     "task": "classification" | "regression", "classes": int | null,
     "inputs": ["x1", "x2", ...],            the input features in use
     "metrics": {"train_loss", "test_loss", "train_accuracy", "test_accuracy"}  (whole sets,
                dropout off; accuracies null for regression),
     "batch_loss": float | null, "grad_norm": float | null   (of the last step, before clipping)
     "train_loss": [[step, loss], ...], "test_loss": [[step, loss], ...]   (<= 500 points),
     "boundary": null (digits) | {
         "dims": 2, "res": 40, "x": [xmin, xmax], "y": [ymin, ymax],
         "kind": "classification" | "regression", "classes": K | null,
         "values": [grid, ...]   one grid per class (probabilities) or one (regression
                                 predictions); grid[i][j] is the cell centred at
                                 x = xmin + (j + .5)(xmax - xmin)/res, y = ymin + (i + .5)...
                                 (row 0 is the BOTTOM row, ymin)
         "range": [ymin, ymax]   regression only: the targets' range, for the colour scale
       }  or for the 1-D sine set {"dims": 1, "res": 80, "x": [...], "kind": "regression",
          "values": [[v0, ..., v79]], "range": [...]},
     "neurons": null (digits) | {"dims": 2 | 1, "res": 16 (10 beyond 64 hidden neurons;
                 32 points in 1-D), "x": [...], "y": [...] (2-D), "layers": [{
                 "values": base64 of bytes, neuron by neuron, each a res x res grid as the
                           boundary's (row 0 the bottom): the neuron's output (after its
                           activation) at the cell centre, byte b = (b - 127) / 127 *
                           scale[k] for neuron k (255: not finite),
                 "scale": [max |output| per neuron],
                 "grads": the same for d log p(predicted class) / d output (regression:
                          d prediction / d output) at each point, "grad_scale": [...]},
                 ...] one per hidden layer}   updated as often as the boundary,
     "points": {"dims": 2, "train": [[x1, x2, label_or_target], ...], "test": [...]}
               (dims 1: [[x1, target], ...]; null for digits) -- present only in the first
               frame after the data changed (and in every frame of detail "full"),
     "data_version": int,                     changes whenever the data does
     "network": {"sizes": [n_in, h1, ..., n_out], "inputs": [...], "activations": [per
                 hidden layer], "output": "softmax" | "linear",
                 "weights": [W per layer, W[out][in]], "biases": [[...] per layer],
                 "weight_grads": [same shape as weights | null before the first step],
                 "bias_grads": [...]},
     "grad_norms": [{"layer": "0", "label": "layer 1" | ... | "output", "norm": |dL/dW|
                    | null, "weight_norm": |W|}, ...]   one per Linear layer,
     "findings": [{"name", "severity": "info" | "warning" | "error", "summary", "advice",
                   "layers"}, ...]     the doctor's (empty without backprop.diagnostics),
                   layers named as the page names them ("layer 1", "output"); after a
                   divergence there is always a "divergence" finding (the lab's own when
                   the doctor has too few readings to say so),
     "dims": int,                             raw input dimensions (1 for sine, 64 digits)
     "class_labels": null | [str, ...]        names of classes 0, 1, ... (a CSV's labels)
     "diverged": null | {"step": N, "what": "loss" | "gradient" (NaN/Inf) | "loss_blow_up"
                         (the training-set loss at least 5x the larger of guessing's and the
                         untrained network's: the doctor's criterion, loss_diverged) |
                         "doctor" (the doctor's divergence finding),
                         "message": "diverged at step N: learning rate too high for this
                                     batch size?",
                         "recovery_lr": float (the last learning rate that trained stably,
                                     else the default or a tenth of this one),
                         "recovery_stable": bool (whether it trained stably),
                         "recovery": "Reset with learning rate 0.03: ..." (in words)}}

A step detail (``LabSession.one_step_detail``), for the one-step animation::

    {"type": "step_detail", "step": N (after the step), "batch_size", "lr", "loss" (the
     batch's), "grad_norm", "clipped": bool, "diverged": null | {...},
     "sample": {"index", "input": [features], "raw": [x1, x2] | null, "target"},
                                     the batch's first sample, which the animation follows
     "forward":  [{"layer": "0", "pre": [z per neuron], "post": [activation per neuron;
                  softmax probabilities or the prediction for the output layer]}, ...],
     "backward": [{"layer": "0", "grad_pre": [dL/dz of the sample per neuron (the loss is
                  the batch mean, so this includes 1/B)], "weight_grads": [[...]],
                  "bias_grads": [...]}, ...],
     "update":   [{"layer": "0", "weights": [[W_after - W_before]], "biases": [...]}, ...]}

``GET /api/settings`` returns the settings table itself, name -> spec in display order (see
:mod:`backprop.lab.settings`); ``GET /api/limits`` the session limits (``LIMITS``, e.g.
``max_csv_bytes``, which the page checks before uploading), the frame rate, the sessions
open now and the stability-map worker processes (``stability_workers``).

Connection: ``ws://HOST:PORT/ws``. A handshake whose Origin is not this server (or a
loopback name for it) is refused with close code 1008; a server that already has
``max_sessions`` open accepts, sends an ``error`` and closes with 1013 (try again later).
"""
from __future__ import annotations

import dataclasses
import json
import math

from backprop.errors import BackpropError
from backprop.lab.cells import AXES
from backprop.lab.settings import SETTINGS, shown
from backprop.serialization import json_dumps

__all__ = [
    "MAX_CSV_MESSAGE_BYTES", "MAX_MESSAGE_BYTES", "MESSAGE_TYPES", "WS_MAX_MESSAGE_BYTES",
    "Command", "ProtocolError", "dumps", "parse_message",
]

MAX_MESSAGE_BYTES = 16 * 1024
MAX_CSV_MESSAGE_BYTES = 4 * 1024 * 1024
WS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The WebSocket's own limit (uvicorn's ``ws_max_size``; the CLI sets it): well above the
others, so an oversize message gets an error naming the limit instead of a closed socket."""
MAX_LIST = 64
"""Most entries in a stability map's lrs or batch_sizes."""
_MAX_NAME = 40
"""Longest name in a stability map's values (longer ones are refused as not numbers)."""

MESSAGE_TYPES = ("hello", "play", "pause", "step", "reset", "set", "stability_map",
                 "cancel_stability", "upload_csv", "export")


class ProtocolError(BackpropError, ValueError):
    """A message the lab can't accept; ``field`` names the part at fault (or None)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class Command:
    """A checked message: ``type`` plus its arguments (``values``, ``settings``, ``lrs``...).

    Example::

        parse_message('{"type": "set", "values": {"lr": 0.1}}')
        # Command(type='set', args={'values': {'lr': 0.1}})
    """

    type: str
    args: dict = dataclasses.field(default_factory=dict)


def _fields(msg: dict, kind: str, allowed: tuple) -> None:
    extra = sorted(set(msg) - {"type", *allowed})
    if extra:
        raise ProtocolError(f"{kind} message: unexpected field {shown(extra[0])}"
                            + (f"; it takes {', '.join(allowed)}" if allowed else
                               "; it takes no fields"), extra[0])


def _settings_object(value, field: str) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError(f"{field} must be an object of setting: value, got "
                            f"{type(value).__name__}", field)
    if len(value) > len(SETTINGS):
        raise ProtocolError(f"{field} has {len(value)} entries; there are only "
                            f"{len(SETTINGS)} settings", field)
    return value


def _number(value, field: str, integer: bool, single: bool = False):
    """One number of a message, checked: a finite float, or an int (exact, however large).

    A JSON number may be a 400-digit integer: it is kept as an int (the session's range
    check then names it) rather than converted to a float, which would overflow.
    ``single``: the field is one number (the message says "be an integer"), not a list.
    """
    if single:
        kind = "be an integer" if integer else "be a number"
    else:
        kind = "hold integers" if integer else "hold numbers"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{field} must {kind}, got {shown(value)}", field)
    if isinstance(value, float):
        if not math.isfinite(value) or (integer and not value.is_integer()):
            raise ProtocolError(f"{field} must {kind}, got {shown(value)}", field)
        return int(value) if integer else value
    if integer:
        return value
    try:
        return float(value)
    except OverflowError:
        raise ProtocolError(f"{field} must {kind} of at most 1e308, got {shown(value)}",
                            field) from None


def _number_list(value, field: str, integer: bool) -> list:
    if not isinstance(value, list) or not value:
        raise ProtocolError(f"{field} must be a non-empty list of numbers, got {shown(value)}",
                            field)
    if len(value) > MAX_LIST:
        raise ProtocolError(f"{field} has {len(value)} entries; at most {MAX_LIST}", field)
    return [_number(v, field, integer) for v in value]


def _axis(value) -> str:
    if not isinstance(value, str) or value not in AXES:
        raise ProtocolError(f"axis must be one of {', '.join(AXES)}, got {shown(value)}", "axis")
    return value


def _axis_values(value) -> list:
    """A map's rows: numbers, or names (an initialisation's); the session checks each."""
    if not isinstance(value, list) or not value:
        raise ProtocolError(f"values must be a non-empty list, got {shown(value)}", "values")
    if len(value) > MAX_LIST:
        raise ProtocolError(f"values has {len(value)} entries; at most {MAX_LIST}", "values")
    return [v if isinstance(v, str) and len(v) <= _MAX_NAME else _number(v, "values", False)
            for v in value]


def parse_message(raw) -> Command:
    """Check one incoming WebSocket message and return it as a :class:`Command`.

    Args:
        raw: the message text (or UTF-8 bytes).

    Raises:
        ProtocolError: too big, not JSON, not an object, an unknown type, or a field of
            the wrong type. Setting values are range-checked later, by the session.

    Example::

        parse_message('{"type": "play"}').type      # 'play'
    """
    if isinstance(raw, (bytes, bytearray)):
        size = len(raw)
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("messages must be UTF-8 JSON text") from None
    elif isinstance(raw, str):
        size = len(raw.encode("utf-8"))
    else:
        raise ProtocolError(f"messages must be JSON text, got {type(raw).__name__}")
    if size > MAX_CSV_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes is too big (at most "
                            f"{MAX_CSV_MESSAGE_BYTES} bytes)")
    try:
        msg = json.loads(raw)
    except ValueError as e:
        raise ProtocolError(f"message is not valid JSON: {e}") from None
    except RecursionError:  # '[[[[...' a hundred thousand deep: refused, the session goes on
        raise ProtocolError("message is nested too deeply") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"message must be a JSON object with a type, got "
                            f"{type(msg).__name__}")
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        name = kind if isinstance(kind, str) and len(kind) < 40 else type(kind).__name__
        raise ProtocolError(f"unknown message type {name!r}; known types are "
                            f"{', '.join(MESSAGE_TYPES)}", "type")
    if kind != "upload_csv" and size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"{kind} message of {size} bytes is too big (at most "
                            f"{MAX_MESSAGE_BYTES} bytes)")

    if kind == "hello":
        _fields(msg, kind, ("settings",))
        settings = msg.get("settings")
        return Command(kind, {"settings": None if settings is None
                              else _settings_object(settings, "settings")})
    if kind == "set":
        _fields(msg, kind, ("values",))
        if "values" not in msg:
            raise ProtocolError("set message needs values: {name: value, ...}", "values")
        values = _settings_object(msg["values"], "values")
        if not values:
            raise ProtocolError("set message has no values to set", "values")
        return Command(kind, {"values": values})
    if kind == "stability_map":
        _fields(msg, kind, ("lrs", "batch_sizes", "steps", "axis", "values"))
        args: dict = {"lrs": None, "batch_sizes": None, "steps": None, "axis": None,
                      "values": None}
        if msg.get("lrs") is not None:
            args["lrs"] = _number_list(msg["lrs"], "lrs", integer=False)
        if msg.get("batch_sizes") is not None:
            args["batch_sizes"] = _number_list(msg["batch_sizes"], "batch_sizes", integer=True)
        if msg.get("steps") is not None:
            args["steps"] = _number(msg["steps"], "steps", integer=True, single=True)
        if msg.get("axis") is not None:
            args["axis"] = _axis(msg["axis"])
        if msg.get("values") is not None:
            args["values"] = _axis_values(msg["values"])
        return Command(kind, args)
    if kind == "upload_csv":
        _fields(msg, kind, ("text", "name"))
        text = msg.get("text")
        if not isinstance(text, str):
            raise ProtocolError("upload_csv message needs text: the CSV file's contents",
                                "text")
        return Command(kind, {"text": text})
    if kind == "reset":
        _fields(msg, kind, ("lr",))
        if msg.get("lr") is None:
            return Command(kind)
        return Command(kind, {"lr": _number(msg["lr"], "lr", integer=False, single=True)})
    if kind == "export":
        _fields(msg, kind, ("what",))
        what = msg.get("what")
        if what not in ("script", "checkpoint"):
            raise ProtocolError(f"export what must be 'script' or 'checkpoint', got {shown(what)}",
                                "what")
        return Command(kind, {"what": what})
    _fields(msg, kind, ())          # play, pause, step, cancel_stability
    return Command(kind)


def dumps(message: dict) -> str:
    """Outgoing message as compact JSON (NaN/Inf, which JSON lacks, become null: the
    lab's convention, see ``serialization.json_safe``)."""
    return json_dumps(message, "null", separators=(",", ":"))
