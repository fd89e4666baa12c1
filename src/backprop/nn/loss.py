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

import math
import numbers
import warnings

import numpy as np

from backprop import ops as _ops
from backprop._checks import is_real
from backprop.autograd.grad_mode import no_grad
from backprop.errors import DTypeError, ShapeError
from backprop.nn.module import Module
from backprop.ops import clamp, fused
from backprop.ops._util import require_tensor as _tensor_arg
from backprop.tensor import Tensor, _make

__all__ = [
    "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss",
    "MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", "BCELoss", "BCEWithLogitsLoss",
    "CrossEntropyLoss", "NLLLoss",
    "cosine_similarity", "pairwise_distance", "kl_div", "cosine_embedding_loss",
    "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss", "triplet_margin_loss",
    "triplet_margin_with_distance_loss", "gaussian_nll_loss", "poisson_nll_loss",
    "multilabel_soft_margin_loss", "multi_margin_loss", "multilabel_margin_loss",
    "CosineSimilarity", "PairwiseDistance", "KLDivLoss", "CosineEmbeddingLoss",
    "MarginRankingLoss", "HingeEmbeddingLoss", "SoftMarginLoss", "TripletMarginLoss",
    "TripletMarginWithDistanceLoss", "GaussianNLLLoss", "PoissonNLLLoss",
    "MultiLabelSoftMarginLoss", "MultiMarginLoss", "MultiLabelMarginLoss",
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
    _tensor_arg(input, op, "input")
    _tensor_arg(target, op, "target")
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
    _tensor_arg(weight, op, "weight")
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
    if weight is None and input._data.dtype == target._data.dtype:
        return fused.mse_loss(input, target, reduction)  # one node: MseLossBackward0, as torch
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
    if not is_real(value) or isinstance(value, bool) or not value > 0:
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


# -- distances, ranking, embedding and probabilistic losses ------------------------------------
# Composites of primitive ops (no backward of their own), each written as PyTorch defines it.

def _float_arg(x, op: str, what: str) -> Tensor:
    _tensor_arg(x, op, what)
    if x._data.dtype.kind != "f":
        raise DTypeError(f"{op}: expected {what} to be a floating-point tensor, got {x.dtype}")
    return x


def _broadcastable(op: str, **tensors) -> tuple:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    try:
        return np.broadcast_shapes(*shapes.values())
    except ValueError:
        raise ShapeError(f"{op}: the shapes {shapes} cannot be broadcast together") from None


def _floor_value(t: Tensor, lo: float) -> Tensor:
    """``t`` with its values clamped below at ``lo`` but its gradient left whole.

    NOTE: PyTorch clamps the norms of cosine_similarity and the variance of
    gaussian_nll_loss in place under no_grad, so the gradient flows as if unclamped;
    adding the clamp's change as a constant reproduces that."""
    with no_grad():
        shift = _ops.clamp_min(t, lo) - t
    return t + shift


def _margin(value, op: str, name: str = "margin") -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    return float(value)


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    """Cosine of the angle between ``x1`` and ``x2`` along ``dim`` (broadcasting)::

        x1·x2 / (max(‖x1‖, eps) · max(‖x2‖, eps))

    Example::

        F.cosine_similarity(backprop.tensor([[1.0, 0.0]]), backprop.tensor([[1.0, 1.0]]))
        # tensor([0.7071])
    """
    op = "cosine_similarity"
    _float_arg(x1, op, "x1")
    _float_arg(x2, op, "x2")
    shape = _broadcastable(op, x1=x1, x2=x2)
    if tuple(x1.shape) != shape:
        x1 = x1.expand(*shape)
    if tuple(x2.shape) != shape:
        x2 = x2.expand(*shape)
    # Each vector is divided by its own norm first, as PyTorch does: the result stays in [-1, 1].
    n1 = _floor_value(_ops.norm(x1, 2, dim, keepdim=True), eps)
    n2 = _floor_value(_ops.norm(x2, 2, dim, keepdim=True), eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    """The p-norm of ``x1 - x2 + eps`` along the last dimension (broadcasting).

    Example::

        F.pairwise_distance(backprop.tensor([[0.0, 0.0]]), backprop.tensor([[3.0, 4.0]]))
        # tensor([5.0000]) (up to eps)
    """
    op = "pairwise_distance"
    _float_arg(x1, op, "x1")
    _float_arg(x2, op, "x2")
    shape = _broadcastable(op, x1=x1, x2=x2)
    diff = x1 - x2 + eps
    if not shape:  # two scalars: the distance is |x1 - x2 + eps|
        return diff.abs()
    return _ops.norm(diff, p, len(shape) - 1, keepdim=keepdim)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean",
           log_target: bool = False):
    """Kullback-Leibler divergence loss: ``target · (log target - input)`` pointwise, for
    ``input`` given as log-probabilities (``target`` as probabilities, or as
    log-probabilities with ``log_target=True``).

    ``reduction='batchmean'`` (the KL divergence proper) divides the sum by the batch
    size; ``'mean'`` averages over every element, and warns as PyTorch does.

    Example::

        logp = F.log_softmax(backprop.randn(4, 3), dim=1)
        F.kl_div(logp, F.softmax(backprop.randn(4, 3), dim=1), reduction="batchmean")
    """
    op = "kl_div"
    input, target = _pair(input, target, op)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    elif reduction == "mean":
        warnings.warn("kl_div: reduction: 'mean' divides the total loss by both the batch size "
                      "and the support size. 'batchmean' divides only by the batch size, and "
                      "aligns with the KL div math definition.", UserWarning, stacklevel=2)
    if reduction not in ("mean", "sum", "none", "batchmean"):
        raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction; expected "
                         f"'mean', 'batchmean', 'sum' or 'none'")
    if log_target:
        loss = _ops.exp(target) * (target - input)
    else:
        loss = _ops.xlogy(target, target) - target * input
    if reduction == "batchmean":
        total = loss.sum()
        return total / input.shape[0] if input.ndim else total
    return _reduce(loss, reduction)


