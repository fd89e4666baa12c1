"""A stream of mini-batch indices whose batch size may change from one draw to the next.

``DataLoader`` fixes its batch size for an epoch; an interactive run (the lab's live
batch-size slider, or an exported lab script replaying it) needs each draw to take any
number of samples. :class:`BatchStream` gives the same guarantees as a shuffling
``DataLoader``: every epoch is a fresh permutation of the samples, drawn from a seeded
generator, so the same seed gives the same batches.
"""
from __future__ import annotations

import numbers

import numpy as np

from backprop import random as _random

__all__ = ["BatchStream"]


class BatchStream:
    """Draws batches of sample indices from a fresh permutation each epoch.

    A draw that runs past the end of an epoch continues into the next one (a new
    permutation), so no sample is seen twice in an epoch and none is skipped.

    Args:
        n: the number of samples (indices ``0 .. n - 1``).
        generator: a ``backprop.Generator`` for the permutations; the global one when None.

    Attributes:
        epoch: completed passes over the samples.
        seen: samples drawn so far.

    Example::

        stream = BatchStream(10, generator=backprop.Generator(0))
        stream.next(4)        # array([...]): 4 indices of the first permutation
        stream.next(8)        # its 6 others, then 2 of the next one; stream.epoch == 1
    """

    def __init__(self, n: int, generator=None):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"BatchStream: n must be a positive integer, got {n!r}")
        self.n = int(n)
        self._rng = _random.generator(generator)
        self._order = self._rng.permutation(self.n)
        self._pos = 0
        self.epoch: int = 0
        self.seen: int = 0

    def next(self, batch_size: int) -> np.ndarray:
        """The indices of the next ``batch_size`` samples (at most ``n``)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"BatchStream.next: batch_size must be a positive integer, got "
                             f"{batch_size!r}")
        need = min(int(batch_size), self.n)
        parts = []
        while need:
            take = min(need, self.n - self._pos)
            parts.append(self._order[self._pos:self._pos + take])
            self._pos += take
            need -= take
            if self._pos == self.n:
                self._order = self._rng.permutation(self.n)
                self._pos = 0
                self.epoch += 1
        batch = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self.seen += len(batch)
        return batch
