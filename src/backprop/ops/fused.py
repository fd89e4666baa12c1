"""Fused losses: cross-entropy (log-softmax and NLL in one op), NLL, and binary cross-entropy
on probabilities and on logits.

Each is one primitive with its own backward, for two reasons. Stability: composing
``log(softmax(x))`` overflows or loses everything for large logits, while the fused
form only ever exponentiates ``x - max(x) <= 0``; and ``log(sigmoid(x))`` written as
a softplus never overflows. Speed: a training step spends one graph node on the loss
instead of five or six, and backward is a single vectorised formula,
``(softmax - target distribution) · scale`` for cross-entropy.

The reduction (``'mean'``, ``'sum'`` or ``'none'``) happens inside each op, so the
gradient of a mean is scaled once, not routed through a separate mean node.
"""
from __future__ import annotations

import numbers

import numpy as np

from backprop.autograd.function import Function
from backprop.errors import DTypeError, IndexOutOfRange, ShapeError
from backprop.ops._util import require_tensor as _check_tensor
from backprop.ops.activation import _sigmoid
from backprop.tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


# -- helpers shared by the class-index losses ------------------------------------------------

def _class_targets(t: np.ndarray, num_classes: int, ignore_index: int, weight, dtype, op: str):
    """Validate class indices and find each sample's weight.

    Returns ``(t, wy, valid)``: ``t`` as intp with ignored entries replaced by 0 (a
    valid index, so gathers need no special case); ``wy`` the weight of each
    sample's target class with 0 for ignored samples, or None when every sample
    weighs 1; ``valid`` the mask of samples that count, or None when all do.
    """
    valid = None
    ignored = t == ignore_index
    if ignored.any():
        valid = ~ignored
        t = np.where(valid, t, 0)
    if t.size:
        lo, hi = t.min(), t.max()
        if lo < 0 or hi >= num_classes:
            bad = t[(t < 0) | (t >= num_classes)].flat[0]
            raise IndexOutOfRange(f"{op}: target {int(bad)} is out of bounds for "
                                  f"{num_classes} classes")
    t = t.astype(np.intp, copy=False)
    if weight is not None:
        wy = weight[t]
        if valid is not None:
            wy *= valid
    elif valid is not None:
        wy = valid.astype(dtype)
    else:
        wy = None
    return t, wy, valid


def _reduce(loss: np.ndarray, reduction: str, denom):
    """Reduce per-sample losses; a mean over no samples (or zero weight) is NaN, as torch."""
    if reduction == "none":
        return loss
    total = loss.sum(dtype=loss.dtype)
    if reduction == "sum":
        return total
    if denom == 0:
        return np.asarray(np.nan, dtype=loss.dtype)
    return np.asarray(total / np.asarray(denom, dtype=loss.dtype))


def _coef(grad_output: np.ndarray, reduction: str, denom, per_sample: bool = True):
    """d(reduced loss) / d(per-sample loss), shaped to broadcast against a class axis at 1.

    A mean over zero weight has an infinite coefficient (its gradients are NaN, as torch's).
    """
    if reduction == "none":
        return grad_output[:, None] if per_sample else grad_output
    if reduction == "sum":
        return grad_output
    if denom == 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad_output / np.asarray(0, dtype=grad_output.dtype)
    return grad_output / np.asarray(denom, dtype=grad_output.dtype)


