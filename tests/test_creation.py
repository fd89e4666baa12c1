"""Creation functions: values, shapes, default dtypes as in PyTorch, seeding, memory sharing."""
from __future__ import annotations

import numpy as np
import pytest

import backprop
from backprop import DTypeError, ShapeError


def dtype_name(t) -> str:
    return str(t.dtype).replace("torch.", "").replace("backprop.", "")


# -- tensor() and its default dtypes ------------------------------------------------------

DATA = [
    pytest.param(lambda: 1.5, id="python-float"),
    pytest.param(lambda: 3, id="python-int"),
    pytest.param(lambda: True, id="python-bool"),
    pytest.param(lambda: [1, 2], id="int-list"),
    pytest.param(lambda: [1, 2.5], id="mixed-list"),
    pytest.param(lambda: [[1, 2], [3, 4]], id="nested-int"),
    pytest.param(lambda: [True, False], id="bool-list"),
    pytest.param(lambda: np.array([1.0, 2.0]), id="np-float64"),
    pytest.param(lambda: np.array([1.0, 2.0], dtype=np.float32), id="np-float32"),
    pytest.param(lambda: np.array([1, 2], dtype=np.int32), id="np-int32"),
    pytest.param(lambda: np.float64(1.5), id="np-float64-scalar"),
    pytest.param(lambda: np.int64(3), id="np-int64-scalar"),
]


@pytest.mark.parametrize("make", DATA)
def test_tensor_default_dtype_matches_torch(make, oracle):
    ours, theirs = backprop.tensor(make()), oracle.tensor(make())
    assert dtype_name(ours) == dtype_name(theirs)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_default_dtypes_without_torch():
    assert backprop.tensor([1.0, 2.0]).dtype == backprop.float32
    assert backprop.tensor([1, 2]).dtype == backprop.int64
    assert backprop.tensor(np.array([1.0])).dtype == backprop.float64
    assert backprop.tensor([True]).dtype == backprop.bool


def test_tensor_with_explicit_dtype():
    t = backprop.tensor([1, 2], dtype=backprop.float64)
    assert t.dtype == backprop.float64
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])
    assert backprop.tensor([1.7], dtype=backprop.int64).tolist() == [1]


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0])
    t = backprop.tensor(a)
    a[0] = 100.0
    assert t.tolist() == [1.0, 2.0]
    u = backprop.tensor(t)
    u.add_(1.0)
    assert t.tolist() == [1.0, 2.0]


def test_tensor_requires_grad():
    t = backprop.tensor([1.0], requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None


def test_tensor_from_list_of_tensors():
    t = backprop.tensor([backprop.tensor(1.0), backprop.tensor(2.0)])
    assert t.shape == (2,)
    assert t.tolist() == [1.0, 2.0]


def test_bad_data():
    with pytest.raises(ShapeError):
        backprop.tensor([[1.0, 2.0], [3.0]])
    with pytest.raises(DTypeError):
        backprop.tensor(["a", "b"])


# -- constant fills -------------------------------------------------------------------------


@pytest.mark.parametrize("fn,value", [(backprop.zeros, 0.0), (backprop.ones, 1.0),
                                      (backprop.empty, None)])
def test_fills(fn, value):
    a, b = fn(2, 3), fn((2, 3))
    for t in (a, b):
        assert t.shape == (2, 3) and t.dtype == backprop.float32
        if value is not None:
            assert np.all(t.numpy() == value)
    assert fn(4, dtype=backprop.float64).dtype == backprop.float64
    assert fn().shape == ()
    assert fn(0, 3).shape == (0, 3)
    assert fn(2, requires_grad=True).requires_grad


def test_full_infers_dtype_like_torch(oracle):
    for v in (7, 1.5, True):
        assert dtype_name(backprop.full((2,), v)) == dtype_name(oracle.full((2,), v))
    t = backprop.full((2, 3), 0.25)
    np.testing.assert_array_equal(t.numpy(), np.full((2, 3), 0.25, np.float32))
    assert backprop.full((2,), 7, dtype=backprop.float64).dtype == backprop.float64


def test_like_functions_keep_shape_and_dtype():
    base = backprop.tensor(np.arange(6.0).reshape(2, 3))  # float64
    for fn in (backprop.zeros_like, backprop.ones_like, backprop.randn_like, backprop.rand_like):
        out = fn(base)
        assert out.shape == (2, 3) and out.dtype == backprop.float64, fn.__name__
        assert not out.requires_grad
    assert np.all(backprop.zeros_like(base).numpy() == 0)
    assert np.all(backprop.ones_like(base).numpy() == 1)
    assert np.all(backprop.full_like(base, 2.5).numpy() == 2.5)
    ints = backprop.tensor([1, 2])
    assert backprop.zeros_like(ints).dtype == backprop.int64
    assert backprop.ones_like(ints, dtype=backprop.float32).dtype == backprop.float32
    assert backprop.zeros_like(base, requires_grad=True).requires_grad


# -- ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(5,), (2, 7), (0, 10, 3), (0.0, 1.0, 0.25), (1, 4, 0.5),
                                  (5, 0, -1), (-1.5, 1.5, 0.5)])
def test_arange_matches_torch(args, oracle):
    ours, theirs = backprop.arange(*args), oracle.arange(*args)
    assert dtype_name(ours) == dtype_name(theirs)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy())