def _sign_target(target, op: str) -> Tensor:
    return _tensor_arg(target, op, "target")


def cosine_embedding_loss(input1, input2, target, margin: float = 0, size_average=None,
                          reduce=None, reduction="mean"):
    """1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1.

    Inputs are (N, D) with a target of shape (N,), or (D,) with a 0-d target.

    Example::

        F.cosine_embedding_loss(backprop.randn(3, 5), backprop.randn(3, 5),
                                backprop.tensor([1, -1, 1]))
    """
    op = "cosine_embedding_loss"
    _float_arg(input1, op, "input1")
    _float_arg(input2, op, "input2")
    _sign_target(target, op)
    reduction = _reduction(reduction, size_average, reduce, op)
    margin = _margin(margin, op)
    if target.ndim not in (0, 1):
        raise ShapeError(f"{op}: 0D or 1D target tensor expected, multi-target not supported; "
                         f"got target of shape {tuple(target.shape)}")
    want = 2 if target.ndim == 1 else 1
    if input1.ndim != want or input2.ndim != want:
        raise ShapeError(f"{op}: {target.ndim}D target tensor expects {want}D input tensors, but "
                         f"found inputs with sizes {tuple(input1.shape)} and "
                         f"{tuple(input2.shape)}")
    if tuple(input1.shape) != tuple(input2.shape) or (
            target.ndim == 1 and target.shape[0] != input1.shape[0]):
        raise ShapeError(f"{op}: expected inputs of one shape and one target per row, got "
                         f"input1 {tuple(input1.shape)}, input2 {tuple(input2.shape)} and target "
                         f"{tuple(target.shape)}")
    d = target.ndim
    eps = 1e-12  # PyTorch's: keeps a zero vector from dividing by zero
    prod = (input1 * input2).sum(d)
    mag1 = (input1 * input1).sum(d) + eps
    mag2 = (input2 * input2).sum(d) + eps
    cos = prod / _ops.sqrt(mag1 * mag2)
    loss = (_ops.where(target == 1, 1 - cos, 0.0)
            + _ops.where(target == -1, _ops.clamp_min(cos - margin, 0), 0.0))
    return _reduce(loss, reduction)


