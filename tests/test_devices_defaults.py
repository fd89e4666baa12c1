"""Devices, the default dtype and device, accelerator queries, the process seed, out=,
range indices and what save/load say about PyTorch habits: PyTorch's device/dtype
boilerplate runs unchanged, and anything that needs a GPU fails with a clear message."""
from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

import backprop
from backprop import DeviceError, DTypeError, GradError, SerializationError, ShapeError, nn


# -- backprop.device ------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("cpu",), ("cuda",), ("cuda:0",), ("cuda:1",), ("mps",),
                                  ("cuda", 0), ("cpu", 0), ("meta",), ("xpu:3",)])
def test_device_constructs_like_torch(args, oracle):
    ours, theirs = backprop.device(*args), oracle.device(*args)
    assert repr(ours) == repr(theirs)
    assert str(ours) == str(theirs)
    assert (ours.type, ours.index) == (theirs.type, theirs.index)
    assert backprop.device(ours) == ours and backprop.device(str(ours)) == ours


def test_device_equality_and_hash():
    assert backprop.device("cuda", 0) == backprop.device("cuda:0")
    assert backprop.device("cuda:0") != backprop.device("cuda")
    assert backprop.device("cuda") != backprop.device("cpu")
    assert len({backprop.device("cuda:0"), backprop.device("cuda", 0), backprop.device("cpu")}) == 2
    assert backprop.zeros(1).device == "cpu"  # (a string compares too)
    assert pickle.loads(pickle.dumps(backprop.device("cuda:1"))) == backprop.device("cuda:1")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:-1", "cuda:01", "", "cuda:0:1"])
def test_unknown_device_strings_raise_like_torch(bad, oracle):
    with pytest.raises(RuntimeError):
        oracle.device(bad)
    with pytest.raises(RuntimeError, match="device"):  # DeviceError is a RuntimeError too
        backprop.device(bad)


def test_device_with_an_int_or_a_bad_index():
    with pytest.raises(DeviceError, match="accelerator"):
        backprop.device(0)
    with pytest.raises(DeviceError, match="index"):
        backprop.device("cuda", -1)
    with pytest.raises(TypeError):
        backprop.device(1.5)


@pytest.mark.parametrize("move", [
    lambda x: x.to("cuda"), lambda x: x.to(backprop.device("cuda", 0)),
    lambda x: x.to(device="mps"), lambda x: x.to("cuda:0", backprop.float64), lambda x: x.cuda(),
    lambda x: x.cuda(0), lambda x: backprop.tensor([1.0], device="cuda"),
    lambda x: backprop.zeros(2, device=backprop.device("mps")),
    lambda x: backprop.randn(2, device="cuda"), lambda x: backprop.zeros_like(x, device="cuda"),
    lambda x: backprop.as_tensor([1.0], device="cuda:0"),
], ids=["to-str", "to-device", "to-kw", "to-dtype", "cuda", "cuda-0", "tensor", "zeros", "randn",
        "zeros_like", "as_tensor"])
def test_moving_a_tensor_off_the_cpu_is_refused_clearly(move):
    x = backprop.ones(2)
    with pytest.raises(DeviceError, match="CPU only") as info:
        move(x)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)


def test_cpu_is_a_no_op_and_cpu_devices_are_accepted():
    x = backprop.ones(2, requires_grad=True)
    assert x.cpu() is x and x.to("cpu") is x and x.to(backprop.device("cpu")) is x
    assert x.to("cpu", backprop.float64).dtype == backprop.float64
    assert x.is_cpu and not x.is_cuda
    assert backprop.zeros(2, device=backprop.device("cpu:0")).shape == (2,)


# -- accelerator, cuda and backends queries ------------------------------------------------------

