"""Datasets: the ``Dataset`` protocol, ``TensorDataset``, ``Subset``, ``ConcatDataset``,
``random_split`` and ``train_test_split``.

A map-style dataset is anything with ``__getitem__(i)`` and ``__len__()``; a
``DataLoader`` draws indices, fetches samples and collates them into batches.
Datasets that can fetch a whole batch with one vectorised indexing (a
``TensorDataset``, a ``Subset`` of one, MNIST) offer ``_batch_fetcher()``, which
the loader uses instead of a Python loop over the batch.
"""
from __future__ import annotations

import bisect
import math
import numbers
import warnings

import numpy as np

from backprop import random as _random
from backprop.creation import from_numpy
from backprop.errors import IndexOutOfRange, ShapeError
from backprop.tensor import Tensor, _make

__all__ = [
    "ChainDataset", "ConcatDataset", "Dataset", "IterableDataset", "StackDataset", "Subset",
    "TensorDataset", "random_split", "train_test_split",
]


class Dataset:
    """Base class of map-style datasets: override ``__getitem__`` and ``__len__``.

    ``a + b`` concatenates two datasets into a :class:`ConcatDataset`.

    Example::

        class Squares(Dataset):
            def __len__(self):
                return 10
            def __getitem__(self, i):
                return backprop.tensor(float(i)), backprop.tensor(float(i * i))
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset:
    """Base class of datasets read as a stream: override ``__iter__``.

    A ``DataLoader`` over one groups consecutive samples into batches; it can't
    shuffle or sample (there are no indices).

    Example::

        class Counter(IterableDataset):
            def __iter__(self):
                return iter(range(5))
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other) -> ChainDataset:
        return ChainDataset([self, other])


def _first_dim(t, position: int) -> int:
    if t.ndim == 0:
        raise ShapeError(f"TensorDataset: tensor {position} is 0-d (a scalar); every tensor "
                         f"needs a first dimension indexing the samples")
    return t.shape[0]


