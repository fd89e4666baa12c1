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


# -- PyTorch's keywords on every creation function ---------------------------------------------

def _same(ours, theirs, values=True):
    assert ours.shape == tuple(theirs.shape), (ours.shape, theirs.shape)
    assert dtype_name(ours) == dtype_name(theirs)
    assert ours.requires_grad == theirs.requires_grad
    if values:
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6)


# Each maker gets the library as L and builds with all of PyTorch's keywords it has.
KEYWORD_MAKERS = {
    "tensor": (lambda L: L.tensor([[1.0, 2.0]], dtype=L.float64, device="cpu",
                                  requires_grad=True, pin_memory=False), True),
    "as_tensor": (lambda L: L.as_tensor([1, 2], dtype=L.float32, device="cpu"), True),
    "zeros": (lambda L: L.zeros(2, 3, dtype=L.float64, layout=L.strided, device="cpu",
                                requires_grad=True), True),
    "ones": (lambda L: L.ones((2,), dtype=L.int32, layout=L.strided, device=L.device("cpu"),
                              requires_grad=False), True),
    "empty": (lambda L: L.empty(2, 2, dtype=L.float32, layout=L.strided, device="cpu",
                                requires_grad=True, pin_memory=False,
                                memory_format=L.contiguous_format), False),
    "full": (lambda L: L.full((2, 2), 1.5, dtype=L.float64, layout=L.strided, device="cpu",
                              requires_grad=True), True),
    "arange": (lambda L: L.arange(1, 7, 2, dtype=L.float64, layout=L.strided, device="cpu",
                                  requires_grad=True), True),
    "linspace": (lambda L: L.linspace(-1, 1, 5, dtype=L.float64, layout=L.strided,
                                      device="cpu", requires_grad=True), True),
    "logspace": (lambda L: L.logspace(0, 3, 4, base=2, dtype=L.float64, layout=L.strided,
                                      device="cpu", requires_grad=True), True),
    "eye": (lambda L: L.eye(2, 3, dtype=L.int64, layout=L.strided, device="cpu"), True),
    "rand": (lambda L: L.rand(2, 3, generator=None, dtype=L.float64, layout=L.strided,
                              device="cpu", requires_grad=True, pin_memory=False), False),
    "randn": (lambda L: L.randn((4,), generator=None, dtype=L.float64, layout=L.strided,
                                device="cpu", requires_grad=True, pin_memory=False), False),
    "randint": (lambda L: L.randint(0, 5, (3, 2), generator=None, dtype=L.int32,
                                    layout=L.strided, device="cpu", requires_grad=False), False),
    "randperm": (lambda L: L.randperm(5, generator=None, dtype=L.float32, layout=L.strided,
                                      device="cpu", requires_grad=True, pin_memory=False), False),
    "normal": (lambda L: L.normal(1.0, 2.0, (3,), generator=None, dtype=L.float64,
                                  layout=L.strided, device="cpu", requires_grad=True,
                                  pin_memory=False), False),
    "zeros_like": (lambda L: L.zeros_like(L.ones(2, dtype=L.int32), dtype=L.float64,
                                          layout=L.strided, device="cpu", requires_grad=True,
                                          memory_format=L.preserve_format), True),
    "ones_like": (lambda L: L.ones_like(L.ones(2, 2), dtype=None, layout=None, device="cpu",
                                        requires_grad=True, memory_format=L.preserve_format),
                  True),
    "empty_like": (lambda L: L.empty_like(L.ones(3, dtype=L.float64), device="cpu",
                                          requires_grad=True), False),
    "full_like": (lambda L: L.full_like(L.ones(2, dtype=L.int64), 2.7, layout=L.strided,
                                        device="cpu", memory_format=L.preserve_format), True),
    "rand_like": (lambda L: L.rand_like(L.ones(2, dtype=L.float64), generator=None,
                                        device="cpu", requires_grad=True), False),
    "randn_like": (lambda L: L.randn_like(L.ones(2, 2), generator=None, dtype=L.float64,
                                          device="cpu", requires_grad=True), False),
    "randint_like": (lambda L: L.randint_like(L.ones(3), 3, 9, generator=None, device="cpu",
                                              memory_format=L.preserve_format), False),
}