def margin_ranking_loss(input1, input2, target, margin: float = 0, size_average=None,
                        reduce=None, reduction="mean"):
    """max(0, -target · (input1 - input2) + margin): input1 should rank higher where target
    is 1, lower where it is -1.

    Example::

        x1, x2 = backprop.tensor([0.8]), backprop.tensor([0.3])
        F.margin_ranking_loss(x1, x2, backprop.tensor([1.0]))     # tensor(0.)
    """
    op = "margin_ranking_loss"
    _float_arg(input1, op, "input1")
    _float_arg(input2, op, "input2")
    _sign_target(target, op)
    reduction = _reduction(reduction, size_average, reduce, op)
    margin = _margin(margin, op)
    if not input1.ndim == input2.ndim == target.ndim:
        raise ShapeError(f"{op}: all input tensors should have the same dimension but got sizes: "
                         f"input1: {tuple(input1.shape)}, input2: {tuple(input2.shape)}, target: "
                         f"{tuple(target.shape)}")
    _broadcastable(op, input1=input1, input2=input2, target=target)
    return _reduce(_ops.clamp_min(-target * (input1 - input2) + margin, 0), reduction)


def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction="mean"):
    """x where target is 1, max(0, margin - x) where it is -1 (x usually a distance).

    Example::

        F.hinge_embedding_loss(backprop.tensor([0.2, 1.5]), backprop.tensor([1, -1]))
    """
    op = "hinge_embedding_loss"
    _float_arg(input, op, "input")
    _sign_target(target, op)
    reduction = _reduction(reduction, size_average, reduce, op)
    margin = _margin(margin, op)
    _broadcastable(op, input=input, target=target)
    loss = (_ops.where(target != 1, _ops.clamp_min(margin - input, 0), 0.0)
            + _ops.where(target != -1, input, 0.0))
    return _reduce(loss, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-target · input)): the two-class logistic loss for targets ±1.

    Example::

        F.soft_margin_loss(backprop.tensor([2.0, -1.0]), backprop.tensor([1.0, -1.0]))
    """
    op = "soft_margin_loss"
    input, target = _pair(input, target, op)
    reduction = _reduction(reduction, size_average, reduce, op)
    return _reduce(_ops.softplus(-input * target), reduction)


def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average=None, reduce=None,
                        reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0) with d the ``pairwise_distance`` of norm ``p``;
    ``swap`` uses min(d(a, n), d(p, n)) as the negative distance.

    Example::

        a, p, n = backprop.randn(8, 16), backprop.randn(8, 16), backprop.randn(8, 16)
        F.triplet_margin_loss(a, p, n, margin=0.5)
    """
    op = "triplet_margin_loss"
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        _float_arg(t, op, name)
    reduction = _reduction(reduction, size_average, reduce, op)
    if _margin(margin, op) <= 0:
        raise ValueError(f"{op}: margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise ShapeError(f"{op}: the anchor, positive, and negative tensors are expected to have "
                         f"the same number of dimensions, but got: anchor "
                         f"{tuple(anchor.shape)}, positive {tuple(positive.shape)}, negative "
                         f"{tuple(negative.shape)}")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = _ops.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(_ops.clamp_min(margin + d_pos - d_neg, 0), reduction)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin: float = 1.0, swap: bool = False,
                                      reduction="mean"):
    """``triplet_margin_loss`` with any distance (default: ``pairwise_distance``).

    Example::

        dist = lambda x, y: 1.0 - F.cosine_similarity(x, y)
        F.triplet_margin_with_distance_loss(a, p, n, distance_function=dist)
    """
    op = "triplet_margin_with_distance_loss"
    reduction = fused._check_reduction(reduction, op)
    if _margin(margin, op) <= 0:
        raise ValueError(f"{op}: margin must be greater than 0, got {margin}")
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise ShapeError(f"{op}: the anchor, positive, and negative tensors are expected to have "
                         f"the same number of dimensions, but got: anchor "
                         f"{tuple(anchor.shape)}, positive {tuple(positive.shape)}, negative "
                         f"{tuple(negative.shape)}")
    dist = distance_function if distance_function is not None else pairwise_distance
    d_pos = dist(anchor, positive)
    d_neg = dist(anchor, negative)
    if swap:
        d_neg = _ops.minimum(d_neg, dist(positive, negative))
    return _reduce(_ops.clamp_min(margin + d_pos - d_neg, 0), reduction)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6,
                      reduction="mean"):
    """Negative log-likelihood of ``target`` under N(input, var)::

        0.5 · (log(max(var, eps)) + (input - target)² / max(var, eps))  (+ 0.5·log 2π if full)

    ``var`` has the input's shape, or one dimension fewer, or a size-1 dimension where
    the input has more (one variance shared), or is a positive float.

    Example::

        mu, var = backprop.randn(4, 2), backprop.rand(4, 2) + 0.1
        F.gaussian_nll_loss(mu, backprop.randn(4, 2), var)
    """
    op = "gaussian_nll_loss"
    _float_arg(input, op, "input")
    _tensor_arg(target, op, "target")
    if isinstance(var, numbers.Real) and not isinstance(var, bool):
        if var < 0:
            raise ValueError(f"{op}: var has negative entry/entries (var={var})")
        var = _make(np.full(input.shape, float(var), dtype=input._data.dtype))
    else:
        _float_arg(var, op, "var")
        if bool((var._data < 0).any()):
            raise ValueError(f"{op}: var has negative entry/entries")
    xs, vs = tuple(input.shape), tuple(var.shape)
    if vs != xs:
        if xs[:-1] == vs:
            var = var.unsqueeze(-1)  # one variance per row, shared by its last dimension
        elif not (len(xs) == len(vs)
                  and sum(v for x, v in zip(xs, vs, strict=True) if x != v) == 1):
            raise ShapeError(f"{op}: var is of incorrect size: var {vs} for input {xs}")
    reduction = fused._check_reduction(reduction, op)
    var = _floor_value(var, eps)
    loss = 0.5 * (_ops.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False,
                     size_average=None, eps: float = 1e-8, reduce=None, reduction="mean"):
    """Negative log-likelihood of counts ``target`` under Poisson(λ)::

        exp(input) - target · input         (log_input=True: input is log λ)
        input - target · log(input + eps)   (log_input=False: input is λ)

    ``full`` adds Stirling's approximation of log(target!) where target > 1.

    Example::

        F.poisson_nll_loss(backprop.randn(5), backprop.tensor([0.0, 1.0, 2.0, 0.0, 3.0]))
    """
    op = "poisson_nll_loss"
    input, target = _pair(input, target, op)
    reduction = _reduction(reduction, size_average, reduce, op)
    if log_input:
        loss = _ops.exp(input) - target * input
    else:
        loss = input - target * _ops.log(input + eps)
    if full:
        big = target.detach() > 1
        # Stirling's term only where target > 1 (elsewhere 0, with a zero gradient: the
        # harmless stand-in 2.0 keeps log away from 0 where the term is not used).
        safe = _ops.where(big, target, 2.0)
        stirling = safe * _ops.log(safe) - safe + 0.5 * _ops.log(2 * math.pi * safe)
        loss = loss + _ops.where(big, stirling, 0.0)
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean"):
    """One logistic loss per class, averaged over the classes (the last dimension)::

        -mean_c [y_c · log σ(x_c) + (1 - y_c) · log σ(-x_c)]

    Example::

        F.multilabel_soft_margin_loss(backprop.randn(2, 3), backprop.tensor([[1., 0., 1.],
                                                                             [0., 0., 1.]]))
    """
    op = "multilabel_soft_margin_loss"
    input, target = _pair(input, target, op)
    reduction = _reduction(reduction, size_average, reduce, op)
    if input.ndim == 0:
        raise ShapeError(f"{op}: expected input with a class dimension, got a 0-d tensor")
    # log σ(x) = -softplus(-x), stable for logits of any size
    loss = target * _ops.softplus(-input) + (1 - target) * _ops.softplus(input)
    if weight is not None:
        loss = loss * _tensor_arg(weight, op, "weight")
    loss = loss.sum(input.ndim - 1) / input.shape[-1]
    return _reduce(loss, reduction)


