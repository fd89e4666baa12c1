"""The lab's data: the toy sets, the digits and uploaded CSV files, split and featurised.

:func:`load_data` builds a session's data from its settings (the exported script calls
it too); :func:`parse_csv` reads an uploaded CSV into the arrays a ``csv`` data set uses.

Example::

    data = load_data(defaults())
    data["X_train"].shape, data["task"]       # ((210, 2), 'classification')
"""
from __future__ import annotations

import csv
import io
import math

import numpy as np

from backprop.data import load_toy, train_test_split
from backprop.lab.settings import REGRESSION_SETS, LabError

__all__ = ["CSV_LIMITS", "FEATURES", "feature_columns", "load_data", "parse_csv",
           "usable_features"]

CSV_LIMITS = {"max_csv_rows": 5000, "min_csv_rows": 10, "max_csv_bytes": 1_000_000,
              "max_csv_classes": 10}
"""The sizes of CSV file the lab takes."""
_FLOAT32_MAX = float(np.finfo(np.float32).max)   # CSV values beyond it would become inf

FEATURES = {"x1": lambda x1, x2: x1, "x2": lambda x1, x2: x2,
            "x1^2": lambda x1, x2: x1 * x1, "x2^2": lambda x1, x2: x2 * x2,
            "x1*x2": lambda x1, x2: x1 * x2, "sin x1": lambda x1, x2: np.sin(x1),
            "sin x2": lambda x1, x2: np.sin(x2)}
"""The input features the lab offers, as functions of the raw coordinates."""


def feature_columns(X: np.ndarray, names) -> np.ndarray:
    """The input features ``names`` computed from raw coordinates ``X`` (n, 1 or 2)."""
    x1 = X[:, 0]
    x2 = X[:, 1] if X.shape[1] > 1 else None
    return np.stack([FEATURES[n](x1, x2) for n in names], axis=1).astype(np.float32)


def usable_features(names, dims: int) -> list:
    """The features of ``names`` that data of ``dims`` raw coordinates has."""
    return [n for n in names if dims > 1 or "x2" not in n]


def load_data(settings: dict, csv_data: dict | None = None) -> dict:
    """The settings' data set, split into training and test samples and featurised.

    Args:
        settings: the lab's settings (``dataset``, ``n_samples``, ``noise``, ``seed``,
            ``train_fraction``, ``features``).
        csv_data: ``{"X", "y", "task"}`` of an uploaded CSV (:func:`parse_csv`), for
            ``dataset = csv``.

    Returns:
        ``{"task", "n_classes", "dims", "inputs", "raw_train", "raw_test", "X_train",
        "y_train", "X_test", "y_test"}`` (raw coordinates are None for the digits).

    Raises:
        LabError: the settings leave no data (``field`` names the setting).
    """
    s = settings
    name = s["dataset"]
    test_fraction = round(1.0 - s["train_fraction"], 6)
    if name == "digits":
        try:
            from backprop.data import load_digits
            train, test = load_digits(test_fraction=test_fraction, seed=s["seed"])
        except ImportError as e:
            raise LabError(str(e), "dataset") from None
        X_tr, y_tr = (t.numpy() for t in train.tensors)
        X_te, y_te = (t.numpy() for t in test.tensors)
        return {"task": "classification", "n_classes": 10, "dims": 64,
                "inputs": [f"pixel {i + 1}" for i in range(64)],
                "raw_train": None, "raw_test": None, "X_train": X_tr, "y_train": y_tr,
                "X_test": X_te, "y_test": y_te}
    if name == "csv":
        if csv_data is None:
            raise LabError("dataset csv needs an uploaded CSV file first", "dataset")
        X, y, task = csv_data["X"], csv_data["y"], csv_data["task"]
    else:
        X, y = toy_set(name, s)
        task = "regression" if name in REGRESSION_SETS else "classification"
    if task == "classification":
        n_classes = int(y.max()) + 1
    else:
        n_classes = None
        y = y.reshape(-1, 1).astype(np.float32)
    (raw_tr, y_tr), (raw_te, y_te) = (
        tuple(t.numpy() for t in part)
        for part in train_test_split(X, y, test_fraction=test_fraction, seed=s["seed"]))
    if len(y_tr) < 1 or len(y_te) < 1:
        raise LabError(f"train_fraction {s['train_fraction']:g} of {len(y)} samples leaves "
                       f"no {'training' if len(y_tr) < 1 else 'test'} samples",
                       "train_fraction")
    dims = X.shape[1]
    inputs = usable_features(s["features"], dims)
    if not inputs:
        raise LabError(f"{name} has a single input x1: choose a feature of x1 "
                       f"(x1, x1^2, sin x1)", "features")
    return {"task": task, "n_classes": n_classes, "dims": dims, "inputs": inputs,
            "raw_train": raw_tr, "raw_test": raw_te,
            "X_train": feature_columns(raw_tr, inputs), "y_train": y_tr,
            "X_test": feature_columns(raw_te, inputs), "y_test": y_te}