def test_accelerator_queries_match_a_cpu_only_torch(oracle):
    acc = backprop.accelerator
    assert acc.is_available() is oracle.accelerator.is_available() is False
    assert acc.current_accelerator() is None
    assert acc.current_accelerator(check_available=True) is None
    assert acc.device_count() == oracle.accelerator.device_count() == 0
    with pytest.raises(RuntimeError):
        oracle.accelerator.current_device_index()
    with pytest.raises(DeviceError, match="none is available"):
        acc.current_device_index()


def test_cuda_and_backends_idioms_run():
    device = backprop.device("cuda" if backprop.cuda.is_available() else "cpu")
    assert device.type == "cpu" and backprop.cuda.device_count() == 0
    backprop.cuda.manual_seed(0)
    backprop.cuda.manual_seed_all(0)
    backprop.cuda.synchronize()
    backprop.cuda.empty_cache()
    assert not backprop.backends.mps.is_available() and not backprop.backends.mps.is_built()
    assert not backprop.backends.cudnn.is_available()
    before = backprop.backends.cudnn.deterministic, backprop.backends.cudnn.benchmark
    try:
        backprop.backends.cudnn.deterministic = True
        backprop.backends.cudnn.benchmark = False
        backprop.backends.cuda.matmul.allow_tf32 = False
        assert backprop.backends.cudnn.deterministic is True
    finally:
        backprop.backends.cudnn.deterministic, backprop.backends.cudnn.benchmark = before
    if backprop.backends.mps.is_available():  # pragma: no cover - never on backprop
        device = backprop.device("mps")
    assert backprop.randn(2, 3, device=device).device == "cpu"


# -- the default dtype and device --------------------------------------------------------------

@pytest.fixture
def float64_default():
    backprop.set_default_dtype(backprop.float64)
    yield
    backprop.set_default_dtype(backprop.float32)


FLOAT_MAKERS = {
    "tensor-float": lambda L: L.tensor([1.5, 2.0]),
    "tensor-scalar": lambda L: L.tensor(0.5),
    "zeros": lambda L: L.zeros(2),
    "ones": lambda L: L.ones(2, 2),
    "empty": lambda L: L.empty(3),
    "full-float": lambda L: L.full((2,), 0.5),
    "rand": lambda L: L.rand(2),
    "randn": lambda L: L.randn(2),
    "arange-float": lambda L: L.arange(0, 1, 0.5),
    "linspace": lambda L: L.linspace(0, 1, 3),
    "logspace": lambda L: L.logspace(0, 1, 3),
    "eye": lambda L: L.eye(2),
    "normal": lambda L: L.normal(0.0, 1.0, (2,)),
    "Tensor": lambda L: L.Tensor(2, 3),
    "linear-weight": lambda L: L.nn.Linear(2, 3).weight,
    "conv-weight": lambda L: L.nn.Conv2d(1, 2, 3).weight,
    "batchnorm-buffer": lambda L: L.nn.BatchNorm1d(3).running_mean,
    "parameter": lambda L: L.nn.Parameter(L.tensor([1.0])),
    # and what must not change:
    "tensor-int": lambda L: L.tensor([1, 2]),
    "arange-int": lambda L: L.arange(3),
    "full-int": lambda L: L.full((2,), 7),
    "randint": lambda L: L.randint(0, 3, (2,)),
    "from-float32-array": lambda L: L.tensor(np.zeros(2, np.float32)),
}


@pytest.mark.parametrize("name", sorted(FLOAT_MAKERS))
def test_set_default_dtype_float64_reaches_every_maker(name, oracle, float64_default):
    make = FLOAT_MAKERS[name]
    oracle.set_default_dtype(oracle.float64)
    try:
        expected = str(make(oracle).dtype).replace("torch.", "")
    finally:
        oracle.set_default_dtype(oracle.float32)
    assert backprop.get_default_dtype() == backprop.float64
    assert str(make(backprop).dtype).replace("backprop.", "") == expected


