"""Shape primitives: views and rearrangements whose backward undoes the rearrangement.

Primitives: Reshape, Permute, Expand, Narrow, Cat, Stack, Flip, Repeat, Pad.
Everything else here (flatten, squeeze, split, chunk, movedim, ...) is built from
them and has no backward of its own. Outputs are NumPy views wherever NumPy gives
one (reshape, permute, expand, narrow, flip).
"""
from __future__ import annotations

import math

import numpy as np

from backprop.autograd.function import Function, named
from backprop.errors import ShapeError
from backprop.ops._util import TracksView, norm_dim
from backprop.ops.indexing import _BASIC, GetItem, index_add_along
from backprop.tensor import Tensor


class Reshape(TracksView, Function):
    """out = x viewed with a new shape;  dx = g reshaped back"""

    backward_name = 'ViewBackward0'

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ShapeError(f"reshape: shape {tuple(shape)} is invalid for input of shape "
                             f"{x.shape} ({x.size} elements)") from None

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.reshape(ctx.in_shape), None


class Permute(TracksView, Function):
    """out = x with axes reordered;  dx = g with the inverse order"""

    backward_name = 'PermuteBackward0'

    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad_output):
        return np.transpose(grad_output, np.argsort(ctx.axes)), None


def _shape_arg(shape, op):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"{op}: shape must be ints, got {tuple(shape)}")
    return tuple(int(s) for s in shape)


def reshape(input, *shape):
    """A tensor with the same data and a new shape (one dimension may be -1)."""
    return Reshape.apply(input, _shape_arg(shape, "reshape"))


def view(input, *shape):
    """Same as ``reshape`` (arrays here are always viewable)."""
    return Reshape.apply(input, _shape_arg(shape, "view"))


def permute(input, *dims):
    """Reorder the dimensions: ``x.permute(2, 0, 1)``."""
    dims = _shape_arg(dims, "permute")
    nd = input.ndim
    axes = tuple(norm_dim(d, nd, "permute") for d in dims)
    if sorted(axes) != list(range(nd)):
        raise ShapeError(f"permute: dims {dims} are not a permutation of the {nd} dimensions "
                         f"of a tensor of shape {tuple(input.shape)}")
    return Permute.apply(input, axes)


def transpose(input, dim0, dim1):
    """Swap two dimensions."""
    nd = input.ndim
    if nd == 0:
        return input
    d0, d1 = norm_dim(dim0, nd, "transpose"), norm_dim(dim1, nd, "transpose")
    axes = list(range(nd))
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return named(Permute.apply(input, tuple(axes)), "TransposeBackward0")


def t(input):
    """Transpose a tensor of at most 2 dimensions."""
    if input.ndim > 2:
        raise ShapeError(f"t: expects a tensor with <= 2 dimensions, got shape "
                         f"{tuple(input.shape)}; "
                         f"use transpose(dim0, dim1) or .mT")
    return input if input.ndim < 2 else named(Permute.apply(input, (1, 0)), "TBackward0")



def view_as(input, other):
    """``input`` viewed with ``other``'s shape."""
    return Reshape.apply(input, tuple(other.shape))


def reshape_as(input, other):
    """``input`` reshaped to ``other``'s shape."""
    return Reshape.apply(input, tuple(other.shape))


