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
from backprop.ops import elementwise, linalg, reduce, shape
from backprop.tensor import Tensor

_MODULES = [elementwise, reduce, shape, linalg]
for _optional in ("indexing", "conv", "activation", "fused", "inplace", "attention",
                  "recurrent", "math", "sampling"):
    try:
        _MODULES.append(__import__(f"backprop.ops.{_optional}", fromlist=["_"]))
    except ModuleNotFoundError as _e:  # pragma: no cover - only while a module is being written
        if _e.name != f"backprop.ops.{_optional}":
            raise

_namespace = globals()
for _m in _MODULES:
    for _name in getattr(_m, "__all__", ()):
        _namespace[_name] = getattr(_m, _name)
    for _name, _fn in getattr(_m, "TENSOR_METHODS", {}).items():
        setattr(Tensor, _name, _fn)

# PyTorch's out= on the top-level functions that have it, added in one place (ops/_out.py).
from backprop.ops._out import OUT_OPS as _OUT_OPS  # noqa: E402
from backprop.ops._out import with_out as _with_out  # noqa: E402

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


Tensor.__add__ = _binary(_Add)
Tensor.__radd__ = _binary(_Add, reflected=True)
Tensor.__sub__ = _binary(_Sub)
Tensor.__rsub__ = _binary(_Sub, reflected=True)
Tensor.__mul__ = _binary(_Mul)
Tensor.__rmul__ = _binary(_Mul, reflected=True)
Tensor.__truediv__ = _binary(_Div)
Tensor.__rtruediv__ = _binary(_Div, reflected=True)
Tensor.__pow__ = _binary(_Pow)
Tensor.__rpow__ = _binary(_Pow, reflected=True)
Tensor.__matmul__ = _binary(_MatMul)
Tensor.__rmatmul__ = _binary(_MatMul, reflected=True)
Tensor.__neg__ = lambda self: _Neg.apply(self)
Tensor.__abs__ = lambda self: elementwise.abs(self)
Tensor.__floordiv__ = lambda self, other: elementwise.floor_divide(self, other)
Tensor.__rfloordiv__ = lambda self, other: elementwise.floor_divide(other, self)
Tensor.__mod__ = lambda self, other: elementwise.remainder(self, other)
Tensor.__rmod__ = lambda self, other: elementwise.remainder(other, self)
Tensor.__and__ = lambda self, other: elementwise.bitwise_and(self, other)
Tensor.__rand__ = lambda self, other: elementwise.bitwise_and(other, self)
Tensor.__or__ = lambda self, other: elementwise.bitwise_or(self, other)
Tensor.__ror__ = lambda self, other: elementwise.bitwise_or(other, self)
Tensor.__xor__ = lambda self, other: elementwise.bitwise_xor(self, other)
Tensor.__rxor__ = lambda self, other: elementwise.bitwise_xor(other, self)
Tensor.__invert__ = lambda self: elementwise.bitwise_not(self)
Tensor.__pos__ = lambda self: self
Tensor.__eq__ = lambda self, other: elementwise.eq(self, other)
Tensor.__ne__ = lambda self, other: elementwise.ne(self, other)
Tensor.__lt__ = lambda self, other: elementwise.lt(self, other)
Tensor.__le__ = lambda self, other: elementwise.le(self, other)
Tensor.__gt__ = lambda self, other: elementwise.gt(self, other)
Tensor.__ge__ = lambda self, other: elementwise.ge(self, other)
Tensor.__hash__ = object.__hash__


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


Tensor.__iadd__ = _inplace("add_", np.add, _Add)
Tensor.__isub__ = _inplace("sub_", np.subtract, _Sub)
Tensor.__imul__ = _inplace("mul_", np.multiply, _Mul)
Tensor.__itruediv__ = _inplace("div_", np.true_divide, _Div)
_tensor_module._UFUNC_OPS.update({np.add: _Add.apply, np.subtract: _Sub.apply,
                                  np.multiply: _Mul.apply, np.true_divide: _Div.apply})
