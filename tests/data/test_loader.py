"""DataLoader: batching, shuffling, samplers, collation, the TensorDataset fast path."""
from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import backprop
from backprop import DTypeError, ShapeError
from backprop.data import (
    BatchSampler, DataLoader, IterableDataset, RandomSampler, SequentialSampler, Subset,
    SubsetRandomSampler, TensorDataset, default_collate, default_convert,
)


def dataset(n=10):
    X = backprop.arange(3 * n, dtype=backprop.float32).reshape(n, 3)
    return TensorDataset(X, backprop.arange(n))


def labels(loader) -> list:
    return [yb.tolist() for _, yb in loader]


def generic(collate=default_collate):
    """The same collation without the identity check that enables the fast path."""
    return lambda batch: collate(batch)


# -- batching ---------------------------------------------------------------------------------
def test_batches_in_order_with_last_partial_batch():
    loader = DataLoader(dataset(10), batch_size=4)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    xb, yb = batches[0]
    assert isinstance(batches[0], list)  # tuples of fields collate into lists, as in PyTorch
    assert xb.shape == (4, 3) and xb.dtype == backprop.float32
    assert yb.dtype == backprop.int64
    np.testing.assert_array_equal(xb.numpy(), np.arange(12).reshape(4, 3))
    assert labels(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_drop_last():
    loader = DataLoader(dataset(10), batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert labels(loader) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    exact = DataLoader(dataset(8), batch_size=4, drop_last=True)
    assert len(exact) == 2 and len(list(exact)) == 2


def test_batch_size_larger_than_dataset():
    assert labels(DataLoader(dataset(3), batch_size=10)) == [[0, 1, 2]]
    assert list(DataLoader(dataset(3), batch_size=10, drop_last=True)) == []


def test_default_batch_size_is_one():
    loader = DataLoader(dataset(3))
    assert len(loader) == 3 and labels(loader) == [[0], [1], [2]]


def test_matches_torch_sequential_batches(oracle):
    X = np.random.default_rng(0).normal(size=(11, 2))
    y = np.arange(11)
    ours = DataLoader(TensorDataset(backprop.tensor(X), backprop.tensor(y)), batch_size=4)
    theirs = oracle.utils.data.DataLoader(
        oracle.utils.data.TensorDataset(oracle.tensor(X), oracle.tensor(y)), batch_size=4)
    assert len(ours) == len(theirs)
    for (xa, ya), (xb, yb) in zip(ours, theirs):
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())
        assert str(xa.dtype).split(".")[-1] == str(xb.dtype).split(".")[-1]


# -- shuffling --------------------------------------------------------------------------------
def epoch_order(loader) -> list:
    return [i for batch in labels(loader) for i in batch]


def test_shuffle_is_a_permutation_and_seeded():
    loader = DataLoader(dataset(20), batch_size=6, shuffle=True)
    backprop.manual_seed(0)
    first = epoch_order(loader)
    assert sorted(first) == list(range(20)) and first != list(range(20))
    backprop.manual_seed(0)
    assert epoch_order(loader) == first  # same seed, same batch order
    backprop.manual_seed(1)
    assert epoch_order(loader) != first


def test_shuffle_differs_across_epochs():
    backprop.manual_seed(0)
    loader = DataLoader(dataset(20), batch_size=5, shuffle=True)
    epochs = [epoch_order(loader) for _ in range(3)]
    assert all(sorted(e) == list(range(20)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]
    backprop.manual_seed(0)
    again = [epoch_order(loader) for _ in range(3)]
    assert again == epochs  # the whole sequence of epochs repeats


def test_private_generator_ignores_global_state():
    a = DataLoader(dataset(20), batch_size=5, shuffle=True, generator=backprop.Generator(7))
    b = DataLoader(dataset(20), batch_size=5, shuffle=True, generator=backprop.Generator(7))
    backprop.manual_seed(0)
    order_a = epoch_order(a)
    backprop.manual_seed(99)
    assert epoch_order(b) == order_a


def test_shuffle_false_leaves_global_generator_alone():
    backprop.manual_seed(3)
    expected = backprop.rand(3).tolist()
    backprop.manual_seed(3)
    list(DataLoader(dataset(10), batch_size=3))
    assert backprop.rand(3).tolist() == expected


# -- the fast path ----------------------------------------------------------------------------
def assert_same_batches(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b)
    for fast, slow in zip(a, b):
        assert type(fast) is type(slow) and len(fast) == len(slow)
        for t_fast, t_slow in zip(fast, slow):
            assert t_fast.dtype == t_slow.dtype and t_fast.shape == t_slow.shape
            np.testing.assert_array_equal(t_fast.numpy(), t_slow.numpy())


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_fast_path_matches_generic_path(shuffle, drop_last):
    ds = TensorDataset(backprop.randn(23, 2, 3), backprop.randint(0, 5, (23,)),
                       backprop.randn(23).double())
    kwargs = dict(batch_size=5, shuffle=shuffle, drop_last=drop_last)
    fast = DataLoader(ds, generator=backprop.Generator(4), **kwargs)
    slow = DataLoader(ds, generator=backprop.Generator(4), collate_fn=generic(), **kwargs)
    assert_same_batches(fast, slow)


def test_fast_path_through_subsets_and_random_split():
    ds = dataset(30)
    train, _ = backprop.data.random_split(ds, [20, 10], generator=backprop.Generator(0))
    inner = Subset(train, list(range(19, -1, -1)))
    for sub in (train, inner):
        fast = DataLoader(sub, batch_size=6, shuffle=True, generator=backprop.Generator(1))
        slow = DataLoader(sub, batch_size=6, shuffle=True, generator=backprop.Generator(1),
                          collate_fn=generic())
        assert_same_batches(fast, slow)


def test_fast_path_indexes_once_per_batch(monkeypatch):
    ds = dataset(12)

    def per_sample(self, index):
        raise AssertionError("the fast path must not fetch samples one by one")
    monkeypatch.setattr(TensorDataset, "__getitem__", per_sample)
    loader = DataLoader(ds, batch_size=5, shuffle=True)
    assert sorted(i for batch in labels(loader) for i in batch) == list(range(12))
    assert labels(DataLoader(Subset(ds, [3, 1]), batch_size=2)) == [[3, 1]]


def test_fast_path_batches_are_copies():
    X = backprop.zeros(4, 2)
    xb, = next(iter(DataLoader(TensorDataset(X), batch_size=4)))
    xb.add_(1.0)
    assert X.sum().item() == 0.0


def test_tensors_requiring_grad_keep_their_graph():
    w = backprop.ones(4, 2, requires_grad=True)
    xb, = next(iter(DataLoader(TensorDataset(w), batch_size=2)))
    assert xb.requires_grad
    xb.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1, 1], [1, 1], [0, 0], [0, 0]])