def _gather(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """a[i, t_i, ...]: each sample's entry at its target class (a new array, class axis kept).

    Plain fancy indexing for the common (N, C) case: several times faster than
    take_along_axis for the small batches of a training step.
    """
    if a.ndim == 2:
        return a[np.arange(a.shape[0]), t][:, None]
    return np.take_along_axis(a, t[:, None], axis=1)


def _scatter_add(a: np.ndarray, t: np.ndarray, values) -> None:
    """a[i, t_i, ...] += values_i, in place (each sample has exactly one target entry)."""
    values = np.broadcast_to(values, t.shape)
    if a.ndim == 2:
        rows = np.arange(a.shape[0])
        a[rows, t] += values
    else:
        idx = t[:, None]
        np.put_along_axis(a, idx, np.take_along_axis(a, idx, axis=1) + values[:, None], axis=1)


def _class_axis(weight: np.ndarray, ndim: int) -> np.ndarray:
    """A per-class weight of shape (C,) reshaped to broadcast along axis 1 of an ndim array."""
    return weight.reshape((1, -1) + (1,) * (ndim - 2))


# -- cross-entropy ------------------------------------------------------------------------------

class CrossEntropy(Function):
    """loss_i = -Σ_c a_ic · log softmax(x_i)_c, with a_i the sample's target distribution
    (one-hot, or probabilities; times the class weights; mixed with uniform by label
    smoothing);  dx_i = scale_i · (Σ_c a_ic · softmax(x_i) - a_i)

    Classes lie along axis 1 of ``x`` (N, C, d1, ...). Class-index targets have shape
    (N, d1, ...); probability targets have ``x``'s shape. ``unbatched`` marks a (C,)
    input with a 0-d (or (C,)) target.
    """

    backward_name = 'NllLossBackward0'

    @staticmethod
    def forward(ctx, x, target, weight=None, ignore_index=-100, reduction="mean",
                label_smoothing=0.0, unbatched=False):
        if unbatched:
            x, target = x[None], target[None]
        # (invalid: an inf logit gives NaN, silently, as in torch)
        with np.errstate(invalid="ignore"):
            if target.dtype.kind == "f":
                out = _ce_probs_forward(ctx, x, target, weight, reduction, label_smoothing)
            else:
                out = None
                if weight is None and not label_smoothing and x.ndim == 2:
                    out = _ce_plain_forward(ctx, x, target, ignore_index, reduction)
                if out is None:
                    out = _ce_indices_forward(ctx, x, target, weight, ignore_index, reduction,
                                              label_smoothing)
        ctx.unbatched = unbatched
        ctx.reduction = reduction
        ctx.eps = label_smoothing
        if unbatched and reduction == "none":
            out = out[0]
        return out

    @staticmethod
    def backward(ctx, grad_output):
        g = grad_output[None] if ctx.unbatched and ctx.reduction == "none" else grad_output
        if ctx.probs:
            gx, gt = _ce_probs_backward(ctx, g)
        elif ctx.plain:
            gx, gt = _ce_plain_backward(ctx, g), None
        else:
            gx, gt = _ce_indices_backward(ctx, g), None
        if ctx.unbatched:
            gx = None if gx is None else gx[0]
            gt = None if gt is None else gt[0]
        return gx, gt, None, None, None, None, None  # (apply takes every argument by position)


def _in_range(t: np.ndarray, num_classes: int) -> bool:
    """Whether every class index lies in [0, num_classes), in one reduction: viewed as
    unsigned, a negative index is larger than any class."""
    u = t if t.dtype.kind == "u" else t.view(np.dtype(f"u{t.itemsize}"))
    return bool(u.max() < num_classes)


def _ce_plain_forward(ctx, x, t, ignore_index, reduction):
    """The common case of ``_ce_indices_forward`` in fewer NumPy calls: (N, C) logits,
    class indices all in range, none equal to ``ignore_index``, no class weights, no
    smoothing. Returns None (the general path then runs, and raises where it must)
    for anything else. Bit for bit the general path's results: the same operations on
    the same values, less the multiplications by 1 and the all-valid masks."""
    n, num_classes = x.shape
    if n == 0 or 0 <= ignore_index < num_classes or not _in_range(t, num_classes):
        return None
    t = t.astype(np.intp, copy=False)
    rows = np.arange(n)
    shifted = x - x.max(axis=1, keepdims=True)  # <= 0: exp below cannot overflow
    picked = shifted[rows, t]
    e = np.exp(shifted, out=shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = np.log(s)[:, 0]
    loss -= picked  # -log softmax(x)_y
    ctx.probs, ctx.plain = False, True
    if ctx.needs_input_grad[0]:
        ctx.save_for_backward(e, s, t, rows)
        ctx.denom = n
    return _reduce(loss, reduction, n)


def _ce_plain_backward(ctx, g):
    """``_ce_indices_backward`` for the case of ``_ce_plain_forward``: softmax · coef, less
    coef at each target (the general formula with every weight and mass equal to 1)."""
    e, s, t, rows = ctx.saved_tensors
    coef = _coef(g, ctx.reduction, ctx.denom)
    with np.errstate(invalid="ignore"):  # only where the incoming gradient is inf
        grad = e * (coef / s)
        grad[rows, t] -= coef[:, 0] if ctx.reduction == "none" else coef
    return grad


def _ce_indices_forward(ctx, x, t, weight, ignore_index, reduction, eps):
    num_classes = x.shape[1]
    t, wy, valid = _class_targets(t, num_classes, ignore_index, weight, x.dtype,
                                  "cross_entropy")
    shifted = x - x.max(axis=1, keepdims=True)  # <= 0: exp below cannot overflow
    picked = _gather(shifted, t)
    if eps:
        # Σ_c w_c · shifted_c, taken now, before shifted is overwritten by its exponential
        w_dot = (shifted.sum(axis=1, keepdims=True) if weight is None else
                 (shifted * _class_axis(weight, x.ndim)).sum(axis=1, keepdims=True))
    e = np.exp(shifted, out=shifted)
    s = e.sum(axis=1, keepdims=True)
    lse = np.log(s)  # log Σ exp(x - max): so log softmax(x)_c = shifted_c - lse
    loss = lse - picked  # -log softmax(x)_y
    if wy is not None:
        loss *= wy[:, None]  # (inf · 0 at an ignored sample: zeroed below)
    if eps:
        # Σ_c w_c · (-log softmax_c) = W · lse - Σ_c w_c · shifted_c, W = Σ_c w_c
        total_w = num_classes if weight is None else weight.sum()
        smooth = total_w * lse
        smooth -= w_dot
        loss *= 1.0 - eps
        loss += (eps / num_classes) * smooth
    loss = loss[:, 0]
    if valid is not None:  # exactly 0 for ignored samples, even where their logits are -inf
        loss = np.where(valid, loss, 0).astype(loss.dtype, copy=False)
    denom = loss.size if wy is None else wy.sum()
    ctx.probs = ctx.plain = False
    if ctx.needs_input_grad[0]:
        ctx.save_for_backward(e, s, t, wy, valid, weight)
        ctx.denom = denom
    return _reduce(loss, reduction, denom)


def _ce_indices_backward(ctx, g):
    e, s, t, wy, valid, weight = ctx.saved_tensors
    eps, num_classes = ctx.eps, e.shape[1]
    coef = _coef(g, ctx.reduction, ctx.denom)
    # A_i = Σ_c a_ic: how much target mass sample i carries
    w_target = 1.0 if wy is None else wy[:, None]
    mass = w_target * (1.0 - eps)
    if eps:
        total_w = num_classes if weight is None else weight.sum()
        uniform_mass = (eps / num_classes) * total_w
        if valid is not None:
            uniform_mass = uniform_mass * valid[:, None].astype(e.dtype)
        mass = mass + uniform_mass
    with np.errstate(invalid="ignore"):  # only where coef is inf: a mean over zero weight
        grad = e * (coef * mass / s)  # A_i · softmax(x_i), scaled
        hit = coef * (1.0 - eps) * w_target  # the one-hot part of a_i
        _scatter_add(grad, t, -hit[:, 0] if np.ndim(hit) else -hit)
        if eps:
            uniform = coef * (eps / num_classes)
            if valid is not None:
                uniform = uniform * valid[:, None]
            grad -= uniform if weight is None else uniform * _class_axis(weight, e.ndim)
    if ctx.reduction == "mean" and ctx.denom == 0 and valid is not None:
        # NOTE: a mean over zero total weight is NaN, and so are the gradients of the
        # samples that count; ignored samples still get exactly 0, as in torch.
        grad = np.where(valid[:, None], grad, 0).astype(grad.dtype, copy=False)
    return grad


def _ce_probs_forward(ctx, x, t, weight, reduction, eps):
    num_classes = x.shape[1]
    logp = x - x.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    a = _soft_target(t, weight, eps, num_classes, x.ndim)
    loss = (a * logp).sum(axis=1)
    np.negative(loss, out=loss)
    ctx.probs = True
    denom = loss.size  # the mean is over samples, whatever the weights
    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
        ctx.save_for_backward(logp, t, weight)
        ctx.denom = denom
    return _reduce(loss, reduction, denom)


def _soft_target(t, weight, eps, num_classes, ndim):
    """a = (t·(1 - ε) + ε/C) · w: the weighted, smoothed target distribution."""
    a = t * (1.0 - eps) + eps / num_classes if eps else t
    return a if weight is None else a * _class_axis(weight, ndim)


def _ce_probs_backward(ctx, g):
    logp, t, weight = ctx.saved_tensors
    coef = _coef(g, ctx.reduction, ctx.denom)
    gx = gt = None
    if ctx.needs_input_grad[0]:
        a = _soft_target(t, weight, ctx.eps, logp.shape[1], logp.ndim)
        gx = np.exp(logp)
        gx *= a.sum(axis=1, keepdims=True)
        gx -= a
        gx *= coef
    if ctx.needs_input_grad[1]:
        # d loss / d t_c = -(1 - ε) · w_c · log softmax_c
        gt = logp * (-(1.0 - ctx.eps) * coef)
        if weight is not None:
            gt = gt * _class_axis(weight, logp.ndim)
    return gx, gt


# -- nll -----------------------------------------------------------------------------------------

class NLL(Function):
    """loss_i = -w_(y_i) · x_(i, y_i) (x holds log-probabilities, classes along axis 1);
    dx = -scale_i · w_(y_i) at (i, y_i), 0 elsewhere"""

    backward_name = 'NllLossBackward0'

    @staticmethod
    def forward(ctx, x, target, weight=None, ignore_index=-100, reduction="mean",
                unbatched=False):
        if unbatched:
            x, target = x[None], target[None]
        t, wy, valid = _class_targets(target, x.shape[1], ignore_index, weight, x.dtype,
                                      "nll_loss")
        loss = _gather(x, t)[:, 0]
        np.negative(loss, out=loss)
        if wy is not None:
            with np.errstate(invalid="ignore"):  # inf · 0 at an ignored sample: zeroed below
                loss *= wy
        if valid is not None:
            loss = np.where(valid, loss, 0).astype(loss.dtype, copy=False)
        denom = loss.size if wy is None else wy.sum()
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(t, wy, valid)
            ctx.shape, ctx.dtype, ctx.denom = x.shape, x.dtype, denom
            ctx.reduction, ctx.unbatched = reduction, unbatched
        out = _reduce(loss, reduction, denom)
        return out[0] if unbatched and reduction == "none" else out

    @staticmethod
    def backward(ctx, grad_output):
        t, wy, valid = ctx.saved_tensors
        g = grad_output[None] if ctx.unbatched and ctx.reduction == "none" else grad_output
        coef = _coef(g, ctx.reduction, ctx.denom, per_sample=False)
        with np.errstate(invalid="ignore"):  # only where coef is inf: a mean over zero weight
            hit = -coef if wy is None else -coef * wy
        if valid is not None and ctx.reduction == "mean" and ctx.denom == 0:
            hit = np.where(valid, hit, 0)  # see the NOTE in _ce_indices_backward
        grad = np.zeros(ctx.shape, ctx.dtype)
        _scatter_add(grad, t, hit)
        if ctx.unbatched:
            grad = grad[0]
        return grad, None


# -- binary cross-entropy ----------------------------------------------------------------------

class MseLoss(Function):
    """loss = (x - t)², reduced;  dx = 2 (x - t) · c,  dt = -dx  (c: 1, or 1/n for the mean)"""

    @staticmethod
    def forward(ctx, x, t, reduction="mean"):
        diff = x - t
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(diff)
            ctx.reduction = reduction
        return _reduce(diff * diff, reduction, diff.size)

    @staticmethod
    def backward(ctx, grad_output):
        (diff,) = ctx.saved_tensors
        coef = _coef(grad_output, ctx.reduction, diff.size, per_sample=False)
        gx = diff * (2 * coef)
        # the engine reduces each gradient to its input's shape (a broadcast target)
        return (gx if ctx.needs_input_grad[0] else None,
                -gx if ctx.needs_input_grad[1] else None)


class BinaryCrossEntropy(Function):
    """loss = -w · (t · max(log p, -100) + (1 - t) · max(log(1 - p), -100));
    dp = w · (p - t) / max(p (1 - p), 1e-12),  dt = w · (log(1 - p) - log p)"""

    @staticmethod
    def forward(ctx, p, t, weight=None, reduction="mean"):
        # NOTE: the logs are clamped at -100 (as torch does) so that p = 0 or 1 gives a
        # large finite loss instead of inf, and a gradient that is large but finite.
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(p), -100.0)
            log_q = np.maximum(np.log1p(-p), -100.0)
        loss = (t - 1.0) * log_q
        loss -= t * log_p
        if weight is not None:
            loss *= weight
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(p, t, weight)
            ctx.reduction, ctx.denom = reduction, loss.size
        return _reduce(loss, reduction, loss.size)

    @staticmethod
    def backward(ctx, grad_output):
        p, t, weight = ctx.saved_tensors
        coef = _coef(grad_output, ctx.reduction, ctx.denom, per_sample=False)
        if weight is not None:
            coef = coef * weight
        gp = gt = None
        if ctx.needs_input_grad[0]:
            gp = (p - t) / np.maximum(p * (1.0 - p), 1e-12)
            gp *= coef
        if ctx.needs_input_grad[1]:
            # NOTE: not clamped, as torch: at p = 0 or 1 the target's gradient is infinite.
            with np.errstate(divide="ignore", invalid="ignore"):
                gt = np.log1p(-p) - np.log(p)
            gt = gt * coef
        return gp, gt


class BinaryCrossEntropyWithLogits(Function):
    """loss = w · ((1 - t) · x + (1 + (pw - 1) · t) · softplus(-x))  (= BCE of σ(x), exactly);
    dx = w · ((1 + (pw - 1) · t) · σ(x) - pw · t),  dt = w · ((pw - 1) · softplus(-x) - x)"""

    @staticmethod
    def forward(ctx, x, t, weight=None, pos_weight=None, reduction="mean"):
        # softplus(-x) = log(1 + e^-x) = max(-x, 0) + log1p(e^-|x|): e^-|x| never overflows
        sp = np.maximum(-x, 0)
        sp += np.log1p(np.exp(-np.abs(x)))
        loss = (1.0 - t) * x
        if pos_weight is None:
            loss += sp
        else:
            loss += (1.0 + (pos_weight - 1.0) * t) * sp
        if weight is not None:
            loss *= weight
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(x, t, sp, weight, pos_weight)
            ctx.reduction, ctx.denom = reduction, loss.size
        return _reduce(loss, reduction, loss.size)

    @staticmethod
    def backward(ctx, grad_output):
        x, t, sp, weight, pos_weight = ctx.saved_tensors
        coef = _coef(grad_output, ctx.reduction, ctx.denom, per_sample=False)
        if weight is not None:
            coef = coef * weight
        gx = gt = None
        if ctx.needs_input_grad[0]:
            s = _sigmoid(x)
            if pos_weight is None:
                gx = s - t
            else:
                gx = (1.0 + (pos_weight - 1.0) * t) * s
                gx -= pos_weight * t
            gx = gx * coef
        if ctx.needs_input_grad[1]:
            gt = -x if pos_weight is None else (pos_weight - 1.0) * sp - x
            gt = gt * coef
        return gx, gt


# -- argument checks ---------------------------------------------------------------------------

def _shifted(fn, x: np.ndarray, dim):
    """fn(x, m, dim) with m = max(x) along ``dim``: softmax and log-softmax computed on
    x - m, so that no exp overflows. When a slice's max is ±inf or NaN, that slice is
    NaN throughout (as in torch: inf - inf), without NumPy's warnings."""
    if x.size == 0:
        return x.copy()
    m = np.maximum.reduce(x, axis=dim, keepdims=True)  # (the ufunc itself: x.max's wrapper costs)
    if np.isfinite(m).all():  # the common case: each Σ exp(x - m) is in [1, n]
        return fn(x, m, dim)
    with np.errstate(invalid="ignore", divide="ignore"):
        return fn(x, m, dim)


def _minus_logsumexp(x: np.ndarray, m: np.ndarray, dim) -> np.ndarray:
    """x - log Σ exp(x) along ``dim`` (a new array), given m = max(x) along ``dim``."""
    out = np.asarray(x - m)  # (asarray: a 0-d input gives a NumPy scalar)
    out -= np.log(np.add.reduce(np.exp(out), axis=dim, keepdims=True))
    return out


def _softmax(x: np.ndarray, m: np.ndarray, dim) -> np.ndarray:
    """exp(x) / Σ exp(x) along ``dim`` (a new array), given m = max(x) along ``dim``."""
    out = np.asarray(x - m)
    np.exp(out, out=out)
    out /= np.add.reduce(out, axis=dim, keepdims=True)
    return out


class LogSoftmax(Function):
    """out = x - log Σ exp(x) along dim;  dx = g - softmax(x) · Σ g along dim

    Fused (rather than x - logsumexp(x)) for speed: one op in the graph, and
    backward needs only the output, since softmax(x) = exp(out).
    """

    @staticmethod
    def forward(ctx, x, dim):
        dim = None if x.ndim == 0 else dim
        out = _shifted(_minus_logsumexp, x, dim)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out)
            ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        total = np.add.reduce(grad_output, axis=ctx.dim, keepdims=True)
        return grad_output - np.exp(out) * total, None


