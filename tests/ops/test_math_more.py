"""backprop/ops/math.py and ops/sampling.py beyond the catalogue: edge cases (zeros, ties,
NaN, dtypes), the non-differentiable helpers, dtype facts, errors, and random sampling.
Every comparison is with PyTorch (the ``oracle`` fixture)."""
import math

import numpy as np
import pytest

import backprop
from backprop.errors import DTypeError, IndexOutOfRange, ShapeError


def _pair(torch, x, requires_grad=True):
    x = np.asarray(x)
    rg = requires_grad and x.dtype.kind == "f"
    return (backprop.tensor(x, requires_grad=rg), torch.tensor(x, requires_grad=rg))


def _same(ours, theirs, atol=1e-12, equal_nan=False):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    ours = ours.detach().numpy() if hasattr(ours, "detach") else np.asarray(ours)
    assert ours.shape == theirs.shape
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    np.testing.assert_allclose(ours, theirs, atol=atol, rtol=1e-7, equal_nan=equal_nan)


def _grads_match(torch, fn, tfn, *arrays, atol=1e-12):
    ours_in = [_pair(torch, a)[0] for a in arrays]
    theirs_in = [_pair(torch, a)[1] for a in arrays]
    ours, theirs = fn(*ours_in), tfn(*theirs_in)
    _same(ours, theirs, atol=atol, equal_nan=True)
    v = np.arange(1.0, ours.numel() + 1).reshape(ours.shape)
    ours.backward(backprop.tensor(v))
    theirs.backward(torch.tensor(v))
    for a, b in zip(ours_in, theirs_in):
        if b.requires_grad:
            _same(a.grad, b.grad, atol=atol, equal_nan=True)


# -- element-wise edge cases -----------------------------------------------------------------

def test_xlogy_gradient_at_zero_matches_torch(oracle):
    _grads_match(oracle, backprop.xlogy, oracle.xlogy, np.array([0.0, 1.0, 0.0, 2.0]),
                 np.array([0.5, 3.0, 0.0, np.nan]))


def test_xlogy_values_with_zero_and_nan(oracle):
    x, y = np.array([0.0, 0.0, 1.0, 0.0]), np.array([0.0, np.nan, 0.0, np.inf])
    _same(backprop.xlogy(backprop.tensor(x), backprop.tensor(y)),
          oracle.xlogy(oracle.tensor(x), oracle.tensor(y)), equal_nan=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_erfinv_matches_torch_across_the_range(oracle, dtype):
    y = np.concatenate([np.linspace(-1, 1, 2001), [1 - 1e-7, -1 + 1e-7, 1e-30, 1.5, -2.0]])
    y = y.astype(dtype)
    tol = 1e-12 if dtype == "float64" else 2e-6
    ours = backprop.erfinv(backprop.tensor(y)).numpy()
    theirs = oracle.erfinv(oracle.tensor(y)).numpy()
    assert ours.dtype == theirs.dtype
    finite = np.isfinite(theirs)
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    assert np.array_equal(ours[~finite & ~np.isnan(theirs)], theirs[~finite & ~np.isnan(theirs)])
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=tol, atol=tol)


def test_round_decimals_including_negative(oracle):
    x = np.array([1234.5678, -0.125, 2.5, 15.0, -25.0])
    for d in (-1, 0, 1, 2):
        _same(backprop.round(backprop.tensor(x), decimals=d),
              oracle.round(oracle.tensor(x), decimals=d))


def test_rounding_gradients_are_zeros_not_none(oracle):
    for name in ("floor", "ceil", "round", "trunc"):
        x = backprop.tensor([0.3, 1.7], requires_grad=True)
        getattr(backprop, name)(x).sum().backward()
        assert x.grad is not None and not x.grad.numpy().any(), name
    x = backprop.tensor([0.3, -1.7], requires_grad=True)
    backprop.frac(x).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_nan_to_num_defaults_per_dtype(oracle, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 2.0], dtype=dtype)
    _same(backprop.nan_to_num(backprop.tensor(x)), oracle.nan_to_num(oracle.tensor(x)))


def test_fmod_and_remainder_differ_in_sign(oracle):
    a, b = np.array([-3.5, 3.5, -3.5]), np.array([2.0, -2.0, -2.0])
    _same(backprop.fmod(backprop.tensor(a), backprop.tensor(b)),
          oracle.fmod(oracle.tensor(a), oracle.tensor(b)))
    with pytest.raises(ZeroDivisionError, match="fmod"):
        backprop.fmod(backprop.tensor([1, 2]), backprop.tensor([1, 0]))