@pytest.mark.parametrize("name", sorted(KEYWORD_MAKERS))
def test_creation_takes_torchs_keywords(name, oracle):
    make, deterministic = KEYWORD_MAKERS[name]
    _same(make(backprop), make(oracle), values=deterministic)


@pytest.mark.parametrize("name", sorted(KEYWORD_MAKERS))
def test_creation_refuses_other_devices_layouts_and_pinned_memory(name):
    import inspect

    make = KEYWORD_MAKERS[name][0]
    source = inspect.getsource(make)

    class Swap:  # the library with one keyword's value changed in every call
        def __init__(self, key, value):
            self.key, self.value = key, value

        def __getattr__(self, attr):
            obj = getattr(backprop, attr)
            if not callable(obj) or isinstance(obj, type) or attr in ("device",):
                return obj

            def call(*args, **kwargs):
                if self.key in kwargs:
                    kwargs[self.key] = self.value
                return obj(*args, **kwargs)
            return call

    assert "device=" in source
    with pytest.raises(backprop.DeviceError, match="not available: backprop computes on the "
                                                   "CPU only"):
        make(Swap("device", "cuda"))
    if "layout=" in source:
        with pytest.raises(DTypeError, match="layout"):
            make(Swap("layout", "sparse_coo"))
    if "pin_memory=" in source:
        with pytest.raises(backprop.DeviceError, match="pin_memory"):
            make(Swap("pin_memory", True))


@pytest.mark.parametrize("name", ["zeros", "ones", "empty", "full", "arange", "linspace",
                                  "logspace", "eye", "rand", "randn", "randint", "randperm",
                                  "normal"])
def test_creation_out_writes_into_the_given_tensor(name, oracle):
    calls = {
        "zeros": lambda L, out: L.zeros(2, 3, out=out),
        "ones": lambda L, out: L.ones(2, 3, out=out),
        "empty": lambda L, out: L.empty(2, 3, out=out),
        "full": lambda L, out: L.full((2, 3), 4.0, out=out),
        "arange": lambda L, out: L.arange(6.0, out=out),
        "linspace": lambda L, out: L.linspace(0, 1, 6, out=out),
        "logspace": lambda L, out: L.logspace(0, 1, 6, out=out),
        "eye": lambda L, out: L.eye(2, 3, out=out), "rand": lambda L, out: L.rand(6, out=out),
        "randn": lambda L, out: L.randn(6, out=out),
        "randint": lambda L, out: L.randint(0, 4, (6,), out=out),
        "randperm": lambda L, out: L.randperm(6, out=out),
        "normal": lambda L, out: L.normal(0.0, 1.0, (6,), out=out),
    }
    dtype = "int64" if name in ("randint", "randperm") else "float32"
    for size in ((6,), (2, 3), (0,), (7,)):  # same numel, same shape, empty, other: resized
        ours_out = backprop.zeros(size, dtype=getattr(backprop, dtype))
        theirs_out = oracle.zeros(size, dtype=getattr(oracle, dtype))
        ours, theirs = calls[name](backprop, ours_out), calls[name](oracle, theirs_out)
        assert ours is ours_out
        _same(ours, theirs, values=name not in ("empty", "rand", "randn", "randint", "randperm",
                                                "normal"))


def test_like_functions_keep_the_input_dtype(oracle):
    for L in (backprop, oracle):
        x = L.tensor([[1, 2], [3, 4]], dtype=L.int32)
        for f in (L.zeros_like, L.ones_like, L.empty_like):
            assert dtype_name(f(x)) == "int32"
        assert dtype_name(L.full_like(x, 2.7)) == "int32"
        assert L.full_like(x, 2.7).tolist()[0] == [2, 2]
        assert dtype_name(L.randint_like(x, 5)) == "int32"
        y = L.ones(2, dtype=L.float64)
        assert dtype_name(L.rand_like(y)) == dtype_name(L.randn_like(y)) == "float64"
    with pytest.raises(DTypeError, match="rand: dtype must be floating point"):
        backprop.rand_like(backprop.ones(2, dtype=backprop.int32))


