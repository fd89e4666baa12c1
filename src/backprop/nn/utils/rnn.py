"""Batches of variable-length sequences, as ``torch.nn.utils.rnn``.

A ``PackedSequence`` stores a batch of sequences without padding: step by step, the
rows of the sequences still running at that step, longest sequences first. The RNN
layers (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``) accept one and return one, and then do
no work on padding. Packing, unpacking and padding are ordinary differentiable ops
(a gather of rows), so gradients flow back to the padded input.

Example::

    from backprop.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    x = backprop.randn(5, 3, 8)                      # (T, B, features), padded
    packed = pack_padded_sequence(x, [5, 2, 3], enforce_sorted=False)
    out, h = nn.GRU(8, 16)(packed)
    padded, lengths = pad_packed_sequence(out)        # (5, 3, 16), tensor([5, 2, 3])
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from backprop import ops as _ops
from backprop.creation import full as _full
from backprop.errors import ShapeError
from backprop.ops._util import require_tensor
from backprop.tensor import Tensor, _make

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "pack_sequence", "unpad_sequence", "unpack_sequence", "invert_permutation"]


class PackedSequence(NamedTuple):
    """A packed batch of sequences: ``(data, batch_sizes, sorted_indices, unsorted_indices)``.

    data: (sum of lengths, *) rows, step by step; batch_sizes: int64 tensor, the number
    of sequences running at each step; sorted_indices: the batch order by decreasing
    length (None when the batch was already sorted); unsorted_indices: its inverse.
    Build one with :func:`pack_padded_sequence` or :func:`pack_sequence`.
    """

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None

    @property
    def is_cuda(self) -> bool:
        return False

    def is_pinned(self) -> bool:
        return False

    def to(self, *args, **kwargs) -> PackedSequence:
        """The same packed batch with ``data.to(*args, **kwargs)`` (indices unchanged)."""
        data = self.data.to(*args, **kwargs)
        return self if data is self.data else self._replace(data=data)

    def double(self) -> PackedSequence:
        return self._replace(data=self.data.double())

    def float(self) -> PackedSequence:
        return self._replace(data=self.data.float())

    def cpu(self) -> PackedSequence:
        return self


def invert_permutation(permutation):
    """The inverse of an index permutation (None stays None)."""
    if permutation is None:
        return None
    p = _index_array(permutation)
    inverse = np.empty_like(p)
    inverse[p] = np.arange(p.size, dtype=p.dtype)
    return _make(inverse)


def _index_array(x) -> np.ndarray:
    return np.asarray(x._data if isinstance(x, Tensor) else x, dtype=np.int64).reshape(-1)


def _lengths(lengths, batch: int, fn: str) -> np.ndarray:
    arr = _index_array(lengths)
    if arr.size != batch:
        raise ShapeError(f"{fn}: expected {batch} lengths (one per sequence), got {arr.size}")
    return arr


def _packed_rows(lengths: np.ndarray, order: np.ndarray):
    """(batch_sizes, the sequence (original index) and step of each packed row)."""
    sorted_lengths = lengths[order]
    steps = int(sorted_lengths[0]) if sorted_lengths.size else 0
    batch_sizes = (sorted_lengths[None, :] > np.arange(steps)[:, None]).sum(axis=1)
    seq = np.concatenate([order[:b] for b in batch_sizes]) if steps else np.zeros(0, np.int64)
    step = np.repeat(np.arange(steps), batch_sizes)
    return batch_sizes.astype(np.int64), seq, step


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with ``batch_first``) of sequences.

    Args:
        input: the padded batch.
        lengths: each sequence's length (a list or an int64 tensor), all > 0.
        batch_first: the batch is dim 0 rather than dim 1.
        enforce_sorted: require lengths in decreasing order; with False the batch is
            sorted here and ``sorted_indices`` records the order.

    Example::

        pack_padded_sequence(backprop.randn(4, 2, 3), [4, 2]).batch_sizes   # tensor([2, 2, 1, 1])
    """
    fn = "pack_padded_sequence"
    input = require_tensor(input, fn)
    if input.ndim < 2:
        raise ShapeError(f"{fn}: expected input of at least 2 dimensions (T, B, *), got "
                         f"shape {tuple(input.shape)}")
    t_dim, b_dim = (1, 0) if batch_first else (0, 1)
    steps, batch = input.shape[t_dim], input.shape[b_dim]
    lengths = _lengths(lengths, batch, fn)
    if lengths.size and lengths.min() <= 0:
        raise RuntimeError(f"{fn}: Length of all samples has to be greater than 0, but found "
                           f"an element in 'lengths' that is <= 0: {lengths.tolist()}")
    if lengths.size and lengths.max() > steps:
        raise ShapeError(f"{fn}: a length ({int(lengths.max())}) exceeds the input's "
                         f"{steps} steps (input shape {tuple(input.shape)})")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError(f"{fn}: `lengths` array must be sorted in decreasing order when "
                               f"`enforce_sorted` is True (got {lengths.tolist()}). You can pass "
                               f"`enforce_sorted=False` to pack_padded_sequence and/or "
                               f"pack_sequence to sidestep this requirement.")
        order, sorted_indices, unsorted_indices = np.arange(batch), None, None
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = _make(order.astype(np.int64))
        unsorted_indices = invert_permutation(order)
    batch_sizes, seq, step = _packed_rows(lengths, order)
    rows = (seq * steps + step) if batch_first else (step * batch + seq)
    flat = input.reshape((steps * batch,) + tuple(input.shape[2:]))
    data = flat[rows]
    return PackedSequence(data, _make(batch_sizes), sorted_indices, unsorted_indices)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Undo :func:`pack_padded_sequence`: ``(padded batch, lengths)``.

    Args:
        sequence: a ``PackedSequence``.
        batch_first: return (B, T, *) rather than (T, B, *).
        padding_value: the value of the padding.
        total_length: pad to this many steps (at least the longest length).

    Returns the padded batch, in the original batch order, and the lengths (int64).

    Example::

        packed = pack_sequence([backprop.ones(3), backprop.ones(1)])
        padded, lengths = pad_packed_sequence(packed)   # (3, 2), tensor([3, 1])
    """
    fn = "pad_packed_sequence"
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{fn}: expected a PackedSequence, got {type(sequence).__name__}")
    data, batch_sizes = sequence.data, _index_array(sequence.batch_sizes)
    steps, batch = batch_sizes.size, int(batch_sizes[0]) if batch_sizes.size else 0
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"{fn}: Expected total_length to be at least the length of the "
                             f"longest sequence in input, but got total_length={total_length} "
                             f"and max sequence length being {steps}")
        steps_out = int(total_length)
    else:
        steps_out = steps
    sorted_lengths = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1)
    unsorted = sequence.unsorted_indices
    # the packed row of (step t, sorted position s), or N (a padding row) past the end
    n = data.shape[0]
    starts = np.concatenate([[0], np.cumsum(batch_sizes)[:-1]]).astype(np.int64)
    t = np.arange(steps_out)[:, None]
    s = np.arange(batch)[None, :]
    tc = np.minimum(t, max(steps - 1, 0))
    src = np.where(t < sorted_lengths[None, :], starts[tc] + s if steps else 0, n)
    lengths = sorted_lengths
    if unsorted is not None:
        perm = _index_array(unsorted)  # original b is sorted position perm[b]
        src, lengths = src[:, perm], sorted_lengths[perm]
    if batch_first:
        src = src.T
    pad = _full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype)
    padded = _ops.cat([data, pad])[src.reshape(-1)]
    padded = padded.reshape(src.shape + tuple(data.shape[1:]))
    return padded, _make(lengths.astype(np.int64))


def _sequence_list(sequences, fn: str) -> list:
    if isinstance(sequences, Tensor):
        sequences = list(sequences.unbind(0))
    seqs = list(sequences)
    if not seqs:
        raise ValueError(f"{fn}: received an empty list of sequences")
    for i, s in enumerate(seqs):
        if not isinstance(s, Tensor):
            raise TypeError(f"{fn}: expected a list of Tensors, item {i} is a "
                            f"{type(s).__name__}")
        if s.ndim == 0 or tuple(s.shape[1:]) != tuple(seqs[0].shape[1:]):
            raise ShapeError(f"{fn}: every sequence must have shape (L, *) with the same "
                             f"trailing dims; item 0 has {tuple(seqs[0].shape)}, item {i} "
                             f"has {tuple(s.shape)}")
    return seqs


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack sequences of shape (L_i, *) into one padded batch (T, B, *), T = max L_i.

    Args:
        sequences: a list of tensors.
        batch_first: return (B, T, *).
        padding_value: the value of the padding.
        padding_side: ``'right'`` (after each sequence) or ``'left'``.

    Example::

        pad_sequence([backprop.ones(3), backprop.ones(1)]).shape   # (3, 2)
    """
    fn = "pad_sequence"
    if padding_side not in ("left", "right"):
        raise ValueError(f"{fn}: padding_side must be 'left' or 'right', got {padding_side!r}")
    seqs = _sequence_list(sequences, fn)
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    steps, batch = int(lengths.max()), len(seqs)
    trailing = tuple(seqs[0].shape[1:])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n = int(lengths.sum())
    t = np.arange(steps)[:, None]
    if padding_side == "right":
        pos = t + np.zeros((1, batch), np.int64)
    else:
        pos = t - (steps - lengths)[None, :]
    src = np.where((pos >= 0) & (pos < lengths[None, :]), starts[None, :] + pos, n)
    if batch_first:
        src = src.T
    dtype = seqs[0].dtype
    pad = _full((1,) + trailing, padding_value, dtype=dtype)
    out = _ops.cat(seqs + [pad])[src.reshape(-1)]
    return out.reshape(src.shape + trailing)


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of sequences (L_i, *): :func:`pad_sequence` then
    :func:`pack_padded_sequence`.

    Example::

        pack_sequence([backprop.ones(3), backprop.ones(2)]).batch_sizes   # tensor([2, 2, 1])
    """
    seqs = _sequence_list(sequences, "pack_sequence")
    lengths = [s.shape[0] for s in seqs]
    return pack_padded_sequence(pad_sequence(seqs), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """Split a padded batch back into a list of its sequences (L_i, *).

    Example::

        unpad_sequence(backprop.ones(3, 2), [3, 1])   # [ones(3), ones(1)]
    """
    fn = "unpad_sequence"
    x = padded_sequences
    if not batch_first:
        x = x.transpose(0, 1)
    lengths = _lengths(lengths, x.shape[0], fn)
    return [x[i, :int(n)] for i, n in enumerate(lengths)]


def unpack_sequence(packed_sequences):
    """Split a ``PackedSequence`` into a list of its sequences, in the original order.

    Example::

        unpack_sequence(pack_sequence([backprop.ones(3), backprop.ones(1)]))   # [ones(3), ones(1)]
    """
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
