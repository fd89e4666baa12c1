"""Gradient clipping and flattening of parameters, as ``torch.nn.utils``.

The clipping functions change ``p.grad`` in place (outside the graph) and return
what PyTorch returns; they accept one tensor or any iterable of tensors, such as
the generator ``model.parameters()``.

Example::

    loss.backward()
    norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)   # the pre-clip norm
    optimizer.step()
"""
from __future__ import annotations

import math
import types
import warnings

import numpy as np

from backprop._checks import is_real
from backprop.errors import ShapeError
from backprop.nn.utils import rnn  # nn.utils.rnn.pad_sequence, ...
from backprop.nn.utils.fusion import (
    fuse_conv_bn_eval,
    fuse_conv_bn_weights,
    fuse_linear_bn_eval,
    fuse_linear_bn_weights,
)
from backprop.nn.utils.init import skip_init
from backprop.ops import cat
from backprop.tensor import Tensor, _make

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_",
           "parameters_to_vector", "vector_to_parameters", "clip_grad_norm", "skip_init",
           "fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval",
           "fuse_linear_bn_weights", "rnn"]


def _as_list(parameters, op: str) -> list:
    """One tensor or an iterable of tensors, as a list (a generator is consumed once)."""
    if isinstance(parameters, Tensor):
        return [parameters]
    try:
        items = list(parameters)
    except TypeError:
        raise TypeError(f"{op}: expected a Tensor or an iterable of Tensors, got "
                        f"{type(parameters).__name__}") from None
    for p in items:
        if not isinstance(p, Tensor):
            raise TypeError(f"{op}: expected an iterable of Tensors, found a "
                            f"{type(p).__name__}")
    return items


def _norm_type(norm_type, op: str) -> float:
    try:
        return float(norm_type)
    except (TypeError, ValueError):
        raise ValueError(f"{op}: norm_type must be a number (or 'inf'), got {norm_type!r}") \
            from None


def _vector_norm(a: np.ndarray, p: float):
    """The p-norm of all elements of ``a``, a 0-d array of its dtype (as vector_norm)."""
    a = a.ravel()
    if a.size == 0:
        return np.zeros((), a.dtype)
    if p == 2.0:
        return np.sqrt(np.dot(a, a))  # one BLAS call, no |a| temporary
    absolute = np.abs(a)
    if p == math.inf:
        return absolute.max()
    if p == -math.inf:
        return absolute.min()
    if p == 0.0:
        return np.asarray(np.count_nonzero(a), a.dtype)
    if p == 1.0:
        return absolute.sum()
    with np.errstate(divide="ignore", over="ignore"):
        return np.power(np.power(absolute, p).sum(), 1.0 / p)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None) -> Tensor:
    """The p-norm of the norms of ``tensors``: their norm as if concatenated into one vector.

    Args:
        tensors: a tensor or an iterable of tensors (usually gradients).
        norm_type: p; ``inf`` (or ``'inf'``) for the largest absolute value.
        error_if_nonfinite: raise RuntimeError when the norm is NaN or infinite.
        foreach: accepted for PyTorch compatibility; there is only one implementation.

    Example::

        nn.utils.get_total_norm([backprop.tensor([3.0]), backprop.tensor([4.0])])   # tensor(5.)
    """
    op = "get_total_norm"
    tensors = _as_list(tensors, op)
    p = _norm_type(norm_type, op)
    if not tensors:
        return _make(np.zeros((), np.float32))
    norms = np.stack([_vector_norm(t._data, p) for t in tensors])
    total = np.asarray(_vector_norm(norms, p))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {p} for gradients from `parameters` is "
                           f"non-finite ({float(total)}), so it cannot be clipped. To disable "
                           f"this error and scale the gradients by the non-finite norm anyway, "
                           f"set `error_if_nonfinite=False`")
    return _make(total)


def _scale_(grad: Tensor, factor) -> None:
    """grad *= factor, in place in grad's own array (copied first if it is a read-only view)."""
    data = grad._data
    factor = np.asarray(factor, dtype=data.dtype)
    if data.flags.writeable:
        np.multiply(data, factor, out=data)
    else:
        grad._data = data * factor
    grad._bump_version()


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None) -> None:
    """Scale the gradients by min(max_norm / (total_norm + 1e-6), 1), in place.

    Args:
        parameters: a tensor or an iterable of tensors whose ``.grad`` to scale.
        max_norm: the largest norm allowed.
        total_norm: their total norm, e.g. from :func:`get_total_norm`.

    Example::

        grads = [p.grad for p in model.parameters() if p.grad is not None]
        nn.utils.clip_grads_with_norm_(model.parameters(), 1.0, nn.utils.get_total_norm(grads))
    """
    op = "clip_grads_with_norm_"
    params = _as_list(parameters, op)
    max_norm = _max_norm(max_norm, op)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = total_norm._data if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    dtype = total.dtype if total.dtype.kind == "f" else np.dtype(np.float32)
    total = total.astype(dtype, copy=False)
    # NOTE: as torch, the coefficient is clamped at 1 rather than tested against the norm,
    # so a NaN norm makes every gradient NaN (instead of silently keeping them).
    coef = np.minimum(np.asarray(max_norm, dtype) / (total + np.asarray(1e-6, dtype)), 1.0)
    if coef == 1.0:
        return  # multiplying by exactly 1 changes nothing
    with np.errstate(invalid="ignore"):  # inf · 0 = NaN after an infinite norm, as torch
        for g in grads:
            _scale_(g, coef)