# -- collation --------------------------------------------------------------------------------
def test_collate_numbers():
    ints = default_collate([1, 2, 3])
    assert ints.dtype == backprop.int64 and ints.tolist() == [1, 2, 3]
    floats = default_collate([0.5, 1.5])
    assert floats.dtype == backprop.float32  # PyTorch gives float64: our default is float32
    assert default_collate([True, False]).dtype == backprop.bool
    assert default_collate([1, 2.5]).tolist() == [1.0, 2.5]  # a float makes a float batch
    assert default_collate([np.float64(1), np.float64(2)]).dtype == backprop.float64
    assert default_collate([np.int32(1), np.int32(2)]).dtype == backprop.int32


def test_collate_arrays_and_tensors_keep_dtype():
    f64 = default_collate([np.zeros(2), np.ones(2)])
    assert f64.dtype == backprop.float64 and f64.shape == (2, 2)
    f32 = default_collate([np.zeros((2, 2), np.float32)] * 3)
    assert f32.dtype == backprop.float32 and f32.shape == (3, 2, 2)
    t = default_collate([backprop.tensor([1.0]), backprop.tensor([2.0])])
    assert t.shape == (2, 1) and t.tolist() == [[1.0], [2.0]]
    scalars = default_collate([backprop.tensor(1), backprop.tensor(2)])
    assert scalars.shape == (2,) and scalars.dtype == backprop.int64


def test_collate_tuples_lists_dicts_namedtuples():
    batch = default_collate([(np.zeros(2), 1), (np.ones(2), 2)])
    assert isinstance(batch, list) and batch[0].shape == (2, 2) and batch[1].tolist() == [1, 2]
    nested = default_collate([{"x": [1, 2], "meta": {"id": 0.5}, "name": "a"},
                              {"x": [3, 4], "meta": {"id": 1.5}, "name": "b"}])
    assert set(nested) == {"x", "meta", "name"}
    assert [t.tolist() for t in nested["x"]] == [[1, 3], [2, 4]]  # lists collate per position
    assert nested["meta"]["id"].tolist() == [0.5, 1.5]
    assert nested["name"] == ["a", "b"]
    Point = namedtuple("Point", "x y")
    p = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert isinstance(p, Point) and p.x.tolist() == [1, 3] and p.y.tolist() == [2.0, 4.0]


def test_collate_matches_torch_dtypes(oracle):
    cases = [
        [1, 2], [True, False], [np.float32(1), np.float32(2)], [np.int16(1), np.int16(2)],
        [np.zeros(2), np.ones(2)], [np.zeros(2, np.int32), np.ones(2, np.int32)],
    ]
    for batch in cases:
        ours, theirs = default_collate(batch), oracle.utils.data.default_collate(batch)
        assert ours.dtype.name == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_collate_errors():
    with pytest.raises(ShapeError, match="same number of fields"):
        default_collate([[1, 2], [3]])
    with pytest.raises(ShapeError, match=r"different shapes \[\(2,\), \(3,\)\]"):
        default_collate([backprop.zeros(2), backprop.zeros(3)])
    with pytest.raises(ShapeError, match="different shapes"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])
    with pytest.raises(DTypeError, match="uint16"):
        default_collate([np.zeros(2, np.uint16)] * 2)
    with pytest.raises(ValueError, match="non-empty"):
        default_collate([])