def flatten(input, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim``..``end_dim`` into one (a 0-d tensor becomes 1-D).

    Example::

        backprop.zeros(2, 3, 4).flatten(1).shape     # (2, 12)
    """
    shape = input.shape
    nd = len(shape)
    s = norm_dim(start_dim, nd, "flatten")
    e = norm_dim(end_dim, nd, "flatten")
    if s > e:
        raise ShapeError(f"flatten: start_dim ({start_dim}) cannot come after end_dim "
                         f"({end_dim}) for a tensor of shape {tuple(shape)}")
    if nd == 0:
        return Reshape.apply(input, (1,))
    merged = math.prod(shape[s:e + 1])
    return Reshape.apply(input, shape[:s] + (merged,) + shape[e + 1:])


def ravel(input):
    """The elements of ``input`` as a 1-D tensor."""
    return Reshape.apply(input, (-1,))


def unflatten(input, dim, sizes):
    """Split dimension ``dim`` into ``sizes`` (one of them may be -1).

    Example::

        backprop.zeros(2, 12).unflatten(1, (3, -1)).shape     # (2, 3, 4)
    """
    shape = input.shape
    d = norm_dim(dim, len(shape), "unflatten")
    sizes = _shape_arg((sizes,) if isinstance(sizes, (list, tuple)) else (sizes,), "unflatten")
    if len(sizes) == 0:
        raise ShapeError("unflatten: sizes must be non-empty")
    size = shape[d] if shape else 1
    known = [s for s in sizes if s != -1]
    if len(known) < len(sizes) - 1 or any(s < -1 for s in sizes):
        raise ShapeError(f"unflatten: sizes {sizes} may hold only one -1 and no other "
                         f"negative size")
    prod = math.prod(known)
    if (len(known) == len(sizes) and prod != size) or \
            (len(known) < len(sizes) and (prod == 0 or size % prod)):
        raise ShapeError(f"unflatten: provided sizes {sizes} don't multiply up to the size of "
                         f"dim {dim} ({size}) in the input tensor of shape {tuple(shape)}")
    return Reshape.apply(input, shape[:d] + sizes + shape[d + 1:])


def _dim_tuple(dims, ndim: int, op: str) -> tuple:
    """An int or a sequence of dims as sorted non-negative axes; ``()`` names no dim at all."""
    dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
    axes = tuple(norm_dim(d, ndim, op) for d in dims)
    if len(set(axes)) != len(axes):
        raise ShapeError(f"{op}: dim {dims} names the same dimension twice")
    return tuple(sorted(axes)) if ndim else ()


def squeeze(input, dim=None):
    """Remove size-1 dimensions: all of them, or those in ``dim`` (an int or a tuple).

    A named dimension whose size is not 1 is left alone, as in PyTorch.
    """
    shape = input.shape
    axes = tuple(range(len(shape))) if dim is None else _dim_tuple(dim, len(shape), "squeeze")
    new = tuple(s for i, s in enumerate(shape) if not (i in axes and s == 1))
    kind = 0 if dim is None else (2 if isinstance(dim, (tuple, list)) else 1)
    return named(Reshape.apply(input, new), f"SqueezeBackward{kind}")


def unsqueeze(input, dim):
    """Insert a dimension of size 1 at ``dim`` (``-1`` appends one at the end)."""
    shape = input.shape
    d = norm_dim(dim, len(shape) + 1, "unsqueeze")
    return named(Reshape.apply(input, shape[:d] + (1,) + shape[d:]), "UnsqueezeBackward0")


def movedim(input, source, destination):
    """Move dimension(s) ``source`` to position(s) ``destination``; the others keep their order."""
    nd = input.ndim
    src = tuple(source) if isinstance(source, (list, tuple)) else (source,)
    dst = tuple(destination) if isinstance(destination, (list, tuple)) else (destination,)
    if len(src) != len(dst):
        raise ShapeError(f"movedim: source {src} and destination {dst} must have the same "
                         f"number of dims")
    src = tuple(norm_dim(d, nd, "movedim") for d in src)
    dst = tuple(norm_dim(d, nd, "movedim") for d in dst)
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ShapeError(f"movedim: repeated dim in source {source} or destination "
                         f"{destination}")
    perm = [-1] * nd
    for s, d in zip(src, dst, strict=True):
        perm[d] = s
    rest = iter(d for d in range(nd) if d not in src)
    perm = [next(rest) if p == -1 else p for p in perm]
    return Permute.apply(input, tuple(perm))


class Expand(TracksView, Function):
    """out = x broadcast to a larger shape (a read-only view, no copy);  dx = g summed back"""

    @staticmethod
    def forward(ctx, x, shape=()):
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad_output):
        # NOTE: expanding is broadcasting, so the engine's unbroadcast sums the gradient
        # over the new and stretched dims; nothing to do here.
        return grad_output


def _expand_shape(shape: tuple, sizes: tuple, op: str) -> tuple:
    shape = tuple(shape)  # (a Size would print as torch.Size in the messages)
    nd, n = len(shape), len(sizes)
    if n < nd:
        raise ShapeError(f"{op}: the number of sizes provided ({n}) must be greater or equal to "
                         f"the number of dimensions in the tensor ({nd}); sizes {sizes}, tensor "
                         f"shape {shape}")
    lead = n - nd
    out = []
    for i, s in enumerate(sizes):
        cur = shape[i - lead] if i >= lead else None
        if s == -1 and cur is not None:
            out.append(cur)
        elif s < 0:
            where = "a leading, new" if cur is None else "an existing"
            raise ShapeError(f"{op}: the expanded size {s} isn't allowed in {where} dimension "
                             f"{i}; target sizes {sizes}, tensor shape {shape}")
        elif cur is None or cur == 1 or s == cur:
            out.append(s)
        else:
            raise ShapeError(f"{op}: the expanded size of the tensor ({s}) must match the "
                             f"existing size ({cur}) at non-singleton dimension {i}; target "
                             f"sizes {sizes}, tensor shape {shape}")
    return tuple(out)


def expand(input, *sizes):
    """A view of ``input`` with size-1 dims stretched (and new leading dims) to ``sizes``.

    ``-1`` keeps a dimension's size. No data is copied.

    Example::

        backprop.ones(3, 1).expand(2, -1, 4).shape      # (2, 3, 4)
    """
    sizes = _shape_arg(sizes, "expand")
    return Expand.apply(input, shape=_expand_shape(input.shape, sizes, "expand"))


def expand_as(input, other):
    """``input.expand(other.shape)``."""
    return Expand.apply(input, shape=_expand_shape(input.shape, tuple(other.shape), "expand_as"))


def broadcast_to(input, shape):
    """``input`` broadcast to ``shape`` (a view, as ``expand``)."""
    shape = _shape_arg((shape,) if isinstance(shape, (list, tuple)) else (shape,),
                       "broadcast_to")
    return Expand.apply(input, shape=_expand_shape(input.shape, shape, "broadcast_to"))


class Narrow(TracksView, Function):
    """out = x[start:start+length] along dim (a view);  dx = zeros with g in that slice"""

    backward_name = 'SliceBackward0'

    @staticmethod
    def forward(ctx, x, dim=0, start=0, length=0):
        ctx.in_shape = x.shape
        ctx.key = (slice(None),) * dim + (slice(start, start + length),)
        return x[ctx.key]

    @staticmethod
    def backward(ctx, grad_output):
        gx = np.zeros(ctx.in_shape, dtype=grad_output.dtype)
        gx[ctx.key] = grad_output
        return gx


def narrow(input, dim, start, length):
    """The slice ``start:start+length`` of ``input`` along ``dim`` (a view)."""
    shape = input.shape
    if not shape:
        raise ShapeError("narrow: cannot be applied to a 0-dim tensor")
    d = norm_dim(dim, len(shape), "narrow")
    size = shape[d]
    start, length = int(start), int(length)
    if not -size <= start <= size:
        raise ShapeError(f"narrow: start ({start}) is out of range for dimension {d} of size "
                         f"{size}")
    start = start + size if start < 0 else start
    if length < 0 or start + length > size:
        raise ShapeError(f"narrow: start ({start}) + length ({length}) exceeds dimension size "
                         f"({size}) of dimension {d}")
    return Narrow.apply(input, dim=d, start=start, length=length)


def split(tensor, split_size_or_sections, dim=0):
    """Cut ``tensor`` along ``dim`` into pieces of an int size (the last may be smaller), or of
    the sizes in a list. Returns a tuple of views, each with its own gradient path.

    Example::

        a, b = backprop.arange(5.).split([2, 3])
    """
    shape = tensor.shape
    if not shape:
        raise ShapeError("split: expects at least a 1-dimensional tensor")
    d = norm_dim(dim, len(shape), "split")
    size = shape[d]
    s = split_size_or_sections
    if isinstance(s, (list, tuple)):
        sizes = _shape_arg((s,), "split")
        if any(n < 0 for n in sizes) or sum(sizes) != size:
            raise ShapeError(f"split: split sizes {list(sizes)} must be non-negative and sum "
                             f"exactly to {size} (the size of dimension {d} of a tensor of "
                             f"shape {tuple(shape)})")
    else:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"split: split_size_or_sections must be an int or a list of ints, "
                            f"got {type(s).__name__}")
        s = int(s)
        if s < 0:
            raise ShapeError(f"split: split_size must be non-negative, got {s}")
        if s == 0 and size != 0:
            raise ShapeError(f"split: split_size can only be 0 if the dimension size is 0, but "
                             f"dimension {d} has size {size}")
        count = max(-(-size // s), 1) if s else 1
        sizes = tuple(min(s, size - i * s) for i in range(count))
    out, start = [], 0
    for n in sizes:
        out.append(Narrow.apply(tensor, dim=d, start=start, length=n))
        start += n
    return tuple(out)


def chunk(input, chunks, dim=0):
    """Split into ``chunks`` pieces of equal size ``ceil(size / chunks)`` (the last may be
    smaller, and there may be fewer pieces), as in PyTorch."""
    if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
        raise ShapeError(f"chunk: expects `chunks` to be greater than 0, got {chunks}")
    if not input.shape:
        raise ShapeError("chunk: expects at least a 1-dimensional tensor")
    size = input.shape[norm_dim(dim, input.ndim, "chunk")]
    if size == 0:
        return split(input, [0] * int(chunks), dim)
    return split(input, -(-size // int(chunks)), dim)


def unbind(input, dim=0):
    """The slices of ``input`` along ``dim``, that dimension removed, as a tuple."""
    if not input.shape:
        raise ShapeError("unbind: expects at least a 1-dimensional tensor")
    d = norm_dim(dim, input.ndim, "unbind")
    lead = (slice(None),) * d
    return tuple(GetItem.apply(input, lead + (i,), _BASIC) for i in range(input.shape[d]))


def _result_dtype(arrays) -> np.dtype:
    """PyTorch's promotion for joining tensors: any float wins over ints and bools."""
    floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
    return np.result_type(*floats) if floats else np.result_type(*[a.dtype for a in arrays])


class Cat(Function):
    """out = x₁, x₂, … joined along dim;  dxᵢ = the slice of g where xᵢ was put"""

    @staticmethod
    def forward(ctx, *xs, dim=0):
        # NOTE: 1-D empty tensors (shape (0,)) are skipped, PyTorch's legacy rule,
        # unless every input is one.
        dtype = _result_dtype(xs)
        skip = [x.ndim == 1 and x.shape[0] == 0 for x in xs]
        if all(skip):
            skip = [False] * len(xs)
        ctx.dim = dim
        ctx.sizes = [None if s else x.shape[dim] for x, s in zip(xs, skip, strict=True)]
        return np.concatenate([x for x, s in zip(xs, skip, strict=True) if not s], axis=dim,
                              dtype=dtype, casting="unsafe")

    @staticmethod
    def backward(ctx, grad_output):
        lead = (slice(None),) * ctx.dim
        grads, start = [], 0
        for n, need in zip(ctx.sizes, ctx.needs_input_grad, strict=True):
            if n is None:
                grads.append(np.zeros(0, dtype=grad_output.dtype) if need else None)
                continue
            grads.append(grad_output[lead + (slice(start, start + n),)] if need else None)
            start += n
        return tuple(grads)


def _tensor_list(tensors, op: str) -> list:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of tensors, got "
                        f"{type(tensors).__name__}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a list of tensors, but element {i} is a "
                            f"{type(t).__name__}")
    if not tensors:
        raise ShapeError(f"{op}: expected a non-empty list of tensors")
    return list(tensors)


