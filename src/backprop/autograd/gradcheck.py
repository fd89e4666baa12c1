"""``gradcheck``: compare analytic gradients with central finite differences.

A public tool, for checking your own ``Function`` subclasses as much as ours.
"""
from __future__ import annotations

import numpy as np

from backprop.autograd.engine import run_backward
from backprop.autograd.grad_mode import no_grad
from backprop.errors import DTypeError, GradcheckError
from backprop.tensor import Tensor

#: Above this many output elements the analytic Jacobian is probed with random
#: vectors (vector-Jacobian products) instead of one backward per output element.
FULL_JACOBIAN_MAX_OUTPUTS = 64
N_PROBES = 3


def _outputs(fn, inputs):
    out = fn(*inputs)
    outs = (out,) if isinstance(out, Tensor) else tuple(out)
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: output {i} of fn is a {type(o).__name__}, not a Tensor")
    return outs


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, seed: int = 0) -> bool:
    """Check ``fn``'s gradients against central finite differences in float64.

    Every element of every input that requires grad is nudged by ±eps; the
    change in every output is compared with what backward computes. For outputs
    with many elements the comparison is made along a few random directions.

    Args:
        fn: a function of tensors returning a tensor or a tuple of tensors.
        inputs: a tensor or tuple of tensors (float64 where they require grad).
        eps: the finite-difference step.
        atol, rtol: pass when |analytic - numerical| <= atol + rtol * |numerical|.
        raise_exception: raise ``GradcheckError`` naming the input, the element
            and both values on failure (otherwise return False).

    Returns:
        True when every gradient agrees.

    Example::

        x = backprop.randn(3, dtype=backprop.float64, requires_grad=True)
        gradcheck(lambda t: (t * t).sum(), (x,))   # True
    """
    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    diff = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    for i, t in diff:
        if t._data.dtype != np.float64:
            raise DTypeError(f"gradcheck: input {i} has dtype {t.dtype}; finite differences "
                             f"need float64 precision (use x.double())")
    rng = np.random.default_rng(seed)
    outs = _outputs(fn, inputs)
    outs_f = [(k, o) for k, o in enumerate(outs) if o._data.dtype.kind == "f"]

    # Directions along which to compare: every one-hot vector for small outputs,
    # random vectors otherwise. For each, analytic v·J comes from one backward.
    probes = []  # (output index, v array, description of the output element)
    for k, o in outs_f:
        n = o._data.size
        if n <= FULL_JACOBIAN_MAX_OUTPUTS:
            for j in range(n):
                v = np.zeros(o._data.size)
                v[j] = 1.0
                where = np.unravel_index(j, o._data.shape) if o._data.ndim else ()
                probes.append((k, v.reshape(o._data.shape), f"output {k} element "
                               f"{tuple(int(w) for w in where)}"))
        else:
            for p in range(N_PROBES):
                probes.append((k, rng.standard_normal(o._data.shape),
                               f"output {k} along random direction {p}"))

    for k, v, what in probes:
        out = outs[k]
        analytic = [np.zeros_like(t._data) for _, t in diff]
        if out.requires_grad:
            grads = run_backward([out], [v.astype(out._data.dtype)], retain_graph=True,
                                 capture=[t for _, t in diff], accumulate=False)
            for a, g in zip(analytic, grads, strict=True):
                if g is not None:
                    a += g
        for (i, t), a in zip(diff, analytic, strict=True):
            numerical = _numerical(fn, inputs, t, k, v, eps)
            err = np.abs(a - numerical)
            bound = atol + rtol * np.abs(numerical)
            bad = np.argwhere(~(err <= bound))
            if bad.size:
                idx = tuple(int(b) for b in bad[0])
                msg = (f"gradcheck: gradient mismatch for input {i} (shape {t._data.shape}) "
                       f"at element {idx}, {what}: analytic {a[idx]:.10g}, numerical "
                       f"{numerical[idx]:.10g}, |difference| {err[idx]:.3g} > atol + rtol·|numerical| "
                       f"= {bound[idx]:.3g}")
                if raise_exception:
                    raise GradcheckError(msg)
                return False
    return True


def _numerical(fn, inputs, t: Tensor, k: int, v: np.ndarray, eps: float) -> np.ndarray:
    """d(v · output_k)/d(t) by central differences, one element of t at a time."""
    data = t._data
    if data.size == 0:
        return np.zeros(data.shape)
    flat = data.reshape(-1)
    if not np.shares_memory(flat, data):
        raise ValueError("gradcheck: inputs must be contiguous arrays")
    out = np.zeros(data.size)
    with no_grad():
        for j in range(data.size):
            orig = flat[j]
            flat[j] = orig + eps
            plus = float(np.sum(_outputs(fn, inputs)[k]._data * v))
            flat[j] = orig - eps
            minus = float(np.sum(_outputs(fn, inputs)[k]._data * v))
            flat[j] = orig
            out[j] = (plus - minus) / (2 * eps)
    return out.reshape(data.shape)
