"""The functional forms of the layers, as ``torch.nn.functional`` (usually imported as ``F``).

Most are the engine's own ops, re-exported under PyTorch's signatures. Three are
new primitives written here, each one fused Function for speed and gradient-
checked like any op: batch-statistics normalisation (``batch_norm`` in training,
``layer_norm``), normalisation by fixed statistics (``batch_norm`` in eval), and
``embedding``'s row lookup. The losses are re-exported from ``backprop.nn.loss``.

Example::

    import backprop.nn.functional as F
    F.relu(backprop.tensor([-1.0, 2.0]))        # tensor([0., 2.])
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from backprop import functional as _fn
from backprop import ops as _ops
from backprop.autograd.function import Function, named
from backprop.autograd.grad_mode import no_grad
from backprop.errors import DTypeError, IndexOutOfRange, ShapeError
from backprop.nn.loss import (  # distances and the other losses
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cosine_similarity,
    cross_entropy,
    gaussian_nll_loss,
    hinge_embedding_loss,
    huber_loss,
    kl_div,
    l1_loss,
    margin_ranking_loss,
    mse_loss,
    multi_margin_loss,
    multilabel_margin_loss,
    multilabel_soft_margin_loss,
    nll_loss,
    pairwise_distance,
    poisson_nll_loss,
    smooth_l1_loss,
    soft_margin_loss,
    triplet_margin_loss,
    triplet_margin_with_distance_loss,
)
from backprop.ops import attention as _attention
from backprop.ops._util import require_float
from backprop.ops._util import require_tensor as _tensor
from backprop.ops.indexing import index_add_along
from backprop.tensor import Tensor, _make

# -- re-exported ops: the same signatures as torch.nn.functional -------------------------------
linear = _ops.linear
conv2d = _ops.conv2d
max_pool2d = _ops.max_pool2d
avg_pool2d = _ops.avg_pool2d
conv1d = _ops.conv1d
conv_transpose1d = _ops.conv_transpose1d
conv_transpose2d = _ops.conv_transpose2d
max_pool1d = _ops.max_pool1d
avg_pool1d = _ops.avg_pool1d
pad = _ops.pad
sigmoid = _ops.sigmoid
tanh = _ops.tanh
gelu = _ops.gelu
softplus = _ops.softplus


# NOTE: ``inplace=True`` is accepted for compatibility, but these functions always
# compute out of place and leave the input unchanged: changing a tensor that the
# graph may still need is what the engine refuses to do. Use the returned value.
def relu(input, inplace: bool = False):
    """max(x, 0) element-wise. (``inplace`` is accepted; the result is computed out of place.)"""
    return _ops.relu(input)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """x where x > 0, negative_slope · x elsewhere."""
    return _ops.leaky_relu(input, negative_slope)


def elu(input, alpha: float = 1.0, inplace: bool = False):
    """x where x > 0, alpha · (eˣ - 1) elsewhere."""
    return _ops.elu(input, alpha)


def silu(input, inplace: bool = False):
    """x · σ(x) (swish)."""
    return _ops.silu(input)


def _softmax_dim(fn: str, ndim: int, stacklevel: int) -> int:
    """PyTorch's legacy choice when ``dim`` is omitted (with its deprecation warning)."""
    warnings.warn(f"Implicit dimension choice for {fn} has been deprecated. Change the call to "
                  f"include dim=X as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    """exp(x) / Σ exp(x) along ``dim``, stable for large logits.

    Example::

        F.softmax(backprop.tensor([[1.0, 1.0]]), dim=1)   # tensor([[0.5000, 0.5000]])
    """
    _tensor(input, "softmax")
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim, _stacklevel)
    return _fn.softmax(input, dim, dtype=dtype)


def log_softmax(input, dim=None, _stacklevel: int = 3, dtype=None):
    """log softmax along ``dim``: x - logsumexp(x), exact for logits of any size."""
    _tensor(input, "log_softmax")
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim, _stacklevel)
    return _fn.log_softmax(input, dim, dtype=dtype)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p), when ``training``."""
    return _fn.dropout(input, p, training, inplace)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """clamp(x, min_val, max_val); the gradient is 0 at and beyond the ends."""
    return _ops.hardtanh(input, min_val, max_val)


def relu6(input, inplace: bool = False):
    """min(max(x, 0), 6)."""
    return _ops.relu6(input)


def hardsigmoid(input, inplace: bool = False):
    """clamp(x/6 + 1/2, 0, 1)."""
    return _ops.hardsigmoid(input)


def hardswish(input, inplace: bool = False):
    """x · clamp(x/6 + 1/2, 0, 1)."""
    return _ops.hardswish(input)


def logsigmoid(input):
    """log σ(x), stable for any input."""
    return _ops.logsigmoid(input)


def mish(input, inplace: bool = False):
    """x · tanh(softplus(x))."""
    return _ops.mish(input)


def prelu(input, weight):
    """x where x > 0, weight · x elsewhere (one weight, or one per channel of dim 1)."""
    return _ops.prelu(input, weight)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale=None, enable_gqa: bool = False):
    """softmax(Q Kᵀ · scale + mask) V, one fused op (see ``backprop.ops.attention``).

    Example::

        q = k = v = backprop.randn(2, 4, 10, 8)
        F.scaled_dot_product_attention(q, k, v, is_causal=True).shape   # (2, 4, 10, 8)
    """
    return _attention.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p,
                                                   is_causal, scale, enable_gqa)


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12):
    """x / max(‖x‖ₚ, eps) along ``dim``.

    Example::

        F.normalize(backprop.tensor([[3.0, 4.0]]))   # tensor([[0.6000, 0.8000]])
    """
    norm = _ops.norm(_tensor(input, "normalize"), p, dim, keepdim=True)
    return input / _ops.clamp_min(norm, eps)


