"""The training data of the digits benchmarks (import it after ``_timing.set_threads``)."""
from __future__ import annotations

import numpy as np


def digits_data():
    """(X float32 (n, 64) in [0, 1], y int64 (n,), source): the 80% training split of the
    8x8 digits, or random data of that shape when scikit-learn is not installed."""
    try:
        from backprop.data import load_digits
        train, _ = load_digits(test_fraction=0.2, seed=0)
        X, y = train.tensors
        return X.numpy(), y.numpy(), "8x8 digits (scikit-learn)"
    except ImportError:
        rng = np.random.default_rng(0)
        X = rng.random((1437, 64), dtype=np.float32)
        y = rng.integers(0, 10, 1437).astype(np.int64)
        return X, y, "random stand-in for the digits (scikit-learn is not installed)"