def test_default_dtype_round_trip_and_refusals(oracle):
    assert backprop.get_default_dtype() == backprop.float32
    assert repr(backprop.get_default_dtype()) == repr(oracle.get_default_dtype()).replace(
        "torch", "backprop")
    for bad in (backprop.int64, backprop.bool, "float64", float, np.float64):
        with pytest.raises(TypeError, match="floating-point"):
            backprop.set_default_dtype(bad)
    assert backprop.get_default_dtype() == backprop.float32
    backprop.set_default_dtype(backprop.float64)
    backprop.set_default_dtype(backprop.float32)
    assert backprop.tensor([0.5]).dtype == backprop.float32


def test_default_device(oracle):
    assert backprop.get_default_device() == backprop.device("cpu")
    assert repr(backprop.get_default_device()) == repr(oracle.get_default_device())
    try:
        backprop.set_default_device("cuda")  # accepted, as in PyTorch ...
        assert backprop.get_default_device() == backprop.device("cuda")
        with pytest.raises(DeviceError, match="zeros: device 'cuda' is not available"):
            backprop.zeros(2)  # ... but nothing can be made there
        with pytest.raises(DeviceError):
            backprop.tensor([1.0])
        assert backprop.zeros(2, device="cpu").shape == (2,)
        x = backprop.ones(2, device="cpu")
        assert backprop.zeros_like(x).shape == (2,)  # *_like follow their input, as in PyTorch
        backprop.set_default_device("cpu")
        assert backprop.zeros(2).shape == (2,)
    finally:
        backprop.set_default_device(None)
    assert backprop.get_default_device() == backprop.device("cpu")
    with pytest.raises(RuntimeError):
        backprop.set_default_device("gpu")


# -- the per-process seed --------------------------------------------------------------------

_SEED_SCRIPT = ("import backprop; s = backprop.initial_seed(); a = backprop.randn(3).tolist(); "
                "backprop.manual_seed(s); assert backprop.randn(3).tolist() == a; print(s)")


def test_each_process_starts_from_its_own_os_seed():
    runs = [subprocess.Popen([sys.executable, "-c", _SEED_SCRIPT], stdout=subprocess.PIPE,
                             text=True) for _ in range(2)]
    seeds = [int(p.communicate(timeout=120)[0]) for p in runs]
    assert all(p.returncode == 0 for p in runs)
    assert seeds[0] != seeds[1]


def test_manual_seed_repeats_and_generators_start_like_torch(oracle):
    backprop.manual_seed(123)
    assert backprop.initial_seed() == 123
    a = backprop.randn(4)
    backprop.manual_seed(123)
    assert backprop.randn(4).tolist() == a.tolist()
    assert backprop.Generator().initial_seed() == oracle.Generator().initial_seed()
    assert backprop.Generator(device="cpu").initial_seed() == oracle.Generator("cpu").initial_seed()
    g = backprop.Generator("cpu").manual_seed(7)
    assert g.initial_seed() == 7 and g.device == "cpu"
    backprop.manual_seed(-1)
    oracle_g = oracle.Generator()
    oracle_g.manual_seed(-1)
    assert backprop.initial_seed() == oracle_g.initial_seed()
    with pytest.raises(DeviceError):
        backprop.Generator(device="cuda")


# -- out= ----------------------------------------------------------------------------------

OUT_CASES = {
    "add": lambda L, a, b: L.add(a, b, alpha=2),
    "sub": lambda L, a, b: L.sub(a, b),
    "mul": lambda L, a, b: L.mul(a, 3.0),
    "div": lambda L, a, b: L.div(a, b),
    "matmul": lambda L, a, b: L.matmul(a, b.T),
    "mm": lambda L, a, b: L.mm(a, b.T),
    "bmm": lambda L, a, b: L.bmm(a[None], b.T[None]),
    "exp": lambda L, a, b: L.exp(a),
    "log": lambda L, a, b: L.log(b),
    "clamp": lambda L, a, b: L.clamp(a, -0.5, 0.5),
    "where": lambda L, a, b: L.where(a > 0, a, b),
    "cat": lambda L, a, b: L.cat([a, b], 1),
    "stack": lambda L, a, b: L.stack([a, b]),
    "sum-dim": lambda L, a, b: L.sum(a, 1),
    "mean-dim": lambda L, a, b: L.mean(a, 0),
    "maximum": lambda L, a, b: L.maximum(a, b),
    "argmax": lambda L, a, b: L.argmax(a, 1),
    "gt": lambda L, a, b: L.gt(a, b),
}


