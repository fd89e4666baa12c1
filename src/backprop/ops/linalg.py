"""Matrix products: ``matmul`` and its strict forms (``mm``, ``bmm``, ``dot``), ``outer``,
``einsum``, and ``linear`` (x @ Wᵀ + b fused into one primitive for the nn layers).
"""
from __future__ import annotations

import string

import numpy as np

from backprop.autograd.function import Function
from backprop.errors import DTypeError, ShapeError
from backprop.ops._util import as_tensor
from backprop.tensor import Tensor


def _same_dtype(op: str, *arrays) -> None:
    """PyTorch does not promote inside matrix products: mixed dtypes are an error."""
    first = arrays[0].dtype
    for a in arrays[1:]:
        if a.dtype != first:
            raise DTypeError(f"{op}: expected operands of the same dtype, got {first} and "
                             f"{a.dtype}")


# -- matmul ---------------------------------------------------------------------------------
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


def _kind(value) -> str:
    return "Tensor" if isinstance(value, np.ndarray) else type(value).__name__


class MatMul(Function):
    """out = a @ b;  da = g @ bᵀ,  db = aᵀ @ g  (1-D operands promoted, batch dims broadcast)"""

    backward_name = staticmethod(lambda ctx: _matmul_name(getattr(ctx, "ndims", (2, 2))))


    @staticmethod
    def forward(ctx, a, b):
        if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):  # x @ 2
            raise TypeError(f"matmul: expected two tensors, got {_kind(a)} and {_kind(b)}")
        if a.dtype is not b.dtype:  # (identity first: NumPy's built-in dtypes are singletons)
            _same_dtype("matmul", a, b)
        try:
            out = np.matmul(a, b)
        except ValueError:  # 0-d operands too: NumPy refuses them
            raise _matmul_error(np.shape(a), np.shape(b)) from None
        need_a, need_b = ctx.needs_input_grad
        if need_a or need_b:
            # only what the gradients need: b for a's, a for b's (so, as in PyTorch, a
            # later in-place change of an operand no gradient needs is no concern)
            ctx.save_for_backward(a if need_b else None, b if need_a else None)
            ctx.ndims = (a.ndim, b.ndim)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        a, b = ctx.saved_tensors
        a_nd, b_nd = ctx.ndims
        g = grad_output
        need_a, need_b = ctx.needs_input_grad
        if a_nd == 2 and b_nd == 2:  # the common case (a layer): .T is a free view
            return (_times_transposed(g, b) if need_a else None), (a.T @ g if need_b else None)
        if a_nd == 1 and b_nd == 1:  # dot product: g is a scalar
            return (g * b if need_a else None), (g * a if need_b else None)
        # NOTE: a 1-D operand acts as a row (a) or column (b) vector; put that axis back
        # so one formula covers every case. Batch dims are summed by the engine.
        if a_nd == 1:
            g = g[..., None, :]
            a = None if a is None else a[None, :]
        if b_nd == 1:
            g = g[..., :, None]
            b = None if b is None else b[:, None]
        ga = gb = None
        if need_a:
            ga = np.matmul(g, np.swapaxes(b, -1, -2))
            if a_nd == 1:
                ga = ga[..., 0, :]
        if need_b:
            gb = np.matmul(np.swapaxes(a, -1, -2), g)
            if b_nd == 1:
                gb = gb[..., :, 0]
        return ga, gb


def matmul(input, other):
    """Matrix product with NumPy/PyTorch semantics: 1-D operands and broadcast batches.

    Example::

        backprop.matmul(backprop.ones(2, 3), backprop.ones(3))   # shape (2,)
    """
    return MatMul.apply(as_tensor(input, "matmul"), as_tensor(other, "matmul"))


def mm(input, mat2):
    """Matrix product of two 2-D tensors (no broadcasting): (n, m) @ (m, p) -> (n, p).

    Example::

        backprop.mm(backprop.ones(2, 3), backprop.ones(3, 4)).shape   # (2, 4)
    """
    return MatMul.apply(*_matrices(input, mat2, 2, "mm"))