@pytest.mark.parametrize("call", [
    lambda L: L.randint(10, (3,)), lambda L: L.randint(3, 10, (2, 2)),
    lambda L: L.randint(high=10, size=(3,)), lambda L: L.randint(10, size=(3,)),
    lambda L: L.randint(-5, 5, size=(4,), dtype=L.float32),
], ids=["high-size", "low-high-size", "keywords", "size-kw", "float-dtype"])
def test_randint_call_forms_like_torch(call, oracle):
    ours, theirs = call(backprop), call(oracle)
    _same(ours, theirs, values=False)


def test_normal_forms_and_gradient(oracle):
    mean = backprop.zeros(3, requires_grad=True)
    std = backprop.ones(3, dtype=backprop.float32, requires_grad=True)
    x = backprop.normal(mean, std)
    assert x.shape == (3,) and x.requires_grad
    x.sum().backward()
    np.testing.assert_array_equal(mean.grad.numpy(), np.ones(3, np.float32))
    noise = (x.detach() - 0.0) / 1.0
    np.testing.assert_allclose(std.grad.numpy(), noise.numpy(), rtol=1e-6)
    assert backprop.normal(backprop.zeros(2, 1), 1.0).shape == (2, 1)
    assert backprop.normal(0.0, backprop.ones(2, 3)).shape == (2, 3)
    _same(backprop.normal(backprop.zeros(2, dtype=backprop.float64), 1.0),
          oracle.normal(oracle.zeros(2, dtype=oracle.float64), 1.0), values=False)
    backprop.manual_seed(3)
    big = backprop.normal(2.0, 0.5, (20000,))
    assert abs(big.mean().item() - 2.0) < 0.02 and abs(big.std().item() - 0.5) < 0.02
    with pytest.raises(ValueError, match="std >= 0"):
        backprop.normal(0.0, -1.0, (2,))
    with pytest.raises(TypeError, match="give a size"):
        backprop.normal(0.0, 1.0)


def test_logspace_and_arange_like_torch(oracle):
    for args, kw in (((0, 2, 3), {}), ((0, 3, 4), {"base": 2}), ((1, -1, 5), {}),
                     ((0, 2, 3), {"dtype": "int64"})):
        kw_o = {k: getattr(oracle, v) if k == "dtype" else v for k, v in kw.items()}
        kw_b = {k: getattr(backprop, v) if k == "dtype" else v for k, v in kw.items()}
        _same(backprop.logspace(*args, **kw_b), oracle.logspace(*args, **kw_o))
    for args in ((0, 1, 0.1), (1, 2.5, 0.5), (5, 0, -1), (0.5,)):
        _same(backprop.arange(*args), oracle.arange(*args))
    with pytest.raises(RuntimeError):
        oracle.arange(5, 0)
    with pytest.raises(ValueError, match="inconsistent with step sign"):
        backprop.arange(5, 0)


def test_creation_argument_errors_name_the_function():
    with pytest.raises(TypeError, match=r"full\(\): argument 'size' must be a tuple"):
        backprop.full(3, 1.0)
    with pytest.raises(ShapeError, match="eye: n must be greater or equal to 0"):
        backprop.eye(-1)
    with pytest.raises(ShapeError, match="randperm: n must be non-negative"):
        backprop.randperm(-1)
    with pytest.raises(ValueError, match="randint: expects 'low' to be less than 'high'"):
        backprop.randint(3, 3, (2,))
    with pytest.raises(TypeError, match="randint.*size"):
        backprop.randint(0, 3)
    with pytest.raises(ValueError, match="linspace: number of steps must be a non-negative"):
        backprop.linspace(0, 1, -1)
    with pytest.raises(ShapeError, match="channels_last"):
        backprop.empty(2, 3, memory_format=backprop.channels_last)
    assert backprop.empty(1, 2, 3, 4, memory_format=backprop.channels_last).shape == (1, 2, 3, 4)
    with pytest.raises(DTypeError, match="floating"):
        backprop.ones(2, dtype=backprop.int64, requires_grad=True)
