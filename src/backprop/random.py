"""Seeded randomness: one global generator behind every random function.

``backprop.manual_seed(0)`` makes every later ``randn``, ``dropout``, weight
initialisation and data shuffle repeat exactly. Functions that take
``generator=`` accept a ``backprop.Generator`` for a private stream.
"""
from __future__ import annotations

import numpy as np


class Generator:
    """A random stream (wraps ``numpy.random.Generator``); ``manual_seed`` resets it."""

    def __init__(self, seed: int | None = None):
        self._seed = seed
        self.np = np.random.default_rng(seed)

    def manual_seed(self, seed: int) -> "Generator":
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
        self._seed = int(seed)
        self.np = np.random.default_rng(int(seed))
        return self

    def initial_seed(self):
        return self._seed

    def get_state(self) -> dict:
        return self.np.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.np.bit_generator.state = state


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed the global generator used by every random function. Returns it."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the global generator from the OS and return the seed used."""
    s = int(np.random.SeedSequence().entropy % (2 ** 63))
    default_generator.manual_seed(s)
    return s


def initial_seed():
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
