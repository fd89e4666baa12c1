"""nn.utils.rnn (pack / pad utilities) against torch.nn.utils.rnn: values, indices, gradients."""
import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.errors import ShapeError
from backprop.nn.utils import rnn as R

LENGTHS = [[3, 3, 1], [2, 5, 1, 5], [4], [1, 2, 3]]


def _leaf(torch, a):
    return backprop.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _same_packed(ours, theirs):
    np.testing.assert_allclose(ours.data.detach().numpy(), theirs.data.detach().numpy())
    np.testing.assert_array_equal(ours.batch_sizes.numpy(), theirs.batch_sizes.numpy())
    assert ours.batch_sizes.dtype == backprop.int64
    for a, b in [(ours.sorted_indices, theirs.sorted_indices),
                 (ours.unsorted_indices, theirs.unsorted_indices)]:
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("lengths", LENGTHS, ids=str)
@pytest.mark.parametrize("batch_first", [False, True], ids=["tf", "bf"])
@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["any", "sorted"])
def test_pack_and_pad_match_torch(oracle, lengths, batch_first, enforce_sorted):
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    TR = oracle.nn.utils.rnn
    steps, batch = max(lengths), len(lengths)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, 2) if batch_first else (steps, batch, 2))
    bx, tx = _leaf(oracle, x)
    ours = R.pack_padded_sequence(bx, lengths, batch_first, enforce_sorted)
    theirs = TR.pack_padded_sequence(tx, oracle.tensor(lengths), batch_first, enforce_sorted)
    _same_packed(ours, theirs)
    for total_length in (None, steps + 2):
        bpad, blen = R.pad_packed_sequence(ours, batch_first, padding_value=-1.5,
                                           total_length=total_length)
        tpad, tlen = TR.pad_packed_sequence(theirs, batch_first, padding_value=-1.5,
                                            total_length=total_length)
        np.testing.assert_allclose(bpad.detach().numpy(), tpad.detach().numpy())
        np.testing.assert_array_equal(blen.numpy(), tlen.numpy())
        assert blen.dtype == backprop.int64
    w = rng.standard_normal(tuple(tpad.shape))
    (bpad * backprop.tensor(w)).sum().backward()
    (tpad * oracle.tensor(w)).sum().backward()
    np.testing.assert_allclose(bx.grad.numpy(), tx.grad.numpy())  # zero on the padding


@pytest.mark.parametrize("batch_first", [False, True], ids=["tf", "bf"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_sequence_matches_torch(oracle, batch_first, side):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((n, 2, 3)) for n in (2, 4, 1)]
    ours = [backprop.tensor(a, requires_grad=True) for a in arrays]
    theirs = [oracle.tensor(a, requires_grad=True) for a in arrays]
    b = R.pad_sequence(ours, batch_first=batch_first, padding_value=7.0, padding_side=side)
    t = oracle.nn.utils.rnn.pad_sequence(theirs, batch_first=batch_first, padding_value=7.0,
                                         padding_side=side)
    np.testing.assert_allclose(b.detach().numpy(), t.detach().numpy())
    w = rng.standard_normal(tuple(t.shape))
    (b * backprop.tensor(w)).sum().backward()
    (t * oracle.tensor(w)).sum().backward()
    for o, th in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.numpy(), th.grad.numpy())


@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["any", "sorted"])
def test_pack_sequence_and_unpack_match_torch(oracle, enforce_sorted):
    rng = np.random.default_rng(2)
    sizes = (4, 3, 1) if enforce_sorted else (1, 4, 3)
    arrays = [rng.standard_normal((n, 2)) for n in sizes]
    ours = R.pack_sequence([backprop.tensor(a) for a in arrays], enforce_sorted=enforce_sorted)
    theirs = oracle.nn.utils.rnn.pack_sequence([oracle.tensor(a) for a in arrays],
                                               enforce_sorted=enforce_sorted)
    _same_packed(ours, theirs)
    back = R.unpack_sequence(ours)
    for got, a in zip(back, arrays):
        np.testing.assert_allclose(got.numpy(), a)
    padded = R.pad_sequence([backprop.tensor(a) for a in arrays])
    for got, a in zip(R.unpad_sequence(padded, [len(a) for a in arrays]), arrays):
        np.testing.assert_allclose(got.numpy(), a)


def test_reachable_as_nn_utils_rnn():
    assert nn.utils.rnn.pad_sequence is R.pad_sequence
    packed = nn.utils.rnn.pack_sequence([backprop.ones(3), backprop.ones(2)])
    assert packed.batch_sizes.tolist() == [2, 2, 1]
    data, batch_sizes, sorted_indices, unsorted_indices = packed  # a named tuple, as torch's
    assert sorted_indices is None and unsorted_indices is None
    assert packed._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    assert packed.to(backprop.float64).data.dtype == backprop.float64


def test_errors_name_the_function():
    x = backprop.zeros(3, 2)
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        R.pack_padded_sequence(x, [1, 3])
    with pytest.raises(RuntimeError, match="greater than 0"):
        R.pack_padded_sequence(x, [3, 0])
    with pytest.raises(ShapeError, match="pack_padded_sequence: expected 2 lengths"):
        R.pack_padded_sequence(x, [3])
    with pytest.raises(ShapeError, match="exceeds"):
        R.pack_padded_sequence(x, [4, 1])
    with pytest.raises(ValueError, match="total_length"):
        R.pad_packed_sequence(R.pack_padded_sequence(x, [3, 1]), total_length=2)
    with pytest.raises(ValueError, match="padding_side"):
        R.pad_sequence([x], padding_side="middle")
    with pytest.raises(ShapeError, match="trailing dims"):
        R.pad_sequence([backprop.zeros(2, 3), backprop.zeros(2, 4)])
    with pytest.raises(TypeError, match="PackedSequence"):
        R.pad_packed_sequence(x)