@pytest.mark.parametrize("name", sorted(OUT_CASES))
def test_out_writes_into_the_given_tensor_like_torch(name, oracle):
    f = OUT_CASES[name]
    a_np = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    b_np = np.abs(a_np[::-1].copy()) + 0.5
    expected = f(oracle, oracle.tensor(a_np), oracle.tensor(b_np))
    ours = f(backprop, backprop.tensor(a_np), backprop.tensor(b_np))
    dtype = getattr(backprop, str(ours.dtype).replace("backprop.", ""))
    out = backprop.zeros(tuple(expected.shape), dtype=dtype)
    storage = out.numpy()
    got = _call_with_out(f, backprop.tensor(a_np), backprop.tensor(b_np), out)
    assert got is out
    assert np.shares_memory(out.numpy(), storage)  # written in place, same shape
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6)


def _call_with_out(f, a, b, out):
    """Call case ``f`` with ``out=`` added to its (one) top-level backprop call."""
    class WithOut:
        def __getattr__(self, name):
            fn = getattr(backprop, name)
            return lambda *args, **kw: fn(*args, out=out, **kw) if callable(fn) else fn
    return f(WithOut(), a, b)


def test_out_refuses_grad_like_torch(oracle):
    a = backprop.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="out="):
        oracle.add(oracle.ones(2, requires_grad=True), 1, out=oracle.empty(2))
    with pytest.raises(GradError, match=r"add\(\): functions with out=\.\.\. arguments don't "
                                        r"support automatic differentiation"):
        backprop.add(a, 1, out=backprop.empty(2))
    with pytest.raises(GradError, match="out="):
        backprop.mul(backprop.ones(2), 2, out=backprop.empty(2, requires_grad=True))
    with pytest.raises(GradError, match="zeros"):
        backprop.zeros(2, out=backprop.empty(2, requires_grad=True))
    with backprop.no_grad():  # nothing to differentiate: allowed, as in PyTorch
        out = backprop.empty(2)
        assert backprop.add(a, 1, out=out) is out and out.tolist() == [2.0, 2.0]


def test_out_shape_and_dtype_rules(oracle):
    empty = backprop.empty(0)
    assert backprop.add(backprop.ones(2), 1, out=empty) is empty and empty.shape == (2,)
    with pytest.raises(ShapeError, match=r"add\(\): out= has shape \(3, 3\) but the result has "
                                         r"shape \(2,\)"):
        backprop.add(backprop.ones(2), 1, out=backprop.empty(3, 3))
    with pytest.raises(RuntimeError, match="can't be cast"):
        oracle.add(oracle.ones(2), 1, out=oracle.empty(2, dtype=oracle.int64))
    with pytest.raises(DTypeError, match="can't be cast to the desired output type"):
        backprop.add(backprop.ones(2), 1, out=backprop.empty(2, dtype=backprop.int64))
    out = backprop.empty(2)  # an int result into a float tensor is fine
    backprop.add(backprop.tensor([1, 2]), 1, out=out)
    assert out.dtype == backprop.float32 and out.tolist() == [2.0, 3.0]
    with pytest.raises(TypeError, match="'out' must be a Tensor"):
        backprop.add(backprop.ones(2), 1, out=np.zeros(2))


def test_out_bumps_the_version_so_saved_tensors_are_protected():
    w = backprop.ones(2, requires_grad=True)
    x = backprop.ones(2)
    y = (w * x).sum()
    backprop.add(backprop.ones(2), 5, out=x)  # x was saved by mul for w's gradient
    with pytest.raises(RuntimeError, match="modified by an inplace operation|in-place|inplace"):
        y.backward()


