"""Shared fixtures: seeded randomness, and the PyTorch oracle when it is installed."""
import numpy as np
import pytest

import backprop

try:  # the oracle is optional: tests that need it skip cleanly without it
    import torch
except ImportError:  # pragma: no cover
    torch = None


@pytest.fixture(autouse=True)
def _seed():
    backprop.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def oracle():
    """The torch module, or skip the test when it is not installed."""
    if torch is None:
        pytest.skip("PyTorch (the oracle) is not installed")
    torch.set_num_threads(1)
    return torch


@pytest.fixture
def fake_tqdm(monkeypatch):
    """Installs a recording stand-in for ``tqdm.auto.tqdm``; returns the bars it made."""
    import sys
    import types

    made = []

    class FakeTqdm:
        def __init__(self, total=None, initial=0, file=None, **kwargs):
            self.total, self.n, self.kwargs = total, initial, kwargs
            self.written, self.postfix, self.description, self.closed = [], None, None, False
            made.append(self)

        @staticmethod
        def write(text, file=None):
            made[-1].written.append(text)

        def reset(self, total=None):
            self.total, self.n = total, 0

        def set_description(self, text, refresh=True):
            self.description = text

        def update(self, n):
            self.n += n

        def set_postfix_str(self, text, refresh=True):
            self.postfix = text

        def close(self):
            self.closed = True

    fake = types.ModuleType("tqdm.auto")
    fake.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    return made