def test_logaddexp_does_not_overflow(oracle):
    a, b = np.array([1000.0, -1000.0, 0.0]), np.array([1000.0, -1000.0, -800.0])
    _grads_match(oracle, backprop.logaddexp, oracle.logaddexp, a, b)


def test_lerp_in_place_and_logical_ops(oracle):
    x = backprop.zeros(3)
    x.lerp_(backprop.ones(3), 0.25)
    assert x.tolist() == [0.25, 0.25, 0.25]
    a, b = np.array([0.0, 1.0, 2.0, 0.0]), np.array([1, 0, 3, 0])
    for name in ("logical_and", "logical_or", "logical_xor"):
        _same(getattr(backprop, name)(backprop.tensor(a), backprop.tensor(b)),
              getattr(oracle, name)(oracle.tensor(a), oracle.tensor(b)))
    _same(backprop.signbit(backprop.tensor([-0.0, 0.0, -1.0])),
          oracle.signbit(oracle.tensor([-0.0, 0.0, -1.0])))


# -- scans and order statistics ----------------------------------------------------------------

@pytest.mark.parametrize("x", [
    [[2.0, 0.0, 3.0, 0.0, 1.5]],          # two zeros in one slice
    [[0.0, 0.0, 0.0]],                    # all zeros
    [[1.5, -2.0, 0.5], [0.0, 4.0, 2.0]],  # zero first
])
def test_cumprod_gradient_with_zeros_matches_torch(oracle, x):
    _grads_match(oracle, lambda a: backprop.cumprod(a, -1), lambda a: oracle.cumprod(a, -1),
                 np.array(x))


def test_cumprod_int_and_dtype(oracle):
    x = np.array([1, 2, 3, 4])
    _same(backprop.cumprod(backprop.tensor(x), 0), oracle.cumprod(oracle.tensor(x), 0))
    _same(backprop.tensor(x).cumprod(0, dtype=backprop.float64),
          oracle.tensor(x).cumprod(0, dtype=oracle.float64))


def test_median_without_dim_is_the_lower_one_and_ties_share(oracle):
    x = np.array([[3.0, 1.0], [2.0, 2.0], [5.0, 2.0]])  # sorted: 1 2 2 2 3 5 -> lower: 2
    _grads_match(oracle, backprop.median, oracle.median, x)


def test_median_propagates_nan(oracle):
    x = np.array([[1.0, np.nan, 3.0], [4.0, 2.0, 6.0]])
    _same(backprop.median(backprop.tensor(x)), oracle.median(oracle.tensor(x)), equal_nan=True)
    ours, theirs = backprop.median(backprop.tensor(x), 1), oracle.median(oracle.tensor(x), 1)
    _same(ours.values, theirs.values, equal_nan=True)
    _same(ours.indices, theirs.indices)


def test_median_kthvalue_mode_indices_match_torch(oracle, rng):
    x = rng.standard_normal((4, 5))
    for ours, theirs in [(backprop.median(backprop.tensor(x), 0, keepdim=True),
                          oracle.median(oracle.tensor(x), 0, keepdim=True)),
                         (backprop.kthvalue(backprop.tensor(x), 4),
                          oracle.kthvalue(oracle.tensor(x), 4))]:
        _same(ours.values, theirs.values)
        _same(ours.indices, theirs.indices)
    xi = rng.integers(0, 4, (6, 9))
    ours, theirs = backprop.tensor(xi).mode(0), oracle.tensor(xi).mode(0)
    _same(ours.values, theirs.values)
    _same(ours.indices, theirs.indices)


def test_aminmax_count_nonzero_std_mean(oracle, rng):
    x = rng.standard_normal((3, 4))
    x[0, 1] = 0
    for ours, theirs in zip(backprop.aminmax(backprop.tensor(x), dim=1, keepdim=True),
                            oracle.aminmax(oracle.tensor(x), dim=1, keepdim=True)):
        _same(ours, theirs)
    _same(backprop.count_nonzero(backprop.tensor(x), (0, 1)),
          oracle.count_nonzero(oracle.tensor(x), (0, 1)))
    for ours, theirs in zip(backprop.std_mean(backprop.tensor(x), 0, unbiased=False),
                            oracle.std_mean(oracle.tensor(x), 0, unbiased=False)):
        _same(ours, theirs)


