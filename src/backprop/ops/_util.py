"""Small helpers shared by the op modules: argument checks and dtype rules."""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from backprop import dtypes as _dt
from backprop.errors import DTypeError, IndexOutOfRange, ShapeError
from backprop.tensor import Tensor

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


def is_f64(x) -> bool:
    """Is ``x`` a float64 array with dimensions? Such an operand makes a result float64.

    Python floats and 0-d arrays are "scalars" in PyTorch's promotion rules: they
    cannot raise the precision of a tensor with dimensions.
    """
    return isinstance(x, np.ndarray) and x.dtype == F64 and x.ndim > 0


def keeps_f64(a, b=None) -> bool:
    """Should a float64 result of an op on ``a`` and ``b`` stay float64 (PyTorch's rules)?

    Yes when an operand with dimensions is float64, or when no operand has dimensions
    and one of them is a float64 0-d array. NumPy would also promote int64 + 0.5 or
    float32 * (0-d float64) to float64; PyTorch keeps the default float32 there.
    """
    if is_f64(a) or is_f64(b):
        return True
    dims = (isinstance(a, np.ndarray) and a.ndim > 0) or (isinstance(b, np.ndarray) and b.ndim > 0)
    if dims:
        return False
    return any(isinstance(x, np.ndarray) and x.dtype == F64 for x in (a, b))


def float_result(*operands) -> np.dtype:
    """The float dtype PyTorch gives an op whose float64 NumPy result it would not keep.

    A float operand with dimensions decides (float32 * 0-d float64 is float32); then a 0-d
    float array (int tensor * 0-d float64 tensor is float64); otherwise, where the float came
    from an integer or a Python number, the default dtype (``set_default_dtype``), as in PyTorch.
    """
    zero_d = None
    for x in operands:
        if isinstance(x, np.ndarray) and x.dtype.kind == "f":
            if x.ndim > 0:
                return x.dtype
            zero_d = x.dtype if zero_d is None else max(zero_d, x.dtype)
    return zero_d if zero_d is not None else _dt.default_float


def fix_float(out: np.ndarray, a, b=None) -> np.ndarray:
    """PyTorch's promotion: an integer tensor mixed with a Python float gives the default dtype
    (float32 unless changed), not float64, and a 0-d float64 tensor does not promote a
    float32 tensor (see ``keeps_f64`` and ``float_result``)."""
    if out.dtype == F64 and not keeps_f64(a, b):
        target = float_result(a, b)
        return out if target == F64 else out.astype(target)
    return out


def default_float_for(x: np.ndarray) -> np.ndarray:
    """Integer and bool arrays become the default float dtype (float32 unless changed), as
    PyTorch's sqrt, exp, sin, ... of an integer tensor do; floats are kept."""
    return x if x.dtype.kind == "f" else x.astype(_dt.default_float)


