"""Seeded randomness: one global generator behind every random function.

A process starts from a seed drawn from the OS (``initial_seed()`` tells which), as in
PyTorch.

``backprop.manual_seed(0)`` makes every later ``randn``, ``dropout``, weight
initialisation and data shuffle repeat exactly. Functions that take
``generator=`` accept a ``backprop.Generator`` for a private stream.
"""
from __future__ import annotations

from typing import cast

import numpy as np

# PyTorch's seed for a new Generator() nobody seeded (torch.Generator().initial_seed()).
_DEFAULT_SEED = 67280421310721


def _check_seed(seed) -> int:
    """An int seed as PyTorch takes it; negatives wrap to 64 bits as in PyTorch."""
    if hasattr(seed, "item") and not isinstance(seed, (int, np.integer)):
        seed = seed.item()  # a one-element tensor
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not -2 ** 63 <= seed < 2 ** 64:
        raise ValueError(f"manual_seed: seed must be within [-2**63, 2**64), got {seed}")
    return seed % 2 ** 64


class Generator:
    """A random stream (wraps ``numpy.random.Generator``); ``manual_seed`` resets it.

    Args:
        seed: an int to start from (``Generator(0)``), or, as in PyTorch, a device
            (``Generator(device="cpu")``), in which case it starts from PyTorch's fixed
            default seed until ``manual_seed`` is called.

    Example::

        g = backprop.Generator().manual_seed(42)
        backprop.randn(2, generator=g)
    """

    def __init__(self, seed=None, *, device=None):
        if seed is not None and not isinstance(seed, (int, np.integer)) and device is None:
            seed, device = None, seed  # Generator("cpu"), PyTorch's positional device
        if device is not None:
            from backprop.tensor import _check_device

            _check_device(device, "Generator")
        self.manual_seed(_DEFAULT_SEED if seed is None else seed)

    def manual_seed(self, seed: int) -> Generator:
        """Restart this stream from ``seed``. Returns self."""
        self._seed = _check_seed(seed)
        self.np = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Restart this stream from a seed drawn from the OS, and return that seed."""
        s = _os_seed()
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        """The seed this stream started from."""
        return self._seed

    @property
    def device(self):
        from backprop.tensor import Device

        return Device("cpu")

    def get_state(self) -> dict:
        return dict(self.np.bit_generator.state)  # (a fresh dict either way)

    def set_state(self, state: dict) -> Generator:
        self.np.bit_generator.state = state
        return self


def _os_seed() -> int:
    """A fresh 63-bit seed from the OS's entropy (what an unseeded process starts from)."""
    entropy = cast(int, np.random.SeedSequence().entropy)  # (drawn from the OS: an int)
    return int(entropy % (2 ** 63))


# Like PyTorch, a process that never calls manual_seed starts from a seed drawn from the
# OS (initial_seed() tells which); manual_seed(s) makes a run repeat.
default_generator = Generator(_os_seed())


def manual_seed(seed: int) -> Generator:
    """Seed the global generator used by every random function. Returns it."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the global generator from the OS and return the seed used."""
    return default_generator.seed()


def initial_seed() -> int:
    """The seed the global generator started from (drawn from the OS unless ``manual_seed``)."""
    return default_generator.initial_seed()


def get_rng_state() -> dict:
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    default_generator.set_state(state)


def generator(g: Generator | None = None) -> np.random.Generator:
    """The NumPy generator to draw from: ``g``'s, or the global one."""
    if g is None:
        return default_generator.np
    if isinstance(g, Generator):
        return g.np
    raise TypeError(f"generator must be a backprop.Generator, got {type(g).__name__}")
