"""``DataLoader``: mini-batches from a dataset, with samplers and collation as in PyTorch.

Each pass over a loader draws indices from its sampler (a fresh permutation per
epoch when shuffling, from a seeded generator), fetches the samples and collates
them into batched tensors. For a ``TensorDataset`` (or a ``Subset`` of one) with
the default collation a batch is one fancy-indexing of each underlying array,
with no Python loop over the samples.
"""
from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from backprop import dtypes as _dt
from backprop import random as _random
from backprop.autograd.grad_mode import state as _grad_state
from backprop.data.dataset import IterableDataset
from backprop.errors import DTypeError, ShapeError
from backprop.ops import stack as _stack
from backprop.tensor import Tensor, _make

__all__ = [
    "BatchSampler", "DataLoader", "RandomSampler", "Sampler", "SequentialSampler",
    "SubsetRandomSampler", "WeightedRandomSampler", "default_collate", "default_convert",
    "get_worker_info",
]


# -- collation --------------------------------------------------------------------------------
def _array_tensor(arr: np.ndarray, fn: str) -> Tensor:
    if arr.dtype not in _dt._BY_NP:
        raise DTypeError(f"{fn}: can't make a tensor from an array of dtype {arr.dtype}")
    return _make(arr)


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def default_collate(batch):
    """Merge a list of samples into a batch, as PyTorch's ``default_collate``.

    Tensors and NumPy arrays are stacked along a new first dimension (their dtype
    kept); Python ints become an int64 tensor, bools a bool tensor and floats a
    float32 tensor (PyTorch makes float64; backprop's default float is float32);
    NumPy scalars keep their dtype. Tuples, lists, named tuples and dicts are
    collated field by field (a tuple of fields becomes a list, as in PyTorch);
    strings are returned as a list.

    Example::

        default_collate([(1, 0.5), (2, 1.5)])     # [tensor([1, 2]), tensor([0.5, 1.5])]
    """
    if not isinstance(batch, (list, tuple)) or not batch:
        raise ValueError(f"default_collate: expected a non-empty list of samples, got "
                         f"{repr(batch)[:80]}")
    elem = batch[0]
    if isinstance(elem, Tensor):
        if _grad_state.enabled and any(t._requires_grad for t in batch):
            return _stack(list(batch))  # keep the samples' graph
        try:
            return _make(np.stack([t._data for t in batch]))
        except ValueError:
            shapes = sorted({tuple(t.shape) for t in batch})
            raise ShapeError(f"default_collate: can't stack tensors of different shapes "
                             f"{shapes} into a batch") from None
    if isinstance(elem, np.ndarray):
        try:
            return _array_tensor(np.stack(batch), "default_collate")
        except ValueError:
            shapes = sorted({np.shape(a) for a in batch})
            raise ShapeError(f"default_collate: can't stack arrays of different shapes "
                             f"{shapes} into a batch") from None
    if isinstance(elem, np.generic):
        return _array_tensor(np.array(batch), "default_collate")
    if isinstance(elem, bool):
        return _make(np.array(batch, dtype=np.bool_))
    if isinstance(elem, numbers.Integral):
        arr = np.array(batch)  # a float among the ints makes a float batch, as in PyTorch
        return _make(arr.astype(np.int64 if arr.dtype.kind in "iub" else _dt.default_float))
    if isinstance(elem, numbers.Real):
        return _make(np.array(batch, dtype=_dt.default_float))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        merged = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(merged)
        except TypeError:  # a mapping type that can't be built from a dict
            return merged
    if isinstance(elem, collections.abc.Sequence):  # a namedtuple too
        size = len(elem)
        if any(len(sample) != size for sample in batch):
            sizes = sorted({len(sample) for sample in batch})
            raise ShapeError(f"default_collate: each sample in the batch should have the same "
                             f"number of fields, got lengths {sizes}")
        fields = [default_collate(list(field)) for field in zip(*batch, strict=True)]
        if _is_namedtuple(elem):
            return type(elem)(*fields)
        if isinstance(elem, tuple):
            return fields
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(f"default_collate: a batch must contain tensors, numpy arrays, numbers, "
                    f"dicts or lists; found {type(elem).__name__}")