def as_tensor(x, op: str, like: Tensor | None = None) -> Tensor:
    """Accept a Tensor, or a number / array / list (made into a tensor without grad)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (numbers.Number, np.generic, np.ndarray, list, tuple)):
        arr = np.asarray(x)
        if arr.dtype.kind == "f" and not isinstance(x, (np.ndarray, np.generic)):
            arr = arr.astype(like._data.dtype if like is not None and
                             like._data.dtype.kind == "f" else _dt.default_float)
        elif arr.dtype.kind in "OUSV":
            raise DTypeError(f"{op}: expected a Tensor or numbers, got {type(x).__name__}")
        from backprop.tensor import _make

        return _make(arr)
    raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")


def check_operand(x, op: str):
    """For binary ops: a Tensor or a real number (or array); anything else is a TypeError."""
    if isinstance(x, (Tensor, float, int, np.ndarray, np.generic, numbers.Real)):
        return x
    if isinstance(x, (list, tuple)):
        return as_tensor(x, op)
    raise TypeError(f"{op}: unsupported operand type {type(x).__name__}")


def norm_dim(dim: int, ndim: int, op: str) -> int:
    """Wrap a negative dim; raise naming the op when it is out of range."""
    if type(dim) is int and -ndim <= dim < ndim:  # the usual case
        return dim % ndim
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexOutOfRange(f"{op}: dimension out of range (expected to be in range of "
                              f"[{-n}, {n - 1}], but got {dim})")
    return int(dim) % n


def norm_dims(dim, ndim: int, op: str):
    """``None`` or ``()`` -> all axes; int or tuple -> a sorted tuple of non-negative axes.

    A 0-d tensor accepts dim 0 or -1 (as in PyTorch) and has no axes to reduce.
    """
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return tuple(range(ndim))
    if ndim == 0:
        for d in (dim if isinstance(dim, (list, tuple)) else (dim,)):
            norm_dim(d, 0, op)
        return ()
    if isinstance(dim, (list, tuple)):
        axes = tuple(norm_dim(d, ndim, op) for d in dim)
        if len(set(axes)) != len(axes):
            raise ShapeError(f"{op}: dim {tuple(dim)} names the same dimension twice")
        return tuple(sorted(axes))
    return (norm_dim(dim, ndim, op),)


def require_tensor(input, op: str, what: str | None = None) -> Tensor:
    """``input`` itself when it is a Tensor; otherwise a TypeError naming ``op``, the argument
    (``what``: "weight", "target", ...; the input when None) and the type given.

    The one check behind every op and layer function that takes only a tensor (no numbers).
    """
    if not isinstance(input, Tensor):
        wanted = "a Tensor as input" if what is None else f"{what} to be a Tensor"
        raise TypeError(f"{op}: expected {wanted}, got {type(input).__name__}")
    return input


def require_float(x: Tensor, op: str) -> None:
    if x._data.dtype.kind != "f":
        raise DTypeError(f"{op}: expected a floating-point tensor, got {x.dtype}")


# -- views ------------------------------------------------------------------------------------
# Every view knows the tensor whose memory it shows (its base), and every base knows its
# live views, whatever the grad mode, as in PyTorch: an in-place write that the graph
# records (backprop.ops.inplace) must reach the history of every tensor it changes.
# Kept beside the tensors rather than in them, so copies and pickles of a tensor carry
# none of it.

class _ByIdentity:
    """A mapping from live objects, by identity, to values; an entry goes with its key.

    (``weakref.WeakKeyDictionary`` compares keys with ``==``, which is element-wise for
    tensors.) With ``strong_values`` an entry goes the moment its key dies (a callback),
    so a value is never kept alive by a dead key; otherwise dead entries are dropped by
    ``prune`` as the mapping grows, which is cheaper per entry.
    """

    def __init__(self, strong_values: bool = False):
        self._entries: dict = {}  # id(key) -> (weak reference to key, value)
        self._prune_at = 64
        self._strong = strong_values

    def get(self, key, default=None):
        entry = self._entries.get(id(key))
        return entry[1] if entry is not None and entry[0]() is key else default

    def __setitem__(self, key, value) -> None:
        entries, k = self._entries, id(key)
        if self._strong:
            def gone(ref, k=k):
                if entries.get(k, (None,))[0] is ref:
                    del entries[k]
            entries[k] = (weakref.ref(key, gone), value)
            return
        entries[k] = (weakref.ref(key), value)
        if len(entries) >= self._prune_at:
            self.prune()

    def prune(self) -> None:
        entries = self._entries
        for k in [k for k, (ref, _) in entries.items() if ref() is None]:
            del entries[k]
        self._prune_at = max(64, 2 * len(entries))

    def keys(self) -> list:
        return [k for k in (ref() for ref, _ in list(self._entries.values())) if k is not None]

    def __len__(self) -> int:
        return len(self._entries)


view_base = _ByIdentity(strong_values=True)   # view -> its base (held while the view lives)
base_views = _ByIdentity()  # base -> _ByIdentity of its views (the values unused)


class TracksView:
    """Mixin for a Function whose output is a view of its first input's memory."""

    @classmethod
    def apply(cls, *args, **kwargs):
        out = super().apply(*args, **kwargs)
        if out._data.base is not None:
            track_view(out, args[0])
        return out


def track_view(out: Tensor, src: Tensor) -> None:
    """Record that ``out`` shows (part of) the memory of ``src`` and so of src's base."""
    base = view_base.get(src, src)
    data = out._data
    if data.base is not base._data and not np.may_share_memory(data, base._data):
        return  # a copy after all (a reshape that could not view, say)
    view_base[out] = base
    views = base_views.get(base)
    if views is None:
        views = _ByIdentity()
        base_views[base] = views
    views[out] = None


def same_source_dtype(x, src, op: str) -> None:
    """DTypeError unless ``src`` (a tensor written into ``x``: scatter, scatter_add,
    index_add, masked_scatter) has ``x``'s dtype. PyTorch refuses a source of another
    dtype: a cast would silently truncate floats written into an integer tensor, or lose
    a float64 source's gradient dtype."""
    if isinstance(src, Tensor) and src._data.dtype != x._data.dtype:
        raise DTypeError(f"{op}: expected self and source to have the same dtype, but got "
                         f"{x.dtype} and {src.dtype}")