def test_diff_with_append_and_bool(oracle):
    x = np.array([[1.0, 4.0, 9.0], [2.0, 2.0, 0.0]])
    _grads_match(oracle, lambda a, b: backprop.diff(a, 1, 1, append=b),
                 lambda a, b: oracle.diff(a, 1, 1, append=b), x, np.array([[1.0], [0.0]]))
    m = np.array([True, False, False, True])
    _same(backprop.diff(backprop.tensor(m)), oracle.diff(oracle.tensor(m)))


# -- shapes --------------------------------------------------------------------------------------

def test_diagonal_and_unfold_are_views(oracle):
    x = backprop.arange(12.0).reshape(3, 4)
    d = x.diagonal(1)
    x[0, 1] = 100.0
    assert d.tolist() == [100.0, 6.0, 11.0]
    w = x.unfold(1, 2, 2)
    x[2, 3] = -1.0
    assert w[2, 1].tolist() == [10.0, -1.0]


def test_write_through_diagonal_view_reaches_base_gradient(oracle):
    a, ta = _pair(oracle, np.arange(9.0).reshape(3, 3))
    y, ty = a * 2, ta * 2
    y.diagonal().mul_(3.0)
    ty.diagonal().mul_(3.0)
    _same(y, ty)
    y.sum().backward()
    ty.sum().backward()
    _same(a.grad, ta.grad)


def test_meshgrid_three_inputs_both_indexings(oracle):
    a, b, c = np.arange(2.0), np.arange(3.0), np.arange(4.0)
    for indexing in ("ij", "xy"):
        ours = backprop.meshgrid(*(backprop.tensor(v) for v in (a, b, c)), indexing=indexing)
        theirs = oracle.meshgrid(*(oracle.tensor(v) for v in (a, b, c)), indexing=indexing)
        for o, t in zip(ours, theirs):
            _same(o, t)


def test_repeat_interleave_counts_only_and_stacks(oracle):
    _same(backprop.repeat_interleave(backprop.tensor([2, 0, 3])),
          oracle.repeat_interleave(oracle.tensor([2, 0, 3])))
    for name, a, b in [("hstack", np.array(1.0), np.array([2.0, 3.0])),
                       ("vstack", np.array([1.0, 4.0]), np.array([2.0, 3.0])),
                       ("dstack", np.array([1.0, 4.0]), np.ones((1, 2, 2))),
                       ("column_stack", np.array([1.0, 4.0]), np.ones((2, 3)))]:
        _same(getattr(backprop, name)([backprop.tensor(a), backprop.tensor(b)]),
              getattr(oracle, name)([oracle.tensor(a), oracle.tensor(b)]))
    for ours, theirs in zip(backprop.broadcast_tensors(backprop.ones(3, 1), backprop.ones(4)),
                            oracle.broadcast_tensors(oracle.ones(3, 1), oracle.ones(4))):
        assert tuple(ours.shape) == tuple(theirs.shape)
    assert backprop.broadcast_shapes((3, 1), (4,)) == oracle.broadcast_shapes((3, 1), (4,))


def test_block_diag_promotes_and_kron_of_ints(oracle):
    ours = backprop.block_diag(backprop.tensor([[1, 2]]), backprop.tensor([0.5]))
    theirs = oracle.block_diag(oracle.tensor([[1, 2]]), oracle.tensor([0.5]))
    _same(ours, theirs)
    _same(backprop.kron(backprop.tensor([1, 2]), backprop.tensor([[1, 10]])),
          oracle.kron(oracle.tensor([1, 2]), oracle.tensor([[1, 10]])))


def test_cdist_zero_distance_has_zero_gradient(oracle):
    x = np.array([[0.0, 1.0], [2.0, 2.0]])
    _grads_match(oracle, lambda a, b: backprop.cdist(a, b), lambda a, b: oracle.cdist(a, b),
                 x, x.copy())