# forward mirrors LogSoftmax.forward but for the kernel: two primitives, each whole beside
# its own backward, with no shared frame on a hot path.
class Softmax(Function):
    """out = exp(x) / Σ exp(x) along dim;  dx = out · (g - Σ g·out along dim)"""

    @staticmethod
    def forward(ctx, x, dim):
        dim = None if x.ndim == 0 else dim
        out = _shifted(_softmax, x, dim)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(out)
            ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (out,) = ctx.saved_tensors
        gy = grad_output * out
        gy -= out * np.sum(gy, axis=ctx.dim, keepdims=True)
        return gy, None


def _check_reduction(reduction, op: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction; "
                         f"expected 'mean', 'sum' or 'none'")
    return reduction


def _check_float(x: Tensor, op: str, what: str) -> None:
    if x._data.dtype.kind != "f":
        raise DTypeError(f"{op}: expected {what} to be a floating-point tensor, got {x.dtype}")


def _class_weight(weight, num_classes: int, dtype, op: str):
    """The per-class weight as an array of the input's dtype (a constant: no gradient)."""
    if weight is None:
        return None
    w = _check_tensor(weight, op, "weight")._data
    if w.shape != (num_classes,):
        raise ShapeError(f"{op}: weight should have one entry per class ({num_classes}), "
                         f"got shape {w.shape}")
    return w.astype(dtype, copy=False)


