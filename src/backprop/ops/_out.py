"""PyTorch's ``out=`` argument, written once: the result is written into a given tensor.

``backprop.add(a, b, out=c)`` computes ``a + b`` as usual, then writes it into ``c`` and
returns ``c``. As in PyTorch, ``out=`` is refused when autograd would need the result (an
argument requires grad and grad mode is on): a tensor written in place has no history.
"""
from __future__ import annotations

import functools

# (write_out lives with the creation functions, a layer below ops, as they take out= too.)
from backprop.creation import write_out


def with_out(fn, op: str | None = None):
    """``fn`` with PyTorch's keyword ``out=`` added (see ``write_out``)."""
    name = op or fn.__name__

    # NOTE: library code calls these too (ops.cat, ops.where, ...). A call without keywords,
    # the common one, goes straight through without a dict unpacked into ``fn``: measured,
    # the wrapper then adds ~90 ns to a call instead of ~150 ns.
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not kwargs:
            return fn(*args)
        out = kwargs.pop("out", None)
        result = fn(*args, **kwargs)
        if out is None:
            return result
        return write_out(out, result, name)

    return wrapper


# The top-level functions that take ``out=`` in PyTorch (and return one tensor).
OUT_OPS = (
    "matmul", "mm", "bmm", "dot", "outer", "add", "sub", "mul", "div", "neg", "pow", "exp", "log",
    "expm1", "log1p", "sqrt", "rsqrt", "abs", "absolute", "sign", "sgn", "sin", "cos", "tanh",
    "sigmoid", "square", "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "where",
    "floor_divide", "remainder", "cat", "concat", "concatenate", "stack", "sum", "mean", "prod",
    "cumsum", "logsumexp", "amax", "amin", "argmax", "argmin", "std", "var", "norm", "gather",
    "index_select", "masked_select", "take_along_dim", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
    # (where another module defines them)
    "floor", "ceil", "round", "trunc", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh",
    "erf", "erfc", "erfinv", "log2", "log10", "reciprocal", "fmod", "logaddexp", "xlogy",
    "cumprod", "nan_to_num", "tril", "triu",
)
