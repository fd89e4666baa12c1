"""Small 2-D data sets for watching a network learn.

Each function returns a pair of tensors ``(X, y)``:

- classification sets (``spiral``, ``moons``, ``circles``, ``xor``, ``blobs``):
  ``X`` float32 of shape (n, 2) and ``y`` int64 class indices of shape (n,), rows
  shuffled, classes as balanced as ``n_samples`` allows;
- regression sets (``sine``, ``plane``, ``bumps``): ``X`` float32 of shape (n, 1) or
  (n, 2) and ``y`` float32 of shape (n, 1), ready for ``nn.MSELoss`` against a
  model with one output.

Every function takes ``n_samples``, ``noise`` and ``seed``: an int seed gives the
same data whatever the global random state, a ``backprop.Generator`` draws from
it, and None draws from the global generator (``backprop.manual_seed``). Wrap the
result for a loader with ``TensorDataset(*spiral())``; split it with
``train_test_split``.

Example::

    X, y = spiral(n_samples=300, n_classes=3, noise=0.2, seed=0)
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
"""
from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np

from backprop._checks import is_real
from backprop.data.dataset import _numpy_rng
from backprop.tensor import Tensor, _make

__all__ = [
    "TOY_DATASETS", "TOY_TASKS", "blobs", "bumps", "circles", "load_toy", "moons", "plane",
    "sine", "spiral", "xor",
]


# -- argument checks and output ---------------------------------------------------------------
def _check_n(n_samples, fn: str, minimum: int = 1) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
            or n_samples < minimum:
        raise ValueError(f"{fn}: n_samples must be an int >= {minimum}, got {n_samples!r}")
    return int(n_samples)


def _check_noise(noise, fn: str, name: str = "noise") -> float:
    if isinstance(noise, bool) or not is_real(noise) or not noise >= 0:
        raise ValueError(f"{fn}: {name} must be a non-negative number, got {noise!r}")
    return float(noise)


def _classification(X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple:
    """Shuffle the rows (the generators build them class by class) and wrap them."""
    order = rng.permutation(len(y))
    return (_make(np.ascontiguousarray(X[order], dtype=np.float32)),
            _make(y[order].astype(np.int64)))


def _regression(X: np.ndarray, y: np.ndarray) -> tuple:
    return (_make(np.ascontiguousarray(X, dtype=np.float32)),
            _make(np.ascontiguousarray(y, dtype=np.float32).reshape(-1, 1)))


def _class_sizes(n: int, k: int) -> np.ndarray:
    """n split into k counts differing by at most one (the first classes get the extra)."""
    return n // k + (np.arange(k) < n % k)


# -- classification ---------------------------------------------------------------------------
def spiral(n_samples: int = 300, n_classes: int = 3, noise: float = 0.2, seed=0) -> tuple:
    """Interleaved spiral arms, one per class: the classic test a linear model fails.

    Arm ``k`` starts at the origin and winds outwards through 4 radians, the arms
    evenly spaced in angle; ``noise`` is the standard deviation of a random jitter of
    each point's angle (radians), so the points stay within the unit disc.

    Args:
        n_samples: points in total, split evenly between the classes.
        n_classes: number of arms (classes), at least 2.
        noise: angular jitter (radians).
        seed: int, ``backprop.Generator`` or None (see the module docstring).

    Example::

        X, y = spiral(300)        # X: (300, 2) float32, y: (300,) int64 in {0, 1, 2}
    """
    n = _check_n(n_samples, "spiral")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) \
            or n_classes < 2:
        raise ValueError(f"spiral: n_classes must be an int >= 2, got {n_classes!r}")
    noise = _check_noise(noise, "spiral")
    rng = _numpy_rng(seed)
    sizes = _class_sizes(n, int(n_classes))
    y = np.repeat(np.arange(n_classes), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    position = np.arange(n) - starts[y]           # index of each point along its arm
    radius = position / np.maximum(sizes[y] - 1, 1)
    angle = 2 * np.pi * y / n_classes + 4.0 * radius + rng.normal(0.0, noise, n)
    X = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    return _classification(X, y, rng)


def moons(n_samples: int = 200, noise: float = 0.1, seed=0) -> tuple:
    """Two interleaving half circles (class 0 the upper moon, class 1 the lower).

    Args:
        n_samples: points in total (the upper moon gets ``n_samples // 2``).
        noise: standard deviation of Gaussian noise added to every coordinate.
        seed: int, ``backprop.Generator`` or None.

    Example::

        X, y = moons(200, noise=0.1)
    """
    n = _check_n(n_samples, "moons", minimum=2)
    noise = _check_noise(noise, "moons")
    rng = _numpy_rng(seed)
    n_upper = n // 2
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, n - n_upper)
    upper = np.stack([np.cos(t_upper), np.sin(t_upper)], axis=1)
    lower = np.stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)], axis=1)
    X = np.concatenate([upper, lower]) + rng.normal(0.0, noise, (n, 2))
    y = np.repeat([0, 1], [n_upper, n - n_upper])
    return _classification(X, y, rng)