def _check_index(ignore_index, op: str) -> int:
    if not isinstance(ignore_index, (numbers.Integral, np.integer)) or isinstance(ignore_index,
                                                                                 bool):
        raise TypeError(f"{op}: ignore_index must be an int, got {ignore_index!r}")
    return int(ignore_index)


def _class_layout(x: Tensor, t: Tensor, op: str) -> bool:
    """Check class-index targets against the input's shape; True for an unbatched (C,) input."""
    xs, ts = tuple(x.shape), tuple(t.shape)
    if t._data.dtype.kind not in "iu":
        raise DTypeError(f"{op}: expected class-index targets of an integer dtype (int64), got "
                         f"{t.dtype} of shape {ts} for input of shape {xs} (class probabilities "
                         f"must have the input's shape)")
    if len(xs) == 0:
        raise ShapeError(f"{op}: expected input of shape (C,), (N, C) or (N, C, d1, ...), "
                         f"got a 0-d tensor")
    if len(xs) == 1:
        if ts != ():
            raise ShapeError(f"{op}: an unbatched input of shape {xs} needs a 0-d target, got "
                             f"shape {ts}")
        return True
    expected = xs[:1] + xs[2:]
    if ts != expected:
        if len(ts) == 0 or ts[0] != xs[0]:
            raise ShapeError(f"{op}: expected input batch size ({xs[0]}) to match target batch "
                             f"size ({ts[0] if ts else 'a 0-d target'})")
        raise ShapeError(f"{op}: expected target of shape {expected} for input of shape {xs}, "
                         f"got {ts}")
    return False


