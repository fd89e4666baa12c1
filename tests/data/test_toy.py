"""Toy data sets: shapes, dtypes, balance, determinism, noise, the registry."""
from __future__ import annotations

import numpy as np
import pytest

import backprop
from backprop.data import (
    TOY_DATASETS, TOY_TASKS, DataLoader, TensorDataset, blobs, circles, load_toy, moons, spiral,
    xor,
)

CLASSIFICATION = [name for name, task in TOY_TASKS.items() if task == "classification"]
REGRESSION = [name for name, task in TOY_TASKS.items() if task == "regression"]


def test_registry_is_complete():
    assert set(TOY_DATASETS) == set(TOY_TASKS)
    assert {"spiral", "moons", "circles", "xor", "blobs"} <= set(CLASSIFICATION)
    assert len(REGRESSION) >= 2


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_shapes_dtypes_balance(name):
    X, y = TOY_DATASETS[name](n_samples=120, noise=0.1, seed=0)
    assert X.shape == (120, 2) and X.dtype == backprop.float32
    assert y.shape == (120,) and y.dtype == backprop.int64
    counts = np.bincount(y.numpy())
    assert counts.max() - counts.min() <= 1 and len(counts) >= 2
    assert np.isfinite(X.numpy()).all()
    assert not np.all(np.diff(y.numpy()) >= 0)  # rows are shuffled, not grouped by class


@pytest.mark.parametrize("name", REGRESSION)
def test_regression_shapes_dtypes(name):
    X, y = TOY_DATASETS[name](n_samples=50, noise=0.1, seed=0)
    assert X.dtype == backprop.float32 and X.shape[0] == 50 and X.shape[1] in (1, 2)
    assert y.dtype == backprop.float32 and y.shape == (50, 1)
    assert np.isfinite(y.numpy()).all()


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_deterministic_per_seed_regardless_of_global_state(name):
    fn = TOY_DATASETS[name]
    backprop.manual_seed(0)
    X1, y1 = fn(n_samples=64, noise=0.1, seed=3)
    backprop.manual_seed(12345)
    np.random.seed(7)
    X2, y2 = fn(n_samples=64, noise=0.1, seed=3)
    np.testing.assert_array_equal(X1.numpy(), X2.numpy())
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())
    X3, _ = fn(n_samples=64, noise=0.1, seed=4)
    assert not np.array_equal(X1.numpy(), X3.numpy())


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_noise_changes_the_data(name):
    fn = TOY_DATASETS[name]
    X0, y0 = fn(n_samples=64, noise=0.0, seed=0)
    X1, y1 = fn(n_samples=64, noise=0.3, seed=0)
    changed = not np.allclose(X0.numpy(), X1.numpy()) or not np.allclose(y0.numpy(), y1.numpy())
    assert changed


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_seed_none_follows_global_generator(name):
    fn = TOY_DATASETS[name]
    backprop.manual_seed(5)
    X1, _ = fn(n_samples=32, seed=None)
    backprop.manual_seed(5)
    X2, _ = fn(n_samples=32, seed=None)
    np.testing.assert_array_equal(X1.numpy(), X2.numpy())


def test_noise_free_geometry():
    X, y = circles(200, noise=0.0, factor=0.3)
    r = np.linalg.norm(X.numpy(), axis=1)
    np.testing.assert_allclose(r[y.numpy() == 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(r[y.numpy() == 1], 0.3, rtol=1e-6)
    X, y = moons(100, noise=0.0)
    upper = X.numpy()[y.numpy() == 0]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0, rtol=1e-6)
    X, y = xor(100, noise=0.0)
    Xn = X.numpy()
    np.testing.assert_array_equal(y.numpy(), (np.sign(Xn[:, 0]) != np.sign(Xn[:, 1])))
    X, _ = spiral(300, noise=0.0)
    assert np.linalg.norm(X.numpy(), axis=1).max() <= 1.0 + 1e-6


def test_spiral_classes_and_blobs_centres():
    X, y = spiral(250, n_classes=5)
    assert np.bincount(y.numpy()).tolist() == [50] * 5
    centres = np.array([[0.0, 0.0], [5.0, 5.0]])
    X, y = blobs(400, centers=centres, cluster_std=0.1)
    for k in range(2):
        np.testing.assert_allclose(X.numpy()[y.numpy() == k].mean(axis=0), centres[k], atol=0.05)
    Xa, _ = blobs(50, cluster_std=0.5, seed=1)
    Xb, _ = blobs(50, noise=0.5, seed=1)  # noise is blobs' name for cluster_std too
    np.testing.assert_array_equal(Xa.numpy(), Xb.numpy())


def test_argument_errors():
    with pytest.raises(ValueError, match="n_samples"):
        spiral(0)
    with pytest.raises(ValueError, match="n_classes"):
        spiral(10, n_classes=1)
    with pytest.raises(ValueError, match="noise must be a non-negative number, got -0.1"):
        moons(10, noise=-0.1)
    with pytest.raises(ValueError, match="factor"):
        circles(10, factor=1.5)
    with pytest.raises(ValueError, match="cluster_std"):
        blobs(10, centers=2, cluster_std=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"shape \(k, 2\)"):
        blobs(10, centers=np.zeros((2, 3)))
    with pytest.raises(TypeError, match="seed"):
        xor(10, seed="zero")
    with pytest.raises(ValueError, match="unknown toy dataset 'nope'; choose from blobs"):
        load_toy("nope")


def test_load_toy_and_loader_roundtrip():
    X, y = load_toy("moons", n_samples=40, noise=0.2, seed=1)
    Xm, ym = moons(40, noise=0.2, seed=1)
    np.testing.assert_array_equal(X.numpy(), Xm.numpy())
    loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True)
    assert [len(yb) for _, yb in loader] == [16, 16, 8]