def cat(tensors, dim=0):
    """Join tensors along an existing dimension; float32 and float64 mix to float64.

    Example::

        backprop.cat([backprop.zeros(2, 3), backprop.ones(1, 3)]).shape    # (3, 3)
    """
    tensors = _tensor_list(tensors, "cat")
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ShapeError(f"cat: zero-dimensional tensor (at position {i}) cannot be "
                             f"concatenated")
    used = [t for t in tensors if t._data.shape != (0,)] or tensors
    ref = used[0]._data.shape
    d = norm_dim(dim, len(ref), "cat")
    for t in used[1:]:
        s = t._data.shape
        if len(s) != len(ref):
            raise ShapeError(f"cat: tensors must have the same number of dimensions, got {ref} "
                             f"and {s}")
        if s[:d] != ref[:d] or s[d + 1:] != ref[d + 1:]:
            raise ShapeError(f"cat: tensors must have the same shape except in dim {d}, got "
                             f"{ref} and {s}")
    return Cat.apply(*tensors, dim=d)


class Stack(Function):
    """out = x₁, x₂, … stacked along a new dim;  dxᵢ = g[..., i, ...]"""

    @staticmethod
    def forward(ctx, *xs, dim=0):
        ctx.dim = dim
        return np.stack(xs, axis=dim, dtype=_result_dtype(xs), casting="unsafe")

    @staticmethod
    def backward(ctx, grad_output):
        pieces = np.moveaxis(grad_output, ctx.dim, 0)
        return tuple(pieces[i] if need else None for i, need in enumerate(ctx.needs_input_grad))


