"""Loss functions, as functions (``mse_loss``) and as modules (``MSELoss``), with PyTorch's
names, arguments, defaults and shape rules.

Cross-entropy, NLL and the two binary cross-entropies are fused primitives (see
``backprop.ops.fused``); the regression losses are composites of elementwise ops.
Every loss takes ``reduction='mean' | 'sum' | 'none'``; the functions also accept
PyTorch's deprecated ``size_average`` and ``reduce`` arguments (with its warning) so
that positional calls line up with PyTorch's signatures.

Example::

    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    loss = criterion(model(x), y)       # logits (N, C), class indices (N,)
    loss.backward()
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from backprop.errors import DTypeError, ShapeError
from backprop.nn.module import Module
from backprop.ops import clamp, fused
from backprop.tensor import Tensor

__all__ = [
    "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss",
    "MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", "BCELoss", "BCEWithLogitsLoss",
    "CrossEntropyLoss", "NLLLoss",
]


# -- argument handling -----------------------------------------------------------------------

def _legacy_reduction(size_average, reduce) -> str:
    """PyTorch's mapping of the deprecated size_average / reduce flags to ``reduction``."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.", UserWarning, stacklevel=4)
    return reduction


def _reduction(reduction, size_average, reduce, op: str) -> str:
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    return fused._check_reduction(reduction, op)


