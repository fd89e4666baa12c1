"""Matrix products: ``matmul`` (with the 1-D and batched cases), ``dot``, ``outer``."""
from __future__ import annotations

import numpy as np

from backprop.autograd.function import Function
from backprop.errors import ShapeError
from backprop.ops._util import as_tensor


def _matmul_error(a_shape, b_shape) -> ShapeError:
    if len(a_shape) == 0 or len(b_shape) == 0:
        return ShapeError(f"matmul: both arguments need at least 1 dimension, got shapes "
                          f"{a_shape} and {b_shape}")
    k_a = a_shape[-1]
    k_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if k_a != k_b:
        return ShapeError(f"matmul: shapes {a_shape} and {b_shape} are not aligned: "
                          f"{k_a} != {k_b}")
    return ShapeError(f"matmul: batch dimensions of shapes {a_shape} and {b_shape} "
                      f"cannot be broadcast together")


class MatMul(Function):
    """out = a @ b;  da = g @ bᵀ,  db = aᵀ @ g  (1-D operands promoted, batch dims broadcast)"""

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise _matmul_error(a.shape, b.shape)
        try:
            out = np.matmul(a, b)
        except ValueError:
            raise _matmul_error(a.shape, b.shape) from None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(a, b)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        g = grad_output
        need_a, need_b = ctx.needs_input_grad
        if a.ndim == 1 and b.ndim == 1:  # dot product: g is a scalar
            return (g * b if need_a else None), (g * a if need_b else None)
        # NOTE: a 1-D operand acts as a row (a) or column (b) vector; put that axis back
        # so one formula covers every case. Batch dims are summed by the engine.
        a2, b2 = a, b
        if a.ndim == 1:
            a2, g = a[None, :], g[..., None, :]
        if b.ndim == 1:
            b2, g = b[:, None], g[..., :, None]
        ga = gb = None
        if need_a:
            ga = np.matmul(g, np.swapaxes(b2, -1, -2))
            if a.ndim == 1:
                ga = ga[..., 0, :]
        if need_b:
            gb = np.matmul(np.swapaxes(a2, -1, -2), g)
            if b.ndim == 1:
                gb = gb[..., :, 0]
        return ga, gb


def matmul(input, other):
    """Matrix product with NumPy/PyTorch semantics: 1-D operands and broadcast batches."""
    return MatMul.apply(as_tensor(input, "matmul"), as_tensor(other, "matmul"))


__all__ = ["matmul"]

TENSOR_METHODS = {"matmul": matmul}
