"""The Monitor's view of a model's parameters as flat vectors, and its noise windows.

:class:`Layout` lays every parameter end to end in one NumPy vector (which holds, in
turn, a recorded step's |gradients|, the weights before its update and the change the
update made), so the per-step work is a few NumPy calls per parameter.
:class:`NoiseWindow` keeps the running sums over consecutive steps' gradients from
which the gradient noise scale is estimated. A framework adapter may give its own
Layout subclass (``adapter.layout(named)``) that keeps the windows' sums and the
every-step norm in its own tensors, on their device
(:class:`~backprop.diagnostics.torch_adapter.TorchLayout`).
"""
from __future__ import annotations

import math

import numpy as np

from backprop.ops import _kernels

__all__ = ["Layout", "NoiseWindow", "sq_norm", "sum_and_sq"]

# The C passes of ops/_ckernels.c, or None: then NumPy's calls read and write each array.
_sum_pass = _kernels.KERNELS.sum_pass if _kernels.KERNELS is not None else None
_copy_pass = _kernels.KERNELS.copy_pass if _kernels.KERNELS is not None else None
# The sums a C pass takes (its `terms`): Σx, Σx², Σ|x|.
_SUM, _SQUARES, _ABS = 1, 2, 4


def sq_norm(a: np.ndarray) -> float:
    """‖a‖² as a Python float, without warnings: float32 and float64 arrays summed as they
    are (by the C pass where the kernels take them, else by BLAS) and again in float64
    where float32 overflowed; other dtypes (float16: its squares overflow past 256) in
    float64."""
    v = a.ravel()
    if v.dtype not in _kernels.FLOATS:
        v = v.astype(np.float64)
    if _sum_pass is not None and v.flags.c_contiguous:
        sq = _sum_pass(v, (), v.size, _SQUARES)[1]
        if not math.isfinite(sq) and v.dtype != np.float64:
            sq = _sum_pass(v.astype(np.float64), (), v.size, _SQUARES)[1]
        return sq
    with np.errstate(over="ignore"):  # an overflow in float32 is redone below
        sq = float(np.dot(v, v))
    if not math.isfinite(sq) and v.dtype != np.float64:
        w = v.astype(np.float64)
        sq = float(np.dot(w, w))
    return sq


def sum_and_sq(a: np.ndarray) -> tuple:
    """(Σa, ‖a‖² or None) of an array: both in one C pass where the kernels take it (a
    C-contiguous float32/float64 array whose ‖a‖² did not overflow), else Σa by NumPy and
    None (the caller takes ‖a‖² itself, if it needs it)."""
    if _sum_pass is not None and _kernels.usable(a):
        total, sq, _ = _sum_pass(a, (), a.size, _SUM | _SQUARES)
        return total, sq if math.isfinite(sq) else None
    return float(np.add.reduce(a.ravel())), None



class NoiseWindow:
    """Running sums over consecutive step gradients: Σ g_i (one flat vector), Σ‖g_i‖², and K.

    Only these sums are kept, never the K gradients themselves.
    """

    __slots__ = ("sum", "sq_sum", "count", "bad")

    def __init__(self):
        self.sum = None
        self.sq_sum = 0.0
        self.count = 0
        self.bad = False

    def note(self, sq: float) -> None:
        """Count a step whose gradients ``Layout.window_step`` added to :attr:`sum`, and
        its ‖g‖². A non-finite ‖g‖² spoils the window: it gives no estimate."""
        if not math.isfinite(sq):
            self.bad = True
            return
        self.sq_sum += sq
        self.count += 1

    def estimate(self, layout: Layout, batch_size, size: int) -> dict | None:
        """The noise record of a window meant to hold ``size`` gradients (None unless it does)."""
        k = self.count
        if self.bad or k < max(size, 2) or not batch_size:
            return None
        mean_sq = layout.sum_sq_norm(self.sum) / (k * k)
        # S = Σ‖g_i − ḡ‖² / (K−1) = (Σ‖g_i‖² − K‖ḡ‖²) / (K−1); rounding can push it below 0.
        s = max((self.sq_sum - k * mean_sq) / (k - 1), 0.0)
        grad_sq = mean_sq - s / k
        trace_cov = batch_size * s
        b_noise = trace_cov / grad_sq if grad_sq > 0 else math.inf
        return {"batches": k, "batch_size": int(batch_size), "trace_cov": trace_cov,
                "grad_sq_norm": grad_sq, "b_noise": b_noise}


