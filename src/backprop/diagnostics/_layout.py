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

    def add(self, layout: "Layout", grads, sq: float) -> None:
        """Add one step's gradients (as ``layout.step_grads`` gave them) and ‖g‖²."""
        if not math.isfinite(sq):
            self.bad = True
            return
        if self.sum is None:
            self.sum = layout.sum_start(grads)
        else:
            layout.sum_add(self.sum, grads)
        self.sq_sum += sq
        self.count += 1

    def estimate(self, layout: "Layout", batch_size, size: int) -> dict | None:
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

    Three rows of one buffer: the gradients, the weights before the update and the
    change the update made. Reading every tensor into a row turns the per-step work into
    a few NumPy calls whatever the number of parameters (one ``concatenate``, one dot
    product), and on recorded steps every per-parameter norm of all three rows comes
    from one segment sum (``np.add.reduceat``). Parameters with no elements are left out.
    """

    GRADS, BEFORE, CHANGE = 0, 1, 2

    def __init__(self, named: list, arrays):
        data = arrays.data
        self._index(named, arrays, lambda p: int(data(p).size), lambda p: data(p).dtype)
        self.rows = np.zeros((3, self.total_size), self.dtype)
        self.grads = self.rows[self.GRADS]
        self._scratch = np.empty_like(self.grads)
        self._zeros = [np.zeros(n, self.dtype) for n in self._sizes]
        self._bounds = [(a, a + n) for a, n in zip(self.offsets.tolist(), self._sizes)]
        self._all = list(range(len(self.params)))

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
        """Copy every gradient into the gradient row (zeros where there is none).

        Returns the indices of the parameters that have a gradient.
        """
        grad = self.arrays.grad
        try:  # the usual case: every parameter has its gradient, of its own size
            np.concatenate([grad(p).reshape(-1) for p in self.params], out=self.grads)
            return self._all
        except (AttributeError, ValueError):  # a missing (None) or odd gradient: see below
            pass
        parts, present = [], []
        sizes = self._sizes
        for i, p in enumerate(self.params):
            g = grad(p)
            if g is not None and g.size == sizes[i]:
                parts.append(g.reshape(-1))
                present.append(i)
            else:
                parts.append(self._zeros[i])
        if parts:
            np.concatenate(parts, out=self.grads)
        return present

    def gathered_sq_norm(self) -> float:
        """‖all gradients‖² as :meth:`gather_grads` read them."""
        return sq_norm(self.grads)

    # -- the noise windows' sums: a flat vector in the gradients' dtype here; a
    # framework's layout may keep them in its own tensors instead (on their device).
    def step_grads(self, gathered: bool) -> tuple:
        """(this step's gradients for the noise windows, ‖g‖²): each parameter's gradient
        as a flat view, zeros where there is none; read in place, no copy. ``gathered``:
        the gradient row already holds them (a recorded step)."""
        if gathered:
            parts = [self.grads[a:b] for a, b in self._bounds]
        else:
            grad, sizes, parts = self.arrays.grad, self._sizes, []
            for i, p in enumerate(self.params):
                g = grad(p)
                parts.append(g.reshape(-1) if g is not None and g.size == sizes[i]
                             else self._zeros[i])
        return parts, sum(sq_norm(x) for x in parts)

    @staticmethod
    def sum_start(grads):
        """A window's running sum, started from one step's gradients (a copy)."""
        # In the gradients' own dtype: a float32 sum of K float32 gradients loses far less
        # than the noise it measures, and float64 sums would cost a cast every step.
        return np.concatenate(grads) if grads else np.zeros(0, np.float32)

    def sum_add(self, total, grads) -> None:
        for (a, b), g in zip(self._bounds, grads):
            np.add(total[a:b], g, out=total[a:b])

    @staticmethod
    def sum_sq_norm(total) -> float:
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
        change = self.rows[self.CHANGE]
        self.gather_weights(self.CHANGE)
        # The difference of two nearby floats is exact: the row's dtype loses nothing.
        np.subtract(change, self.rows[self.BEFORE], out=change)

    def norms(self, rows: int) -> tuple:
        """(‖segment‖ of each parameter for the first ``rows`` rows, mean |gradient|)."""
        if not self.params:
            return [[] for _ in range(rows)], []
        # One BLAS dot product per segment: no temporary the size of the rows (a product
        # block and a pairwise sum of it cost ten times as much on a recorded step).
        norms = []
        for row in self.rows[:rows]:
            norms.append([math.sqrt(sq_norm(row[a:b])) for a, b in self._bounds])
        magnitude = np.abs(self.grads, out=self._scratch)
        abs_mean = np.add.reduceat(magnitude, self.offsets) / self.sizes
        return norms, abs_mean.tolist()
