"""How a tensor prints: PyTorch's text, ``tensor([[0.1235, 2.0000]], requires_grad=True)``.

The rules are PyTorch's, so printed output can be compared with its tutorials: one
number format for the whole tensor (integers as ``2.``, else ``precision`` decimals,
scientific when the magnitudes span more than 1000× or pass 1e8, or a fraction is below
1e-4), right-aligned to a common width measured over the non-zero finite values; rows
wrapped at ``linewidth``; tensors of more than ``threshold`` elements summarised with
``...``; the dtype shown unless it is a default one; then ``grad_fn=<MulBackward0>`` or
``requires_grad=True``. One deliberate difference: dtypes print as backprop's
(``dtype=backprop.float64``), since that is how ``x.dtype`` prints here.

``set_printoptions`` changes the rules, as PyTorch's does.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from backprop import dtypes as _dt

_PROFILES: dict[str, dict[str, Any]] = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80},
}

#: the options in force (``set_printoptions`` changes them)
PRINT_OPTS = dict(_PROFILES["default"], sci_mode=None)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None) -> None:
    """Set how tensors print, as ``torch.set_printoptions`` does.

    Args:
        precision: digits after the decimal point (default 4).
        threshold: more elements than this are summarised with ``...`` (default 1000).
        edgeitems: elements shown at each end of a summarised dimension (default 3).
        linewidth: characters per line before rows wrap (default 80).
        profile: ``"default"``, ``"short"`` or ``"full"``: all of the above at once.
        sci_mode: True or False to force scientific notation on or off; None (the
            default, and what each call without it restores) chooses by the values.

    Example::

        backprop.set_printoptions(precision=2)
        backprop.tensor([1.23456])      # tensor([1.23])
        backprop.set_printoptions(profile="default")
    """
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(_PROFILES)}, "
                             f"got {profile!r}")
        PRINT_OPTS.update(_PROFILES[profile])
    for name, value, low in (("precision", precision, 0), ("threshold", threshold, 0),
                             ("edgeitems", edgeitems, 0), ("linewidth", linewidth, 1)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (isinstance(value, float) and value != math.inf) or value < low:
            raise ValueError(f"set_printoptions: {name} must be an int >= {low}, got {value!r}")
        PRINT_OPTS[name] = value
    if sci_mode is not None and not isinstance(sci_mode, bool):
        raise ValueError(f"set_printoptions: sci_mode must be True, False or None, got "
                         f"{sci_mode!r}")
    PRINT_OPTS["sci_mode"] = sci_mode


def get_printoptions() -> dict:
    """The print options in force, as a dict (``precision``, ``threshold``, ...)."""
    return dict(PRINT_OPTS)


class _Formatter:
    """One number format for every element of a tensor, and the width they share."""

    def __init__(self, values: np.ndarray):
        self.floating = values.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        precision = PRINT_OPTS["precision"]
        if not self.floating:
            for v in values.ravel():
                self.width = max(self.width, len(_plain(v)))
            return
        finite = values[np.isfinite(values)].astype(np.float64)
        nonzero = finite[finite != 0]
        if nonzero.size == 0:
            return  # zeros, infs and nans only: the integer format, width 1
        magnitudes = np.abs(nonzero)
        lo, hi = float(magnitudes.min()), float(magnitudes.max())
        for v in nonzero:
            if math.ceil(v) != v:
                self.int_mode = False
                break
        forced = PRINT_OPTS["sci_mode"]
        self.sci_mode = (hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4) if forced is None \
            else forced
        if self.sci_mode:
            self.width = max(len(f"{v:.{precision}e}") for v in nonzero)
        elif self.int_mode:
            self.width = max(len(f"{v:.0f}") + 1 for v in nonzero)  # + 1 for the "."
        else:
            self.width = max(len(f"{v:.{precision}f}") for v in nonzero)

    def format(self, value) -> str:
        if not self.floating:
            text = _plain(value)
        else:
            value = float(value)
            precision = PRINT_OPTS["precision"]
            if self.sci_mode:
                text = f"{value:{self.width}.{precision}e}"
            elif self.int_mode:
                text = f"{value:.0f}"
                if math.isfinite(value):
                    text += "."
            else:
                text = f"{value:.{precision}f}"
        return text.rjust(self.width)


def _plain(v) -> str:
    """An integer or bool element as Python prints it."""
    return str(v.item() if isinstance(v, np.generic) else v)


def _summarised(arr: np.ndarray, edge: int) -> np.ndarray:
    """The elements a summarised print shows: ``edge`` at each end of every long dimension."""
    for axis in range(arr.ndim):
        n = arr.shape[axis]
        if n > 2 * edge:
            keep = np.r_[0:edge, n - edge:n]
            arr = np.take(arr, keep, axis=axis)
    return arr


def _body(arr: np.ndarray, indent: int, summarise: bool, fmt: _Formatter) -> str:
    """The bracketed elements of ``arr``, rows wrapped and indented as PyTorch does."""
    edge = PRINT_OPTS["edgeitems"]
    if arr.ndim == 0:
        return fmt.format(arr[()])
    n = arr.shape[0]
    cut = summarise and n > 2 * edge
    if arr.ndim == 1:
        per_line = max(1, int((PRINT_OPTS["linewidth"] - indent) // (fmt.width + 2)))
        if cut:
            items = [fmt.format(v) for v in arr[:edge]] + [" ..."] + \
                [fmt.format(v) for v in arr[n - edge:]]
        else:
            items = [fmt.format(v) for v in arr]
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"
    rows = range(n) if not cut else list(range(edge)) + [None] + list(range(n - edge, n))
    parts = ["..." if i is None else _body(arr[i], indent + 1, summarise, fmt) for i in rows]
    return "[" + ("," + "\n" * (arr.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _add_suffixes(text: str, suffixes: list, indent: int) -> str:
    """``, dtype=...`` and the like after the elements, on a new line if the last is full."""
    out = [text]
    last_line = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line + len(suffix) + 2 > PRINT_OPTS["linewidth"]:
            out.append(",\n" + " " * indent + suffix)
            last_line = indent + len(suffix)
        else:
            out.append(", " + suffix)
            last_line += len(suffix) + 2
    out.append(")")
    return "".join(out)


def tensor_repr(t) -> str:
    """PyTorch's repr of a tensor: ``tensor([-1.5000,  2.2500], requires_grad=True)``."""
    arr = t._data
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    default_float = _dt.default_float
    if arr.size == 0:
        body = "[]"
        if arr.ndim != 1:
            suffixes.append(f"size={tuple(arr.shape)}")
        if arr.dtype != default_float:
            suffixes.append(f"dtype={t.dtype}")
    else:
        summarise = arr.size > PRINT_OPTS["threshold"]
        shown = _summarised(arr, PRINT_OPTS["edgeitems"]) if summarise else arr
        # the format comes from the elements shown; _body picks them out of arr itself
        body = _body(arr, indent, summarise, _Formatter(shown))
        if arr.dtype != default_float and arr.dtype.kind != "b" and arr.dtype != np.int64:
            suffixes.append(f"dtype={t.dtype}")
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t._requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + body, suffixes, indent)
