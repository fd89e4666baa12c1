"""The 8x8 handwritten digits (1,797 images, 10 classes), through scikit-learn.

scikit-learn ships these images inside its package, so nothing is downloaded. It is
an optional dependency: ``pip install 'backprop[datasets]'``.
"""
from __future__ import annotations

import numbers

import numpy as np

from backprop.data.dataset import TensorDataset, train_test_split
from backprop.tensor import _make

__all__ = ["load_digits"]

_MISSING = "the digits dataset needs scikit-learn: pip install 'backprop[datasets]'"


def _sklearn_load_digits():
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:
        raise ImportError(_MISSING) from e
    return sk_load_digits


def load_digits(normalize: bool = True, test_fraction: float = 0.2, seed=0,
                flatten: bool = True) -> tuple:
    """The 8x8 digits as train and test ``TensorDataset`` s of (image, label).

    Args:
        normalize: scale pixel values from 0..16 to [0, 1] (else keep 0..16 as floats).
        test_fraction: the share of images held out for testing, in [0, 1).
        seed: the seed of the shuffle before the split (an int gives the same split
            whatever the global random state).
        flatten: images as 64 features (else as (1, 8, 8), for convolutions).

    Returns:
        ``(train, test)``: TensorDatasets of float32 images (n, 64) or (n, 1, 8, 8) and
        int64 labels (n,).

    Raises:
        ImportError: when scikit-learn is missing, naming the extra to install.

    Example::

        train, test = load_digits()
        loader = DataLoader(train, batch_size=64, shuffle=True)
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real) \
            or not 0 <= test_fraction < 1:
        raise ValueError(f"load_digits: test_fraction must be in [0, 1), got {test_fraction!r}")
    bunch = _sklearn_load_digits()()
    images = np.asarray(bunch.data, dtype=np.float32)     # (1797, 64), values 0..16
    if normalize:
        images /= 16.0
    if not flatten:
        images = images.reshape(-1, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train, test = train_test_split(_make(images), _make(labels), test_fraction=test_fraction,
                                   seed=seed)
    return TensorDataset(*train), TensorDataset(*test)
