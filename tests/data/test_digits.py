"""The 8x8 digits through scikit-learn, and the error when the extra is missing."""
from __future__ import annotations

import builtins

import numpy as np
import pytest

import backprop
from backprop.data import DataLoader, TensorDataset, digits, load_digits


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError) as info:
        load_digits()
    assert str(info.value) == ("the digits dataset needs scikit-learn: "
                               "pip install 'backprop[datasets]'")


def test_bad_test_fraction():
    with pytest.raises(ValueError, match="test_fraction must be in"):
        digits.load_digits(test_fraction=1.2)


@pytest.fixture(scope="module")
def sklearn_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    return datasets.load_digits()


def test_splits_shapes_and_range(sklearn_digits):
    train, test = load_digits()
    assert isinstance(train, TensorDataset) and isinstance(test, TensorDataset)
    assert len(train) + len(test) == 1797 and len(test) == 359  # round(0.2 * 1797)
    X, y = train.tensors
    assert X.shape == (len(train), 64) and X.dtype == backprop.float32
    assert y.dtype == backprop.int64 and set(y.tolist()) == set(range(10))
    assert 0.0 <= X.numpy().min() and X.numpy().max() == 1.0


def test_splits_are_the_sklearn_images(sklearn_digits):
    train, test = load_digits(normalize=False, test_fraction=0.25, seed=1)
    X = np.concatenate([train.tensors[0].numpy(), test.tensors[0].numpy()])
    y = np.concatenate([train.tensors[1].numpy(), test.tensors[1].numpy()])
    order = np.lexsort(np.column_stack([X, y]).T)
    ref = np.column_stack([sklearn_digits.data, sklearn_digits.target])
    ref_order = np.lexsort(ref.T)
    np.testing.assert_array_equal(np.column_stack([X, y])[order], ref[ref_order])
    assert X.max() == 16.0


def test_seeded_split_and_image_layout(sklearn_digits):
    a, _ = load_digits(seed=3)
    backprop.manual_seed(77)
    b, _ = load_digits(seed=3)
    c, _ = load_digits(seed=4)
    np.testing.assert_array_equal(a.tensors[1].numpy(), b.tensors[1].numpy())
    assert not np.array_equal(a.tensors[1].numpy(), c.tensors[1].numpy())
    images, _ = load_digits(flatten=False)
    assert images.tensors[0].shape[1:] == (1, 8, 8)
    xb, yb = next(iter(DataLoader(images, batch_size=32, shuffle=True)))
    assert xb.shape == (32, 1, 8, 8) and yb.shape == (32,)