@pytest.mark.parametrize("call, error, words", [
    (lambda: backprop.diagonal(backprop.ones(3)), ShapeError, "diagonal"),
    (lambda: backprop.diagonal(backprop.ones(2, 2), 0, 1, -1), ShapeError, "identical"),
    (lambda: backprop.roll(backprop.ones(2, 2), (1, 2), 0), ShapeError, "roll"),
    (lambda: backprop.kthvalue(backprop.ones(3), 4), ShapeError, "kthvalue"),
    (lambda: backprop.ones(3).unfold(0, 4, 1), ShapeError, "unfold"),
    (lambda: backprop.ones(3).unfold(0, 2, 0), ValueError, "step"),
    (lambda: backprop.tensordot(backprop.ones(2, 3), backprop.ones(2, 3), 1), ShapeError,
     "tensordot"),
    (lambda: backprop.repeat_interleave(backprop.ones(3), backprop.tensor([1, 2]), 0),
     ShapeError, "repeat_interleave"),
    (lambda: backprop.take(backprop.ones(2, 2), backprop.tensor([4])), IndexOutOfRange, "take"),
    (lambda: backprop.trace(backprop.ones(2, 2, 2)), ShapeError, "trace"),
    (lambda: backprop.frac(backprop.tensor([1, 2])), DTypeError, "frac"),
    (lambda: backprop.meshgrid(backprop.ones(2), indexing="ab"), ValueError, "meshgrid"),
    (lambda: backprop.block_diag(backprop.ones(1, 1, 1)), ShapeError, "block_diag"),
    (lambda: backprop.cdist(backprop.ones(2, 3), backprop.ones(2, 4)), ShapeError, "cdist"),
    (lambda: backprop.atan2(backprop.ones(2), backprop.ones(3)), ShapeError, "atan2"),
    (lambda: backprop.tan([1.0]), TypeError, "tan"),
    (lambda: backprop.bincount(backprop.tensor([1.5])), ShapeError, "bincount"),
    (lambda: backprop.histc(backprop.tensor([1, 2])), DTypeError, "histc"),
    (lambda: backprop.finfo(backprop.int32), TypeError, "finfo"),
    (lambda: backprop.iinfo(backprop.float32), TypeError, "iinfo"),
    (lambda: backprop.iinfo(backprop.bool), TypeError, "iinfo"),
])
def test_bad_input_names_the_op(call, error, words):
    with pytest.raises(error, match=words):
        call()


# -- indices, counts, searching ------------------------------------------------------------------

def test_nonzero_unique_bincount(oracle):
    x = np.array([[0, 3, 3], [1, 0, 3]])
    _same(backprop.nonzero(backprop.tensor(x)), oracle.nonzero(oracle.tensor(x)))
    for o, t in zip(backprop.tensor(x).nonzero(as_tuple=True),
                    oracle.tensor(x).nonzero(as_tuple=True)):
        _same(o, t)
    for kw in ({}, {"return_inverse": True, "return_counts": True},
               {"dim": 1, "return_inverse": True}):
        ours = backprop.unique(backprop.tensor(x), **kw)
        theirs = oracle.unique(oracle.tensor(x), **kw)
        for o, t in zip(ours if isinstance(ours, tuple) else (ours,),
                        theirs if isinstance(theirs, tuple) else (theirs,)):
            _same(o, t)
    v = np.array([0, 2, 2, 5])
    _same(backprop.bincount(backprop.tensor(v), minlength=7),
          oracle.bincount(oracle.tensor(v), minlength=7))
    for w in (np.array([0.5, 1.0, 2.0, 3.0], dtype=np.float32), np.array([1, 2, 3, 4])):
        _same(backprop.bincount(backprop.tensor(v), backprop.tensor(w)),
              oracle.bincount(oracle.tensor(v), oracle.tensor(w)))


def test_searchsorted_bucketize_histc(oracle, rng):
    seq = np.array([1.0, 3.0, 3.0, 5.0])
    vals = np.array([[0.0, 3.0, 4.0, 9.0]])
    for kw in ({}, {"right": True}, {"side": "right"}, {"out_int32": True}):
        _same(backprop.searchsorted(backprop.tensor(seq), backprop.tensor(vals), **kw),
              oracle.searchsorted(oracle.tensor(seq), oracle.tensor(vals), **kw))
    rows = np.sort(rng.standard_normal((3, 5)), axis=1)
    q = rng.standard_normal((3, 2))
    _same(backprop.searchsorted(backprop.tensor(rows), backprop.tensor(q)),
          oracle.searchsorted(oracle.tensor(rows), oracle.tensor(q)))
    for right in (False, True):
        _same(backprop.bucketize(backprop.tensor(vals), backprop.tensor(seq), right=right),
              oracle.bucketize(oracle.tensor(vals), oracle.tensor(seq), right=right))
    x = rng.standard_normal(50).astype(np.float32)
    _same(backprop.histc(backprop.tensor(x), 7), oracle.histc(oracle.tensor(x), 7))
    _same(backprop.tensor(x).histc(4, -1, 1), oracle.tensor(x).histc(4, -1, 1))