def circles(n_samples: int = 200, noise: float = 0.05, factor: float = 0.5, seed=0) -> tuple:
    """A small circle (class 1) inside a large one (class 0, radius 1).

    Args:
        n_samples: points in total (the outer circle gets ``n_samples // 2``).
        noise: standard deviation of Gaussian noise added to every coordinate.
        factor: radius of the inner circle, in (0, 1).
        seed: int, ``backprop.Generator`` or None.

    Example::

        X, y = circles(200, factor=0.5)
    """
    n = _check_n(n_samples, "circles", minimum=2)
    noise = _check_noise(noise, "circles")
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 0 < factor < 1:
        raise ValueError(f"circles: factor must be between 0 and 1 (exclusive), got {factor!r}")
    rng = _numpy_rng(seed)
    n_outer = n // 2
    t_outer = np.linspace(0.0, 2 * np.pi, n_outer, endpoint=False)
    t_inner = np.linspace(0.0, 2 * np.pi, n - n_outer, endpoint=False)
    outer = np.stack([np.cos(t_outer), np.sin(t_outer)], axis=1)
    inner = factor * np.stack([np.cos(t_inner), np.sin(t_inner)], axis=1)
    X = np.concatenate([outer, inner]) + rng.normal(0.0, noise, (n, 2))
    y = np.repeat([0, 1], [n_outer, n - n_outer])
    return _classification(X, y, rng)


def xor(n_samples: int = 200, noise: float = 0.1, seed=0) -> tuple:
    """Points in the four quadrants of [-1, 1]²; class 1 where x and y have opposite signs.

    Each quadrant gets a quarter of the points (uniform in it, kept 0.05 off the
    axes); ``noise`` then moves every point by Gaussian noise of that standard
    deviation, so points can cross into their neighbours' quadrants.

    Args:
        n_samples: points in total.
        noise: standard deviation of the Gaussian noise.
        seed: int, ``backprop.Generator`` or None.

    Example::

        X, y = xor(200, noise=0.05)
    """
    n = _check_n(n_samples, "xor", minimum=2)
    noise = _check_noise(noise, "xor")
    rng = _numpy_rng(seed)
    quadrant = np.arange(n) % 4
    signs = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])[quadrant]
    X = signs * rng.uniform(0.05, 1.0, (n, 2)) + rng.normal(0.0, noise, (n, 2))
    y = quadrant % 2                             # quadrants II and IV: opposite signs
    return _classification(X, y, rng)


def blobs(n_samples: int = 300, centers=3, cluster_std=1.0, seed=0, *,
          center_box: tuple = (-10.0, 10.0), noise=None) -> tuple:
    """Isotropic Gaussian clusters, one class per centre (as scikit-learn's ``make_blobs``).

    Args:
        n_samples: points in total, split evenly between the centres.
        centers: the number of centres (drawn uniformly in ``center_box`` for each
            coordinate) or their coordinates, an array of shape (k, 2).
        cluster_std: the clusters' standard deviation, one number or one per centre.
        seed: int, ``backprop.Generator`` or None.
        center_box: the range random centres are drawn from.
        noise: another name for ``cluster_std`` (every toy set takes ``noise=``).

    Example::

        X, y = blobs(300, centers=4, cluster_std=0.8)
    """
    n = _check_n(n_samples, "blobs")
    if noise is not None:
        cluster_std = noise
    rng = _numpy_rng(seed)
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        if centers < 1:
            raise ValueError(f"blobs: centers must be >= 1, got {centers}")
        low, high = center_box
        centre_xy = rng.uniform(low, high, (int(centers), 2))
    else:
        centre_xy = np.asarray(centers._data if isinstance(centers, Tensor) else centers,
                               dtype=np.float64)
        if centre_xy.ndim != 2 or centre_xy.shape[1] != 2 or len(centre_xy) == 0:
            raise ValueError(f"blobs: centers must be an int or an array of shape (k, 2), got "
                             f"shape {centre_xy.shape}")
    k = len(centre_xy)
    std = np.asarray(cluster_std, dtype=np.float64)
    if std.ndim == 0:
        std = np.full(k, float(std))
    if std.shape != (k,) or not np.all(std >= 0):
        raise ValueError(f"blobs: cluster_std must be a non-negative number or one per centre "
                         f"({k}), got {cluster_std!r}")
    y = np.repeat(np.arange(k), _class_sizes(n, k))
    X = centre_xy[y] + std[y, None] * rng.normal(0.0, 1.0, (n, 2))
    return _classification(X, y, rng)