def _matrices(input, mat2, ndim: int, op: str) -> tuple:
    """mm's (ndim 2) and bmm's (ndim 3) operands as tensors, checked: both ``ndim``-D, the
    same batch size, aligned inner sizes and one dtype (no broadcasting, no promotion)."""
    a, b = as_tensor(input, op), as_tensor(mat2, op)
    if a.ndim != ndim or b.ndim != ndim:
        raise ShapeError(f"{op}: expected two {ndim}-D tensors, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if ndim == 3 and a.shape[0] != b.shape[0]:
        raise ShapeError(f"{op}: batch sizes differ: shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)} ({a.shape[0]} != {b.shape[0]})")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned: "
                         f"{a.shape[-1]} != {b.shape[-2]}")
    _same_dtype(op, a._data, b._data)
    return a, b


def bmm(input, mat2):
    """Batched matrix product of 3-D tensors (no broadcasting): (b, n, m) @ (b, m, p).

    Example::

        backprop.bmm(backprop.ones(5, 2, 3), backprop.ones(5, 3, 4)).shape   # (5, 2, 4)
    """
    return MatMul.apply(*_matrices(input, mat2, 3, "bmm"))


def dot(input, other):
    """Inner product of two 1-D tensors of the same length: Σᵢ aᵢ bᵢ.

    Example::

        backprop.dot(backprop.tensor([1., 2.]), backprop.tensor([3., 4.]))   # 11.
    """
    a, b = as_tensor(input, "dot"), as_tensor(other, "dot")
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"dot: expected two 1-D tensors, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if a.shape[0] != b.shape[0]:
        raise ShapeError(f"dot: tensors have different lengths: {a.shape[0]} and {b.shape[0]}")
    _same_dtype("dot", a._data, b._data)
    return MatMul.apply(a, b)