def default_convert(data):
    """Turn NumPy arrays and scalars (nested in tuples, lists and dicts) into tensors.

    The collation used with ``batch_size=None``: samples are passed on one by one.
    Tuples become lists, as in PyTorch.
    """
    if isinstance(data, np.ndarray):
        if data.dtype.kind in "USO":
            return data
        return _array_tensor(data, "default_convert")
    if isinstance(data, np.generic):
        return _array_tensor(np.asarray(data), "default_convert")
    if isinstance(data, (Tensor, str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(value) for key, value in data.items()}
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


# -- samplers ---------------------------------------------------------------------------------
class Sampler:
    """Base class of samplers: ``__iter__`` yields dataset indices (``__len__`` optional)."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class SequentialSampler(Sampler):
    """Indices 0, 1, ..., len(data_source) - 1 in order."""

    def __init__(self, data_source):
        self.data_source = data_source

    def _order(self) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


def _check_count(value, name: str, cls: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{cls}: {name} should be a positive integer value, but got "
                         f"{name}={value!r}")


class RandomSampler(Sampler):
    """Indices in random order: a new permutation every pass.

    Args:
        data_source: the dataset.
        replacement: draw with replacement (``num_samples`` draws) instead of permuting.
        num_samples: how many indices per pass (default ``len(data_source)``).
        generator: a ``backprop.Generator``; the global one (``backprop.manual_seed``)
            when None.

    Example::

        list(RandomSampler(range(4), generator=backprop.Generator(0)))
    """

    def __init__(self, data_source, replacement: bool = False, num_samples=None,
                 generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"RandomSampler: replacement should be a boolean value, but got "
                            f"replacement={replacement!r}")
        if num_samples is not None:
            _check_count(num_samples, "num_samples", "RandomSampler")
        _random.generator(generator)  # a bad generator fails now, not at the first epoch
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def _order(self) -> np.ndarray:
        n, k = len(self.data_source), self.num_samples
        rng = _random.generator(self.generator)
        if self.replacement:
            if n == 0:
                raise ValueError("RandomSampler: can't sample with replacement from an empty "
                                 "dataset")
            return rng.integers(0, n, size=k, dtype=np.int64)
        if k == n:
            return rng.permutation(n).astype(np.int64, copy=False)
        # more (or fewer) samples than the dataset: whole permutations, then part of one
        parts = [rng.permutation(n) for _ in range(k // n)] if n else []
        if n and k % n:
            parts.append(rng.permutation(n)[:k % n])
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def __iter__(self):
        return iter(self._order().tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in random order, a new permutation every pass."""

    def __init__(self, indices, generator=None):
        _random.generator(generator)
        self.indices = indices
        self._idx = np.asarray(indices, dtype=np.int64)
        self.generator = generator

    def _order(self) -> np.ndarray:
        return self._idx[_random.generator(self.generator).permutation(len(self._idx))]

    def __iter__(self):
        return iter(self._order().tolist())

    def __len__(self) -> int:
        return len(self._idx)


class WeightedRandomSampler(Sampler):
    """Indices 0 .. len(weights) - 1 drawn with probability proportional to ``weights``.

    The usual cure for an unbalanced dataset: give each sample the weight
    1 / (size of its class) and every class is drawn equally often.

    Args:
        weights: one non-negative weight per sample (a sequence, array or 1-D tensor;
            they need not sum to 1).
        num_samples: how many indices per pass.
        replacement: draw with replacement (default); without it, each index appears at
            most once and ``num_samples`` may not exceed the number of non-zero weights.
        generator: a ``backprop.Generator``; the global one when None.

    Example::

        weights = [0.1, 0.9]
        list(WeightedRandomSampler(weights, 5, generator=backprop.Generator(0)))  # mostly 1s
    """

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator=None):
        _check_count(num_samples, "num_samples", "WeightedRandomSampler")
        if not isinstance(replacement, bool):
            raise ValueError(f"WeightedRandomSampler: replacement should be a boolean value, "
                             f"but got replacement={replacement!r}")
        _random.generator(generator)
        data = weights._data if isinstance(weights, Tensor) else weights
        try:
            w = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"WeightedRandomSampler: weights must be a sequence of numbers, got "
                            f"{type(weights).__name__}") from None
        if w.ndim != 1:
            raise ShapeError(f"WeightedRandomSampler: weights should be a 1d sequence but given "
                             f"weights have shape {tuple(w.shape)}")
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, non-negative and "
                             "not all zero")
        if not replacement and num_samples > np.count_nonzero(w):
            raise ValueError(f"WeightedRandomSampler: cannot draw num_samples={num_samples} "
                             f"indices without replacement from {np.count_nonzero(w)} non-zero "
                             f"weights")
        self.weights = w
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = generator

    def _order(self) -> np.ndarray:
        rng = _random.generator(self.generator)
        p = self.weights / self.weights.sum()
        return rng.choice(len(p), size=self.num_samples, replace=self.replacement,
                          p=p).astype(np.int64, copy=False)

    def __iter__(self):
        return iter(self._order().tolist())

    def __len__(self) -> int:
        return self.num_samples


def get_worker_info():
    """Information about the current data-loading worker process: always None in
    backprop, as in PyTorch's main process, because batches are always made in the
    process that iterates the loader (``num_workers`` is accepted and ignored).

    Example::

        info = get_worker_info()     # None: split the work yourself only when not None
    """
    return None