# -- dtype facts -----------------------------------------------------------------------------------

_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]


def test_finfo_iinfo_match_torch(oracle):
    for name in ("float16", "float32", "float64"):
        ours, theirs = backprop.finfo(getattr(backprop, name)), oracle.finfo(getattr(oracle, name))
        for attr in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"):
            assert getattr(ours, attr) == getattr(theirs, attr), (name, attr)
    assert backprop.finfo().eps == oracle.finfo().eps
    for name in ("uint8", "int8", "int16", "int32", "int64"):
        ours, theirs = backprop.iinfo(getattr(backprop, name)), oracle.iinfo(getattr(oracle, name))
        assert (ours.bits, ours.max, ours.min, ours.dtype) == \
               (theirs.bits, theirs.max, theirs.min, theirs.dtype)


def test_promote_types_and_can_cast_match_torch(oracle):
    for a in _DTYPES:
        for b in _DTYPES:
            ba, bb = getattr(backprop, a), getattr(backprop, b)
            ta, tb = getattr(oracle, a), getattr(oracle, b)
            assert str(backprop.promote_types(ba, bb)).split(".")[-1] == \
                   str(oracle.promote_types(ta, tb)).split(".")[-1], (a, b)
            assert backprop.can_cast(ba, bb) == oracle.can_cast(ta, tb), (a, b)


@pytest.mark.parametrize("a, b", [
    (np.array([1], dtype=np.int32), np.array(1.0)),
    (np.array([1.0], dtype=np.float16), 1.0),
    (np.array([True]), 1),
    (np.array([1]), 2.5),
    (np.array([1.0], dtype=np.float32), np.array([1.0])),
    (np.array(1), np.array([1], dtype=np.uint8)),
    (np.array(1.0, dtype=np.float32), np.array(2, dtype=np.int64)),
])
def test_result_type_matches_torch(oracle, a, b):
    ours = backprop.result_type(backprop.tensor(a),
                                backprop.tensor(b) if isinstance(b, np.ndarray) else b)
    theirs = oracle.result_type(oracle.tensor(a),
                                oracle.tensor(b) if isinstance(b, np.ndarray) else b)
    assert str(ours).split(".")[-1] == str(theirs).split(".")[-1]


def test_small_questions(oracle):
    assert backprop.is_tensor(backprop.ones(1)) and not backprop.is_tensor(np.ones(1))
    assert backprop.is_floating_point(backprop.ones(1))
    assert not backprop.is_floating_point(backprop.tensor([1]))
    assert backprop.numel(backprop.ones(2, 3)) == 6


# -- sampling --------------------------------------------------------------------------------------

def test_multinomial_is_seeded_and_has_the_right_frequencies():
    probs = backprop.tensor([0.2, 0.3, 0.5])
    backprop.manual_seed(5)
    a = backprop.multinomial(probs, 30000, replacement=True)
    backprop.manual_seed(5)
    b = backprop.multinomial(probs, 30000, replacement=True)
    assert a.dtype == backprop.int64 and a.shape == (30000,)
    assert a.tolist() == b.tolist()
    freq = np.bincount(a.numpy(), minlength=3) / 30000
    np.testing.assert_allclose(freq, [0.2, 0.3, 0.5], atol=0.015)
    rows = backprop.multinomial(backprop.tensor([[1.0, 0.0, 3.0]] * 20000), 1)
    assert rows.shape == (20000, 1)
    np.testing.assert_allclose(np.bincount(rows.numpy().ravel(), minlength=3) / 20000,
                               [0.25, 0.0, 0.75], atol=0.015)


def test_multinomial_without_replacement_draws_distinct_positive_categories():
    w = backprop.tensor([[0.0, 1.0, 5.0, 0.0, 2.0]] * 200)
    out = backprop.multinomial(w, 3).numpy()
    assert out.shape == (200, 3)
    assert all(sorted(row) == [1, 2, 4] for row in out)
    # the heaviest category comes first most often (weighted sampling, not uniform)
    assert (out[:, 0] == 2).mean() > 0.5
    g = backprop.Generator(7)
    x = backprop.multinomial(backprop.ones(6), 6, generator=g)
    assert sorted(x.tolist()) == list(range(6))
    assert x.tolist() == backprop.multinomial(backprop.ones(6), 6,
                                              generator=backprop.Generator(7)).tolist()