def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None,
                      size_average=None, reduce=None, reduction="mean"):
    """The multi-class hinge loss: for each sample with class y,
    Σ_{i≠y} w_y · max(0, margin - x_y + x_i)^p / C.

    Example::

        F.multi_margin_loss(backprop.randn(3, 4), backprop.tensor([0, 3, 1]))
    """
    op = "multi_margin_loss"
    _float_arg(input, op, "input")
    _tensor_arg(target, op, "target")
    reduction = _reduction(reduction, size_average, reduce, op)
    if p not in (1, 2):
        raise ValueError(f"{op}: only p == 1 and p == 2 supported, got p={p!r}")
    margin = _margin(margin, op)
    if input.ndim not in (1, 2) or input.shape[-1] == 0:
        raise ShapeError(f"{op}: expected a non-empty 1D or 2D input, got shape "
                         f"{tuple(input.shape)}")
    x = input if input.ndim == 2 else input.unsqueeze(0)
    n, c = x.shape
    idx = target._data
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"{op}: expected an integer target of class indices, got {target.dtype}")
    idx = idx.reshape(-1)
    if idx.shape[0] != n:
        raise ShapeError(f"{op}: inconsistent target size: got target of shape "
                         f"{tuple(target.shape)} for input of shape {tuple(input.shape)}")
    if n and (idx.min() < 0 or idx.max() >= c):
        raise IndexError(f"{op}: target {int(idx.min() if idx.min() < 0 else idx.max())} is out "
                         f"of bounds for {c} classes")
    if weight is not None:
        _tensor_arg(weight, op, "weight")
        if weight.ndim != 1:
            raise ValueError(f"{op}: weight must be one-dimensional, got shape "
                             f"{tuple(weight.shape)}")
    rows = np.arange(n)
    picked = x[rows, idx].unsqueeze(1)                      # x_y, (N, 1)
    hinge = _ops.clamp_min(margin - picked + x, 0)          # (N, C)
    if p == 2:
        hinge = hinge * hinge
    others = np.ones((n, c), dtype=x._data.dtype)
    others[rows, idx] = 0                                   # the i = y term is left out
    hinge = hinge * _make(others)
    if weight is not None:
        hinge = hinge * weight[idx].unsqueeze(1)
    loss = hinge.sum(1) / c
    if input.ndim == 1:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """The multi-label hinge loss. Each row of ``target`` lists the sample's classes, ended
    by the first -1; for each listed class j and each class i not listed,
    max(0, 1 - (x_j - x_i)) is summed, and the sum divided by the number of classes C.

    Example::

        x = backprop.tensor([[0.1, 0.2, 0.4, 0.8]])
        F.multilabel_margin_loss(x, backprop.tensor([[3, 0, -1, 1]]))   # tensor(0.8500)
    """
    op = "multilabel_margin_loss"
    _float_arg(input, op, "input")
    _tensor_arg(target, op, "target")
    reduction = _reduction(reduction, size_average, reduce, op)
    if input.ndim not in (1, 2) or input.shape[-1] == 0:
        raise ShapeError(f"{op}: expected a non-empty 1D or 2D input, got shape "
                         f"{tuple(input.shape)}")
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(f"{op}: inconsistent target size: got target of shape "
                         f"{tuple(target.shape)} for input of shape {tuple(input.shape)}")
    if target._data.dtype.kind not in "iu":
        raise DTypeError(f"{op}: expected an integer target of class indices, got {target.dtype}")
    x = input if input.ndim == 2 else input.unsqueeze(0)
    n, c = x.shape
    t = target._data.reshape(n, c).astype(np.int64)
    # The listed classes of each row: the entries before the first -1.
    listed = np.cumprod(t != -1, axis=1).astype(bool)
    if np.any(listed & ((t < 0) | (t >= c))):
        bad = int(t[listed & ((t < 0) | (t >= c))][0])
        raise IndexError(f"{op}: target {bad} is out of range for {c} classes")
    rows = np.arange(n)[:, None]
    index = np.where(listed, t, 0)
    is_target = np.zeros((n, c), dtype=bool)
    is_target[np.broadcast_to(rows, (n, c))[listed], t[listed]] = True
    picked = x[rows, index]                                   # x_j for each listed slot, (N, C)
    hinge = _ops.clamp_min(1 - picked.unsqueeze(2) + x.unsqueeze(1), 0)   # (N, slot, class)
    mask = (listed[:, :, None] & ~is_target[:, None, :]).astype(x._data.dtype)
    loss = (hinge * _make(mask)).sum((1, 2)) / c
    if input.ndim == 1:
        loss = loss.reshape(())
    return _reduce(loss, reduction)


