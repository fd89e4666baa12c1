"""The primitive ops, one Function subclass each, and the functions users call.

Each op module lists its public functions in ``__all__`` and the ``Tensor``
methods it provides in ``TENSOR_METHODS``; this package gathers both, so a new
op is added in exactly one file.
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

from backprop import tensor as _tensor_module
from backprop.autograd.function import _capply
from backprop.autograd.grad_mode import state as _grad_state
from backprop.ops import (
    activation,
    attention,
    conv,
    elementwise,
    fused,
    indexing,
    inplace,
    linalg,
    math,
    recurrent,
    reduce,
    sampling,
    shape,
)

# Each module's public functions, by its literal ``__all__``: star imports, so that editors and
# type checkers see every name this package exports (a loop over globals() hides them).
from backprop.ops.activation import *  # noqa: F403
from backprop.ops.attention import *  # noqa: F403
from backprop.ops.conv import *  # noqa: F403
from backprop.ops.elementwise import *  # noqa: F403
from backprop.ops.fused import *  # noqa: F403
from backprop.ops.indexing import *  # noqa: F403
from backprop.ops.linalg import *  # noqa: F403
from backprop.ops.math import *  # noqa: F403
from backprop.ops.reduce import *  # noqa: F403
from backprop.ops.sampling import *  # noqa: F403
from backprop.ops.shape import *  # noqa: F403
from backprop.tensor import Tensor

_MODULES = [elementwise, reduce, shape, linalg, indexing, conv, activation, fused, inplace,
            attention, recurrent, math, sampling]
for _m in _MODULES:
    for _name, _fn in getattr(_m, "TENSOR_METHODS", {}).items():
        setattr(Tensor, _name, _fn)

# PyTorch's out= on the top-level functions that have it, added in one place (ops/_out.py).
from backprop.ops._out import OUT_OPS as _OUT_OPS  # noqa: E402
from backprop.ops._out import with_out as _with_out  # noqa: E402

_namespace = globals()
for _name in _OUT_OPS:
    if _name in _namespace:
        _namespace[_name] = _with_out(_namespace[_name], _name)

_Add, _Sub, _Mul, _Div = elementwise.Add, elementwise.Sub, elementwise.Mul, elementwise.Div
_Pow, _Neg, _MatMul = elementwise.Pow, elementwise.Neg, linalg.MatMul
# Concrete types first: isinstance stops at the first match, and the numbers.Real ABC
# check (for other real number types) is slow.
_OPERANDS = (Tensor, float, int, np.ndarray, np.generic, numbers.Real)


# -- operators: the hot path, kept to one isinstance check and one apply ------------------
def _binary(fn, reflected=False):
    # Bound once, not looked up on every call: the C accelerator's apply2 with fn as its
    # first argument (a partial object calls straight through), or the Python apply.
    apply = functools.partial(_capply[1], fn) if _capply is not None else fn.apply
    if reflected:
        def op(self, other):
            if not isinstance(other, _OPERANDS):
                return NotImplemented
            return apply(other, self)
    else:
        def op(self, other):
            if not isinstance(other, _OPERANDS):
                return NotImplemented
            return apply(self, other)
    return op


# Installed with setattr, as TENSOR_METHODS are: tensor.pyi declares them for the tools.
_OPERATORS = {
    "__add__": _binary(_Add),
    "__radd__": _binary(_Add, reflected=True),
    "__sub__": _binary(_Sub),
    "__rsub__": _binary(_Sub, reflected=True),
    "__mul__": _binary(_Mul),
    "__rmul__": _binary(_Mul, reflected=True),
    "__truediv__": _binary(_Div),
    "__rtruediv__": _binary(_Div, reflected=True),
    "__pow__": _binary(_Pow),
    "__rpow__": _binary(_Pow, reflected=True),
    "__matmul__": _binary(_MatMul),
    "__rmatmul__": _binary(_MatMul, reflected=True),
    "__neg__": lambda self: _Neg.apply(self),
    "__abs__": lambda self: elementwise.abs(self),
    "__floordiv__": lambda self, other: elementwise.floor_divide(self, other),
    "__rfloordiv__": lambda self, other: elementwise.floor_divide(other, self),
    "__mod__": lambda self, other: elementwise.remainder(self, other),
    "__rmod__": lambda self, other: elementwise.remainder(other, self),
    "__and__": lambda self, other: elementwise.bitwise_and(self, other),
    "__rand__": lambda self, other: elementwise.bitwise_and(other, self),
    "__or__": lambda self, other: elementwise.bitwise_or(self, other),
    "__ror__": lambda self, other: elementwise.bitwise_or(other, self),
    "__xor__": lambda self, other: elementwise.bitwise_xor(self, other),
    "__rxor__": lambda self, other: elementwise.bitwise_xor(other, self),
    "__invert__": lambda self: elementwise.bitwise_not(self),
    "__pos__": lambda self: self,
    "__eq__": lambda self, other: elementwise.eq(self, other),
    "__ne__": lambda self, other: elementwise.ne(self, other),
    "__lt__": lambda self, other: elementwise.lt(self, other),
    "__le__": lambda self, other: elementwise.le(self, other),
    "__gt__": lambda self, other: elementwise.gt(self, other),
    "__ge__": lambda self, other: elementwise.ge(self, other),
    "__hash__": object.__hash__,
}
for _name, _fn in _OPERATORS.items():
    setattr(Tensor, _name, _fn)


def _inplace(name, ufunc, fn):
    # NOTE: ``x += y`` changes x in place, as ``x.add_(y)`` does, and inside the graph
    # it is recorded the same way (backprop.ops.inplace). One exception keeps old code
    # working: a leaf that requires grad, which PyTorch refuses to change in place, is
    # rebound instead (``x = x + y``). Outside the graph the ufunc is called straight
    # away: this is the update of every optimizer step.
    def op(self, other):
        if not isinstance(other, _OPERANDS):
            return NotImplemented
        if _grad_state.enabled and self._requires_grad and self.grad_fn is None:
            return fn.apply(self, other)
        return self._ufunc_(ufunc, other, name)
    return op


_INPLACE_OPERATORS = {
    "__iadd__": _inplace("add_", np.add, _Add),
    "__isub__": _inplace("sub_", np.subtract, _Sub),
    "__imul__": _inplace("mul_", np.multiply, _Mul),
    "__itruediv__": _inplace("div_", np.true_divide, _Div),
}
for _name, _fn in _INPLACE_OPERATORS.items():
    setattr(Tensor, _name, _fn)
_tensor_module._UFUNC_OPS.update({np.add: _Add.apply, np.subtract: _Sub.apply,
                                  np.multiply: _Mul.apply, np.true_divide: _Div.apply})