def test_dict_dataset_through_loader():
    samples = [{"x": np.full(2, i, np.float32), "y": i} for i in range(5)]
    batches = list(DataLoader(samples, batch_size=2))
    assert len(batches) == 3
    assert batches[0]["x"].shape == (2, 2) and batches[2]["y"].tolist() == [4]


def test_custom_collate_fn():
    loader = DataLoader(list(range(7)), batch_size=3, collate_fn=lambda b: sum(b))
    assert list(loader) == [3, 12, 6]


# -- no batching, samplers, streams -----------------------------------------------------------
def test_batch_size_none_yields_converted_samples():
    samples = [(np.float64(i), np.arange(2)) for i in range(3)]
    loader = DataLoader(samples, batch_size=None)
    assert len(loader) == 3
    first = next(iter(loader))
    assert isinstance(first, list)  # default_convert turns tuples into lists
    assert first[0].dtype == backprop.float64 and first[1].shape == (2,)
    assert default_convert({"a": np.zeros(1), "b": "s"})["b"] == "s"
    xb, yb = next(iter(DataLoader(dataset(3), batch_size=None)))
    assert xb.shape == (3,) and yb.shape == ()


def test_custom_sampler_and_batch_sampler():
    loader = DataLoader(dataset(6), batch_size=2, sampler=[5, 4, 3, 2, 1])
    assert labels(loader) == [[5, 4], [3, 2], [1]] and len(loader) == 3
    bs = DataLoader(dataset(6), batch_sampler=[[0, 5], [2]])
    assert labels(bs) == [[0, 5], [2]]
    assert list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False)) == \
        [[0, 1], [2, 3], [4]]
    assert list(BatchSampler([3, 1, 2], 2, drop_last=True)) == [[3, 1]]


def test_random_samplers():
    sampler = RandomSampler(range(5), generator=backprop.Generator(0))
    assert sorted(sampler) == [0, 1, 2, 3, 4]
    more = list(RandomSampler(range(3), num_samples=7, generator=backprop.Generator(0)))
    assert len(more) == 7 and sorted(more[:3]) == [0, 1, 2] and sorted(more[3:6]) == [0, 1, 2]
    drawn = list(RandomSampler(range(3), replacement=True, num_samples=50,
                               generator=backprop.Generator(0)))
    assert len(drawn) == 50 and set(drawn) == {0, 1, 2}
    sub = SubsetRandomSampler([10, 20, 30], generator=backprop.Generator(0))
    assert sorted(sub) == [10, 20, 30] and len(sub) == 3
    loader = DataLoader(dataset(40), batch_size=4, sampler=SubsetRandomSampler(range(8)))
    assert sorted(i for b in labels(loader) for i in b) == list(range(8))


def test_iterable_dataset():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(7))

    assert [b.tolist() for b in DataLoader(Stream(), batch_size=3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(list(DataLoader(Stream(), batch_size=3, drop_last=True))) == 2
    assert list(DataLoader(Stream(), batch_size=None)) == list(range(7))
    with pytest.raises(ValueError, match="shuffle"):
        DataLoader(Stream(), shuffle=True)
    with pytest.raises(TypeError):
        len(DataLoader(Stream(), batch_size=2))


# -- argument errors --------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4"])
def test_bad_batch_size(bad):
    with pytest.raises(ValueError, match=f"batch_size should be a positive integer value, "
                                         f"but got batch_size={bad!r}"):
        DataLoader(dataset(), batch_size=bad)


def test_argument_errors():
    ds = dataset()
    with pytest.raises(ValueError, match="mutually exclusive with drop_last"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(ds, shuffle=True, sampler=[0, 1])
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_size=4, batch_sampler=[[0]])
    with pytest.raises(ValueError, match="drop_last should be a boolean"):
        DataLoader(ds, drop_last=1)
    with pytest.raises(ValueError, match="shuffle should be a boolean"):
        DataLoader(ds, shuffle="yes")
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(TypeError, match="map-style dataset"):
        DataLoader(42)
    with pytest.raises(TypeError, match="backprop.Generator"):
        DataLoader(ds, shuffle=True, generator=np.random.default_rng(0))
    with pytest.raises(TypeError, match="collate_fn must be callable"):
        DataLoader(ds, collate_fn="stack")
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(ds, num_samples=0)


def test_pytorch_only_arguments_are_accepted():
    loader = DataLoader(dataset(4), batch_size=2, num_workers=2, pin_memory=True,
                        persistent_workers=True, prefetch_factor=2)
    assert labels(loader) == [[0, 1], [2, 3]]