# -- range as an index ----------------------------------------------------------------------

@pytest.mark.parametrize("index", [
    lambda: range(3), lambda: (slice(None), range(0, 4, 2)), lambda: range(2, 0, -1),
    lambda: (range(2), range(1, 3)), lambda: range(0), lambda: (Ellipsis, range(1, 4)),
], ids=["rows", "cols-step", "reverse", "pairs", "empty", "ellipsis"])
def test_range_index_like_torch(index, oracle):
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    ours, theirs = backprop.tensor(x)[index()], oracle.tensor(x)[index()]
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    y, yt = backprop.tensor(x), oracle.tensor(x)
    y[index()] = -1.0
    yt[index()] = -1.0
    np.testing.assert_array_equal(y.numpy(), yt.numpy())


def test_range_index_gradient():
    x = backprop.ones(3, 4, requires_grad=True)
    x[range(1, 3), range(2)].sum().backward()
    expected = np.zeros((3, 4), np.float32)
    expected[[1, 2], [0, 1]] = 1
    np.testing.assert_array_equal(x.grad.numpy(), expected)


# -- save / load with PyTorch's habits -----------------------------------------------------------

def test_saving_a_whole_model_says_what_to_do_instead(tmp_path):
    model = nn.Linear(2, 3)
    with pytest.raises(SerializationError, match=r"backprop\.save\(model\.state_dict\(\), "
                                                 r"path\).*model\.load_state_dict\("
                                                 r"backprop\.load\(path\)\)"):
        backprop.save(model, tmp_path / "m.st")
    opt = backprop.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(SerializationError, match=r"optimizer\.load_state_dict"):
        backprop.save({"opt": opt}, tmp_path / "o.st")
    with pytest.raises(SerializationError, match="can't store obj of type builtins.object;"):
        backprop.save(object(), tmp_path / "x.st")


def test_load_takes_torch_keywords_and_never_unpickles(tmp_path, oracle):
    model = nn.Linear(2, 3)
    backprop.save(model.state_dict(), tmp_path / "m.st")
    for kwargs in ({"weights_only": True}, {"weights_only": False}, {"map_location": "cpu"},
                   {"map_location": backprop.device("cpu"), "mmap": True}):
        state = backprop.load(tmp_path / "m.st", **kwargs)
        np.testing.assert_array_equal(state["weight"].detach().numpy(),
                                      model.weight.detach().numpy())
    oracle.save({"w": oracle.ones(2)}, tmp_path / "t.pt")
    with pytest.raises(SerializationError, match="weights_only=False does not change this"):
        backprop.load(tmp_path / "t.pt", weights_only=False)
    with pytest.raises(SerializationError, match="never unpickles"):
        backprop.load(tmp_path / "t.pt")
    with pytest.raises(SerializationError, match="pickle_module"):
        backprop.load(tmp_path / "m.st", pickle_module=pickle)
    with pytest.raises(backprop.DeviceError, match="cuda"):  # the one device check's error
        backprop.load(tmp_path / "m.st", map_location="cuda")


def test_device_as_a_context_sets_the_default_device(oracle):
    with oracle.device("cpu"):
        assert oracle.zeros(1).device.type == "cpu"
    with backprop.device("cpu") as dev:
        assert dev == backprop.get_default_device() == backprop.device("cpu")
        assert backprop.zeros(1).device == "cpu"
        with backprop.device("cuda"):
            with pytest.raises(DeviceError, match="ones: device 'cuda'"):
                backprop.ones(1)
        assert backprop.ones(1).shape == (1,)
    assert backprop.get_default_device() == backprop.device("cpu")
    with pytest.raises(DeviceError):
        with backprop.device("mps"):
            backprop.randn(2)
    assert backprop.randn(2).shape == (2,)  # the default came back after the error