def _max_norm(max_norm, op: str) -> float:
    if isinstance(max_norm, Tensor):
        max_norm = max_norm.item()
    if (not is_real(max_norm) or isinstance(max_norm, bool)
            or not max_norm >= 0):
        raise ValueError(f"{op}: max_norm must be a non-negative number, got {max_norm!r}")
    return float(max_norm)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                    foreach=None) -> Tensor:
    """Rescale gradients in place so that their total norm is at most ``max_norm``.

    The total norm is taken over all gradients together, as if concatenated into one
    vector; when it exceeds ``max_norm`` every gradient is multiplied by
    ``max_norm / (total_norm + 1e-6)``.

    Args:
        parameters: a tensor or an iterable of tensors (``model.parameters()``).
        max_norm: the largest total norm allowed.
        norm_type: p of the p-norm; ``inf`` for the largest absolute value.
        error_if_nonfinite: raise RuntimeError (naming the norm) when the total norm is
            NaN or infinite, instead of scaling by it.
        foreach: accepted for PyTorch compatibility.

    Returns:
        The total norm of the gradients before clipping, a 0-d tensor.

    Example::

        w = backprop.zeros(2, requires_grad=True)
        (w * backprop.tensor([3.0, 4.0])).sum().backward()
        nn.utils.clip_grad_norm_([w], max_norm=1.0)   # tensor(5.); w.grad is now [0.6, 0.8]
    """
    op = "clip_grad_norm_"
    is_generator = isinstance(parameters, types.GeneratorType)
    params = _as_list(parameters, op)
    if is_generator and not params:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.",
                      UserWarning, stacklevel=2)
    max_norm = _max_norm(max_norm, op)
    grads = [p.grad for p in params if p.grad is not None]
    try:
        total = get_total_norm(grads, norm_type, error_if_nonfinite)
    except RuntimeError as e:
        raise RuntimeError(f"{op}: {e}") from None
    except ValueError as e:
        raise ValueError(str(e).replace("get_total_norm", op)) from None
    clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_grad_norm(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False,
                   foreach=None) -> Tensor:
    """Deprecated alias of :func:`clip_grad_norm_` (with PyTorch's FutureWarning)."""
    warnings.warn("`backprop.nn.utils.clip_grad_norm` is now deprecated in favor of "
                  "`backprop.nn.utils.clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value, foreach=None) -> None:
    """Clamp every gradient element to [-clip_value, clip_value], in place.

    Example::

        w = backprop.zeros(3, requires_grad=True)
        (w * backprop.tensor([-5.0, 0.5, 2.0])).sum().backward()
        nn.utils.clip_grad_value_([w], 1.0)           # w.grad is now [-1.0, 0.5, 1.0]
    """
    op = "clip_grad_value_"
    params = _as_list(parameters, op)
    if isinstance(clip_value, Tensor):
        clip_value = clip_value.item()
    if (not is_real(clip_value) or isinstance(clip_value, bool)
            or not clip_value >= 0):
        raise ValueError(f"{op}: clip_value must be a non-negative number, got {clip_value!r}")
    c = float(clip_value)
    for p in params:
        g = p.grad
        if g is None:
            continue
        if g._data.flags.writeable:
            np.clip(g._data, -c, c, out=g._data)
        else:
            g._data = np.clip(g._data, -c, c)
        g._bump_version()


def parameters_to_vector(parameters) -> Tensor:
    """All parameters flattened and concatenated into one 1-D tensor (part of the graph).

    Example::

        layer = nn.Linear(3, 2)
        nn.utils.parameters_to_vector(layer.parameters()).shape   # (8,): 6 weights, 2 biases
    """
    op = "parameters_to_vector"
    params = _as_list(parameters, op)
    if not params:
        raise ValueError(f"{op}: got no parameters to flatten")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec, parameters) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in place.

    The inverse of :func:`parameters_to_vector`: ``vec`` must have exactly as many
    elements as the parameters together; values are cast to each parameter's dtype.

    Example::

        layer = nn.Linear(3, 2)
        nn.utils.vector_to_parameters(backprop.zeros(8), layer.parameters())   # all zero
    """
    op = "vector_to_parameters"
    if not isinstance(vec, Tensor):
        raise TypeError(f"{op}: expected a Tensor, but got {type(vec).__name__}")
    params = _as_list(parameters, op)
    total = sum(p._data.size for p in params)
    if vec.ndim != 1 or vec._data.size != total:
        raise ShapeError(f"{op}: expected a 1-D vector of {total} elements (the parameters' "
                         f"total), got shape {tuple(vec.shape)}")
    data, start = vec._data, 0
    for p in params:
        n = p._data.size
        np.copyto(p._data, data[start:start + n].reshape(p._data.shape), casting="unsafe")
        p._bump_version()
        start += n