class TensorDataset(Dataset):
    """A dataset over tensors that share their first dimension: sample ``i`` is
    ``(t[i] for t in tensors)``.

    Args:
        *tensors: tensors (or NumPy arrays, wrapped without a copy) with the same size
            in their first dimension.

    Example::

        X, y = backprop.randn(100, 2), backprop.randint(0, 3, (100,))
        ds = TensorDataset(X, y)
        x0, y0 = ds[0]          # shapes (2,) and ()
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        converted = []
        for position, t in enumerate(tensors):
            if isinstance(t, np.ndarray):
                t = from_numpy(t)
            elif not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {position} must be a Tensor or a "
                                f"NumPy array, got {type(t).__name__}")
            converted.append(t)
        sizes = [_first_dim(t, i) for i, t in enumerate(converted)]
        if any(s != sizes[0] for s in sizes):
            raise ShapeError(f"TensorDataset: size mismatch between tensors: their first "
                             f"dimensions are {sizes}, and all must be equal")
        self.tensors = tuple(converted)
        self._len = sizes[0]

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            n = self._len
            if not -n <= index < n:
                raise IndexOutOfRange(f"TensorDataset: index {index} is out of range for a "
                                      f"dataset of {n} samples")
            # ``a[i, ...]`` is a 0-d array view even for 1-D ``a`` (``a[i]`` would be a
            # NumPy scalar), so each element is a proper tensor.
            return tuple(t[index] if t._requires_grad else _make(t._data[index, ...])
                         for t in self.tensors)
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self._len

    def _batch_fetcher(self):
        """A function mapping an int64 index array to the collated batch, or None."""
        if any(t._requires_grad for t in self.tensors):
            return None  # let the generic path record the indexing in the graph
        arrays = [t._data for t in self.tensors]

        def fetch(indices: np.ndarray) -> list:
            return [_make(a[indices]) for a in arrays]
        return fetch

    def __repr__(self) -> str:
        parts = ", ".join(f"{tuple(t.shape)} {t.dtype.name}" for t in self.tensors)
        return f"TensorDataset({self._len} samples: {parts})"


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Args:
        dataset: the dataset to draw from.
        indices: a sequence of ints (list, range, array or int tensor).

    Example::

        first_ten = Subset(ds, range(10))
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices
        idx = np.asarray(indices._data if isinstance(indices, Tensor) else indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise TypeError(f"Subset: indices must be a 1-D sequence of ints, got "
                            f"{type(indices).__name__} of dtype {idx.dtype} and shape {idx.shape}")
        try:
            n = len(dataset)
        except (TypeError, NotImplementedError):
            n = None
        if n is not None and idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx[(idx < -n) | (idx >= n)][0]
            raise IndexOutOfRange(f"Subset: index {int(bad)} is out of range for a dataset of "
                                  f"{n} samples")
        self._idx = idx.astype(np.int64, copy=False)

    def __getitem__(self, index):
        if isinstance(index, list):
            return [self.dataset[int(self._idx[i])] for i in index]
        return self.dataset[int(self._idx[index])]

    def __getitems__(self, indices) -> list:
        inner = getattr(self.dataset, "__getitems__", None)
        if inner is not None:
            return inner([int(self._idx[i]) for i in indices])
        return [self.dataset[int(self._idx[i])] for i in indices]

    def __len__(self) -> int:
        return len(self._idx)

    def _batch_fetcher(self):
        get = getattr(self.dataset, "_batch_fetcher", None)
        inner = get() if get is not None else None
        if inner is None:
            return None
        idx = self._idx

        def fetch(indices: np.ndarray):
            return inner(idx[indices])
        return fetch


class ConcatDataset(Dataset):
    """Several datasets one after the other.

    Example::

        both = ConcatDataset([train_a, train_b])     # or train_a + train_b
    """

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset: does not support IterableDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexOutOfRange(f"ConcatDataset: index {index} is out of range for a dataset "
                                  f"of {n} samples")
        if index < 0:
            index += n
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


class ChainDataset(IterableDataset):
    """Several iterable datasets read one after the other (``a + b`` for two).

    Example::

        stream = ChainDataset([first_stream, second_stream])
        for sample in stream:
            ...
    """

    def __init__(self, datasets):
        self.datasets = datasets

    def __iter__(self):
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError(f"ChainDataset only supports IterableDataset, got "
                                f"{type(d).__name__}")
            yield from d

    def __len__(self) -> int:
        total = 0
        for d in self.datasets:
            if not isinstance(d, IterableDataset):
                raise TypeError(f"ChainDataset only supports IterableDataset, got "
                                f"{type(d).__name__}")
            # A stream with no __len__ raises TypeError here, as in PyTorch.
            total += len(d)  # type: ignore[arg-type]
        return total


class StackDataset(Dataset):
    """Samples of several equally long datasets side by side: ``StackDataset(a, b)[i]``
    is ``(a[i], b[i])`` and ``StackDataset(x=a, y=b)[i]`` is ``{"x": a[i], "y": b[i]}``.

    Example::

        data = StackDataset(image=images, label=labels)
        data[0]                              # {'image': ..., 'label': ...}
    """

    def __init__(self, *args, **kwargs):
        if args and kwargs:
            raise ValueError("StackDataset: supported either tuple-like (positional) or "
                             "dict-like (keyword) input, but both were given")
        if not args and not kwargs:
            raise ValueError("StackDataset: at least one dataset should be passed")
        self._keys = list(kwargs) if kwargs else None
        self.datasets = dict(kwargs) if kwargs else tuple(args)
        parts = list(self.datasets.values()) if kwargs else list(args)
        lengths = [len(d) for d in parts]
        if any(n != lengths[0] for n in lengths):
            names = self._keys if kwargs else list(range(len(parts)))
            raise ValueError(f"StackDataset: size mismatch between datasets: "
                             f"{dict(zip(names, lengths, strict=True))}")
        self._length = lengths[0]

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if self._keys is not None:
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __getitems__(self, indices: list) -> list:
        """A batch of samples; a part that has its own ``__getitems__`` fetches in one go."""
        parts = self.datasets.values() if self._keys is not None else self.datasets
        columns = []
        for d in parts:
            getitems = getattr(d, "__getitems__", None)
            column = getitems(indices) if getitems is not None else [d[i] for i in indices]
            if len(column) != len(indices):
                raise ValueError(f"StackDataset: nested dataset's output size mismatch: "
                                 f"expected {len(indices)}, got {len(column)}")
            columns.append(column)
        if self._keys is not None:
            return [dict(zip(self._keys, row, strict=True)) for row in zip(*columns, strict=True)]
        return [tuple(row) for row in zip(*columns, strict=True)]


def _split_lengths(n: int, lengths) -> list:
    """Integer lengths, from ints or from fractions summing to 1 (PyTorch's rule)."""
    lengths = list(lengths)
    for x in lengths:
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise TypeError(f"random_split: lengths must be ints or fractions, got {lengths}")
    # PyTorch's rule: lengths summing to 1 are fractions (for a one-sample dataset both
    # readings give the same split)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction at index {i} is not between 0 and 1: "
                                 f"{frac}")
        counts = [int(math.floor(n * frac)) for frac in lengths]
        # the samples left over by flooring go one each to the splits, round robin
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"random_split: length of split at index {i} is 0; this "
                              f"results in an empty dataset", stacklevel=3)
        return counts
    for x in lengths:
        if not float(x).is_integer() or x < 0:
            raise ValueError(f"random_split: lengths must be non-negative ints or fractions "
                             f"summing to 1, got {lengths}")
    counts = [int(x) for x in lengths]
    if sum(counts) != n:
        raise ValueError(f"random_split: sum of input lengths ({sum(counts)}) does not equal "
                         f"the length of the input dataset ({n})")
    return counts


