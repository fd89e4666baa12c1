"""What the character-level model programs share: the training text, its batches, and
a pair of models (PyTorch's and backprop's) that start from the same weights."""
from __future__ import annotations

import numpy as np

import backprop

TEXT = (
    "the quick brown fox jumps over the lazy dog. a stitch in time saves nine. "
    "all that glitters is not gold. the early bird catches the worm. "
    "look before you leap. actions speak louder than words. practice makes perfect. "
    "the pen is mightier than the sword. when in rome do as the romans do. "
    "fortune favours the bold. knowledge is power. time is money. "
)


def char_batches(length: int, batch: int, steps: int) -> tuple:
    """(chars, batches): the text's alphabet, and ``steps`` (inputs, next-char targets)
    batches of ``batch`` windows of ``length`` characters, drawn from a fixed seed."""
    chars = sorted(set(TEXT))
    data = np.array([chars.index(c) for c in TEXT], dtype=np.int64)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(steps):
        starts = rng.integers(0, len(data) - length - 1, batch)
        batches.append((np.stack([data[s:s + length] for s in starts]),
                        np.stack([data[s + 1:s + length + 1] for s in starts])))
    return chars, batches


def twin_models(torch, build, vocab_size: int) -> tuple:
    """(theirs, ours): ``build(library, vocab_size)`` on PyTorch (seeded) and on backprop,
    in float64, ours loaded with PyTorch's initial weights under the same names."""
    torch.manual_seed(0)
    theirs = build(torch, vocab_size).double()
    ours = build(backprop, vocab_size).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert list(ours.state_dict()) == list(theirs.state_dict())
    return theirs, ours