def one_hot(tensor, num_classes: int = -1):
    """int64 one-hot encoding: shape ``tensor.shape + (num_classes,)``.

    Example::

        F.one_hot(backprop.tensor([0, 2]), 3)   # tensor([[1, 0, 0], [0, 0, 1]])
    """
    idx = _tensor(tensor, "one_hot")._data
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"one_hot: expected an integer (int64) tensor of class indices, got "
                         f"{tensor.dtype}")
    if idx.size and idx.min() < 0:
        raise ValueError("one_hot: class values must be non-negative")
    if num_classes == -1:
        if idx.size == 0:
            raise ValueError("one_hot: can not infer total number of classes from empty tensor")
        num_classes = int(idx.max()) + 1
    elif idx.size and idx.max() >= num_classes:
        raise ValueError(f"one_hot: class values must be smaller than num_classes "
                         f"({num_classes}), got {int(idx.max())}")
    out = np.zeros(idx.shape + (int(num_classes),), dtype=np.int64)
    np.put_along_axis(out, idx[..., None].astype(np.int64), 1, axis=-1)
    return _make(out)


# -- adaptive pooling ----------------------------------------------------------------------------
def _averaging_matrix(size: int, n_out: int, dtype) -> np.ndarray:
    """(n_out, size): row i averages cells floor(i·size/n_out) .. ceil((i+1)·size/n_out) - 1."""
    i = np.arange(n_out)
    start = (i * size) // n_out
    end = -((-(i + 1) * size) // n_out)  # ceil
    cols = np.arange(size)
    inside = (cols >= start[:, None]) & (cols < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size, whatever the input size (as PyTorch).

    Output cell i covers input rows floor(i·H/oh) .. ceil((i+1)·H/oh) - 1 (and the
    same for columns). When the sizes divide evenly this is a reshape and a mean;
    otherwise two small averaging matrices multiply the input from both sides.

    Args:
        input: (N, C, H, W) or (C, H, W).
        output_size: int or (oh, ow); None in the pair keeps that input size.

    Example::

        F.adaptive_avg_pool2d(backprop.randn(8, 16, 7, 7), 1).shape   # (8, 16, 1, 1)
    """
    x = _tensor(input, "adaptive_avg_pool2d")
    if x.ndim not in (3, 4):
        raise ShapeError(f"adaptive_avg_pool2d: expected a 3-D or 4-D input, got shape "
                         f"{tuple(x.shape)}")
    require_float(x, "adaptive_avg_pool2d")
    h, w = x.shape[-2:]
    oh, ow = _sizes(output_size, (h, w), "adaptive_avg_pool2d")
    lead = tuple(x.shape[:-2])
    if h % oh == 0 and w % ow == 0:
        return _ops.mean(x.reshape(lead + (oh, h // oh, ow, w // ow)), (-3, -1))
    dtype = x._data.dtype
    rows = _make(_averaging_matrix(h, oh, dtype))      # (oh, H)
    cols = _make(_averaging_matrix(w, ow, dtype).T)    # (W, ow)
    return _ops.matmul(_ops.matmul(rows, x), cols)


# -- normalisation -------------------------------------------------------------------------------
def _param_shape(shape: tuple, param_axes: tuple) -> tuple:
    """The shape of γ and β: the input's dims that are not summed over for their gradients."""
    return tuple(n for a, n in enumerate(shape) if a not in param_axes)


class NormalizeBatchStats(Function):
    """y = x̂·γ + β,  x̂ = (x - μ)/√(σ² + ε), with μ, σ² (biased) over ``axes``.

    dx = σ⁻¹ · (ĝ - mean(ĝ) - x̂ · mean(ĝ·x̂)) with ĝ = g·γ (means over ``axes``);
    dγ = Σ g·x̂ and dβ = Σ g over ``param_axes``.
    """

    backward_name = 'NativeBatchNormBackward0'

    @staticmethod
    def forward(ctx, x, weight, bias, *, axes, view, param_axes, eps, stats_out=None):
        mean = x.mean(axis=axes, keepdims=True)
        xhat = x - mean
        var = np.mean(np.square(xhat), axis=axes, keepdims=True)
        invstd = 1.0 / np.sqrt(var + eps)
        xhat *= invstd
        if stats_out is not None:
            stats_out.append((mean, var))
        if weight is not None:
            out = xhat * weight.reshape(view)
            if bias is not None:
                out += bias.reshape(view)
        elif bias is not None:
            out = xhat + bias.reshape(view)
        else:
            out = xhat.copy()  # xhat is saved: the output must not share it
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.axes, ctx.view, ctx.param_axes = axes, view, param_axes
        ctx.param_shape = _param_shape(x.shape, param_axes)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        xhat, invstd, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        g, axes = grad_output, ctx.axes
        gw = gb = gx = None
        if need_w:
            gw = np.sum(g * xhat, axis=ctx.param_axes).reshape(ctx.param_shape)
        if need_b:
            gb = np.sum(g, axis=ctx.param_axes).reshape(ctx.param_shape)
        if need_x:
            gh = g * weight.reshape(ctx.view) if weight is not None else g
            gx = gh - gh.mean(axis=axes, keepdims=True)
            gx -= xhat * np.mean(gh * xhat, axis=axes, keepdims=True)
            gx *= invstd
        return gx, gw, gb


class NormalizeFixedStats(Function):
    """y = (x - μ)·s·γ + β with fixed μ and s = 1/√(σ² + ε) (BatchNorm in eval).

    dx = g·s·γ;  dγ = Σ g·(x - μ)·s;  dβ = Σ g (over ``param_axes``).
    """

    backward_name = 'NativeBatchNormBackward0'

    @staticmethod
    def forward(ctx, x, weight, bias, *, mean, invstd, view, param_axes):
        scale = invstd if weight is None else invstd * weight.reshape(view)
        out = (x - mean) * scale
        if bias is not None:
            out += bias.reshape(view)
        need_x, need_w, _ = ctx.needs_input_grad
        ctx.save_for_backward(x if need_w else None, scale)
        ctx.stats, ctx.param_axes = (mean, invstd), param_axes
        ctx.param_shape = _param_shape(x.shape, param_axes)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        x, scale = ctx.saved_tensors
        mean, invstd = ctx.stats
        need_x, need_w, need_b = ctx.needs_input_grad
        g = grad_output
        gx = g * scale if need_x else None
        gw = np.sum(g * ((x - mean) * invstd), axis=ctx.param_axes).reshape(
            ctx.param_shape) if need_w else None
        gb = np.sum(g, axis=ctx.param_axes).reshape(ctx.param_shape) if need_b else None
        return gx, gw, gb


def _param(t, name: str, shape: tuple, fn: str, like: Tensor):
    if t is None:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}: {name} must be a Tensor or None, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ShapeError(f"{fn}: expected {name} of shape {shape} for input of shape "
                         f"{tuple(like.shape)}, got {tuple(t.shape)}")
    return t


def _normalize_by_running(x, weight, bias, running_mean, running_var, eps, view, param_axes,
                          fn: str, when: str):
    """Normalise ``x`` by running statistics (batch_norm in eval, instance_norm without
    input stats); both must be given, else a ValueError saying ``when``."""
    if running_mean is None or running_var is None:
        raise ValueError(f"{fn}: running_mean and running_var must be given when {when}")
    dtype = x._data.dtype
    mean = running_mean._data.astype(dtype).reshape(view)
    invstd = (1.0 / np.sqrt(running_var._data.astype(dtype) + eps)).reshape(view)
    return NormalizeFixedStats.apply(x, weight, bias, mean=mean, invstd=invstd, view=view,
                                     param_axes=param_axes)


def _normalize_by_batch(x, weight, bias, axes, view, param_axes, eps) -> tuple:
    """Normalise ``x`` by its own statistics over ``axes``: (output, mean, biased variance),
    the statistics as arrays shaped ``view``-like for the running-statistics update."""
    stats: list = []
    out = NormalizeBatchStats.apply(x, weight, bias, axes=axes, view=view, param_axes=param_axes,
                                    eps=eps, stats_out=stats)
    mean, var = stats[0]
    return out, mean, var


def _update_running_(running, stat: np.ndarray, momentum: float, correction: float = 1.0):
    """``running = (1 - momentum)·running + momentum·stat·correction`` in place (a buffer
    or None), outside the graph."""
    if running is None:
        return
    with no_grad():
        r = running._data
        r[...] = (1 - momentum) * r + momentum * stat * correction
        running._bump_version()


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5):
    """Batch normalisation over every dim but the channels (dim 1), as PyTorch.

    In training, normalise by the batch's mean and biased variance and, when
    running statistics are given, update them in place:
    ``running = (1 - momentum)·running + momentum·batch`` using the *unbiased*
    batch variance. Otherwise normalise by the running statistics.

    Args:
        input: (N, C) or (N, C, *).
        running_mean, running_var: (C,) buffers, or None (training only).
        weight, bias: (C,) affine parameters, or None.

    Example::

        x = backprop.randn(32, 4)
        F.batch_norm(x, None, None, training=True).mean(0)   # ≈ 0
    """
    x = _tensor(input, "batch_norm")
    if x.ndim < 2:
        raise ShapeError(f"batch_norm: expected an input of at least 2 dims (N, C, ...), got "
                         f"shape {tuple(x.shape)}")
    require_float(x, "batch_norm")
    c = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    view = (1, c) + (1,) * (x.ndim - 2)
    weight = _param(weight, "weight", (c,), "batch_norm", x)
    bias = _param(bias, "bias", (c,), "batch_norm", x)
    running_mean = _param(running_mean, "running_mean", (c,), "batch_norm", x)
    running_var = _param(running_var, "running_var", (c,), "batch_norm", x)
    if not training:
        return _normalize_by_running(x, weight, bias, running_mean, running_var, eps, view, axes,
                                     "batch_norm", "not training")
    n = x._data.size // c if c else 0
    if n <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got "
                         f"input of shape {tuple(x.shape)}")
    out, mean, var = _normalize_by_batch(x, weight, bias, axes, view, axes, eps)
    _update_running_(running_mean, mean.reshape(c), momentum)
    _update_running_(running_var, var.reshape(c), momentum, n / (n - 1))  # unbiased
    return out


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalise over the last ``len(normalized_shape)`` dims of each sample, as PyTorch.

    Args:
        input: (*, *normalized_shape).
        normalized_shape: int or tuple: the trailing shape to normalise over.
        weight, bias: tensors of shape ``normalized_shape``, or None.

    Example::

        F.layer_norm(backprop.randn(4, 10), (10,)).mean(-1)   # ≈ 0 for each row
    """
    x = _tensor(input, "layer_norm")
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (int(normalized_shape),)
    shape = tuple(int(s) for s in normalized_shape)
    k = len(shape)
    if k == 0 or tuple(x.shape[x.ndim - k:]) != shape or x.ndim < k:
        raise ShapeError(f"layer_norm: given normalized_shape={list(shape)}, expected input with "
                         f"shape [*, {', '.join(map(str, shape))}], but got input of shape "
                         f"{tuple(x.shape)}")
    require_float(x, "layer_norm")
    weight = _param(weight, "weight", shape, "layer_norm", x)
    bias = _param(bias, "bias", shape, "layer_norm", x)
    axes = tuple(range(x.ndim - k, x.ndim))
    out = NormalizeBatchStats.apply(x, weight, bias, axes=axes, view=shape,
                                    param_axes=tuple(range(x.ndim - k)), eps=eps)
    return named(out, "NativeLayerNormBackward0")  # the same maths as batch_norm's, other axes


# -- embedding -----------------------------------------------------------------------------------
class EmbeddingLookup(Function):
    """out = W[idx];  dW[i] = Σ g[p] over positions p with idx[p] = i (row padding_idx: 0)"""

    backward_name = 'EmbeddingBackward0'

    @staticmethod
    def forward(ctx, weight, *, indices, padding_idx, scale_grad_by_freq):
        ctx.lookup = (indices, weight.shape[0], padding_idx, scale_grad_by_freq)
        return weight[indices]

    @staticmethod
    def backward(ctx, grad_output):
        indices, n_rows, padding_idx, by_freq = ctx.lookup
        flat = indices.reshape(-1)
        g = grad_output.reshape(flat.size, -1)
        if by_freq:  # each row's gradient divided by how often it occurs in the batch
            counts = np.bincount(flat, minlength=n_rows)
            g = g / counts[flat][:, None].astype(g.dtype)
        grad = index_add_along(g, 0, flat, n_rows)
        if padding_idx is not None:
            # NOTE: the padding row is a constant (e.g. "no token"): it never learns.
            grad[padding_idx] = 0
        return grad


def _embedding_indices(input, n_rows: int) -> np.ndarray:
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"embedding: expected indices of an integer dtype (int64 or int32), "
                         f"got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= n_rows):
        bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
        raise IndexOutOfRange(f"embedding: index {bad} is out of range for an embedding with "
                              f"{n_rows} rows")
    return idx.astype(np.intp, copy=False)


def _padding_idx(padding_idx, n_rows: int):
    if padding_idx is None:
        return None
    if not -n_rows <= padding_idx < n_rows:
        raise ValueError(f"Padding_idx must be within num_embeddings ({n_rows}), got "
                         f"{padding_idx}")
    return int(padding_idx) % n_rows


def _renorm_rows(weight: Tensor, idx: np.ndarray, max_norm: float, norm_type: float) -> None:
    """Scale, in place, the looked-up rows whose norm exceeds ``max_norm`` down to it."""
    rows = np.unique(idx)
    w = weight._data
    norms = np.linalg.norm(w[rows], ord=norm_type, axis=1)
    big = norms > max_norm
    if big.any():
        scale = max_norm / (norms[big] + 1e-7)
        w[rows[big]] *= scale[:, None].astype(w.dtype)
        weight._bump_version()


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False):
    """Look up rows of ``weight`` (num_embeddings, dim) at the integer ``input`` indices.

    The output has shape ``input.shape + (dim,)``. The row ``padding_idx`` gets no
    gradient. With ``max_norm``, looked-up rows longer than it are first scaled
    down in place (as PyTorch).

    Example::

        w = backprop.randn(10, 3)
        F.embedding(backprop.tensor([[1, 2], [4, 9]]), w).shape   # (2, 2, 3)
    """
    if sparse:
        raise ValueError("embedding: sparse gradients are not supported by backprop")
    w = _tensor(weight, "embedding")
    if w.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {tuple(w.shape)}")
    n_rows = w.shape[0]
    idx = _embedding_indices(input, n_rows)
    padding_idx = _padding_idx(padding_idx, n_rows)
    if max_norm is not None:
        _renorm_rows(w, idx, float(max_norm), float(norm_type))
    return EmbeddingLookup.apply(w, indices=idx, padding_idx=padding_idx,
                                 scale_grad_by_freq=bool(scale_grad_by_freq))


__all__ = [
    "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "elu", "softplus", "silu", "softmax",
    "log_softmax", "dropout", "linear", "conv2d", "max_pool2d", "avg_pool2d",
    "adaptive_avg_pool2d", "pad", "batch_norm", "layer_norm", "embedding", "one_hot",
    "normalize", "scaled_dot_product_attention", "hardtanh", "relu6", "hardsigmoid",
    "hardswish", "logsigmoid", "mish", "prelu",
    # losses, written in backprop.nn.loss
    "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss",
    "cosine_similarity", "pairwise_distance", "kl_div", "cosine_embedding_loss",
    "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss", "triplet_margin_loss",
    "triplet_margin_with_distance_loss", "gaussian_nll_loss", "poisson_nll_loss",
    "multilabel_soft_margin_loss", "multi_margin_loss", "multilabel_margin_loss",
    # image and sequence layers (backprop.ops.conv, and composites in backprop.nn.spatial)
    "conv1d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "avg_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool1d", "adaptive_avg_pool1d", "group_norm",
    "instance_norm", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "interpolate",
    "pixel_shuffle", "pixel_unshuffle",
]

# NOTE: written in backprop.nn.spatial, whose norms reach back here (lazily, at call time)
# for NormalizeBatchStats; importing them last keeps that cycle harmless.
from backprop.nn.spatial import (  # noqa: E402
    _sizes,
    adaptive_avg_pool1d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    alpha_dropout,
    dropout1d,
    dropout2d,
    dropout3d,
    group_norm,
    instance_norm,
    interpolate,
    pixel_shuffle,
    pixel_unshuffle,
)