def random_split(dataset, lengths, generator=None) -> list:
    """Split ``dataset`` at random into non-overlapping :class:`Subset` s.

    Args:
        dataset: the dataset to split.
        lengths: the sizes of the splits, as ints summing to ``len(dataset)`` or as
            fractions summing to 1 (``floor(n * f)`` each, the remainder handed out one
            by one from the first split on, as in PyTorch).
        generator: a ``backprop.Generator``; the global one (``backprop.manual_seed``)
            when None.

    Example::

        train, val = random_split(ds, [0.8, 0.2], generator=backprop.Generator(42))
    """
    counts = _split_lengths(len(dataset), lengths)
    order = _random.generator(generator).permutation(sum(counts))
    out, start = [], 0
    for c in counts:
        out.append(Subset(dataset, order[start:start + c].tolist()))
        start += c
    return out


def _numpy_rng(seed) -> np.random.Generator:
    """A NumPy generator from an int seed, a ``backprop.Generator``, or None (the global one)."""
    if seed is None or isinstance(seed, _random.Generator):
        return _random.generator(seed)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, a backprop.Generator or None, got "
                        f"{type(seed).__name__}")
    return np.random.default_rng(int(seed))


def train_test_split(*tensors, test_fraction: float = 0.2, seed=0) -> tuple:
    """Shuffle tensors that share their first dimension and split them into train and test.

    Args:
        *tensors: tensors (or arrays) with the same number of rows, e.g. ``X, y``.
        test_fraction: the share of rows in the test part, in [0, 1) (rounded to the
            nearest count).
        seed: an int for a split that ignores the global RNG, a ``backprop.Generator``,
            or None for the global generator.

    Returns:
        ``(train, test)``, each a tuple of tensors in the order given.

    Example::

        X, y = spiral()
        (X_train, y_train), (X_test, y_test) = train_test_split(X, y, test_fraction=0.25)
    """
    if not tensors:
        raise ValueError("train_test_split: needs at least one tensor")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real) \
            or not 0 <= test_fraction < 1:
        raise ValueError(f"train_test_split: test_fraction must be in [0, 1), got "
                         f"{test_fraction!r}")
    ds = TensorDataset(*tensors)  # checks the first dimensions agree
    n = len(ds)
    n_test = int(math.floor(n * test_fraction + 0.5))
    order = _numpy_rng(seed).permutation(n)
    test_idx, train_idx = order[:n_test], order[n_test:]
    train = tuple(_make(t._data[train_idx]) for t in ds.tensors)
    test = tuple(_make(t._data[test_idx]) for t in ds.tensors)
    return train, test
