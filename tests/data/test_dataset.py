"""Datasets: TensorDataset, Subset, ConcatDataset, random_split, train_test_split."""
from __future__ import annotations

import numpy as np
import pytest

import backprop
from backprop import IndexOutOfRange, ShapeError
from backprop.data import (
    ConcatDataset, Dataset, Subset, TensorDataset, random_split, train_test_split,
)


def make(n=10):
    X = backprop.arange(2 * n, dtype=backprop.float32).reshape(n, 2)
    y = backprop.arange(n)
    return X, y


def test_tensor_dataset_samples():
    X, y = make()
    ds = TensorDataset(X, y)
    assert len(ds) == 10
    x3, y3 = ds[3]
    np.testing.assert_array_equal(x3.numpy(), [6.0, 7.0])
    assert x3.dtype == backprop.float32 and x3.shape == (2,)
    assert y3.shape == () and y3.item() == 3 and y3.dtype == backprop.int64
    x_last, _ = ds[-1]
    np.testing.assert_array_equal(x_last.numpy(), [18.0, 19.0])
    xs, ys = ds[2:4]  # slices index every tensor
    assert xs.shape == (2, 2) and ys.tolist() == [2, 3]


def test_tensor_dataset_accepts_arrays_without_copy():
    a = np.zeros((4, 3), dtype=np.float32)
    ds = TensorDataset(a)
    a[1, 0] = 5.0
    assert ds[1][0].tolist() == [5.0, 0.0, 0.0]


def test_tensor_dataset_size_mismatch_names_sizes():
    with pytest.raises(ShapeError, match=r"\[3, 4\]"):
        TensorDataset(backprop.zeros(3, 2), backprop.zeros(4))
    with pytest.raises(ShapeError, match="0-d"):
        TensorDataset(backprop.tensor(1.0))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(TypeError, match="argument 1"):
        TensorDataset(backprop.zeros(3), [1, 2, 3])


def test_tensor_dataset_index_out_of_range():
    ds = TensorDataset(*make(5))
    with pytest.raises(IndexOutOfRange, match="index 5 .* 5 samples"):
        ds[5]


def test_tensor_dataset_keeps_graph_for_tensors_requiring_grad():
    w = backprop.ones(3, 2, requires_grad=True)
    x0, = TensorDataset(w)[1]
    x0.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[0, 0], [1, 1], [0, 0]])


def test_subset():
    ds = TensorDataset(*make())
    sub = Subset(ds, [7, 2, 2, -1])
    assert len(sub) == 4
    assert [sub[i][1].item() for i in range(4)] == [7, 2, 2, 9]
    assert [s[1].item() for s in sub[[0, 1]]] == [7, 2]
    assert [s[1].item() for s in sub.__getitems__([3, 0])] == [9, 7]
    assert Subset(ds, backprop.tensor([4, 5]))[1][1].item() == 5
    assert Subset(ds, range(3, 6))[0][1].item() == 3
    assert len(Subset(ds, [])) == 0
    with pytest.raises(IndexOutOfRange, match="index 10"):
        Subset(ds, [1, 10])
    with pytest.raises(TypeError, match="ints"):
        Subset(ds, [0.5, 1.0])


def test_concat_dataset_and_plus():
    class Numbers(Dataset):
        def __init__(self, values):
            self.values = values

        def __len__(self):
            return len(self.values)

        def __getitem__(self, i):
            return self.values[i]

    both = Numbers([1, 2, 3]) + Numbers([10, 20])
    assert isinstance(both, ConcatDataset)
    assert len(both) == 5 and both.cumulative_sizes == [3, 5]
    assert [both[i] for i in range(5)] == [1, 2, 3, 10, 20]
    assert both[-1] == 20 and both[-5] == 1
    with pytest.raises(IndexOutOfRange):
        both[5]
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])


def test_dataset_base_is_abstract():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]
    with pytest.raises(NotImplementedError, match="__len__"):
        len(Dataset())


def test_random_split_lengths_and_disjoint():
    ds = TensorDataset(*make(10))
    a, b = random_split(ds, [7, 3])
    assert len(a) == 7 and len(b) == 3
    seen = sorted(a.indices + b.indices)
    assert seen == list(range(10))


@pytest.mark.parametrize("fractions,expected", [
    ([0.5, 0.5], [5, 5]),
    ([0.33, 0.33, 0.34], [4, 3, 3]),   # floors 3, 3, 3; the remainder goes round robin
    ([0.8, 0.2], [8, 2]),
    ([0.1, 0.1, 0.8], [1, 1, 8]),
])
def test_random_split_fractions_like_torch(fractions, expected, oracle):
    ours = [len(s) for s in random_split(range(10), fractions)]
    theirs = [len(s) for s in oracle.utils.data.random_split(range(10), fractions)]
    assert ours == theirs == expected


def test_random_split_errors():
    with pytest.raises(ValueError, match=r"sum of input lengths \(6\).*\(10\)"):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="fractions summing to 1"):
        random_split(range(10), [0.5, 0.6])
    with pytest.raises(ValueError, match="fraction at index 0 .*: 1.5"):
        random_split(range(10), [1.5, -0.5])
    with pytest.raises(TypeError):
        random_split(range(10), ["a", "b"])
    with pytest.warns(UserWarning, match="index 1 is 0"):
        random_split(range(2), [0.5, 0.0, 0.5])


def test_random_split_is_seeded():
    first = random_split(range(20), [10, 10], generator=backprop.Generator(1))[0].indices
    again = random_split(range(20), [10, 10], generator=backprop.Generator(1))[0].indices
    other = random_split(range(20), [10, 10], generator=backprop.Generator(2))[0].indices
    assert first == again and first != other
    backprop.manual_seed(5)
    g1 = random_split(range(20), [10, 10])[0].indices
    backprop.manual_seed(5)
    assert random_split(range(20), [10, 10])[0].indices == g1


def test_train_test_split():
    X, y = make(10)
    (X_tr, y_tr), (X_te, y_te) = train_test_split(X, y, test_fraction=0.3, seed=0)
    assert X_tr.shape == (7, 2) and X_te.shape == (3, 2)
    assert sorted(y_tr.tolist() + y_te.tolist()) == list(range(10))
    # rows stay together
    np.testing.assert_array_equal(X_tr.numpy()[:, 0], 2 * y_tr.numpy())
    again = train_test_split(X, y, test_fraction=0.3, seed=0)
    assert again[1][1].tolist() == y_te.tolist()
    backprop.manual_seed(123)  # an int seed ignores the global generator
    assert train_test_split(X, y, test_fraction=0.3, seed=0)[1][1].tolist() == y_te.tolist()
    assert train_test_split(X, y, test_fraction=0.3, seed=1)[1][1].tolist() != y_te.tolist()
    assert len(train_test_split(X, test_fraction=0.0)[1][0]) == 0
    with pytest.raises(ValueError, match="test_fraction"):
        train_test_split(X, y, test_fraction=1.0)
    with pytest.raises(ShapeError):
        train_test_split(X, y[:5])
