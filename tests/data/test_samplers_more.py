"""WeightedRandomSampler, get_worker_info, ChainDataset, StackDataset, and the loader's
sampler / batch_sampler arguments, compared with torch.utils.data where the result is
deterministic."""
from __future__ import annotations

import numpy as np
import pytest

import backprop
from backprop.data import (
    BatchSampler, ChainDataset, DataLoader, IterableDataset, SequentialSampler, StackDataset,
    SubsetRandomSampler, TensorDataset, WeightedRandomSampler, default_collate, get_worker_info,
)
from backprop.errors import ShapeError


def test_utils_data_has_torchs_names():
    import backprop.utils.data as bud
    for name in ("WeightedRandomSampler", "StackDataset", "ChainDataset", "get_worker_info",
                 "SubsetRandomSampler", "BatchSampler", "ConcatDataset", "Subset"):
        assert getattr(bud, name) is getattr(backprop.data, name)


# -- WeightedRandomSampler --------------------------------------------------------------------
def test_weighted_sampler_frequencies_follow_weights():
    weights = [1.0, 3.0, 0.0, 6.0]
    sampler = WeightedRandomSampler(weights, num_samples=20000, generator=backprop.Generator(0))
    idx = np.array(list(sampler))
    assert len(sampler) == 20000 and idx.shape == (20000,)
    freq = np.bincount(idx, minlength=4) / idx.size
    np.testing.assert_allclose(freq, [0.1, 0.3, 0.0, 0.6], atol=0.015)
    assert freq[2] == 0.0  # a zero weight is never drawn


def test_weighted_sampler_without_replacement_draws_distinct_indices():
    sampler = WeightedRandomSampler(backprop.tensor([1.0, 1.0, 5.0, 0.0, 2.0]), 4,
                                    replacement=False, generator=backprop.Generator(1))
    for _ in range(5):
        idx = list(sampler)
        assert sorted(idx) == [0, 1, 2, 4]  # all the non-zero ones, each once


def test_weighted_sampler_is_seeded_and_varies_per_epoch():
    def draws(seed):
        s = WeightedRandomSampler([0.2, 0.3, 0.5], 30, generator=backprop.Generator(seed))
        return list(s), list(s)
    a1, a2 = draws(7)
    b1, b2 = draws(7)
    assert (a1, a2) == (b1, b2)
    assert a1 != a2


def test_weighted_sampler_balances_classes_in_a_loader():
    labels = np.array([0] * 90 + [1] * 10)
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    data = TensorDataset(backprop.tensor(labels))
    sampler = WeightedRandomSampler(weights, 4000, generator=backprop.Generator(0))
    loader = DataLoader(data, batch_size=50, sampler=sampler)
    seen = np.concatenate([batch[0].numpy() for batch in loader])
    assert len(loader) == 80 and seen.shape == (4000,)
    assert abs(seen.mean() - 0.5) < 0.04  # balanced, where the data is 10% ones


def test_weighted_sampler_length_and_attributes_match_torch(oracle):
    w = [0.5, 2.0, 1.0]
    ours = WeightedRandomSampler(w, 7)
    theirs = oracle.utils.data.WeightedRandomSampler(w, 7)
    assert len(ours) == len(theirs) and ours.num_samples == theirs.num_samples
    assert ours.replacement == theirs.replacement
    np.testing.assert_allclose(ours.weights, theirs.weights.numpy())


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(weights=[1.0, 2.0], num_samples=0), ValueError, "num_samples"),
    (dict(weights=[1.0, 2.0], num_samples=2.5), ValueError, "num_samples"),
    (dict(weights=[1.0, 2.0], num_samples=2, replacement=1), ValueError, "replacement"),
    (dict(weights=[[1.0, 2.0]], num_samples=2), ShapeError, r"1d sequence.*\(1, 2\)"),
    (dict(weights=[1.0, -2.0], num_samples=2), ValueError, "non-negative"),
    (dict(weights=[0.0, 0.0], num_samples=2), ValueError, "not all zero"),
    (dict(weights=[1.0, float("nan")], num_samples=2), ValueError, "finite"),
    (dict(weights=[1.0, 0.0, 2.0], num_samples=3, replacement=False), ValueError,
     "without replacement from 2"),
    (dict(weights=["a", "b"], num_samples=2), TypeError, "sequence of numbers"),
])
def test_weighted_sampler_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        WeightedRandomSampler(**kwargs)


# -- get_worker_info, sampler / batch_sampler on the loader ----------------------------------
def test_get_worker_info_is_none_in_the_main_process(oracle):
    assert get_worker_info() is None
    assert oracle.utils.data.get_worker_info() is None
    seen = []

    class Stream(IterableDataset):
        def __iter__(self):
            seen.append(get_worker_info())
            return iter(range(4))

    assert [b.tolist() for b in DataLoader(Stream(), batch_size=2, num_workers=2)] == [[0, 1],
                                                                                        [2, 3]]
    assert seen == [None]