def stack(tensors, dim=0):
    """Join tensors of one shape along a new dimension ``dim``.

    Example::

        backprop.stack([backprop.zeros(2, 3), backprop.ones(2, 3)], dim=1).shape   # (2, 2, 3)
    """
    tensors = _tensor_list(tensors, "stack")
    ref = tensors[0].shape
    for i, t in enumerate(tensors[1:], 1):
        if t.shape != ref:
            raise ShapeError(f"stack: expects each tensor to be equal size, but got {tuple(ref)} at "
                             f"entry 0 and {tuple(t.shape)} at entry {i}")
    d = norm_dim(dim, len(ref) + 1, "stack")
    return Stack.apply(*tensors, dim=d)


class Flip(Function):
    """out = x reversed along dims (a copy, as in PyTorch);  dx = g reversed along the same dims"""

    @staticmethod
    def forward(ctx, x, dims=()):
        ctx.dims = dims
        return np.flip(x, axis=dims).copy()  # (a view would let a write reach x)

    @staticmethod
    def backward(ctx, grad_output):
        return np.flip(grad_output, axis=ctx.dims)


def flip(input, *args, dims=None):
    """Reverse the order of elements along ``dims`` (an int, or a list/tuple of ints).

    Example::

        backprop.arange(4.).flip(0)      # [3., 2., 1., 0.]
    """
    if dims is None:
        dims = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
    elif args:
        raise TypeError("flip: got dims both as positional and keyword arguments")
    return Flip.apply(input, dims=_dim_tuple(dims, input.ndim, "flip"))