def _pair(input, target, op: str) -> tuple:
    """Input and target of a regression loss; broadcastable shapes are allowed (with
    PyTorch's warning, as they are usually a mistake), others are a ShapeError."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected input to be a Tensor, got {type(input).__name__}")
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: expected target to be a Tensor, got {type(target).__name__}")
    if input._data.dtype.kind != "f":
        raise DTypeError(f"{op}: expected input to be a floating-point tensor, got {input.dtype}")
    xs, ts = tuple(input.shape), tuple(target.shape)
    if xs != ts:
        try:
            np.broadcast_shapes(xs, ts)
        except ValueError:
            raise ShapeError(f"{op}: target of shape {ts} cannot be broadcast with input of "
                             f"shape {xs}") from None
        warnings.warn(f"{op}: Using a target size {ts} that is different to the input size "
                      f"{xs}. This will likely lead to incorrect results due to broadcasting. "
                      f"Please ensure they have the same size.", UserWarning, stacklevel=3)
    return input, target


def _check_weight(weight, input: Tensor, op: str) -> None:
    if weight is None:
        return
    if not isinstance(weight, Tensor):
        raise TypeError(f"{op}: expected weight to be a Tensor, got {type(weight).__name__}")
    if tuple(weight.shape) != tuple(input.shape):
        raise ShapeError(f"{op}: weights and input must have the same size, got weight of shape "
                         f"{tuple(weight.shape)} and input of shape {tuple(input.shape)}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _weighted(loss: Tensor, weight, reduction: str, mean_by_weight: bool) -> Tensor:
    """Apply an elementwise weight; PyTorch's weighted mean is Σ w·l / Σ w for mse and l1
    and the plain mean of w·l for huber."""
    if weight is None:
        return _reduce(loss, reduction)
    loss = loss * weight
    if reduction == "mean" and mean_by_weight:
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


def _huber(diff: Tensor, delta: float) -> Tensor:
    """0.5·d² where |d| < δ, else δ·(|d| - 0.5·δ); written as 0.5·m² + δ·(|d| - m) with
    m = min(|d|, δ), which is the same function with the same gradient and needs no mask."""
    a = diff.abs()
    m = clamp(a, max=delta)
    return 0.5 * (m * m) + delta * (a - m)


# -- functional forms ------------------------------------------------------------------------

def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error: (input - target)², reduced.

    Args:
        input, target: tensors of the same shape (broadcastable shapes warn, as PyTorch).
        reduction: 'mean', 'sum' or 'none'.
        weight: an elementwise weight of the input's shape; the mean becomes Σ w·l / Σ w.

    Example::

        F.mse_loss(backprop.tensor([1.0, 2.0]), backprop.tensor([0.0, 0.0]))   # tensor(2.5)
    """
    op = "mse_loss"
    input, target = _pair(input, target, op)
    reduction = _reduction(reduction, size_average, reduce, op)
    _check_weight(weight, input, op)
    diff = input - target
    return _weighted(diff * diff, weight, reduction, mean_by_weight=True)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error: |input - target|, reduced (the gradient at 0 is 0).

    Example::

        F.l1_loss(backprop.tensor([1.0, -2.0]), backprop.tensor([0.0, 0.0]))   # tensor(1.5)
    """
    op = "l1_loss"
    input, target = _pair(input, target, op)
    reduction = _reduction(reduction, size_average, reduce, op)
    _check_weight(weight, input, op)
    return _weighted((input - target).abs(), weight, reduction, mean_by_weight=True)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """Huber loss: quadratic for |input - target| < delta, linear (slope delta) beyond.

    Args:
        delta: where the loss turns from quadratic to linear; must be positive.
        weight: an elementwise weight of the input's shape (the mean stays the plain mean).

    Example::

        F.huber_loss(backprop.tensor([0.5, 3.0]), backprop.zeros(2))   # (0.125 + 2.5) / 2
    """
    op = "huber_loss"
    input, target = _pair(input, target, op)
    reduction = fused._check_reduction(reduction, op)
    delta = _positive(delta, op, "delta")
    _check_weight(weight, input, op)
    return _weighted(_huber(input - target, delta), weight, reduction, mean_by_weight=False)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """Smooth L1 loss: 0.5·d²/beta for |d| < beta, |d| - 0.5·beta beyond (huber / beta).

    ``beta=0`` gives the L1 loss.

    Example::

        F.smooth_l1_loss(backprop.tensor([0.5, 3.0]), backprop.zeros(2))   # (0.125 + 2.5) / 2
    """
    op = "smooth_l1_loss"
    input, target = _pair(input, target, op)
    reduction = _reduction(reduction, size_average, reduce, op)
    if not isinstance(beta, numbers.Real) or isinstance(beta, bool) or not beta >= 0:
        raise ValueError(f"{op}: beta must be a non-negative number, got {beta!r}")
    diff = input - target
    if beta == 0:
        return _reduce(diff.abs(), reduction)
    return _reduce(_huber(diff, float(beta)) / float(beta), reduction)


def _positive(value, op: str, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{op}: {name} must be a positive number, got {value!r}")
    return float(value)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """Binary cross-entropy between probabilities in [0, 1] and targets in [0, 1].

    The logs are clamped at -100, as PyTorch does; prefer
    :func:`binary_cross_entropy_with_logits`, which is exact from logits.

    Example::

        F.binary_cross_entropy(backprop.tensor([0.9, 0.2]), backprop.tensor([1.0, 0.0]))
    """
    reduction = _reduction(reduction, size_average, reduce, "binary_cross_entropy")
    return fused.binary_cross_entropy(input, target, weight=weight, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Binary cross-entropy of sigmoid(input) and target, computed stably from logits.

    Args:
        weight: a rescaling weight broadcast to the input's shape.
        pos_weight: a weight on positive examples, broadcast along the last dimension.

    Example::

        F.binary_cross_entropy_with_logits(backprop.tensor([2.0, -1.0]),
                                           backprop.tensor([1.0, 0.0]))
    """
    reduction = _reduction(reduction, size_average, reduce, "binary_cross_entropy_with_logits")
    return fused.binary_cross_entropy_with_logits(input, target, weight=weight,
                                                  reduction=reduction, pos_weight=pos_weight)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits and class indices or class probabilities (one fused op).

    See :func:`backprop.ops.cross_entropy` for the arguments.

    Example::

        logits = backprop.randn(4, 3, requires_grad=True)
        F.cross_entropy(logits, backprop.tensor([0, 2, 1, 0])).backward()
    """
    reduction = _reduction(reduction, size_average, reduce, "cross_entropy")
    return fused.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of class indices given log-probabilities.

    Example::

        logp = F.log_softmax(backprop.randn(4, 3), dim=1)
        F.nll_loss(logp, backprop.tensor([0, 2, 1, 0]))
    """
    reduction = _reduction(reduction, size_average, reduce, "nll_loss")
    return fused.nll_loss(input, target, weight=weight, ignore_index=ignore_index,
                          reduction=reduction)


# -- modules -----------------------------------------------------------------------------------

