"""The Monitor's view of a model's parameters as flat vectors, and its noise windows.

:class:`Layout` lays every parameter end to end in rows of one NumPy buffer (the
gradients, the weights before an update, the change it made), so the per-step work is a
few NumPy calls whatever the number of parameters. :class:`NoiseWindow` keeps the running
sums over consecutive steps' gradients from which the gradient noise scale is estimated.
A framework adapter may give its own Layout subclass (``adapter.layout(named)``) that
keeps the windows' sums and the every-step norm in its own tensors, on their device
(:class:`~backprop.diagnostics.torch_adapter.TorchLayout`).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["Layout", "NoiseWindow", "sq_norm"]


def sq_norm(a: np.ndarray) -> float:
    """‖a‖² as a Python float; recomputed in float64 if float32 overflowed."""
    v = a.ravel()
    sq = float(np.dot(v, v))
    if not math.isfinite(sq) and a.dtype != np.float64:
        sq = float(np.dot(v.astype(np.float64), v.astype(np.float64)))
    return sq




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

    Rows of one buffer: the weights before an update and the change it made (the
    gradient row is scratch). Gradients are read in place, once per step that needs them
    (the norm checked every step; a recorded step's per-parameter ‖g‖ and mean |g|; the
    noise windows' sums), while they are fresh in cache: no copy of them is made. On a
    recorded step the weights are copied once, before the update, and the change is the
    weights after it minus that copy. Parameters with no elements are left out.
    """

    GRADS, BEFORE, CHANGE = 0, 1, 2

    def __init__(self, named: list, arrays):
        data = arrays.data
        self._index(named, arrays, lambda p: int(data(p).size), lambda p: data(p).dtype)
        self.rows = np.zeros((3, self.total_size), self.dtype)
        self._grad_sq = self._grad_l1 = [0.0] * len(self._sizes)  # of the recorded step
        self._zeros = [np.zeros(n, self.dtype) for n in self._sizes]
        self._bounds = [(a, a + n) for a, n in zip(self.offsets.tolist(), self._sizes, strict=True)]

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

    def gather_grads(self) -> list:
        """Read every gradient of a recorded step in place: each parameter's ‖g‖² and Σ|g|,
        kept for :meth:`norms` (read now, before any clipping; no copy of the gradients).

        Returns the indices of the parameters that have a gradient.
        """
        grad, sizes, bounds = self.arrays.grad, self._sizes, self._bounds
        magnitude = self.rows[self.GRADS]  # scratch for |g|, in the rows' dtype
        sq, l1, present = [0.0] * len(sizes), [0.0] * len(sizes), []
        for i, p in enumerate(self.params):
            g = grad(p)
            if g is None or g.size != sizes[i]:  # a missing (None) or odd gradient
                continue
            g = g.reshape(-1)
            a, b = bounds[i]
            sq[i] = sq_norm(g)
            l1[i] = float(np.add.reduce(np.abs(g, out=magnitude[a:b])))
            present.append(i)
        self._grad_sq, self._grad_l1 = sq, l1
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
        grad, sizes, parts = self.arrays.grad, self._sizes, []
        for i, p in enumerate(self.params):
            g = grad(p)
            parts.append(g.reshape(-1) if g is not None and g.size == sizes[i]
                         else self._zeros[i])
        sums = [w.sum for w in windows if w.sum is not None]
        sq = 0.0
        for (a, b), g in zip(self._bounds, parts, strict=True):
            sq += sq_norm(g)
            for total in sums:
                np.add(total[a:b], g, out=total[a:b])
        for window in windows:
            if window.sum is None:
                window.sum = self.sum_start(parts)
        return sq

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
        grad = self.arrays.grad
        for p in self.params:
            g = grad(p)
            if g is not None:
                total += sq_norm(g)
        return total

    def gather_weights(self, row: int) -> None:
        """Copy the weights into ``row``."""
        if self.params:
            data = self.arrays.data
            np.concatenate([data(p).reshape(-1) for p in self.params], out=self.rows[row])

    def record_change(self) -> None:
        """The change row: the weights now minus the weights before."""
        change, before = self.rows[self.CHANGE], self.rows[self.BEFORE]
        # The difference of two nearby floats is exact: the row's dtype loses nothing.
        # Each parameter is read in place (not copied into the row first).
        data = self.arrays.data
        for p, (a, b) in zip(self.params, self._bounds, strict=True):
            w = data(p).reshape(-1)
            if w.dtype != change.dtype:  # a parameter of another dtype: as the row holds it
                w = w.astype(change.dtype)
            np.subtract(w, before[a:b], out=change[a:b])

    def norms(self, rows: int) -> tuple:
        """(‖segment‖ of each parameter for the first ``rows`` rows, mean |gradient|)."""
        if not self.params:
            return [[] for _ in range(rows)], []
        # One BLAS dot product per segment: no temporary the size of the rows (a product
        # block and a pairwise sum of it cost ten times as much on a recorded step).
        norms = [[math.sqrt(x) for x in self._grad_sq]]
        for row in self.rows[self.BEFORE:rows]:
            norms.append([math.sqrt(sq_norm(row[a:b])) for a, b in self._bounds])
        abs_mean = [total / n for total, n in zip(self._grad_l1, self._sizes, strict=True)]
        return norms, abs_mean