class Repeat(Function):
    """out = x tiled sizes[d] times along each dim d;  dx = g summed over the tiles"""

    @staticmethod
    def forward(ctx, x, sizes=()):
        shape = (1,) * (len(sizes) - x.ndim) + x.shape
        ctx.in_shape, ctx.sizes, ctx.shape = x.shape, sizes, shape
        return np.tile(x.reshape(shape), sizes)

    @staticmethod
    def backward(ctx, grad_output):
        # Split each output dim into (tile, original) and sum the tile axes.
        inter = [v for r, n in zip(ctx.sizes, ctx.shape, strict=True) for v in (r, n)]
        tiles = tuple(range(0, 2 * len(ctx.sizes), 2))
        return grad_output.reshape(inter).sum(axis=tiles).reshape(ctx.in_shape)


def repeat(input, *sizes):
    """``Tensor.repeat``: tile ``input`` ``sizes[d]`` times along dim d (extra sizes add
    leading dims).

    Example::

        backprop.tensor([1., 2.]).repeat(2, 2)      # [[1., 2., 1., 2.], [1., 2., 1., 2.]]
    """
    sizes = _shape_arg(sizes, "repeat")
    if len(sizes) < input.ndim:
        raise ShapeError(f"repeat: number of dimensions of repeat dims ({len(sizes)}) can not be "
                         f"smaller than number of dimensions of tensor ({input.ndim}, shape "
                         f"{tuple(input.shape)})")
    if any(s < 0 for s in sizes):
        raise ShapeError(f"repeat: repeats must be non-negative, got {sizes}")
    return Repeat.apply(input, sizes=sizes)


def tile(input, dims):
    """Like ``repeat``, but with fewer ``dims`` than dimensions the missing ones are 1."""
    dims = _shape_arg((dims,) if isinstance(dims, (list, tuple)) else (dims,), "tile")
    dims = (1,) * (input.ndim - len(dims)) + dims
    return repeat(input, *dims)


_PAD_MODES = ("constant", "reflect", "replicate", "circular")
_NUMPY_PAD = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad_map(mode: str, n: int, lo: int, hi: int) -> np.ndarray:
    """For each output position along one padded dim, the input position it copies."""
    j = np.arange(-lo, n + hi)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    if mode == "circular":
        return j % n
    period = 2 * (n - 1)  # reflect: mirror about the edges without repeating them
    if period == 0:
        return np.zeros_like(j)
    j = np.abs(j) % period
    return np.where(j >= n, period - j, j)