# -- public functions ----------------------------------------------------------------------------

def _plain_ce_args(x, t, weight, ignore_index, reduction, label_smoothing) -> bool:
    """Whether ``cross_entropy``'s arguments are the usual ones, already valid: (N, C)
    floating-point logits, (N,) integer class indices, no weight, no smoothing, the default
    ignore_index. (One test instead of the checks that name whatever is wrong.)"""
    if type(x) is not Tensor or type(t) is not Tensor or weight is not None or \
            ignore_index != -100 or label_smoothing != 0.0 or reduction not in REDUCTIONS:
        return False
    xd, td = x._data, t._data
    return (xd.ndim == 2 and td.ndim == 1 and xd.shape[0] == td.shape[0] and
            xd.dtype.kind == "f" and td.dtype.kind in "iu")


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy between logits and targets: log-softmax and NLL fused into one stable op.

    Args:
        input: logits of shape (C,), (N, C) or (N, C, d1, ...): classes along dim 1.
        target: class indices (integer, shape (), (N,) or (N, d1, ...)), or class
            probabilities (floating point, the input's shape).
        weight: a per-class rescaling weight of shape (C,), or None.
        ignore_index: a class index whose samples contribute 0 and are left out of the
            mean (class-index targets only).
        reduction: 'mean' (weighted: Σ w_y · loss / Σ w_y for class indices), 'sum' or 'none'.
        label_smoothing: ε in [0, 1]: the target becomes (1 - ε) · target + ε / C.

    Exact for logits of any size: only x - max(x) is exponentiated.

    Example::

        logits = backprop.tensor([[1e4, 0.0, -1e4]], requires_grad=True)
        loss = backprop.ops.cross_entropy(logits, backprop.tensor([1]))   # tensor(10000.)
        loss.backward()                                                   # grad [[1, -1, 0]]
    """
    if _plain_ce_args(input, target, weight, ignore_index, reduction, label_smoothing):
        return CrossEntropy.apply(input, target._data, None, ignore_index, reduction, 0.0, False)
    op = "cross_entropy"
    x = _check_tensor(input, op, "input")
    t = _check_tensor(target, op, "target")
    _check_float(x, op, "input")
    reduction = _check_reduction(reduction, op)
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got "
                         f"{label_smoothing!r}")
    ignore_index = _check_index(ignore_index, op)
    num_classes = x.shape[1] if x.ndim >= 2 else (x.shape[0] if x.ndim == 1 else 0)
    if x.ndim >= 1 and tuple(t.shape) == tuple(x.shape):
        if t._data.dtype.kind != "f":
            raise DTypeError(f"{op}: a target of the input's shape {tuple(x.shape)} holds class "
                             f"probabilities and must be floating point, got {t.dtype}")
        unbatched = x.ndim == 1
        w = _class_weight(weight, num_classes, x._data.dtype, op)
        return CrossEntropy.apply(x, t, w, -100, reduction, float(label_smoothing), unbatched)
    unbatched = _class_layout(x, t, op)
    w = _class_weight(weight, num_classes, x._data.dtype, op)
    # class indices never need a gradient: pass the array, so the node records one input
    # (positional arguments: the accelerator's apply takes no keywords)
    return CrossEntropy.apply(x, t._data, w, ignore_index, reduction, float(label_smoothing),
                              unbatched)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of class indices, given log-probabilities (e.g. log_softmax).

    Args:
        input: log-probabilities of shape (C,), (N, C) or (N, C, d1, ...).
        target: class indices of shape (), (N,) or (N, d1, ...).
        weight, ignore_index, reduction: as in :func:`cross_entropy`.

    Example::

        logp = backprop.log_softmax(backprop.randn(4, 3), 1)
        backprop.ops.nll_loss(logp, backprop.tensor([0, 2, 1, 0]))
    """
    op = "nll_loss"
    x = _check_tensor(input, op, "input")
    t = _check_tensor(target, op, "target")
    _check_float(x, op, "input")
    reduction = _check_reduction(reduction, op)
    ignore_index = _check_index(ignore_index, op)
    unbatched = _class_layout(x, t, op)
    num_classes = x.shape[0] if unbatched else x.shape[1]
    w = _class_weight(weight, num_classes, x._data.dtype, op)
    return NLL.apply(x, t._data, weight=w, ignore_index=ignore_index, reduction=reduction,
                     unbatched=unbatched)


def _binary_args(input, target, op: str, same_shape_error):
    x = _check_tensor(input, op, "input")
    t = _check_tensor(target, op, "target")
    _check_float(x, op, "input")
    _check_float(t, op, "target")
    if tuple(t.shape) != tuple(x.shape):
        raise same_shape_error(tuple(x.shape), tuple(t.shape))
    return x, t


def _elementwise_weight(weight, shape: tuple, dtype, op: str, what: str):
    """A weight that broadcasts to the input's shape, as an array (a constant: no gradient)."""
    if weight is None:
        return None
    w = _check_tensor(weight, op, what)._data
    try:
        ok = np.broadcast_shapes(w.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"{op}: {what} of shape {w.shape} does not broadcast to the input's "
                         f"shape {shape}")
    return w.astype(dtype, copy=False)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """Binary cross-entropy between probabilities ``input`` in [0, 1] and targets in [0, 1].

    Each log is clamped at -100, as in PyTorch, so a probability of exactly 0 or 1
    gives a finite loss. Prefer :func:`binary_cross_entropy_with_logits` on logits.

    Args:
        input: probabilities, any shape.
        target: float targets of the same shape.
        weight: a rescaling weight that broadcasts to the input's shape, or None.
        reduction: 'mean', 'sum' or 'none'.

    Example::

        p = backprop.tensor([0.9, 0.2])
        backprop.ops.binary_cross_entropy(p, backprop.tensor([1.0, 0.0]))   # tensor(0.1643)
    """
    op = "binary_cross_entropy"

    def mismatch(xs, ts):
        return ShapeError(f"{op}: target size {ts} differs from input size {xs}; they must be "
                          f"the same")

    x, t = _binary_args(input, target, op, mismatch)
    reduction = _check_reduction(reduction, op)
    p = x._data
    if p.size:
        lo, hi = p.min(), p.max()
        if not (lo >= 0 and hi <= 1):  # (also catches NaN)
            raise ValueError(f"{op}: all elements of input should be between 0 and 1, got "
                             f"values in [{lo}, {hi}]")
        lo, hi = t._data.min(), t._data.max()
        if not (lo >= 0 and hi <= 1):
            raise ValueError(f"{op}: all elements of target should be between 0 and 1, got "
                             f"values in [{lo}, {hi}]")
    dtype = np.result_type(p, t._data)
    w = _elementwise_weight(weight, tuple(x.shape), dtype, op, "weight")
    return BinaryCrossEntropy.apply(x, t, weight=w, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    """Binary cross-entropy of sigmoid(input) and ``target``, computed stably from logits.

    Args:
        input: logits, any shape.
        target: float targets in [0, 1] of the same shape.
        weight: a rescaling weight that broadcasts to the input's shape, or None.
        reduction: 'mean', 'sum' or 'none'.
        pos_weight: a weight on the positive term, broadcast along the last dimension
            (one per class for multi-label problems), or None.

    Example::

        x = backprop.tensor([1000.0, -1000.0])
        backprop.ops.binary_cross_entropy_with_logits(x, backprop.tensor([1.0, 0.0]))  # 0.
    """
    op = "binary_cross_entropy_with_logits"

    def mismatch(xs, ts):
        return ShapeError(f"{op}: target size {ts} must be the same as input size {xs}")

    x, t = _binary_args(input, target, op, mismatch)
    reduction = _check_reduction(reduction, op)
    dtype = np.result_type(x._data, t._data)
    w = _elementwise_weight(weight, tuple(x.shape), dtype, op, "weight")
    pw = _elementwise_weight(pos_weight, tuple(x.shape), dtype, op, "pos_weight")
    return BinaryCrossEntropyWithLogits.apply(x, t, weight=w, pos_weight=pw, reduction=reduction)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error of two float tensors of one dtype, as one op (PyTorch's MseLoss).

    ``nn.functional.mse_loss`` checks the arguments (shapes that broadcast, a weight)
    and calls this for the common case.

    Example::

        x = backprop.tensor([1.0, 2.0], requires_grad=True)
        backprop.ops.fused.mse_loss(x, backprop.zeros(2))   # tensor(2.5000, grad_fn=<MseLossBackward0>)
    """
    op = "mse_loss"
    x = _check_tensor(input, op, "input")
    t = _check_tensor(target, op, "target")
    _check_float(x, op, "input")
    _check_float(t, op, "target")
    if x._data.dtype != t._data.dtype:
        raise DTypeError(f"{op}: expected input and target of one dtype, got {x.dtype} and "
                         f"{t.dtype}")
    try:
        np.broadcast_shapes(x._data.shape, t._data.shape)
    except ValueError:
        raise ShapeError(f"{op}: target of shape {tuple(t.shape)} cannot be broadcast with "
                         f"input of shape {tuple(x.shape)}") from None
    return MseLoss.apply(x, t, reduction=_check_reduction(reduction, op))


__all__ = ["cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits"]
