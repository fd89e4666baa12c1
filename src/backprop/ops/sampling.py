"""Random sampling with PyTorch's names: ``multinomial``, ``bernoulli`` and the in-place
fills ``bernoulli_``, ``random_``, ``exponential_``, ``geometric_``, ``log_normal_``,
``cauchy_``.

Every draw comes from ``backprop.random``'s seeded generator (or the ``generator=``
given), so ``backprop.manual_seed(s)`` repeats a run. The streams are NumPy's, not
PyTorch's: the same seed gives other numbers than torch does, with the same
distribution. None of these has a gradient (as in PyTorch); an in-place fill of a
tensor in the graph is recorded as an overwrite, as ``normal_`` is.
"""
from __future__ import annotations

import numpy as np

from backprop import random as _random
from backprop.errors import DTypeError, ShapeError
from backprop.ops._util import require_tensor as _tensor
from backprop.tensor import Tensor, _make, _overwrite


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Draw ``num_samples`` category indices from each row of non-negative weights.

    ``input`` is 1-D (one distribution) or 2-D (one per row); the weights need not sum
    to 1. Without ``replacement`` each row gives distinct categories, and never one of
    weight 0. Returns int64 of shape ``(num_samples,)`` or ``(rows, num_samples)``.

    Example::

        probs = backprop.softmax(logits, dim=-1)
        next_char = backprop.multinomial(probs, num_samples=1)
    """
    w = _tensor(input, "multinomial")._data
    if w.ndim not in (1, 2):
        raise ShapeError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {w.shape}")
    if w.dtype.kind != "f":
        raise DTypeError(f"multinomial: only supports floating-point dtypes for input, got "
                         f"{w.dtype}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
        raise ValueError(f"multinomial: cannot sample n_sample <= 0 samples (got "
                         f"{num_samples})")
    rows = w.reshape(-1, w.shape[-1]).astype(np.float64)
    n = rows.shape[1]
    if n == 0:
        raise ShapeError("multinomial: the distribution has no categories")
    if not np.isfinite(rows).all() or (rows < 0).any():
        raise ValueError("multinomial: probability tensor contains either inf, nan or "
                         "element < 0")
    total = rows.sum(1)
    if (total <= 0).any():
        raise ValueError("multinomial: invalid multinomial distribution (sum of "
                         "probabilities <= 0)")
    if not replacement:
        if num_samples > n:
            raise ValueError(f"multinomial: cannot sample n_sample > prob_dist.size(-1) "
                             f"samples without replacement ({num_samples} > {n})")
        if ((rows > 0).sum(1) < num_samples).any():
            raise ValueError("multinomial: invalid multinomial distribution (with "
                             "replacement=False, not enough non-negative category to sample)")
    g = _random.generator(generator)
    if replacement:
        # inverse CDF: each uniform draw falls into one category's share of its row's
        # [0, 1); the rows are laid end to end (row i on [i, i + 1)) for one search
        m = rows.shape[0]
        cdf = np.cumsum(rows, 1) / total[:, None]
        offset = np.arange(m, dtype=np.float64)[:, None]
        u = g.random((m, num_samples)) + offset
        out = np.searchsorted((cdf + offset).ravel(), u.ravel(), side="right").reshape(u.shape)
        out = np.clip(out - np.arange(m)[:, None] * n, 0, n - 1)
        # A zero-weight category has an empty share, so only rounding at a row's end
        # could pick one: give such a draw the row's last category of positive weight.
        zero = np.take_along_axis(rows, out, 1) == 0
        if zero.any():
            last = n - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)
            out = np.where(zero, last[:, None], out)
    else:
        # NOTE: Efraimidis & Spirakis: the k largest keys log(u)/w are a weighted sample
        # without replacement; weight 0 gives key -inf, so it is never picked.
        with np.errstate(divide="ignore"):
            keys = np.log(g.random(rows.shape)) / rows
        out = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    out = out.astype(np.int64)
    return _make(out.reshape(num_samples) if w.ndim == 1 else out)


def bernoulli(input, p=None, *, generator=None):
    """0/1 draws: 1 with probability ``input`` (element-wise), or ``p`` when given; the
    result has input's shape and dtype.

    Example::

        mask = backprop.bernoulli(backprop.full((3, 3), 0.8))
    """
    x = _tensor(input, "bernoulli")._data
    if x.dtype.kind != "f" and p is None:
        raise DTypeError(f"bernoulli: expected a floating-point tensor of probabilities, got "
                         f"{x.dtype}")
    prob = x if p is None else _probability(p, x.shape, "bernoulli")
    if np.any((prob < 0) | (prob > 1)) or np.any(np.isnan(prob)):
        raise ValueError("bernoulli: expects 0 <= p <= 1 for every probability")
    g = _random.generator(generator)
    return _make((g.random(x.shape) < prob).astype(x.dtype))


def _probability(p, shape, op):
    prob = p._data if isinstance(p, Tensor) else np.asarray(p, dtype=np.float64)
    try:
        return np.broadcast_to(prob, shape)
    except ValueError:
        raise ShapeError(f"{op}: p of shape {prob.shape} can't be broadcast to the tensor's "
                         f"shape {shape}") from None


def _fill(self: Tensor, values: np.ndarray, op: str) -> Tensor:
    """Write ``values`` into ``self`` in place (recorded as an overwrite in the graph)."""
    values = np.asarray(values).astype(self._data.dtype, copy=False)
    if self._records():
        return self._record(op, _overwrite(values))
    self._check_inplace(op)
    return self._assign(values, op)


def _float_only(self, op):
    if self._data.dtype.kind != "f":
        raise DTypeError(f"{op}: expects a floating-point tensor, got {self.dtype}")


def bernoulli_(self, p=0.5, *, generator=None):
    """Fill with 0/1 draws, 1 with probability ``p`` (a number or a tensor)."""
    prob = _probability(p, self._data.shape, "bernoulli_")
    if np.any((prob < 0) | (prob > 1)):
        raise ValueError(f"bernoulli_: expects 0 <= p <= 1, got {p}")
    g = _random.generator(generator)
    return _fill(self, g.random(self._data.shape) < prob, "bernoulli_")


def random_(self, from_=None, to=None, *, generator=None, **kwargs):
    """Fill with integers drawn uniformly from [from, to - 1].

    ``random_(to)`` draws from [0, to - 1]; with no bounds, from [0, 2^mantissa] for
    floats (so every value is exact) and [0, dtype max] for integers, as PyTorch.
    (PyTorch's keyword ``from`` is a Python keyword: pass it positionally, or as ``from_``.)
    """
    if "from" in kwargs:
        from_ = kwargs.pop("from")
    if kwargs:
        raise TypeError(f"random_: unexpected keyword arguments {sorted(kwargs)}")
    dt = self._data.dtype
    if to is None and from_ is not None:
        from_, to = 0, from_  # random_(to): random_(0) is an empty range, as in PyTorch
    if from_ is None:
        from_ = 0
    if to is None:
        if dt.kind == "f":
            to = 2 ** min(np.finfo(dt).nmant + 1, 63) + 1
        elif dt.kind == "b":
            to = 2
        else:
            to = int(np.iinfo(dt).max) + (1 if np.iinfo(dt).max < 2 ** 63 - 1 else 0)
    if to <= from_:
        raise ValueError(f"random_: expects 'from' to be less than 'to', but got from={from_} "
                         f">= to={to}")
    g = _random.generator(generator)
    return _fill(self, g.integers(from_, to, self._data.shape), "random_")


def exponential_(self, lambd=1.0, *, generator=None):
    """Fill with draws from the exponential distribution of rate ``lambd`` (mean 1/lambd)."""
    _float_only(self, "exponential_")
    if not lambd > 0:
        raise ValueError(f"exponential_: expects lambda > 0.0, but found lambda={lambd}")
    g = _random.generator(generator)
    return _fill(self, g.exponential(1.0 / lambd, self._data.shape), "exponential_")


def geometric_(self, p, *, generator=None):
    """Fill with the number of Bernoulli(p) trials up to the first success (1, 2, ...)."""
    if not 0 < p < 1:
        raise ValueError(f"geometric_: expects p to be in (0, 1), but got p={p}")
    g = _random.generator(generator)
    return _fill(self, g.geometric(p, self._data.shape), "geometric_")


def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
    """Fill with exp(N(mean, std²)) draws (the log of each is normal)."""
    _float_only(self, "log_normal_")
    if not std > 0:
        raise ValueError(f"log_normal_: expects std > 0.0, but found std={std}")
    g = _random.generator(generator)
    return _fill(self, g.lognormal(mean, std, self._data.shape), "log_normal_")


def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
    """Fill with draws from the Cauchy distribution: median + sigma · tan(π (u - ½))."""
    _float_only(self, "cauchy_")
    if not sigma > 0:
        raise ValueError(f"cauchy_: expects sigma > 0.0, but found sigma={sigma}")
    g = _random.generator(generator)
    return _fill(self, median + sigma * g.standard_cauchy(self._data.shape), "cauchy_")


__all__ = ["multinomial", "bernoulli"]

TENSOR_METHODS = {
    "multinomial": multinomial, "bernoulli": bernoulli, "bernoulli_": bernoulli_,
    "random_": random_, "exponential_": exponential_, "geometric_": geometric_,
    "log_normal_": log_normal_, "cauchy_": cauchy_,
}