# -- regression -------------------------------------------------------------------------------
def sine(n_samples: int = 200, noise: float = 0.1, seed=0, *, low: float = -np.pi,
         high: float = np.pi) -> tuple:
    """y = sin(x) + noise for x uniform in [low, high]: a 1-D curve to fit.

    Returns ``X`` of shape (n, 1) and ``y`` of shape (n, 1), both float32.

    Example::

        X, y = sine(200, noise=0.1)
    """
    n = _check_n(n_samples, "sine")
    noise = _check_noise(noise, "sine")
    if not low < high:
        raise ValueError(f"sine: need low < high, got low={low}, high={high}")
    rng = _numpy_rng(seed)
    x = rng.uniform(low, high, (n, 1))
    return _regression(x, np.sin(x) + rng.normal(0.0, noise, (n, 1)))


def plane(n_samples: int = 200, noise: float = 0.1, seed=0, *, weights=(1.0, -2.0),
          bias: float = 0.5) -> tuple:
    """y = w·x + b + noise for x uniform in [-1, 1]²: linear regression's home ground.

    Returns ``X`` of shape (n, 2) and ``y`` of shape (n, 1), both float32.

    Example::

        X, y = plane(200, weights=(1.0, -2.0), bias=0.5)
    """
    n = _check_n(n_samples, "plane")
    noise = _check_noise(noise, "plane")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (2,):
        raise ValueError(f"plane: weights must be two numbers, got {weights!r}")
    rng = _numpy_rng(seed)
    X = rng.uniform(-1.0, 1.0, (n, 2))
    return _regression(X, X @ w + float(bias) + rng.normal(0.0, noise, n))


# Four bumps, two up and two down, on the diagonals of [-1, 1]²: a surface no plane fits.
_BUMP_CENTRES = np.array([[-0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [0.5, -0.5]])
_BUMP_HEIGHTS = np.array([1.0, 1.0, -1.0, -1.0])
_BUMP_WIDTH = 0.3


def bumps(n_samples: int = 300, noise: float = 0.05, seed=0) -> tuple:
    """A surface of Gaussian bumps over [-1, 1]²: y = Σ hᵢ exp(-|x - cᵢ|² / 2s²) + noise.

    Bumps of height +1 sit at (-½, -½) and (½, ½), of height -1 at (-½, ½) and
    (½, -½), all of width s = 0.3; ``x`` is uniform in [-1, 1]².
    Returns ``X`` of shape (n, 2) and ``y`` of shape (n, 1), both float32.

    Example::

        X, y = bumps(300)
    """
    n = _check_n(n_samples, "bumps")
    noise = _check_noise(noise, "bumps")
    rng = _numpy_rng(seed)
    X = rng.uniform(-1.0, 1.0, (n, 2))
    sq_dist = ((X[:, None, :] - _BUMP_CENTRES[None]) ** 2).sum(axis=2)
    y = np.exp(-sq_dist / (2 * _BUMP_WIDTH ** 2)) @ _BUMP_HEIGHTS
    return _regression(X, y + rng.normal(0.0, noise, n))


# -- registry ---------------------------------------------------------------------------------
TOY_DATASETS: dict[str, Callable[..., tuple]] = {
    "spiral": spiral, "moons": moons, "circles": circles, "xor": xor, "blobs": blobs,
    "sine": sine, "plane": plane, "bumps": bumps,
}
"""Every toy set by name; each is called as ``fn(n_samples=..., noise=..., seed=...)``."""

TOY_TASKS = {
    "spiral": "classification", "moons": "classification", "circles": "classification",
    "xor": "classification", "blobs": "classification",
    "sine": "regression", "plane": "regression", "bumps": "regression",
}
"""``"classification"`` (int64 class targets) or ``"regression"`` (float32 (n, 1) targets)."""


def load_toy(name: str, **kwargs) -> tuple:
    """The toy set called ``name`` (a key of ``TOY_DATASETS``), built with ``kwargs``.

    Example::

        X, y = load_toy("moons", n_samples=500, noise=0.2, seed=1)
    """
    try:
        fn = TOY_DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown toy dataset {name!r}; choose from "
                         f"{', '.join(sorted(TOY_DATASETS))}") from None
    return fn(**kwargs)
