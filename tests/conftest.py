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