class Layout:
    """The model's parameters laid end to end in flat vectors.

    One scratch vector the size of the model serves a recorded step three times: for
    each parameter's |gradient|, then the weights before the update, then (in place) the
    change the update made. Gradients are read in place, once per step that needs them
    (the norm checked every step; a recorded step's per-parameter ‖g‖ and mean |g|; the
    noise windows' sums, added in the same pass), while they are fresh in cache: no copy
    of them is made. Each norm of a recorded step is taken as its segment is written,
    while that is in cache too. Parameters with no elements are left out.

    With the C array kernels built, each of these passes is one C loop at the memory's
    speed (``_ckernels.sum_pass``: ‖g‖², Σ|g| and the windows' sums; ``copy_pass``: the
    copy or the change and its norm). What they write gets NumPy's bits; the norms agree
    with NumPy's to the arrays' rounding (their additions run in another order).
    """

    GRADS, BEFORE, CHANGE = 0, 1, 2

    def __init__(self, named: list, arrays):
        data = arrays.data
        self._index(named, arrays, lambda p: int(data(p).size), lambda p: data(p).dtype)
        self.row = np.zeros(self.total_size, self.dtype)
        # ‖g‖², Σ|g|, ‖w‖² and ‖Δw‖² of each parameter at the recorded step.
        self._grad_sq = self._grad_l1 = self._weight_sq = self._change_sq = \
            [0.0] * len(self._sizes)
        self._zeros = [np.zeros(n, self.dtype) for n in self._sizes]
        self._bounds = [(a, a + n) for a, n in zip(self.offsets.tolist(), self._sizes, strict=True)]
        in_c = self.dtype in _kernels.FLOATS
        self._sum_pass = _sum_pass if in_c else None
        self._copy_pass = _copy_pass if in_c else None

    def _in_c(self, a: np.ndarray) -> bool:
        """Whether the C passes take ``a`` as it is (a NumPy array in the row's dtype,
        C-contiguous)."""
        return _kernels.usable(a, self.row)

    def _read(self, g: np.ndarray, sums: list, a: int, b: int, l1: bool) -> tuple:
        """(‖g‖², Σ|g| if ``l1`` (else None)) of one flat gradient, adding it to each of
        ``sums`` (at [a, b)) in the same pass: one C loop where the kernels take it, else
        NumPy's calls."""
        if self._sum_pass is not None and self._in_c(g):
            _, sq, total_abs = self._sum_pass(g, tuple(total[a:b] for total in sums), b - a,
                                              _SQUARES | _ABS if l1 else _SQUARES)
            if not math.isfinite(sq + total_abs):
                # NaN, infinity or a float32 overflow: NumPy's numbers (the sums are done).
                sq, total_abs = sq_norm(g), float(np.add.reduce(np.abs(g), dtype=np.float64))
            return sq, total_abs if l1 else None
        for total in sums:
            np.add(total[a:b], g, out=total[a:b])
        magnitude = self.row[a:b]  # scratch for |g|, in the row's dtype
        return sq_norm(g), float(np.add.reduce(np.abs(g, out=magnitude))) if l1 else None

    def _index(self, named: list, arrays, size_of, dtype_of) -> None:
        """Names, parameters (those with elements), sizes, offsets and the common dtype."""
        self.arrays = arrays
        kept = [(n, p) for n, p in named if size_of(p)]
        self.names = [n for n, _ in kept]
        self.params = [p for _, p in kept]
        self.key = [(n, id(p)) for n, p in named]
        sizes = [size_of(p) for p in self.params]
        self._sizes = sizes
        self.sizes = np.array(sizes, dtype=np.int64)
        self.offsets = np.array([sum(sizes[:i]) for i in range(len(sizes))], dtype=np.intp)
        self.total_size = int(self.sizes.sum())
        self.dtype = np.result_type(*[dtype_of(p) for p in self.params]) \
            if self.params else np.dtype(np.float32)

    def _grad_parts(self) -> list:
        """Each parameter's gradient as a flat view, None where it has none (or an odd one)."""
        grad, sizes, parts = self.arrays.grad, self._sizes, []
        for i, p in enumerate(self.params):
            g = grad(p)
            parts.append(g.reshape(-1) if g is not None and g.size == sizes[i] else None)
        return parts

    def gather_grads(self, windows: list | tuple = ()) -> list:
        """Read every gradient of a recorded step in place: each parameter's ‖g‖² and Σ|g|,
        kept for :meth:`norms` (read now, before any clipping; no copy of the gradients),
        adding it to the running sums of the noise ``windows`` in the same pass (see
        :meth:`window_step`; the step's ‖g‖² is :meth:`gathered_sq_norm`).

        Returns the indices of the parameters that have a gradient.
        """
        parts = self._grad_parts()
        sums = [w.sum for w in windows if w.sum is not None]
        sq, l1, present = [0.0] * len(parts), [0.0] * len(parts), []
        for i, ((a, b), g) in enumerate(zip(self._bounds, parts, strict=True)):
            if g is None:  # adds nothing to a window's sum
                continue
            sq[i], l1[i] = self._read(g, sums, a, b, l1=True)
            present.append(i)
        self._grad_sq, self._grad_l1 = sq, l1
        self._start_windows(windows, parts)
        return present

    def gathered_sq_norm(self) -> float:
        """‖all gradients‖² as :meth:`gather_grads` read them."""
        return sum(self._grad_sq)

    # -- the noise windows' sums: a flat vector in the gradients' dtype here; a
    # framework's layout may keep them in its own tensors instead (on their device).
    def window_step(self, windows: list) -> float:
        """Add this step's gradients to the running sum of each of ``windows`` (starting
        the sum of a new one) and return ‖g‖²; each window's :meth:`NoiseWindow.note`
        counts the step after. Each gradient is read in place (zeros where there is none).

        One pass per parameter: its norm and the sums' additions read the gradient while
        it is in cache (the step's one read of the gradients from memory)."""
        parts = self._grad_parts()
        sums = [w.sum for w in windows if w.sum is not None]
        sq = 0.0
        for (a, b), g in zip(self._bounds, parts, strict=True):
            if g is not None:
                sq += self._read(g, sums, a, b, l1=False)[0]
        self._start_windows(windows, parts)
        return sq

    def _start_windows(self, windows: list | tuple, parts: list) -> None:
        """Start the sum of each new window in ``windows`` from this step's gradients."""
        for window in windows:
            if window.sum is None:
                window.sum = self.sum_start([self._zeros[i] if g is None else g
                                             for i, g in enumerate(parts)])

    @staticmethod
    def sum_start(grads):
        """A window's running sum, started from one step's gradients (a copy)."""
        # In the gradients' own dtype: a float32 sum of K float32 gradients loses far less
        # than the noise it measures, and float64 sums would cost a cast every step.
        return np.concatenate(grads) if grads else np.zeros(0, np.float32)

    def sum_sq_norm(self, total) -> float:
        return sq_norm(total)

    def sum_to_flat(self, total) -> np.ndarray:
        """A window's sum as a flat NumPy vector (a copy: what a checkpoint keeps)."""
        return total.copy()

    def sum_from_flat(self, flat: np.ndarray):
        """A checkpoint's flat vector as a window's sum (the inverse of ``sum_to_flat``)."""
        return flat.astype(self.dtype)

    def grad_sq_norm(self) -> float:
        """‖all gradients‖², read in place (no copy)."""
        total = 0.0
        grad, c_pass = self.arrays.grad, self._sum_pass
        if c_pass is None:
            grads = [grad(p) for p in self.params]
            return sum(sq_norm(g) for g in grads if g is not None)
        for p in self.params:  # the check of every step: its lean path
            g = grad(p)
            if g is not None:
                try:  # any float32/float64 gradient the C pass can read as it is
                    total += c_pass(g, (), g.size, _SQUARES)[1]
                except (TypeError, ValueError, BufferError):  # another dtype, a strided view
                    total += sq_norm(g)
        if not math.isfinite(total):  # NaN, infinity, or a float32 overflow: each in NumPy
            total = sum(sq_norm(g) for g in (grad(p) for p in self.params) if g is not None)
        return total

    def gather_weights(self, row: int) -> None:
        """Copy the weights into the scratch vector (``row`` is BEFORE: the weights before an
        update), each parameter's ‖w‖² taken from its copy as it is made."""
        data, out, weight_sq, c_pass = self.arrays.data, self.row, [], self._copy_pass
        for p, (a, b) in zip(self.params, self._bounds, strict=True):
            segment, w = out[a:b], data(p)
            if c_pass is not None and self._in_c(w):
                sq = c_pass(w, segment, False, b - a)
                weight_sq.append(sq if math.isfinite(sq) else sq_norm(segment))
                continue
            np.copyto(segment, w.reshape(-1))
            weight_sq.append(sq_norm(segment))
        self._weight_sq = weight_sq

    def record_change(self) -> None:
        """The change of each parameter since :meth:`gather_weights`, the weights now minus
        the weights before, written over their copy; its ‖Δw‖² taken as it is written."""
        # The difference of two nearby floats is exact: the row's dtype loses nothing.
        # Each parameter is read in place (not copied first).
        data, row, change_sq, c_pass = self.arrays.data, self.row, [], self._copy_pass
        for p, (a, b) in zip(self.params, self._bounds, strict=True):
            w, segment = data(p), row[a:b]
            if c_pass is not None and self._in_c(w):
                sq = c_pass(w, segment, True, b - a)
                change_sq.append(sq if math.isfinite(sq) else sq_norm(segment))
                continue
            w = w.reshape(-1)
            if w.dtype != row.dtype:  # a parameter of another dtype: as the row holds it
                w = w.astype(row.dtype)
            np.subtract(w, segment, out=segment)
            change_sq.append(sq_norm(segment))
        self._change_sq = change_sq

    def norms(self, rows: int) -> tuple:
        """(‖g‖, ‖w‖ and, if ``rows`` is 3, ‖Δw‖ of each parameter; mean |gradient|), as
        :meth:`gather_grads`, :meth:`gather_weights` and :meth:`record_change` read them."""
        squares = (self._grad_sq, self._weight_sq, self._change_sq)[:rows]
        norms = [[math.sqrt(x) for x in sq] for sq in squares]
        abs_mean = [total / n for total, n in zip(self._grad_l1, self._sizes, strict=True)]
        return norms, abs_mean