def outer(input, vec2):
    """Outer product of two 1-D tensors: out[i, j] = a[i] · b[j].

    Example::

        backprop.outer(backprop.ones(2), backprop.ones(3)).shape   # (2, 3)
    """
    a, b = as_tensor(input, "outer"), as_tensor(vec2, "outer")
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError(f"outer: expected two 1-D tensors, got shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    # A composite: a column times a row, broadcast (dtype promotion as torch.outer).
    return a.reshape(-1, 1) * b.reshape(1, -1)


ger = outer


# -- linear ---------------------------------------------------------------------------------
def _few_rows(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether a @ bᵀ (a: (rows, k), b: (n, k) in C order) is faster computed as (b @ aᵀ)ᵀ:
    a small batch against a wide layer (measured with OpenBLAS, one and two threads: up
    to twice as fast; beyond 64 rows, or for fewer than 128 columns, no faster or slower)."""
    rows, n = a.shape[0], b.shape[0]
    return rows <= 64 and n >= 128 and n >= 4 * rows and b.flags.c_contiguous


def _times_transposed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ bᵀ for 2-D a and b, C-contiguous like the plain product.

    NOTE: OpenBLAS runs a few rows against a transposed wide matrix slowly (issue 15:
    784->256 at batch 32, 254 µs) and the same product the other way round, (b @ aᵀ)ᵀ,
    fast (169 µs). Each entry is the same dot product: with OpenBLAS the same bits
    (tests/test_mlp_fastpaths.py), with another BLAS at most a different summation order.
    """
    if _few_rows(a, b):
        return np.ascontiguousarray((b @ a.T).T)
    return a @ b.T


class Linear(Function):
    """out = x @ Wᵀ + b;  dx = g @ W,  dW = gᵀ @ x (over all leading dims),  db = Σ g"""

    backward_name = staticmethod(lambda ctx: _linear_name(ctx))

    @staticmethod
    def forward(ctx, x, weight, bias):
        in_f = weight.shape[1]
        # NOTE: leading dims are folded into one so the product is a single GEMM
        # (a 3-D @ 2-D matmul would loop over the batch).
        x2 = x if x.ndim == 2 else x.reshape(-1, in_f)
        if bias is not None and _few_rows(x2, weight):
            out = np.add((weight @ x2.T).T, bias, order="C")  # (_times_transposed, biased)
        else:
            out = _times_transposed(x2, weight)
            if bias is not None:
                out += bias
        need_x, need_w, _ = ctx.needs_input_grad
        ctx.save_for_backward(weight if need_x else None, x2 if need_w else None)
        ctx.x_shape, ctx.has_bias = x.shape, bias is not None
        return out if x.ndim == 2 else out.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, grad_output):
        weight, x2 = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = grad_output.reshape(-1, grad_output.shape[-1]) if grad_output.ndim != 2 \
            else grad_output
        gx = (g2 @ weight).reshape(ctx.x_shape) if need_x else None
        gw = g2.T @ x2 if need_w else None
        gb = g2.sum(axis=0) if need_b else None
        return gx, gw, gb


def _plain_linear(x, w, b) -> bool:
    """Whether ``linear``'s arguments are the layers' usual ones, already valid: tensors of
    one dtype, a 2-D weight matching the input's features, a (out_features,) bias or none.
    (One test instead of the general checks below, which name whatever is wrong.)"""
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        return False
    xd, wd = x._data, w._data
    if wd.ndim != 2 or xd.ndim == 0 or xd.shape[-1] != wd.shape[1] or xd.dtype is not wd.dtype:
        return False
    if b is None:
        return True
    return isinstance(b, Tensor) and b._data.shape == wd.shape[:1] and b._data.dtype is xd.dtype


def linear(input, weight, bias=None):
    """Affine map ``input @ weight.T + bias`` as one fused op.

    Args:
        input: (..., in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.

    Example::

        x, w, b = backprop.randn(8, 3), backprop.randn(4, 3), backprop.zeros(4)
        backprop.linear(x, w, b).shape   # (8, 4)
    """
    if _plain_linear(input, weight, bias):
        return Linear.apply(input, weight, bias)
    x, w = as_tensor(input, "linear"), as_tensor(weight, "linear")
    xs, ws = tuple(x.shape), tuple(w.shape)
    if x.ndim == 0:
        raise ShapeError(f"linear: input needs at least 1 dimension, got shape {xs}")
    if w.ndim != 2:
        raise ShapeError(f"linear: expected weight of shape (out_features, in_features), "
                         f"got shape {ws}")
    if xs[-1] != ws[1]:
        raise ShapeError(f"linear: input has {xs[-1]} features (shape {xs}) but weight "
                         f"expects {ws[1]} (weight shape {ws})")
    arrays = [x._data, w._data]
    if bias is not None:
        bias = as_tensor(bias, "linear", like=x)
        bs = tuple(bias.shape)
        if bs not in ((ws[0],), (1,), ()):
            raise ShapeError(f"linear: expected bias of shape ({ws[0]},) for weight of shape "
                             f"{ws}, got {bs}")
        arrays.append(bias._data)
    _same_dtype("linear", *arrays)
    return Linear.apply(x, w, bias)


# -- einsum ---------------------------------------------------------------------------------
_LETTERS = string.ascii_letters


def _einsum_error(equation: str, message: str) -> ShapeError:
    return ShapeError(f"einsum: {message} (equation {equation!r})")


def _parse_einsum(equation: str, shapes: list) -> tuple:
    """Expand an equation to explicit single-letter form for these operand shapes.

    Returns (terms, output, sizes): one subscript string per operand with any
    '...' replaced by fresh letters, the output subscripts, and letter -> size.
    """
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, out = eq.split("->", 1)
        explicit = True
    else:
        lhs, out, explicit = eq, "", False
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise _einsum_error(equation, f"the equation names {len(terms)} operand"
                            f"{'s' if len(terms) != 1 else ''} but {len(shapes)} "
                            f"{'were' if len(shapes) != 1 else 'was'} given")
    for part in terms + [out]:
        for ch in part.replace("...", ""):
            if ch not in _LETTERS:
                raise _einsum_error(equation, f"invalid subscript {ch!r}; subscripts must be "
                                    f"letters a-z or A-Z (and '...')")
    used = set(ch for ch in eq if ch in _LETTERS)
    free = [ch for ch in _LETTERS if ch not in used]

    # Ellipsis dimensions get fresh letters, aligned from the right across operands.
    n_ell = []
    for k, (term, shape) in enumerate(zip(terms, shapes, strict=True)):
        named = len(term.replace("...", ""))
        if "..." in term:
            if len(shape) < named:
                raise _einsum_error(equation, f"operand {k} has {len(shape)} dimensions "
                                    f"(shape {tuple(shape)}) but subscripts {term!r} name "
                                    f"{named}")
            n_ell.append(len(shape) - named)
        else:
            if len(shape) != named:
                raise _einsum_error(equation, f"operand {k} has {len(shape)} dimensions "
                                    f"(shape {tuple(shape)}) but subscripts {term!r} name "
                                    f"{named}")
            n_ell.append(0)
    width = max(n_ell, default=0)
    if width > len(free):
        raise _einsum_error(equation, "too many dimensions under '...'")
    ell = "".join(free[:width])
    terms = [t.replace("...", ell[width - n:]) for t, n in zip(terms, n_ell, strict=True)]

    sizes: dict = {}
    for k, (term, shape) in enumerate(zip(terms, shapes, strict=True)):
        seen: dict = {}
        for ch, n in zip(term, shape, strict=True):
            if ch in seen and seen[ch] != n:
                raise _einsum_error(equation, f"subscript {ch!r} is repeated in operand {k} "
                                    f"(shape {tuple(shape)}) with different sizes "
                                    f"{seen[ch]} and {n}")
            seen[ch] = n
            prev = sizes.get(ch)
            if prev is None or prev == 1:
                sizes[ch] = n
            elif n != 1 and n != prev:
                raise _einsum_error(equation, f"subscript {ch!r} has size {n} in operand {k} "
                                    f"(shape {tuple(shape)}) but size {prev} elsewhere")

    if explicit:
        out = out.replace("...", ell)
        for i, ch in enumerate(out):
            if ch not in sizes:
                raise _einsum_error(equation, f"output subscript {ch!r} does not appear in "
                                    f"any operand")
            if ch in out[:i]:
                raise _einsum_error(equation, f"output subscript {ch!r} appears more than once")
    else:
        # Implicit output: the '...' dims, then letters used exactly once, sorted (as torch).
        joined = "".join(terms)
        out = ell + "".join(sorted(ch for ch in set(joined)
                                   if joined.count(ch) == 1 and ch not in ell))
    return terms, out, sizes


def _unique(term: str) -> str:
    return "".join(dict.fromkeys(term))


class Einsum(Function):
    """out = Σ over contracted subscripts of Πₖ opₖ;  d opₖ = einsum(g, other ops -> opₖ's subs)"""

    @staticmethod
    def forward(ctx, *operands, terms, out, sizes):
        operands = list(operands)
        terms = list(terms)
        shapes = [op.shape for op in operands]
        # NOTE: a size-1 axis that broadcasts against a larger one holds a value that is
        # constant along that subscript; dropping it from the operand makes the subscript
        # simply absent there, so numpy needs no broadcasting and the gradient of the
        # squeezed operand is summed over that subscript automatically.
        for k, (term, op) in enumerate(zip(terms, operands, strict=True)):
            drop = [i for i, ch in enumerate(term) if op.shape[i] == 1 and sizes[ch] != 1]
            if drop:
                operands[k] = op.reshape([n for i, n in enumerate(op.shape) if i not in drop])
                terms[k] = "".join(ch for i, ch in enumerate(term) if i not in drop)
        result = np.einsum(",".join(terms) + "->" + out, *operands,
                           optimize=len(operands) > 1)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(*operands)
            ctx.terms, ctx.out, ctx.sizes, ctx.shapes = terms, out, sizes, shapes
        return result

    @staticmethod
    def backward(ctx, grad_output):
        operands = ctx.saved_tensors
        terms, out, sizes = ctx.terms, ctx.out, ctx.sizes
        grads = []
        for k, need in enumerate(ctx.needs_input_grad):
            if not need:
                grads.append(None)
                continue
            term = terms[k]
            others = [j for j in range(len(terms)) if j != k]
            available = set(out).union(*(terms[j] for j in others))
            letters = _unique(term)
            keep = "".join(ch for ch in letters if ch in available)
            eq = ",".join([out] + [terms[j] for j in others]) + "->" + keep
            g = np.einsum(eq, grad_output, *(operands[j] for j in others),
                          optimize=len(others) > 0)
            full = tuple(sizes[ch] for ch in letters)
            # NOTE: a subscript summed away inside this operand alone does not reach the
            # output or any other operand; its gradient is constant (broadcast) along it.
            if keep != letters:
                g = np.broadcast_to(g.reshape([sizes[ch] if ch in keep else 1
                                               for ch in letters]), full)
            # NOTE: a subscript repeated within one operand ('ii') reads its diagonal;
            # the gradient lands on that diagonal and is zero elsewhere.
            if len(letters) != len(term):
                z = np.zeros(operands[k].shape, dtype=grad_output.dtype)
                strides = [sum(z.strides[i] for i, ch in enumerate(term) if ch == c)
                           for c in letters]
                np.lib.stride_tricks.as_strided(z, full, strides)[...] = g
                g = z
            grads.append(g.reshape(ctx.shapes[k]))
        return tuple(grads)


def einsum(equation, *operands):
    """Einstein summation: ``einsum('ij,jk->ik', a, b)`` is ``a @ b``.

    Supports explicit ('->') and implicit outputs, repeated subscripts within an
    operand (diagonals, traces), '...' and size-1 broadcasting. Operands may also be
    given as one list: ``einsum('ij,jk', [a, b])``.

    Example::

        a, b = backprop.randn(5, 2, 3), backprop.randn(5, 3, 4)
        backprop.einsum('bij,bjk->bik', a, b).shape   # (5, 2, 4)
    """
    if not isinstance(equation, str):
        raise NotImplementedError("einsum: only the equation-string form is supported, e.g. "
                                  "einsum('ij,jk->ik', a, b) (not the sublist form)")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ShapeError(f"einsum: at least one operand is needed (equation {equation!r})")
    tensors = [as_tensor(op, "einsum") for op in operands]
    terms, out, sizes = _parse_einsum(equation, [t.shape for t in tensors])
    _same_dtype("einsum", *(t._data for t in tensors))
    return Einsum.apply(*tensors, terms=tuple(terms), out=out, sizes=sizes)


__all__ = ["matmul", "mm", "bmm", "dot", "outer", "ger", "einsum", "linear"]

TENSOR_METHODS = {"matmul": matmul, "mm": mm, "bmm": bmm, "dot": dot, "outer": outer,
                  "ger": ger}


# -- PyTorch's node names: its matmul and linear are several ops, backprop's one each ------
def _matmul_name(ndims: tuple) -> str:
    """The name of PyTorch's outermost node for ``a @ b`` with operands of these ranks."""
    return {(1, 1): "DotBackward0", (2, 1): "MvBackward0", (2, 2): "MmBackward0",
            (1, 2): "SqueezeBackward4"}.get(ndims, "UnsafeViewBackward0")


def _linear_name(ctx) -> str:
    """``linear`` on 2-D input is PyTorch's addmm (mm without a bias); else a view of it."""
    nd = len(ctx.x_shape)
    if getattr(ctx, "has_bias", True):
        return "AddmmBackward0" if nd == 2 else "ViewBackward0"
    return _matmul_name((nd, 2))