@pytest.mark.parametrize("call, error", [
    (lambda: backprop.multinomial(backprop.tensor([0.5, 0.5]), 3), ValueError),
    (lambda: backprop.multinomial(backprop.tensor([1.0, 0.0, 0.0]), 2), ValueError),
    (lambda: backprop.multinomial(backprop.tensor([-1.0, 2.0]), 1), ValueError),
    (lambda: backprop.multinomial(backprop.tensor([0.0, 0.0]), 1, True), ValueError),
    (lambda: backprop.multinomial(backprop.ones(2, 2, 2), 1), ShapeError),
    (lambda: backprop.bernoulli(backprop.tensor([1.5])), ValueError),
    (lambda: backprop.zeros(2).exponential_(-1.0), ValueError),
    (lambda: backprop.zeros(2).geometric_(1.5), ValueError),
    (lambda: backprop.zeros(2).random_(5, 2), ValueError),
])
def test_bad_sampling_arguments(call, error):
    with pytest.raises(error):
        call()


def test_bernoulli_and_in_place_fills():
    p = backprop.full((4000,), 0.3, dtype=backprop.float64)
    b = backprop.bernoulli(p)
    assert b.dtype == backprop.float64 and set(np.unique(b.numpy())) <= {0.0, 1.0}
    assert abs(b.numpy().mean() - 0.3) < 0.03
    assert abs(backprop.bernoulli(backprop.zeros(4000), 0.8).numpy().mean() - 0.8) < 0.03
    assert abs(backprop.zeros(4000).bernoulli_(0.6).numpy().mean() - 0.6) < 0.03
    r = backprop.zeros(4000).random_(3, 7).numpy()
    assert set(np.unique(r)) == {3.0, 4.0, 5.0, 6.0}
    assert set(np.unique(backprop.zeros(2000, dtype=backprop.int64).random_(4).numpy())) == \
        {0, 1, 2, 3}
    assert backprop.zeros(2000).random_().numpy().max() <= 2 ** 24
    e = backprop.zeros(20000, dtype=backprop.float64).exponential_(2.0).numpy()
    assert e.min() > 0 and abs(e.mean() - 0.5) < 0.02
    gm = backprop.zeros(20000).geometric_(0.25).numpy()
    assert gm.min() >= 1 and abs(gm.mean() - 4.0) < 0.15
    ln = backprop.zeros(20000, dtype=backprop.float64).log_normal_(0.0, 0.5).numpy()
    assert abs(np.log(ln).std() - 0.5) < 0.02
    c = backprop.zeros(20001, dtype=backprop.float64).cauchy_(1.0, 2.0).numpy()
    assert abs(np.median(c) - 1.0) < 0.1


def test_random_fill_inside_the_graph_cuts_the_gradient():
    x = backprop.ones(3, requires_grad=True)
    y = x * 2
    y.uniform_()  # existing fill, for comparison
    z = x * 3
    z.exponential_()
    (y.sum() + z.sum() + x.sum()).backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(Exception, match="leaf"):
        x.bernoulli_(0.5)


def test_normal_overloads_broadcast_and_carry_gradients(oracle):
    mean = backprop.zeros(3, requires_grad=True)
    std = backprop.ones(3, requires_grad=True)
    for out, shape in [(backprop.normal(mean, 1.0), (3,)), (backprop.normal(0.0, std), (3,)),
                       (backprop.normal(mean, std), (3,)),
                       (backprop.normal(0.0, 1.0, (2, 3)), (2, 3))]:
        assert tuple(out.shape) == shape
    backprop.normal(mean, std).sum().backward()
    assert mean.grad.tolist() == [1.0, 1.0, 1.0] and std.grad is not None


def test_out_keyword_reaches_the_new_functions(oracle):
    x = np.array([1.5, -2.5, 0.25])
    for name in ("floor", "atan", "erfinv", "reciprocal"):
        ours, theirs = backprop.empty(3), oracle.empty(3, dtype=oracle.float64)
        arg = x / 3 if name == "erfinv" else x
        getattr(backprop, name)(backprop.tensor(arg).float(), out=ours)
        getattr(oracle, name)(oracle.tensor(arg), out=theirs)
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