class MultiLabelMarginLoss(_Loss):
    """``multilabel_margin_loss`` as a module.

    Example::

        nn.MultiLabelMarginLoss()(scores, backprop.tensor([[3, 0, -1, 1]]))
    """

    def forward(self, input, target):
        return multilabel_margin_loss(input, target, reduction=self.reduction)


class CosineSimilarity(Module):
    """Cosine similarity along ``dim``: ``cosine_similarity`` as a module.

    Example::

        nn.CosineSimilarity(dim=1)(backprop.randn(4, 8), backprop.randn(4, 8))   # shape (4,)
    """

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """p-norm distance along the last dimension: ``pairwise_distance`` as a module.

    Example::

        nn.PairwiseDistance()(backprop.randn(4, 8), backprop.randn(4, 8))   # shape (4,)
    """

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1, x2):
        return pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence loss (input: log-probabilities): ``kl_div`` as a module.

    Use ``reduction='batchmean'`` for the KL divergence proper.

    Example::

        nn.KLDivLoss(reduction="batchmean", log_target=True)(logp, logq)
    """

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 log_target: bool = False) -> None:
        Module.__init__(self)
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        if reduction not in ("mean", "sum", "none", "batchmean"):
            raise ValueError(f"KLDivLoss: {reduction!r} is not a valid value for reduction; "
                             f"expected 'mean', 'batchmean', 'sum' or 'none'")
        self.reduction = reduction
        self.log_target = log_target

    def forward(self, input, target):
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class CosineEmbeddingLoss(_Loss):
    """``cosine_embedding_loss`` as a module.

    Example::

        nn.CosineEmbeddingLoss(margin=0.2)(x1, x2, backprop.tensor([1, -1, 1]))
    """

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = _margin(margin, "CosineEmbeddingLoss")

    def forward(self, input1, input2, target):
        return cosine_embedding_loss(input1, input2, target, margin=self.margin,
                                     reduction=self.reduction)


# CosineEmbeddingLoss, MarginRankingLoss and HingeEmbeddingLoss mirror each other: separate
# PyTorch classes whose margin defaults and forward arguments differ.
class MarginRankingLoss(_Loss):
    """``margin_ranking_loss`` as a module.

    Example::

        nn.MarginRankingLoss(margin=0.1)(score_a, score_b, backprop.tensor([1.0, -1.0]))
    """

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = _margin(margin, "MarginRankingLoss")

    def forward(self, input1, input2, target):
        return margin_ranking_loss(input1, input2, target, margin=self.margin,
                                   reduction=self.reduction)


class HingeEmbeddingLoss(_Loss):
    """``hinge_embedding_loss`` as a module.

    Example::

        nn.HingeEmbeddingLoss(margin=1.0)(distances, backprop.tensor([1, -1, -1]))
    """

    def __init__(self, margin: float = 1.0, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = _margin(margin, "HingeEmbeddingLoss")

    def forward(self, input, target):
        return hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


class SoftMarginLoss(_Loss):
    """``soft_margin_loss`` as a module.

    Example::

        nn.SoftMarginLoss()(backprop.randn(4), backprop.tensor([1.0, -1.0, 1.0, 1.0]))
    """

    def forward(self, input, target):
        return soft_margin_loss(input, target, reduction=self.reduction)


class TripletMarginLoss(_Loss):
    """``triplet_margin_loss`` as a module.

    Example::

        nn.TripletMarginLoss(margin=1.0, p=2)(anchor, positive, negative)
    """

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6,
                 swap: bool = False, size_average=None, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        if _margin(margin, "TripletMarginLoss") <= 0:
            raise ValueError(f"TripletMarginLoss: margin must be greater than 0, got {margin}")
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor, positive, negative):
        return triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p,
                                   eps=self.eps, swap=self.swap, reduction=self.reduction)


class TripletMarginWithDistanceLoss(_Loss):
    """``triplet_margin_with_distance_loss`` as a module.

    Example::

        nn.TripletMarginWithDistanceLoss(distance_function=nn.PairwiseDistance(p=1))(a, p, n)
    """

    def __init__(self, *, distance_function=None, margin: float = 1.0, swap: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        if _margin(margin, "TripletMarginWithDistanceLoss") <= 0:
            raise ValueError(f"TripletMarginWithDistanceLoss: margin must be greater than 0, "
                             f"got {margin}")
        if distance_function is not None and not callable(distance_function):
            raise TypeError(f"TripletMarginWithDistanceLoss: distance_function must be callable, "
                            f"got {type(distance_function).__name__}")
        self.distance_function = distance_function
        self.margin, self.swap = margin, swap

    def forward(self, anchor, positive, negative):
        return triplet_margin_with_distance_loss(
            anchor, positive, negative, distance_function=self.distance_function,
            margin=self.margin, swap=self.swap, reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    """``gaussian_nll_loss`` as a module: ``criterion(input, target, var)``.

    Example::

        nn.GaussianNLLLoss()(mu, target, var)
    """

    def __init__(self, *, full: bool = False, eps: float = 1e-6,
                 reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.full, self.eps = full, eps

    def forward(self, input, target, var):
        return gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps,
                                 reduction=self.reduction)


class PoissonNLLLoss(_Loss):
    """``poisson_nll_loss`` as a module.

    Example::

        nn.PoissonNLLLoss()(log_rate, counts)
    """

    def __init__(self, log_input: bool = True, full: bool = False, size_average=None,
                 eps: float = 1e-8, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input, target):
        return poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full,
                                eps=self.eps, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """``multilabel_soft_margin_loss`` as a module (``weight``: one per class, a buffer).

    Example::

        nn.MultiLabelSoftMarginLoss()(logits, multi_hot_targets)
    """

    def forward(self, input, target):
        return multilabel_soft_margin_loss(input, target, weight=self.weight,
                                           reduction=self.reduction)


class MultiMarginLoss(_WeightedLoss):
    """``multi_margin_loss`` as a module.

    Example::

        nn.MultiMarginLoss(p=1, margin=1.0)(scores, backprop.tensor([0, 3, 1]))
    """

    def __init__(self, p: int = 1, margin: float = 1.0, weight=None, size_average=None,
                 reduce=None, reduction: str = "mean") -> None:
        if p not in (1, 2):
            raise ValueError(f"MultiMarginLoss: only p == 1 and p == 2 supported, got p={p!r}")
        if weight is not None and isinstance(weight, Tensor) and weight.ndim != 1:
            raise ValueError(f"MultiMarginLoss: weight must be one-dimensional, got shape "
                             f"{tuple(weight.shape)}")
        super().__init__(weight, size_average, reduce, reduction)
        self.p, self.margin = p, _margin(margin, "MultiMarginLoss")

    def forward(self, input, target):
        return multi_margin_loss(input, target, p=self.p, margin=self.margin,
                                 weight=self.weight, reduction=self.reduction)