class _Loss(Module):
    """Base of the loss modules: holds ``reduction`` (checked when built)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction(reduction, size_average, reduce, type(self).__name__)


class _WeightedLoss(_Loss):
    """A loss with an optional ``weight``, registered as a buffer (saved, moved by ``to``)."""

    def __init__(self, weight=None, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        if weight is not None and not isinstance(weight, Tensor):
            raise TypeError(f"{type(self).__name__}: weight must be a Tensor or None, got "
                            f"{type(weight).__name__}")
        self.register_buffer("weight", weight)


def _class_weight(weight, name: str):
    if weight is not None and isinstance(weight, Tensor) and weight.ndim != 1:
        raise ShapeError(f"{name}: weight must be 1-D with one entry per class, got shape "
                         f"{tuple(weight.shape)}")


class MSELoss(_Loss):
    """Mean squared error between input and target: ``mse_loss`` as a module.

    Example::

        nn.MSELoss()(backprop.tensor([1.0, 2.0]), backprop.tensor([0.0, 0.0]))   # tensor(2.5)
    """

    def forward(self, input, target):
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error between input and target: ``l1_loss`` as a module.

    Example::

        nn.L1Loss(reduction="sum")(backprop.tensor([1.0, -2.0]), backprop.zeros(2))  # 3.
    """

    def forward(self, input, target):
        return l1_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """Huber loss (quadratic below ``delta``, linear above): ``huber_loss`` as a module.

    Example::

        nn.HuberLoss(delta=0.5)(backprop.tensor([2.0]), backprop.tensor([0.0]))   # 0.875
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = _positive(delta, "HuberLoss", "delta")

    def forward(self, input, target):
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """Smooth L1 loss (quadratic below ``beta``, L1 above): ``smooth_l1_loss`` as a module.

    Example::

        nn.SmoothL1Loss(beta=0.5)(backprop.tensor([2.0]), backprop.tensor([0.0]))   # 1.75
    """

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        if not isinstance(beta, numbers.Real) or isinstance(beta, bool) or not beta >= 0:
            raise ValueError(f"SmoothL1Loss: beta must be a non-negative number, got {beta!r}")
        self.beta = float(beta)

    def forward(self, input, target):
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy between probabilities and targets: ``binary_cross_entropy``.

    Example::

        nn.BCELoss()(backprop.sigmoid(backprop.randn(4)), backprop.tensor([0.0, 1.0, 1.0, 0.0]))
    """

    def forward(self, input, target):
        return binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits (sigmoid fused in, stable): the loss for binary and
    multi-label classification.

    Args:
        weight: a rescaling weight broadcast to the input's shape (a buffer).
        pos_weight: a weight on positive examples per class (a buffer); > 1 raises recall.

    Example::

        criterion = nn.BCEWithLogitsLoss(pos_weight=backprop.tensor([3.0, 1.0]))
        criterion(backprop.randn(8, 2), backprop.ones(8, 2))
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight=None) -> None:
        super().__init__(size_average, reduce, reduction)
        for name, value in (("weight", weight), ("pos_weight", pos_weight)):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"BCEWithLogitsLoss: {name} must be a Tensor or None, got "
                                f"{type(value).__name__}")
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, weight=self.weight,
                                                reduction=self.reduction,
                                                pos_weight=self.pos_weight)


class CrossEntropyLoss(_WeightedLoss):
    """Cross-entropy of logits and class indices or probabilities: the classification loss.

    Args:
        weight: a per-class weight of shape (C,) (a buffer).
        ignore_index: samples with this target contribute 0 and leave the mean.
        reduction: 'mean', 'sum' or 'none'.
        label_smoothing: ε in [0, 1], mixing the target with the uniform distribution.

    Example::

        criterion = nn.CrossEntropyLoss()
        criterion(backprop.randn(4, 3), backprop.tensor([0, 2, 1, 0]))
    """

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        _class_weight(weight, "CrossEntropyLoss")
        self.ignore_index = fused._check_index(ignore_index, "CrossEntropyLoss")
        if (not isinstance(label_smoothing, numbers.Real) or isinstance(label_smoothing, bool)
                or not 0.0 <= label_smoothing <= 1.0):
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, "
                             f"got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        return fused.cross_entropy(input, target, weight=self.weight,
                                   ignore_index=self.ignore_index, reduction=self.reduction,
                                   label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class indices given log-probabilities (after LogSoftmax).

    Example::

        model = nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1))
        nn.NLLLoss()(model(backprop.randn(2, 4)), backprop.tensor([0, 2]))
    """

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        _class_weight(weight, "NLLLoss")
        self.ignore_index = fused._check_index(ignore_index, "NLLLoss")

    def forward(self, input, target):
        return fused.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                              reduction=self.reduction)