class BatchSampler(Sampler):
    """Group the indices of ``sampler`` into lists of ``batch_size``.

    Example::

        list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False))
        # [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        _check_count(batch_size, "batch_size", "BatchSampler")
        if not isinstance(drop_last, bool):
            raise ValueError(f"BatchSampler: drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def _index_batches(self):
        """Batches as int64 arrays: sliced out of one array when the sampler has one."""
        order_of = getattr(self.sampler, "_order", None)
        if order_of is None:
            for batch in self._list_batches():
                yield np.asarray(batch, dtype=np.int64)
            return
        order, bs = order_of(), self.batch_size
        stop = len(order) - len(order) % bs if self.drop_last else len(order)
        for start in range(0, stop, bs):
            yield order[start:start + bs]

    def _list_batches(self):
        batch, bs = [], self.batch_size
        for index in self.sampler:
            batch.append(index)
            if len(batch) == bs:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __iter__(self):
        if getattr(self.sampler, "_order", None) is None:
            return self._list_batches()
        return (b.tolist() for b in self._index_batches())

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# -- the loader -------------------------------------------------------------------------------
class DataLoader:
    """Iterate over a dataset in mini-batches.

    Args:
        dataset: a map-style dataset (``__getitem__`` and ``__len__``: a ``Dataset``,
            ``TensorDataset``, even a list) or an ``IterableDataset``.
        batch_size: samples per batch; None turns batching off (samples come one by
            one, through ``default_convert``).
        shuffle: a new random order every epoch, drawn from ``generator``.
        sampler: the order of indices (a ``Sampler`` or any iterable of ints); excludes
            ``shuffle``.
        batch_sampler: yields whole lists of indices; excludes ``batch_size``,
            ``shuffle``, ``sampler`` and ``drop_last``.
        num_workers: accepted for PyTorch compatibility; batches are always made in
            this process (NumPy releases the GIL inside its own loops).
        collate_fn: merges a list of samples into a batch (default: ``default_collate``).
        pin_memory, timeout, worker_init_fn, prefetch_factor, persistent_workers:
            accepted and ignored, for PyTorch compatibility.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        generator: a ``backprop.Generator`` for shuffling; the global one
            (``backprop.manual_seed``) when None.

    Example::

        loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
        for xb, yb in loader:
            ...
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers: int = 0, collate_fn=None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None,
                 generator=None, *, prefetch_factor=None, persistent_workers: bool = False):
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) \
                or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be a non-negative "
                             f"integer, but got num_workers={num_workers!r}")
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, but got "
                             f"timeout={timeout!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"DataLoader: drop_last should be a boolean value, but got "
                             f"drop_last={drop_last!r}")
        if shuffle not in (None, True, False):
            raise ValueError(f"DataLoader: shuffle should be a boolean value, but got "
                             f"shuffle={shuffle!r}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got "
                            f"{type(collate_fn).__name__}")
        _random.generator(generator)  # a wrong generator type fails here
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"shuffle option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"sampler option, but got sampler={sampler!r}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler!r}")
        elif not hasattr(dataset, "__getitem__"):
            raise TypeError(f"DataLoader: dataset must be a map-style dataset (with "
                            f"__getitem__ and __len__) or an IterableDataset, got "
                            f"{type(dataset).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                                 "batch_size, shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("DataLoader: batch_size=None option disables auto-batching "
                                 "and is mutually exclusive with drop_last")
        else:
            _check_count(batch_size, "batch_size", "DataLoader")
            batch_size = int(batch_size)

        if sampler is None and not self._iterable:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers
        self.generator = generator
        self._auto_collation = (batch_sampler is not None
                                or (self._iterable and batch_size is not None))
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError when the stream has no length, as in PyTorch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def __iter__(self):
        if self._iterable:
            return self._iter_stream()
        if self.batch_sampler is None:
            return self._iter_samples()
        return self._iter_batches()

    def _fast_fetcher(self):
        """The dataset's vectorised batch fetch, when it gives what default_collate would."""
        if self.collate_fn is not default_collate:
            return None
        get = getattr(self.dataset, "_batch_fetcher", None)
        return get() if get is not None else None

    def _iter_batches(self):
        dataset, collate = self.dataset, self.collate_fn
        bs = self.batch_sampler
        fetch = self._fast_fetcher()
        if isinstance(bs, BatchSampler):
            if fetch is not None:
                for indices in bs._index_batches():
                    yield fetch(indices)
                return
            batches = (b.tolist() for b in bs._index_batches())
        else:
            batches = iter(bs)
        getitems = getattr(dataset, "__getitems__", None)
        for indices in batches:
            if fetch is not None:
                yield fetch(np.asarray(indices, dtype=np.int64))
            elif getitems is not None:
                yield collate(getitems(indices))
            else:
                yield collate([dataset[i] for i in indices])

    def _iter_samples(self):
        dataset, convert = self.dataset, self.collate_fn
        for index in self.sampler:
            yield convert(dataset[index])

    def _iter_stream(self):
        collate, bs = self.collate_fn, self.batch_size
        if bs is None:
            for sample in self.dataset:
                yield collate(sample)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == bs:
                yield collate(batch)
                batch = []
        if batch and not self.drop_last:
            yield collate(batch)

    def __repr__(self) -> str:
        return (f"DataLoader(dataset={type(self.dataset).__name__} of "
                f"{len(self.dataset) if hasattr(self.dataset, '__len__') else '?'}, "
                f"batch_size={self.batch_size}, drop_last={self.drop_last})")