def test_arange_dtype_and_errors():
    assert backprop.arange(3, dtype=backprop.float64).dtype == backprop.float64
    with pytest.raises(ValueError):
        backprop.arange(0, 5, 0)


@pytest.mark.parametrize("args", [(0, 1, 5), (-2.0, 3.0, 11), (1, 1, 1), (0, 1, 0)])
def test_linspace_matches_torch(args, oracle):
    ours, theirs = backprop.linspace(*args), oracle.linspace(*args)
    assert dtype_name(ours) == dtype_name(theirs)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_eye():
    np.testing.assert_array_equal(backprop.eye(3).numpy(), np.eye(3))
    e = backprop.eye(2, 3)
    assert e.shape == (2, 3) and e.dtype == backprop.float32
    np.testing.assert_array_equal(e.numpy(), np.eye(2, 3))
    assert backprop.eye(2, dtype=backprop.float64).dtype == backprop.float64


# -- random ----------------------------------------------------------------------------------


def test_rand_and_randn_shapes_and_dtypes():
    r = backprop.rand(1000)
    assert r.dtype == backprop.float32 and r.shape == (1000,)
    assert r.numpy().min() >= 0.0 and r.numpy().max() < 1.0
    n = backprop.randn(2, 3, dtype=backprop.float64)
    assert n.shape == (2, 3) and n.dtype == backprop.float64
    big = backprop.randn(20000).numpy()
    assert abs(big.mean()) < 0.05 and abs(big.std() - 1.0) < 0.05
    assert backprop.randn(2, requires_grad=True).requires_grad
    with pytest.raises(DTypeError):
        backprop.randn(2, dtype=backprop.int64)


def test_manual_seed_reproducible():
    backprop.manual_seed(42)
    a = backprop.randn(5).numpy().copy()
    r = backprop.rand(3).numpy().copy()
    backprop.manual_seed(42)
    np.testing.assert_array_equal(backprop.randn(5).numpy(), a)
    np.testing.assert_array_equal(backprop.rand(3).numpy(), r)
    backprop.manual_seed(43)
    assert not np.array_equal(backprop.randn(5).numpy(), a)


def test_manual_seed_covers_in_place_random_and_integers():
    def draw():
        backprop.manual_seed(7)
        w = backprop.zeros(4)
        w.normal_()
        u = backprop.zeros(4).uniform_(-1, 1)
        return (w.tolist(), u.tolist(), backprop.randint(0, 10, (5,)).tolist(),
                backprop.randperm(6).tolist())

    assert draw() == draw()


def test_private_generator_does_not_disturb_global_stream():
    backprop.manual_seed(0)
    expected = backprop.randn(3).numpy().copy()
    backprop.manual_seed(0)
    g = backprop.Generator(99)
    first = backprop.randn(3, generator=g).numpy().copy()
    np.testing.assert_array_equal(backprop.randn(3).numpy(), expected)
    g.manual_seed(99)
    np.testing.assert_array_equal(backprop.randn(3, generator=g).numpy(), first)


def test_rng_state_round_trip():
    state = backprop.get_rng_state()
    a = backprop.randn(4).numpy().copy()
    backprop.set_rng_state(state)
    np.testing.assert_array_equal(backprop.randn(4).numpy(), a)


def test_randint_and_randperm():
    r = backprop.randint(3, 8, (100,))
    assert r.dtype == backprop.int64
    assert r.numpy().min() >= 3 and r.numpy().max() < 8
    p = backprop.randperm(10)
    assert sorted(p.tolist()) == list(range(10)) and p.dtype == backprop.int64


# -- sharing memory ---------------------------------------------------------------------------


def test_from_numpy_shares_memory():
    a = np.arange(4.0)
    t = backprop.from_numpy(a)
    assert t.dtype == backprop.float64
    a[0] = 10.0
    assert t.tolist()[0] == 10.0
    t.add_(1.0)
    assert a[1] == 2.0
    assert np.shares_memory(t.numpy(), a)


def test_from_numpy_keeps_dtype_and_rejects_non_arrays():
    assert backprop.from_numpy(np.zeros(2, np.int32)).dtype == backprop.int32
    with pytest.raises(TypeError):
        backprop.from_numpy([1.0, 2.0])


def test_as_tensor_shares_when_it_can():
    a = np.ones(3)
    assert np.shares_memory(backprop.as_tensor(a).numpy(), a)
    t = backprop.tensor([1.0])
    assert backprop.as_tensor(t) is t
    assert backprop.as_tensor([1, 2]).dtype == backprop.int64


# -- arguments ------------------------------------------------------------------------------


def test_size_arguments_are_checked():
    with pytest.raises(ShapeError, match="-1"):
        backprop.zeros(2, -1)
    with pytest.raises(TypeError):
        backprop.ones(2.5)
    with pytest.raises(TypeError):
        backprop.randn("3")


def test_device_argument():
    assert backprop.zeros(2, device="cpu").device == "cpu"
    with pytest.raises(ValueError, match="cuda"):
        backprop.zeros(2, device="cuda")


def test_integer_tensors_cannot_be_created_requiring_grad():
    with pytest.raises(DTypeError):
        backprop.arange(5, requires_grad=True)
    with pytest.raises(DTypeError):
        backprop.full((2,), 3, requires_grad=True)
    assert backprop.arange(5.0, requires_grad=True).requires_grad