def toy_set(name: str, settings: dict) -> tuple:
    """A toy set's raw ``(X, y)`` as NumPy arrays, from ``backprop.data.load_toy``."""
    s = settings
    if name == "blobs":
        # Fixed centres on a circle keep the three clusters apart and inside the view;
        # noise is their spread.
        angles = np.deg2rad([90.0, 210.0, 330.0])
        centres = 0.6 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        X, y = load_toy("blobs", n_samples=s["n_samples"], centers=centres,
                        cluster_std=2 * s["noise"], seed=s["seed"])
    else:
        X, y = load_toy(name, n_samples=s["n_samples"], noise=s["noise"], seed=s["seed"])
    X, y = X.numpy(), y.numpy()
    if name == "spiral" and len(np.unique(y)) < 3:
        raise LabError("spiral needs at least 3 samples", "n_samples")
    return X, y


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_csv(text: str) -> dict:
    """Read a CSV of two feature columns and a label (see ``LabSession.load_csv``).

    Returns:
        ``{"X", "y", "task", "class_labels", "header", "rows"}``.

    Raises:
        LabError: too big or too small, a row of the wrong width, a feature that is not
            a finite number, an empty label, a single class or too many text labels.
    """
    if not isinstance(text, str):
        raise LabError(f"load_csv: expected the CSV text as a string, got "
                       f"{type(text).__name__}")
    size = len(text.encode("utf-8"))
    if size > CSV_LIMITS["max_csv_bytes"]:
        raise LabError(f"the CSV is {size} bytes; the lab takes at most "
                       f"{CSV_LIMITS['max_csv_bytes']} bytes")
    features, labels, header = _read_rows(text)
    if len(features) < CSV_LIMITS["min_csv_rows"]:
        raise LabError(f"the CSV has {len(features)} data rows; the lab needs at least "
                       f"{CSV_LIMITS['min_csv_rows']}")
    X = np.asarray(features, dtype=np.float32)
    y, task, class_labels = _targets(labels)
    return {"X": X, "y": y, "task": task, "class_labels": class_labels, "header": header,
            "rows": len(features)}


def _read_rows(text: str) -> tuple:
    """The CSV's feature rows, labels (numbers or text) and header (or None)."""
    reader = csv.reader(io.StringIO(text))
    features: list = []
    labels: list = []
    header = None
    try:
        for number, row in enumerate(reader, start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 3:
                raise LabError(f"CSV row {number}: expected 3 columns (x1, x2, label), got "
                               f"{len(row)}")
            try:
                values = [float(cell) for cell in row[:2]]
            except ValueError:
                if not features and header is None:    # a header line names the columns
                    header = [cell.strip() for cell in row]
                    continue
                bad = next(c for c in row[:2] if not _is_float(c))
                raise LabError(f"CSV row {number}: {bad.strip()!r} is not a number") \
                    from None
            label = row[2].strip()
            if not label:
                raise LabError(f"CSV row {number}: the label (third column) is empty")
            number_label = float(label) if _is_float(label) else None
            # Finite, and finite in float32 too (the network's dtype): 1e39 would be inf.
            if not all(math.isfinite(v) and abs(v) <= _FLOAT32_MAX for v in values) or \
                    (number_label is not None and not (math.isfinite(number_label)
                                                       and abs(number_label) <= _FLOAT32_MAX)):
                raise LabError(f"CSV row {number}: values must be finite numbers of at most "
                               f"{_FLOAT32_MAX:.3g} in size")
            features.append(values)
            labels.append(label if number_label is None else number_label)
            if len(features) > CSV_LIMITS["max_csv_rows"]:
                raise LabError(f"the CSV has more than {CSV_LIMITS['max_csv_rows']} rows")
    except csv.Error as e:
        raise LabError(f"the CSV can't be read: {e}") from None
    return features, labels, header


def _targets(labels: list) -> tuple:
    """``(y, task, class_labels)`` of a CSV's labels: classes or a regression target."""
    max_classes = CSV_LIMITS["max_csv_classes"]
    if any(isinstance(v, str) for v in labels):
        # Class names: every label is one, numbers included ("0" next to "yes").
        names = [v if isinstance(v, str) else f"{v:g}" for v in labels]
        distinct = sorted(set(names))
        if len(distinct) > max_classes:
            raise LabError(f"the CSV's labels are text with {len(distinct)} different "
                           f"values; a classification set takes at most {max_classes} "
                           f"classes")
        if len(distinct) < 2:
            raise LabError(f"the CSV's labels are all {distinct[0]!r}: a classification "
                           f"set needs at least 2 classes")
        index = {name: k for k, name in enumerate(distinct)}
        return np.asarray([index[n] for n in names], dtype=np.int64), "classification", distinct
    numbers = np.asarray(labels, dtype=np.float64)
    values = np.unique(numbers)
    integral = bool(np.all(numbers == np.round(numbers)))
    if integral and len(values) <= max_classes:
        if len(values) < 2:
            raise LabError(f"the CSV's labels are all {values[0]:g}: a "
                           f"classification set needs at least 2 classes")
        y = np.searchsorted(values, numbers).astype(np.int64)
        return y, "classification", [float(v) for v in values]
    return numbers.astype(np.float32).reshape(-1, 1), "regression", None
