"""``check_gradients``: compare backprop's gradients with finite differences on a user's model.

The check answers "is backprop computing the right gradient for *my* model?": it is
worth running once after writing a custom ``Function`` or an unusual ``forward``.
For every parameter tensor it compares the gradient that autograd computes with
central finite differences of the loss, and reports the errors per tensor.

Example::

    from backprop import nn
    from backprop.diagnostics import check_gradients

    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = backprop.randn(16, 2), backprop.randint(0, 3, (16,))
    report = check_gradients(model, x, y, nn.CrossEntropyLoss())
    print(report)          # one row per parameter tensor
    report.passed          # True
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from backprop.autograd import grad as autograd_grad
from backprop.autograd import no_grad
from backprop.creation import tensor
from backprop.nn import Module
from backprop.random import get_rng_state, set_rng_state
from backprop.tensor import Tensor
from backprop.utils._named import NamedRows

__all__ = ["ParameterCheck", "GradientReport", "check_gradients"]

#: Guards the relative error's denominator when both gradients are exactly zero.
TINY = np.finfo(np.float64).tiny


@dataclass
class ParameterCheck:
    """The comparison for one parameter tensor.

    ``max_abs_error`` is max |g_autograd - g_numerical| over the checked elements;
    ``rel_error`` is ||g_a - g_n|| / max(||g_a||, ||g_n||, tiny) over the same elements
    (0 when both are zero, about 1 or more when they disagree completely). ``passed``
    holds when every checked element satisfies |g_a - g_n| <= atol + rtol * |g_n|.
    ``worst`` is the index of the element with the largest excess over that bound,
    with its two values ``autograd`` and ``numerical``.
    """

    name: str
    shape: tuple
    numel: int
    checked: int
    max_abs_error: float
    rel_error: float
    passed: bool
    worst: tuple | None = None
    autograd: float | None = None
    numerical: float | None = None


class GradientReport(NamedRows):
    """What :func:`check_gradients` found: one :class:`ParameterCheck` per parameter tensor.

    Iterate it (or index it by position or parameter name); ``passed`` is True when every
    tensor passed, ``failed`` names those that did not, ``str(report)`` is a table and
    ``to_dict()`` plain data.

    Example::

        report = check_gradients(model, x, y, nn.MSELoss())
        report.passed                       # True
        report["0.weight"].rel_error        # 3.9e-09
        report.failed                       # [] (names of the tensors that disagree)
    """

    _rows_attr, _noun = "checks", "parameter"

    def __init__(self, checks: list, *, loss: float, eps: float, atol: float, rtol: float,
                 mode: str, seconds: float):
        self.checks = list(checks)
        self.loss, self.eps, self.atol, self.rtol = loss, eps, atol, rtol
        self.mode, self.seconds = mode, seconds

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list:
        """Names of the parameter tensors whose gradients disagree."""
        return [c.name for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        """Plain data (JSON-able apart from non-finite floats)."""
        return {"passed": self.passed, "loss": self.loss, "eps": self.eps, "atol": self.atol,
                "rtol": self.rtol, "mode": self.mode, "seconds": self.seconds,
                "parameters": [{**asdict(c), "shape": list(c.shape),
                                "worst": None if c.worst is None else list(c.worst)}
                               for c in self.checks]}

    def __repr__(self) -> str:
        state = "passed" if self.passed else f"failed: {', '.join(self.failed)}"
        return f"<GradientReport {len(self.checks)} parameter tensors, {state}>"

    def __str__(self) -> str:
        head = ("parameter", "shape", "checked", "max abs error", "rel error", "result")
        rows = []
        for c in self.checks:
            checked = str(c.checked) if c.checked == c.numel else f"{c.checked}/{c.numel}"
            rows.append((c.name, str(tuple(c.shape)), checked, f"{c.max_abs_error:.2e}",
                         f"{c.rel_error:.2e}", "ok" if c.passed else "FAIL"))
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines = [f"Gradient check ({self.mode} mode, float64): autograd vs central differences "
                 f"(eps {self.eps:g}); an element passes when |autograd - numerical| <= "
                 f"{self.atol:g} + {self.rtol:g}*|numerical|",
                 "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                  for r in rows]
        for c in self.checks:
            if not c.passed and c.worst is not None:
                lines.append(f"  {c.name}[{', '.join(map(str, c.worst))}]: autograd "
                             f"{c.autograd:.6g}, numerical {c.numerical:.6g}")
        n = len(self.checks)
        if self.passed:
            lines.append(f"all {n} parameter tensors passed (loss {self.loss:.6g}, "
                         f"{self.seconds:.2f} s)")
        else:
            lines.append(f"{len(self.failed)} of {n} parameter tensors FAILED: "
                         f"{', '.join(self.failed)}")
        return "\n".join(lines)


def _to_float64(value):
    """A float64 copy of a floating tensor or array (without grad); other tensors and arrays
    copied as they are, anything else unchanged."""
    if isinstance(value, Tensor):
        value = value.detach()._data
    if isinstance(value, np.ndarray):
        return tensor(value.astype(np.float64) if value.dtype.kind == "f" else value)
    if isinstance(value, tuple):
        return tuple(_to_float64(v) for v in value)
    return value


def _copy_module(module, what: str):
    try:
        return copy.deepcopy(module)
    except Exception as e:  # any object a model holds may refuse to be copied
        raise TypeError(f"check_gradients: could not copy {what} to run it in float64 "
                        f"({type(e).__name__}: {e}); the check never changes your model, so "
                        f"it needs a copy") from None


def check_gradients(model, x, y, loss_fn, *, eps: float = 1e-6, atol: float = 1e-5,
                    rtol: float = 1e-3, max_elements: int | None = None, seed: int = 0,
                    train: bool = False) -> GradientReport:
    """Compare autograd's gradient of every parameter with central finite differences.

    The model is deep-copied and the copy converted to float64 (your model, its
    dtype and its ``.grad`` are left untouched). The loss is ``loss_fn(copy(x), y)``
    (``copy(*x)`` when ``x`` is a tuple); it must be a scalar. Each parameter element
    is nudged by ±eps and the loss difference divided by 2·eps, then compared with
    the analytic gradient.

    Randomness: by default the copy runs in eval mode (``copy.eval()``), so Dropout
    is off and BatchNorm uses its running statistics, and every evaluation of the
    loss is the same function. With ``train=True`` the copy runs in training mode
    and the global random state is reset before each evaluation, so Dropout draws
    the same mask every time; your random state is restored afterwards.

    Non-smooth points (ReLU at exactly 0, max with ties) can make an element fail
    when an input sits within eps of the kink; that is rare with random data.

    Args:
        model: an ``nn.Module``.
        x: the input (tensor, array or tuple of them); floating inputs become float64.
        y: the target given to ``loss_fn`` (floating targets become float64).
        loss_fn: ``loss_fn(output, y) -> scalar tensor`` (an ``nn`` loss or a function).
        eps: the finite-difference step.
        atol, rtol: an element passes when |g_a - g_n| <= atol + rtol·|g_n|.
        max_elements: check at most this many elements of each parameter tensor,
            drawn at random (seeded by ``seed``); None checks every element.
        seed: seeds the choice of elements.
        train: run the copy in training mode (see above).

    Returns:
        A :class:`GradientReport`.

    Example::

        report = check_gradients(model, x, y, nn.MSELoss(), max_elements=50)
        assert report.passed, report
    """
    if not isinstance(model, Module):
        raise TypeError(f"check_gradients: model must be an nn.Module, got "
                        f"{type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"check_gradients: loss_fn must be callable, got "
                        f"{type(loss_fn).__name__}")
    for name, value in (("eps", eps), ("atol", atol), ("rtol", rtol)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
                or (name == "eps" and value == 0):
            raise ValueError(f"check_gradients: {name} must be a "
                             f"{'positive' if name == 'eps' else 'non-negative'} number, "
                             f"got {value!r}")
    if max_elements is not None and (isinstance(max_elements, bool)
                                     or not isinstance(max_elements, int) or max_elements < 1):
        raise ValueError(f"check_gradients: max_elements must be a positive int or None, got "
                         f"{max_elements!r}")
    started = time.perf_counter()
    net = _copy_module(model, "the model").double()
    net.train(bool(train))
    loss_mod = loss_fn
    if isinstance(loss_fn, Module):  # e.g. CrossEntropyLoss(weight=...) holds float32 buffers
        loss_mod = _copy_module(loss_fn, "the loss").double()
    xs = _to_float64(x)
    args = xs if isinstance(xs, tuple) else (xs,)
    target = _to_float64(y)
    rng_state = get_rng_state()

    def loss_value():
        if train:
            set_rng_state(rng_state)  # the same dropout masks for every evaluation
        out = loss_mod(net(*args), target)
        if not isinstance(out, Tensor):
            raise TypeError(f"check_gradients: loss_fn returned a {type(out).__name__}, not a "
                            f"Tensor")
        if out.numel() != 1:
            raise ValueError(f"check_gradients: loss_fn must return a scalar, got shape "
                             f"{tuple(out.shape)}")
        return out

    try:
        named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("check_gradients: the model has no parameter that requires grad")
        loss = loss_value()
        if not loss.requires_grad:
            raise ValueError("check_gradients: the loss does not depend on any parameter "
                             "(was it computed under no_grad, or detached?)")
        analytic = autograd_grad(loss, [p for _, p in named], allow_unused=True)
        rng = np.random.default_rng(seed)
        checks = []
        with no_grad():
            for (name, p), g in zip(named, analytic, strict=True):
                ga = np.zeros(p._data.shape) if g is None else np.asarray(g._data, np.float64)
                checks.append(_check_one(name, p, ga, loss_value, eps, atol, rtol,
                                         max_elements, rng))
    finally:
        if train:
            set_rng_state(rng_state)
    return GradientReport(checks, loss=float(loss._data), eps=eps, atol=atol, rtol=rtol,
                          mode="train" if train else "eval",
                          seconds=time.perf_counter() - started)


def _check_one(name, p, ga, loss_value, eps, atol, rtol, max_elements, rng) -> ParameterCheck:
    """Finite differences over (a sample of) one parameter's elements, compared with ``ga``."""
    if not p._data.flags.c_contiguous:
        p._data = np.ascontiguousarray(p._data)
    flat = p._data.reshape(-1)  # a view: writing flat[j] nudges the parameter itself
    n = flat.size
    idx = np.arange(n) if max_elements is None or n <= max_elements else \
        np.sort(rng.choice(n, size=max_elements, replace=False))
    numerical = np.empty(idx.size)
    for k, j in enumerate(idx):
        orig = flat[j]
        flat[j] = orig + eps
        p._bump_version()
        plus = float(loss_value()._data)
        flat[j] = orig - eps
        p._bump_version()
        minus = float(loss_value()._data)
        flat[j] = orig
        p._bump_version()
        numerical[k] = (plus - minus) / (2 * eps)
    a = ga.reshape(-1)[idx]
    diff = np.abs(a - numerical)
    bound = atol + rtol * np.abs(numerical)
    if idx.size == 0:
        return ParameterCheck(name, tuple(p._data.shape), n, 0, 0.0, 0.0, True)
    ok = diff <= bound  # False for NaN
    max_abs = float(np.max(diff)) if np.all(np.isfinite(diff)) else math.inf
    denom = max(float(np.linalg.norm(a)), float(np.linalg.norm(numerical)), TINY)
    rel = float(np.linalg.norm(a - numerical)) / denom
    if not math.isfinite(rel):
        rel = math.inf
    worst_k = int(np.argmax(np.where(np.isfinite(diff), diff - bound, np.inf)))
    worst = tuple(int(i) for i in np.unravel_index(int(idx[worst_k]), p._data.shape))
    return ParameterCheck(name, tuple(p._data.shape), n, int(idx.size), max_abs, rel,
                          bool(np.all(ok)), worst, float(a[worst_k]), float(numerical[worst_k]))