def test_loader_sampler_and_batch_sampler_match_torch(oracle):
    x = np.arange(20.0).reshape(10, 2)
    ours_ds = TensorDataset(backprop.tensor(x))
    theirs_ds = oracle.utils.data.TensorDataset(oracle.tensor(x))
    order = [3, 1, 4, 1, 5, 9, 2, 6]
    ours = [b[0].numpy() for b in DataLoader(ours_ds, batch_size=3, sampler=order)]
    theirs = [b[0].numpy() for b in oracle.utils.data.DataLoader(theirs_ds, batch_size=3,
                                                                 sampler=order)]
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    batches = [[0, 9], [5], [2, 2, 7]]
    ours = [b[0].numpy() for b in DataLoader(ours_ds, batch_sampler=batches)]
    theirs = [b[0].numpy() for b in oracle.utils.data.DataLoader(theirs_ds,
                                                                 batch_sampler=batches)]
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    bs = BatchSampler(SequentialSampler(range(10)), 4, drop_last=True)
    assert list(bs) == list(oracle.utils.data.BatchSampler(range(10), 4, drop_last=True))


def test_subset_random_sampler_is_a_permutation_of_its_indices():
    s = SubsetRandomSampler([7, 3, 11, 5], generator=backprop.Generator(0))
    assert sorted(s) == [3, 5, 7, 11] and len(s) == 4


# -- ChainDataset -----------------------------------------------------------------------------
class Count(IterableDataset):
    def __init__(self, start, stop):
        self.start, self.stop = start, stop

    def __iter__(self):
        return iter(range(self.start, self.stop))

    def __len__(self):
        return self.stop - self.start


def test_chain_dataset_reads_streams_in_turn():
    chain = ChainDataset([Count(0, 3), Count(10, 12)])
    assert list(chain) == [0, 1, 2, 10, 11] and len(chain) == 5
    assert list(Count(0, 2) + Count(5, 6)) == [0, 1, 5]  # IterableDataset.__add__
    assert isinstance(Count(0, 1) + Count(0, 1), ChainDataset)
    # batches run across the boundary between the streams, as in PyTorch
    assert [b.tolist() for b in DataLoader(chain, batch_size=2)] == [[0, 1], [2, 10], [11]]


def test_chain_dataset_rejects_map_style_parts():
    chain = ChainDataset([Count(0, 2), [1, 2, 3]])
    with pytest.raises(TypeError, match="ChainDataset only supports IterableDataset, got list"):
        list(chain)
    with pytest.raises(TypeError, match="ChainDataset only supports IterableDataset"):
        len(chain)


# -- StackDataset -----------------------------------------------------------------------------
def test_stack_dataset_tuples_and_dicts(oracle):
    a = backprop.tensor(np.arange(6.0).reshape(3, 2))
    labels = [0, 1, 0]
    pos = StackDataset(a, labels)
    assert len(pos) == 3
    row, label = pos[1]
    assert row.tolist() == [2.0, 3.0] and label == 1
    named = StackDataset(x=a, y=labels)
    assert set(named[2]) == {"x", "y"} and named[2]["y"] == 0
    batch = next(iter(DataLoader(named, batch_size=3)))
    assert batch["x"].shape == (3, 2) and batch["y"].tolist() == [0, 1, 0]
    ta = oracle.tensor(np.arange(6.0).reshape(3, 2))
    tbatch = next(iter(oracle.utils.data.DataLoader(oracle.utils.data.StackDataset(x=ta, y=labels),
                                                    batch_size=3)))
    np.testing.assert_array_equal(batch["x"].numpy(), tbatch["x"].numpy())
    assert batch["y"].tolist() == tbatch["y"].tolist()
    items = pos.__getitems__([2, 0])
    assert [it[1] for it in items] == [0, 0] and items[0][0].tolist() == [4.0, 5.0]


@pytest.mark.parametrize("args, kwargs, match", [
    ((), {}, "at least one dataset"),
    (([1, 2],), dict(y=[1, 2]), "either tuple-like"),
    (([1, 2], [1, 2, 3]), {}, "size mismatch"),
    ((), dict(x=[1], y=[1, 2]), r"size mismatch.*'x': 1, 'y': 2"),
])
def test_stack_dataset_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        StackDataset(*args, **kwargs)


# -- default_collate --------------------------------------------------------------------------
def test_default_collate_containers_match_torch(oracle):
    batch = [{"a": 1, "b": (2.5, np.array([1.0, 2.0])), "s": "x"},
             {"a": 3, "b": (4.5, np.array([3.0, 4.0])), "s": "y"}]
    ours = default_collate(batch)
    theirs = oracle.utils.data.default_collate(batch)
    assert set(ours) == set(theirs)
    assert ours["a"].tolist() == theirs["a"].tolist() and str(ours["a"].dtype).endswith("int64")
    assert isinstance(ours["b"], list) and isinstance(theirs["b"], list)
    np.testing.assert_allclose(ours["b"][0].numpy(), theirs["b"][0].numpy())
    np.testing.assert_array_equal(ours["b"][1].numpy(), theirs["b"][1].numpy())
    assert ours["s"] == theirs["s"] == ["x", "y"]
    bools = default_collate([True, False])
    assert bools.tolist() == [True, False] and str(bools.dtype).endswith("bool")