class Pad(Function):
    """out = x with borders added (cropped where a pad is negative);
    dx = the inner part of g (plus the border gradients routed back to their sources)"""

    backward_name = staticmethod(lambda ctx: _PAD_NAMES.get(getattr(ctx, "mode", None), "ConstantPadNdBackward0"))

    @staticmethod
    def forward(ctx, x, pads=(), mode="constant", value=0):
        ctx.in_shape, ctx.mode = x.shape, mode
        if mode == "constant":
            out_shape = list(x.shape)
            src, dst = [slice(None)] * x.ndim, [slice(None)] * x.ndim
            for axis, lo, hi in pads:
                n = x.shape[axis]
                keep = n - max(-lo, 0) - max(-hi, 0)
                out_shape[axis] = n + lo + hi
                src[axis] = slice(max(-lo, 0), max(-lo, 0) + keep)
                dst[axis] = slice(max(lo, 0), max(lo, 0) + keep)
            ctx.src, ctx.dst = tuple(src), tuple(dst)
            out = np.full(out_shape, value, dtype=x.dtype)
            out[ctx.dst] = x[ctx.src]
            return out
        ctx.maps = [(axis, lo, _pad_map(mode, x.shape[axis], lo, hi)) for axis, lo, hi in pads]
        if all(lo >= 0 and hi >= 0 for _, lo, hi in pads):
            widths = [(0, 0)] * x.ndim
            for axis, lo, hi in pads:
                widths[axis] = (lo, hi)
            return np.pad(x, widths, mode=_NUMPY_PAD[mode])
        out = x
        for axis, _, idx in ctx.maps:
            out = np.take(out, idx, axis=axis)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        g = grad_output
        if ctx.mode == "constant":
            inner = g[ctx.dst]
            if inner.shape == ctx.in_shape:
                return inner
            gx = np.zeros(ctx.in_shape, dtype=g.dtype)
            gx[ctx.src] = inner
            return gx
        for axis, lo, idx in reversed(ctx.maps):
            g = _pad_grad(g, axis, lo, idx, ctx.in_shape[axis])
        return g


def _pad_grad(g: np.ndarray, axis: int, lo: int, idx: np.ndarray, n: int) -> np.ndarray:
    """Undo one padded dim: the inner part of g, plus each border slice added to its source."""
    # NOTE: output positions [a, b) copy input positions [a - lo, b - lo) one to one.
    # Each border (left, right) copies either one edge position over and over
    # (replicate) or a run of consecutive positions, forwards (circular) or backwards
    # (reflect), so its gradient is one sum or one strided slice added in place.
    m = g.shape[axis]
    a, b = max(lo, 0), min(lo + n, m)
    lead = (slice(None),) * axis
    if b - a == n:
        gx = g[lead + (slice(a, b),)].copy()
    else:
        gx = np.zeros(g.shape[:axis] + (n,) + g.shape[axis + 1:], dtype=g.dtype)
        if b > a:
            gx[lead + (slice(a - lo, b - lo),)] = g[lead + (slice(a, b),)]
    for start, stop in ((0, min(a, m)), (max(a, b), m)):
        if stop <= start:
            continue
        t = idx[start:stop]
        part = g[lead + (slice(start, stop),)]
        step = int(t[1] - t[0]) if t.size > 1 else 1
        if (t == t[0]).all():
            gx[lead + (slice(t[0], t[0] + 1),)] += part.sum(axis=axis, keepdims=True)
        elif abs(step) == 1 and (np.diff(t) == step).all():
            end = int(t[-1]) + step
            gx[lead + (slice(int(t[0]), end if end >= 0 else None, step),)] += part
        else:  # pragma: no cover - the modes above never get here
            targets, inverse = np.unique(t, return_inverse=True)
            gx[lead + (targets,)] += index_add_along(part, axis, inverse.reshape(-1),
                                                     targets.size)
    return gx


def pad(input, pad, mode="constant", value=None):
    """``torch.nn.functional.pad``: pad (or, with negative sizes, crop) the last dimensions.

    ``pad`` lists (left, right) pairs starting from the LAST dimension:
    ``(1, 1)`` pads the last dim, ``(1, 1, 2, 0)`` also the one before. Modes:
    ``"constant"`` (with ``value``, default 0), ``"reflect"`` (mirror without the
    edge), ``"replicate"`` (repeat the edge) and ``"circular"`` (wrap around).

    Example::

        backprop.pad(backprop.ones(2, 3), (1, 1)).shape            # (2, 5)
        backprop.pad(backprop.arange(4.), (2, 0), mode="reflect")    # [2., 1., 0., 1., 2., 3.]
    """
    if not isinstance(pad, (list, tuple)) or not all(
            isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: pad must be a tuple of ints, got {pad!r}")
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: unknown padding mode {mode!r}; expected one of {_PAD_MODES}")
    if mode != "constant" and value is not None:
        raise ValueError(f"pad: padding mode {mode!r} doesn't take a value argument")
    shape = input.shape
    if len(pad) % 2:
        raise ShapeError(f"pad: padding length must be divisible by 2, got {len(pad)}")
    if len(pad) // 2 > len(shape):
        raise ShapeError(f"pad: padding length should be at most twice the number of "
                         f"dimensions, got padding of length {len(pad)} for a tensor of shape "
                         f"{tuple(shape)}")
    pads = []
    for k in range(len(pad) // 2):
        axis = len(shape) - 1 - k
        lo, hi = int(pad[2 * k]), int(pad[2 * k + 1])
        if lo == 0 and hi == 0:
            continue
        n = shape[axis]
        if n - max(-lo, 0) - max(-hi, 0) < 0 or n + lo + hi < 0:
            raise ShapeError(f"pad: padding ({lo}, {hi}) leaves a negative size for dimension "
                             f"{axis} of size {n} (input shape {tuple(shape)})")
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ShapeError(f"pad: reflect padding must be less than the size of the dimension, "
                             f"got padding ({lo}, {hi}) for dimension {axis} of size {n}")
        if mode == "circular" and (lo > n or hi > n):
            raise ShapeError(f"pad: circular padding can be at most the size of the dimension, "
                             f"got padding ({lo}, {hi}) for dimension {axis} of size {n}")
        if mode == "replicate" and n == 0:
            raise ShapeError(f"pad: replicate padding needs a non-empty dimension, but "
                             f"dimension {axis} of shape {tuple(shape)} is empty")
        pads.append((axis, lo, hi))
    pads.reverse()
    if mode == "constant":
        return Pad.apply(input, pads=tuple(pads), mode=mode, value=0 if value is None else value)
    return Pad.apply(input, pads=tuple(pads), mode=mode)


__all__ = ["reshape", "view", "permute", "transpose", "t", "flatten", "unflatten", "ravel",
           "squeeze", "unsqueeze", "movedim", "moveaxis", "swapaxes", "swapdims", "expand",
           "broadcast_to", "narrow", "split", "chunk", "unbind", "cat", "concat", "concatenate",
           "stack", "flip", "repeat", "tile", "pad"]

moveaxis = movedim
swapaxes = swapdims = transpose
concat = concatenate = cat

TENSOR_METHODS = {"reshape": reshape, "view": view, "permute": permute, "transpose": transpose,
                  "t": t, "T": property(lambda self: permute(self, *reversed(range(self.ndim)))),
                  "mT": property(lambda self: transpose(self, -2, -1)),
                  "view_as": view_as, "reshape_as": reshape_as, "flatten": flatten,
                  "unflatten": unflatten, "ravel": ravel, "squeeze": squeeze,
                  "unsqueeze": unsqueeze, "movedim": movedim, "moveaxis": movedim,
                  "swapaxes": transpose, "swapdims": transpose, "expand": expand,
                  "expand_as": expand_as, "broadcast_to": broadcast_to, "narrow": narrow,
                  "split": split, "chunk": chunk, "unbind": unbind, "flip": flip,
                  "repeat": repeat, "tile": tile}


# PyTorch's node names for pad's modes (the mode is kept on the node)
_PAD_NAMES: dict[str | None, str] = {"constant": "ConstantPadNdBackward0", "reflect": "ReflectionPad2DBackward0",
              "replicate": "ReplicationPad2DBackward0", "circular": "CatBackward0"}
