"""backprop.save / backprop.load and the safetensors files under them."""
import collections
import io
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import backprop
from backprop import serialization
from backprop.errors import BackpropError
from backprop.serialization import SerializationError, inspect, load, load_file, save, save_file

ALL_DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def assert_same(a, b, where="obj"):
    """Deep equality that also checks container types, key types, dtypes and exact bits."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, backprop.Tensor):
        assert a.requires_grad == b.requires_grad, where
        a, b = a._data, b._data
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), where
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), where
        for (ka, va), kb in zip(a.items(), b.keys()):
            assert type(ka) is type(kb), f"{where}: key {ka!r}"
            assert_same(va, b[kb], f"{where}[{ka!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (float, np.floating)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def roundtrip(obj, tmp_path, name="obj.safetensors"):
    path = tmp_path / name
    save(obj, path)
    return load(path)


def craft(path, header, body=b"", *, pad=True, raw_header=None):
    """Write a (possibly malformed) safetensors file by hand."""
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    if pad:
        text += b" " * (-(len(text) + 8) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)
    return path


def sample_array(dtype, shape, rng):
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return np.asarray(rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True))
    return np.asarray(rng.standard_normal(shape) * 100, dtype=dtype)


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (5,), (2, 3, 4)])
def test_tensor_roundtrip_every_dtype_and_shape(tmp_path, rng, dtype, shape):
    t = backprop.from_numpy(sample_array(dtype, shape, rng))
    back = roundtrip(t, tmp_path)
    assert isinstance(back, backprop.Tensor)
    assert back.dtype == t.dtype and back.shape == t.shape
    assert_same(t, back)
    assert back._data.flags.writeable and back._data.flags.c_contiguous


def test_float_special_values_are_bit_exact(tmp_path):
    for dtype in (np.float16, np.float32, np.float64):
        arr = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, np.finfo(dtype).tiny,
                        np.finfo(dtype).max, np.finfo(dtype).eps], dtype=dtype)
        assert_same(arr, roundtrip(arr, tmp_path))


def test_numpy_arrays_come_back_as_arrays_and_non_contiguous_inputs_work(tmp_path, rng):
    base = rng.standard_normal((6, 8))
    obj = {
        "transposed": base.T,
        "strided": base[::2, 1::3],
        "negative_strides": base[::-1],
        "big_endian": base.astype(">f4"),
        "tensor_of_view": backprop.from_numpy(base.T),
    }
    back = roundtrip(obj, tmp_path)
    assert isinstance(back["transposed"], np.ndarray)
    np.testing.assert_array_equal(back["transposed"], base.T)
    np.testing.assert_array_equal(back["strided"], base[::2, 1::3])
    np.testing.assert_array_equal(back["negative_strides"], base[::-1])
    assert back["big_endian"].dtype == np.float32 and back["big_endian"].dtype.isnative
    np.testing.assert_array_equal(back["big_endian"], base.astype(np.float32))
    assert isinstance(back["tensor_of_view"], backprop.Tensor)
    np.testing.assert_array_equal(back["tensor_of_view"]._data, base.T)


def test_state_dict_roundtrip_keeps_names_order_and_requires_grad(tmp_path):
    sd = collections.OrderedDict([
        ("0.weight", backprop.randn(16, 2, requires_grad=True)),
        ("0.bias", backprop.zeros(16)),
        ("bn.running_mean", backprop.zeros(16, dtype=backprop.float64)),
        ("bn.num_batches_tracked", backprop.tensor(7)),
    ])
    back = roundtrip(sd, tmp_path)
    assert_same(sd, back)
    assert type(back) is collections.OrderedDict
    assert back["0.weight"].requires_grad and back["0.weight"].is_leaf
    # A flat state dict's tensors are stored under its own keys: any safetensors reader sees them.
    flat = load_file(tmp_path / "obj.safetensors")
    assert list(flat) == list(sd)
    for k in sd:
        np.testing.assert_array_equal(flat[k]._data, sd[k]._data)
    assert not flat["0.weight"].requires_grad  # a flat file has no structure to record it


def test_optimizer_state_dict_with_integer_keys(tmp_path):
    sd = {
        "state": {
            0: {"step": backprop.tensor(3.0), "exp_avg": backprop.randn(4, 3),
                "exp_avg_sq": backprop.rand(4, 3)},
            1: {"step": backprop.tensor(3.0), "exp_avg": backprop.randn(3),
                "exp_avg_sq": backprop.rand(3), "max_exp_avg_sq": backprop.rand(3)},
            5: {"momentum_buffer": None},
        },
        "param_groups": [
            {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0, "amsgrad": False,
             "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
             "fused": None, "initial_lr": 0.01, "params": [0, 1]},
            {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.01, "amsgrad": True,
             "params": [5]},
        ],
    }
    back = roundtrip(sd, tmp_path)
    assert_same(sd, back)
    assert list(back["state"]) == [0, 1, 5] and all(type(k) is int for k in back["state"])
    assert type(back["param_groups"][0]["betas"]) is tuple
    assert type(back["param_groups"][0]["weight_decay"]) is int
    names = set(inspect(tmp_path / "obj.safetensors")["tensors"])
    assert "state.0.exp_avg" in names and "state.1.max_exp_avg_sq" in names


def test_real_torch_optimizer_state_dict_shape_roundtrips(tmp_path, oracle):
    """The exact structure torch's Adam and StepLR produce survives save/load."""
    torch = oracle
    w = torch.nn.Parameter(torch.randn(3, 2, dtype=torch.float64))
    opt = torch.optim.Adam([w], lr=0.01, amsgrad=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
    w.sum().backward()
    opt.step()
    sched.step()

    def to_backprop(x):
        if isinstance(x, torch.Tensor):
            return backprop.from_numpy(x.detach().numpy().copy())
        if isinstance(x, dict):
            return type(x)((k, to_backprop(v)) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return type(x)(to_backprop(v) for v in x)
        return x

    ckpt = {"optimizer": to_backprop(opt.state_dict()), "scheduler": to_backprop(sched.state_dict())}
    back = roundtrip(ckpt, tmp_path)
    assert_same(ckpt, back)
    assert back["optimizer"]["param_groups"][0]["params"] == [0]


def test_training_checkpoint_with_rng_state_resumes_the_same_random_stream(tmp_path):
    backprop.manual_seed(1234)
    backprop.randn(10)  # advance the stream somewhere arbitrary
    ckpt = {
        "model": {"w": backprop.randn(4, 4), "b": backprop.zeros(4)},
        "optimizer": {"state": {0: {"momentum_buffer": backprop.ones(4, 4)}},
                      "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}]},
        "scheduler": {"last_epoch": 3, "base_lrs": [0.1], "_last_lr": [0.05], "verbose": False},
        "epoch": 3,
        "step": 1200,
        "rng": backprop.get_rng_state(),
        "history": {"loss": [2.3, 1.1, float("nan"), float("inf")], "lr": [0.1, 0.05],
                    "grad_norm": [-0.0, 1e-320, 1.7976931348623157e308]},
        "config": {"layers": [2, 16, 3], "activation": "relu", "clip": None, "seed": 0,
                   "dtype": backprop.float64},
    }
    expected = backprop.randn(8)._data.copy()  # what comes next after the checkpointed state
    backprop.manual_seed(99)  # somewhere else entirely
    back = roundtrip(ckpt, tmp_path)
    assert_same(ckpt, back)
    assert type(back["rng"]["state"]["state"]) is int and back["rng"]["state"]["state"] > 2 ** 64
    backprop.set_rng_state(back["rng"])
    np.testing.assert_array_equal(backprop.randn(8)._data, expected)


def _sgd_steps(w, velocity, steps):
    """A tiny momentum-SGD regression loop whose data and noise come from the global RNG."""
    for _ in range(steps):
        x = backprop.randn(8, 3, dtype=backprop.float64)
        y = x.sum(1, keepdim=True) + 0.1 * backprop.rand(8, 1, dtype=backprop.float64)
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        with backprop.no_grad():
            velocity.mul_(0.9).add_(w.grad)
            w.sub_(velocity, alpha=0.05)
        w.grad = None


def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(tmp_path):
    backprop.manual_seed(7)
    w = backprop.randn(3, 1, dtype=backprop.float64, requires_grad=True)
    velocity = backprop.zeros(3, 1, dtype=backprop.float64)
    _sgd_steps(w, velocity, 5)
    save({"model": {"w": w}, "optimizer": {"state": {0: {"momentum_buffer": velocity}}},
          "step": 5, "rng": backprop.get_rng_state()}, tmp_path / "ckpt.st")
    _sgd_steps(w, velocity, 5)
    uninterrupted = w.detach()._data.copy()

    backprop.manual_seed(12345)  # a fresh process, seeded anyhow
    ckpt = load(tmp_path / "ckpt.st")
    backprop.set_rng_state(ckpt["rng"])
    w2 = ckpt["model"]["w"]
    assert w2.requires_grad and w2.is_leaf and ckpt["step"] == 5
    _sgd_steps(w2, ckpt["optimizer"]["state"][0]["momentum_buffer"], 5)
    np.testing.assert_array_equal(w2.detach()._data, uninterrupted)


def test_scalars_containers_and_keys(tmp_path):
    obj = {
        "ints": [0, -1, 2 ** 53 + 1, -(2 ** 100), 10 ** 40],
        "floats": [1.0, 0.1, -0.0, 1e-300, 5e-324, float("nan"), float("inf"), float("-inf")],
        "int_vs_float": (1, 1.0, True),
        "none": None,
        "strings": ["", "ünïcødé ✓", "quote\"back\\slash", "\ud800 lone surrogate", "@"],
        "numpy_scalars": [np.float16(1.5), np.float32(0.1), np.float64(np.nan), np.int8(-128),
                          np.int16(7), np.int32(-7), np.int64(2 ** 62), np.uint8(255),
                          np.bool_(True)],
        "dtypes": [backprop.float16, backprop.int64, backprop.bool],
        "nested": [[[], ()], {"": {}}, ((1,),)],
        "empty_ordered": collections.OrderedDict(),
        0: "int key", -3: "negative", 2.5: "float key", None: "none key", True: "bool key",
        (1, "a", (None, 2.0)): "tuple key", "0": "string zero is not int zero",
    }
    back = roundtrip(obj, tmp_path)
    assert_same(obj, back)
    assert np.isnan(back["numpy_scalars"][2]) and type(back["numpy_scalars"][2]) is np.float64


def test_tagged_looking_user_dicts_are_not_confused_with_nodes(tmp_path):
    obj = {"@": "tensor", "name": "x", "items": [], "dict": {"@": "float", "value": "nan"}}
    assert_same(obj, roundtrip(obj, tmp_path))


def test_enums_and_subclasses_store_plain_values(tmp_path):
    import enum

    class Color(enum.IntEnum):
        RED = 1

    Pair = collections.namedtuple("Pair", "a b")
    back = roundtrip({"c": Color.RED, "p": Pair(1, 2), "d": collections.defaultdict(int, x=1)},
                     tmp_path)
    assert back == {"c": 1, "p": (1, 2), "d": {"x": 1}}
    assert type(back["c"]) is int and type(back["p"]) is tuple and type(back["d"]) is dict


def test_shared_tensors_are_stored_once_and_stay_shared(tmp_path):
    w = backprop.randn(5, 5)
    arr = np.arange(4.0)
    obj = {"encoder.weight": w, "decoder.weight": w, "a": arr, "b": [arr]}
    back = roundtrip(obj, tmp_path)
    assert back["encoder.weight"] is back["decoder.weight"]
    assert back["a"] is back["b"][0]
    assert list(inspect(tmp_path / "obj.safetensors")["tensors"]) == ["encoder.weight", "a"]


def test_tensor_names_follow_paths_and_never_collide(tmp_path):
    obj = {"a.b": backprop.ones(1), "a": {"b": backprop.zeros(1)}, "__metadata__": backprop.ones(2),
           1: backprop.ones(3), "1": backprop.ones(4), "": backprop.ones(5)}
    back = roundtrip(obj, tmp_path)
    assert_same(obj, back)
    names = list(inspect(tmp_path / "obj.safetensors")["tensors"])
    assert len(set(names)) == len(names) == 6
    assert names[:2] == ["a.b", "a.b#2"] and "__metadata__" not in names
    assert roundtrip(backprop.ones(2), tmp_path, "single.st") is not None
    assert list(inspect(tmp_path / "single.st")["tensors"]) == ["tensor"]


def test_file_objects(tmp_path):
    obj = {"w": backprop.randn(3, 3), "step": 4}
    buf = io.BytesIO()
    save(obj, buf)
    buf.seek(0)
    assert_same(obj, load(buf))
    with open(tmp_path / "f.st", "wb") as fh:
        fh.write(b"")
        save(obj, fh)
    with open(tmp_path / "f.st", "rb") as fh:
        assert_same(obj, load(fh))
    with open(tmp_path / "f.st", "r") as fh, pytest.raises(TypeError, match="binary mode"):
        load(fh)


def test_paths_as_str_and_pathlike(tmp_path):
    t = backprop.arange(6)
    save(t, str(tmp_path / "s.st"))
    assert_same(t, load(str(tmp_path / "s.st")))
    save(t, tmp_path / "p.st")
    assert_same(t, load(tmp_path / "p.st"))


def test_map_location_and_weights_only_are_accepted(tmp_path):
    t = backprop.ones(2)
    save(t, tmp_path / "t.st")
    for kwargs in ({}, {"map_location": "cpu"}, {"map_location": None},
                   {"map_location": lambda storage, loc: storage},
                   {"map_location": {"cuda:0": "cpu"}}, {"weights_only": True},
                   {"weights_only": False}, {"map_location": "cpu", "weights_only": True}):
        assert_same(t, load(tmp_path / "t.st", **kwargs))
    with pytest.raises(ValueError, match="'cuda'.*CPU"):
        load(tmp_path / "t.st", map_location="cuda")


def test_big_file_roundtrip_is_fast(tmp_path, rng):
    big = {"w": backprop.from_numpy(rng.standard_normal((1024, 1024)).astype(np.float32)),
           "v": rng.standard_normal(500_000), "i": np.arange(300_000)}
    start = time.perf_counter()
    back = roundtrip(big, tmp_path)
    elapsed = time.perf_counter() - start
    assert os.path.getsize(tmp_path / "obj.safetensors") > 10_000_000
    assert_same(big, back)
    assert elapsed < 5.0, f"10 MB round trip took {elapsed:.2f}s"


def test_file_layout_follows_the_safetensors_spec(tmp_path):
    save_file({"a": np.ones(3, np.int8), "b": np.ones((2, 2), np.float64),
               "c": np.ones(1, np.float16)}, tmp_path / "l.st", metadata={"format": "pt"})
    raw = (tmp_path / "l.st").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"] == {"format": "pt"}
    assert list(header) == ["__metadata__", "a", "b", "c"]  # the caller's order
    # The widest dtypes come first in the body, so every tensor is aligned to its item size.
    assert header["b"]["data_offsets"] == [0, 32]
    assert header["c"]["data_offsets"] == [32, 34]
    assert header["a"]["data_offsets"] == [34, 37]
    assert len(raw) == 8 + n + 37


# ---------------------------------------------------------------------------
# save_file / load_file / inspect
# ---------------------------------------------------------------------------
def test_save_file_load_file_roundtrip(tmp_path, rng):
    tensors = {d: backprop.from_numpy(sample_array(d, (3, 2), rng)) for d in ALL_DTYPES}
    tensors["scalar"] = backprop.tensor(2.5)
    tensors["empty"] = backprop.zeros(0, 4)
    save_file(tensors, tmp_path / "f.st")
    back = load_file(tmp_path / "f.st")
    assert list(back) == list(tensors)
    for k in tensors:
        assert_same(tensors[k], back[k], k)
    # load() of a plain safetensors file gives the same flat dict
    assert_same(back, load(tmp_path / "f.st"))
    # and load_file of a save() file gives all its tensors, flat
    save({"x": {"y": backprop.ones(2)}, "n": 1}, tmp_path / "s.st")
    assert list(load_file(tmp_path / "s.st")) == ["x.y"]


def test_save_file_checks_its_arguments(tmp_path):
    with pytest.raises(TypeError, match="dict"):
        save_file([backprop.ones(1)], tmp_path / "x")
    with pytest.raises(TypeError, match="names must be str"):
        save_file({1: backprop.ones(1)}, tmp_path / "x")
    with pytest.raises(SerializationError, match="reserved"):
        save_file({"__metadata__": backprop.ones(1)}, tmp_path / "x")
    with pytest.raises(TypeError, match="'a' must be a Tensor"):
        save_file({"a": [1.0]}, tmp_path / "x")
    with pytest.raises(TypeError, match="metadata"):
        save_file({"a": backprop.ones(1)}, tmp_path / "x", metadata={"epoch": 3})
    with pytest.raises(SerializationError, match="uint32"):
        save_file({"a": np.ones(2, np.uint32)}, tmp_path / "x")
    assert not os.listdir(tmp_path)


def test_inspect_reads_the_header_only(tmp_path, monkeypatch):
    ckpt = {"model": {"w": backprop.randn(3, 2, requires_grad=True)}, "arr": np.zeros(4, np.int16),
            "epoch": 7, "history": {"loss": [1.0, 0.5]}}
    save(ckpt, tmp_path / "c.st")

    def no_reading(*args):
        raise AssertionError("inspect read tensor bytes")

    monkeypatch.setattr(serialization, "_read_array", no_reading)
    info = inspect(tmp_path / "c.st")
    assert info["structure"]["epoch"] == 7 and info["structure"]["history"] == {"loss": [1.0, 0.5]}
    w = info["structure"]["model"]["w"]
    assert (w.name, w.dtype, w.shape, w.nbytes, w.kind, w.requires_grad) == (
        "model.w", "float32", (3, 2), 24, "tensor", True)
    assert info["structure"]["arr"].kind == "ndarray"
    assert info["tensors"]["arr"].dtype == "int16" and info["tensors"]["arr"].shape == (4,)
    assert info["metadata"] == {"backprop.version": "1"}
    assert info["file_bytes"] == os.path.getsize(tmp_path / "c.st")
    assert "model.w" in repr(w) and "float32[3, 2]" in repr(w)

    save_file({"x": backprop.ones(2)}, tmp_path / "plain.st", metadata={"format": "pt"})
    plain = inspect(tmp_path / "plain.st")
    assert plain["structure"] is None and plain["metadata"] == {"format": "pt"}


# ---------------------------------------------------------------------------
# what save refuses
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("obj, match", [
    ({"model": {"f": lambda x: x}}, r"obj\['model'\]\['f'\] of type .*function"),
    ({"s": {1, 2}}, r"obj\['s'\] of type builtins.set"),
    ({"c": 1 + 2j}, "complex"),
    ({"a": np.ones(2, np.uint16)}, r"obj\['a'\] has dtype uint16"),
    ({"a": np.array(["x"])}, "dtype <U1"),
    ({"a": np.complex64(1)}, "complex64 scalar"),
    ({"k": {backprop.ones(1): 1}}, r"obj\['k'\] has a key"),
    ({"k": {np.int64(1): 1}}, r"key np.int64\(1\) of type int64"),
    ({"k": {frozenset(): 1}}, "frozenset"),
    ({"b": b"bytes"}, "bytes"),
])
def test_save_refuses_what_it_cannot_store(tmp_path, obj, match):
    with pytest.raises(SerializationError, match=match):
        save(obj, tmp_path / "x.st")
    assert not os.listdir(tmp_path)


def test_save_refuses_cycles_and_deep_nesting(tmp_path):
    loop = {"a": []}
    loop["a"].append(loop)
    with pytest.raises(SerializationError, match="cycle"):
        save(loop, tmp_path / "x.st")
    deep = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(SerializationError, match="nested too deeply"):
        save(deep, tmp_path / "x.st")
    same_list = [1, 2]  # the same object twice is not a cycle
    assert roundtrip({"a": same_list, "b": same_list}, tmp_path) == {"a": [1, 2], "b": [1, 2]}


def test_save_errors_are_backprop_and_value_errors():
    assert issubclass(SerializationError, BackpropError)
    assert issubclass(SerializationError, ValueError)


def test_save_to_a_missing_folder_or_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save(backprop.ones(1), tmp_path / "nope" / "x.st")
    with pytest.raises(IsADirectoryError):
        save(backprop.ones(1), tmp_path)
    with pytest.raises(TypeError, match="path or a writable"):
        save(backprop.ones(1), 42)
    with pytest.raises(TypeError, match="path or a readable"):
        load(42)


# ---------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------
def _previous_and_new(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    previous = {"model": {"w": backprop.randn(64, 64)}, "step": 1}
    save(previous, path)
    new = {"model": {"w": backprop.randn(256, 256)}, "step": 2}
    return path, previous, new


@pytest.mark.parametrize("crash", ["mid_body", "fsync", "replace", "keyboard_interrupt"])
def test_a_crash_mid_write_leaves_the_previous_file_intact(tmp_path, monkeypatch, crash):
    path, previous, new = _previous_and_new(tmp_path)
    before = path.read_bytes()

    if crash in ("mid_body", "keyboard_interrupt"):
        error = OSError("disk full") if crash == "mid_body" else KeyboardInterrupt()

        def partial_write(fh, header, arrays):
            fh.write(header)
            fh.write(arrays[0].reshape(-1).view(np.uint8).data[:1000])
            raise error

        monkeypatch.setattr(serialization, "_write_body", partial_write)
        expected = type(error)
    elif crash == "fsync":
        def failing_fsync(fd):
            raise OSError("I/O error")

        monkeypatch.setattr(serialization.os, "fsync", failing_fsync)
        expected = OSError
    else:
        def failing_replace(src, dst):
            raise PermissionError("locked")

        monkeypatch.setattr(serialization.os, "replace", failing_replace)
        expected = PermissionError

    with pytest.raises(expected):
        save(new, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [path.name], "a temporary file was left behind"
    assert path.read_bytes() == before
    assert_same(previous, load(path))


def test_a_crash_writing_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    def broken_write(fh, header, arrays):
        fh.write(header[:5])
        raise OSError("disk full")

    monkeypatch.setattr(serialization, "_write_body", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save(backprop.ones(3), tmp_path / "new.st")
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces_the_file_and_leaves_no_temporaries(tmp_path):
    path, _, new = _previous_and_new(tmp_path)
    save(new, path)
    assert_same(new, load(path))
    assert os.listdir(tmp_path) == [path.name]


def _dead_pid():
    """The id of a process that has run and been waited for: no longer alive."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


_DIE_MID_SAVE = """
import os, sys
import backprop
from backprop import serialization

def die(fh, header, arrays):          # killed mid-write: no cleanup code runs
    fh.write(header)
    fh.flush()
    os._exit(9)

serialization._write_body = die
backprop.save({"w": backprop.ones(1000)}, sys.argv[1])
"""


@pytest.mark.skipif(os.name != "posix", reason="finding dead writers needs POSIX signals")
def test_temporaries_of_writers_killed_mid_save_are_removed_by_the_next_save(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save({"step": 1}, path)
    for _ in range(3):
        child = subprocess.run([sys.executable, "-c", _DIE_MID_SAVE, str(path)])
        assert child.returncode == 9
    # each killed save removed the previous one's orphan: only the last is left
    assert len(os.listdir(tmp_path)) == 2
    save({"step": 2}, path)
    assert os.listdir(tmp_path) == [path.name]
    assert load(path) == {"step": 2}


@pytest.mark.skipif(os.name != "posix", reason="finding dead writers needs POSIX signals")
def test_only_temporaries_of_dead_writers_on_this_host_are_removed(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save({"step": 1}, path)
    host = serialization._host_tag()
    dead = tmp_path / f".ckpt.safetensors.{_dead_pid()}-{host}.0123456789ab.tmp"
    live = tmp_path / f".ckpt.safetensors.{os.getppid()}-{host}.0123456789ab.tmp"  # our parent
    mine = tmp_path / f".ckpt.safetensors.{os.getpid()}-{host}.0123456789ab.tmp"   # a thread's
    elsewhere = tmp_path / f".ckpt.safetensors.{_dead_pid()}-00000000.0123456789ab.tmp"
    other_target = tmp_path / f".other.safetensors.{_dead_pid()}-{host}.0123456789ab.tmp"
    old_unnamed = tmp_path / ".ckpt.safetensors.0123456789ab.tmp"    # an older backprop's
    new_unnamed = tmp_path / ".ckpt.safetensors.ba9876543210.tmp"
    for f in (dead, live, mine, elsewhere, other_target, old_unnamed, new_unnamed):
        f.write_bytes(b"partial checkpoint")
    day = 24 * 3600
    os.utime(old_unnamed, (time.time() - 2 * day, time.time() - 2 * day))
    save({"step": 2}, path)
    assert load(path) == {"step": 2}
    left = set(os.listdir(tmp_path))
    assert dead.name not in left and old_unnamed.name not in left
    assert {live.name, mine.name, elsewhere.name, other_target.name, new_unnamed.name} <= left
    assert len(left) == 6


def test_a_write_names_its_temporary_after_the_writer(tmp_path, monkeypatch):
    seen = []

    def spy(src, dst):
        seen.append(os.path.basename(src))
        return os.rename(src, dst)

    monkeypatch.setattr(serialization.os, "replace", spy)
    save(backprop.ones(2), tmp_path / "w.st")
    assert seen == [f".w.st.{os.getpid()}-{serialization._host_tag()}.{seen[0][-16:-4]}.tmp"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_new_files_get_the_usual_permissions(tmp_path):
    save(backprop.ones(1), tmp_path / "x.st")
    (tmp_path / "ref").write_bytes(b"")
    assert (tmp_path / "x.st").stat().st_mode == (tmp_path / "ref").stat().st_mode


# ---------------------------------------------------------------------------
# malformed files: always a SerializationError naming the file and the problem
# ---------------------------------------------------------------------------
def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def _structure(node):
    return {"backprop.version": "1", "backprop.structure": json.dumps(node)}


MALFORMED = {
    "empty file": (None, b"", "too short"),
    "short file": (None, b"\x01\x02\x03", "too short"),
    "header beyond end": (None, struct.pack("<Q", 1000) + b"{}", "beyond the end of the file"),
    "huge header length": (None, struct.pack("<Q", 2 ** 63) + b"{}      ", "beyond the end"),
    "not json": ({"raw": b"{not json}"}, b"", "not valid JSON"),
    "not utf-8": ({"raw": b'{"\xff": 1}'}, b"", "not valid JSON"),
    "json list": ({"raw": b"[1, 2]"}, b"", "not an object"),
    "NaN literal": ({"raw": b'{"__metadata__": {"a": NaN}}'}, b"", "NaN"),
    "duplicate key": ({"raw": b'{"a": {}, "a": {}}'}, b"", "key 'a' twice"),
    "metadata not str": ({"__metadata__": {"epoch": 3}}, b"", "strings to strings"),
    "entry not object": ({"x": [1, 2]}, b"", "exactly 'dtype', 'shape' and 'data_offsets'"),
    "missing field": ({"x": {"dtype": "F32", "shape": [1]}}, b"", "exactly"),
    "extra field": ({"x": {**_entry(), "stride": [1]}}, bytes(8), "exactly"),
    "unknown dtype": ({"x": _entry(dtype="F33")}, bytes(8), "unknown dtype 'F33'"),
    "unsupported dtype": ({"x": _entry(dtype="BF16", shape=(4,))}, bytes(8), "BF16 is not supported"),
    "negative shape": ({"x": _entry(shape=(-2,))}, bytes(8), "non-negative integers"),
    "float shape": ({"x": _entry(shape=(2.0,))}, bytes(8), "non-negative integers"),
    "bool shape": ({"x": _entry(shape=(True,))}, bytes(8), "non-negative integers"),
    "reversed offsets": ({"x": _entry(offsets=(8, 0))}, bytes(8), "begin <= end"),
    "three offsets": ({"x": _entry(offsets=(0, 4, 8))}, bytes(8), r"\[begin, end\]"),
    "size mismatch": ({"x": _entry(shape=(3,))}, bytes(8), r"needs 12 bytes but data_offsets \[0, 8\] hold 8"),
    "offsets past end": ({"x": _entry(offsets=(8, 16))}, bytes(8), "beyond the 8 bytes"),
    "truncated body": ({"x": _entry(shape=(4,), offsets=(0, 16))}, bytes(8), "beyond the 8 bytes"),
    "overlap": ({"x": _entry(), "y": _entry(offsets=(4, 12))}, bytes(12), "overlaps"),
    "gap": ({"x": _entry(offsets=(4, 12))}, bytes(12), "gap"),
    "trailing bytes": ({"x": _entry()}, bytes(12), "trailing bytes"),
    "future version": ({"__metadata__": {"backprop.version": "9", "backprop.structure": "null"}},
                       b"", "format '9'"),
    "version without structure": ({"__metadata__": {"backprop.version": "1"}}, b"", "no 'backprop.structure'"),
    "structure not json": ({"__metadata__": {"backprop.version": "1", "backprop.structure": "{"}},
                           b"", "'backprop.structure' is not valid JSON"),
    "missing tensor": ({"__metadata__": _structure({"@": "tensor", "name": "nope"})}, b"",
                       "refers to a tensor 'nope' that is not in the file"),
    "tensor name not str": ({"__metadata__": _structure({"@": "tensor", "name": [1]})}, b"",
                            "not in the file"),
    "unknown node": ({"__metadata__": _structure([{"@": "pickle", "data": "..."}])}, b"",
                     r"root\[0\]: unknown node"),
    "object without tag": ({"__metadata__": _structure({"a": 1})}, b"", "unknown node"),
    "dict items not pairs": ({"__metadata__": _structure({"@": "dict", "items": [[1, 2, 3]]})}, b"",
                             r"\[key, value\] pair"),
    "dict items not list": ({"__metadata__": _structure({"@": "dict", "items": {}})}, b"",
                            "'items' must be a list"),
    "dict key is list": ({"__metadata__": _structure({"@": "dict", "items": [[[1], 2]]})}, b"",
                         "a dict key must be"),
    "extra node field": ({"__metadata__": _structure({"@": "tuple", "items": [], "x": 1})}, b"",
                         "needs"),
    "bad float": ({"__metadata__": _structure({"@": "float", "value": "1e400"})}, b"",
                  "'nan', 'inf' or '-inf'"),
    "bad scalar dtype": ({"__metadata__": _structure({"@": "numpy_scalar", "dtype": "object",
                                                      "value": 1})}, b"", "unknown dtype 'object'"),
    "scalar overflow": ({"__metadata__": _structure({"@": "numpy_scalar", "dtype": "int8",
                                                     "value": 1000})}, b"", "does not fit int8"),
    "scalar wrong type": ({"__metadata__": _structure({"@": "numpy_scalar", "dtype": "int8",
                                                       "value": 1.5})}, b"", "needs a int value"),
    "bad dtype node": ({"__metadata__": _structure({"@": "dtype", "name": "complex"})}, b"",
                       "unknown dtype 'complex'"),
    "int requires grad": ({"__metadata__": _structure({"@": "tensor", "name": "x",
                                                       "requires_grad": True}),
                           "x": _entry(dtype="I32")}, bytes(8), "only floating-point"),
    "requires_grad not bool": ({"__metadata__": _structure({"@": "tensor", "name": "x",
                                                            "requires_grad": 1}),
                                "x": _entry()}, bytes(8), "true or false"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_raise_a_clear_serialization_error(tmp_path, case):
    header, body, match = MALFORMED[case]
    path = tmp_path / "bad.safetensors"
    if header is None:
        path.write_bytes(body)
    elif "raw" in header:
        craft(path, None, body, raw_header=header["raw"])
    else:
        craft(path, header, body)
    meta = header.get("__metadata__", {}) if header and "raw" not in header else {}
    # A broken structure is only read by load() and inspect(); load_file() ignores it.
    funcs = [load, inspect] if _structure(None).keys() & meta.keys() else [load, load_file, inspect]
    for fn in funcs:
        with pytest.raises(SerializationError, match=match) as info:
            fn(path)
        assert "bad.safetensors" in str(info.value)


def test_a_flipped_bit_in_tensor_data_is_caught_naming_the_file_and_tensor(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save({"model": {"w": backprop.ones(4, 4), "b": backprop.zeros(4)}, "epoch": 3}, path)
    info = inspect(path)
    assert info["metadata"] == {"backprop.version": "1"}    # the checksums are bookkeeping
    raw = bytearray(path.read_bytes())
    raw[info["tensors"]["model.b"].offset + 5] ^= 0x10      # one bit of one float of model.b
    path.write_bytes(bytes(raw))
    for reader in (load, load_file):
        with pytest.raises(SerializationError) as error:
            reader(path)
        message = str(error.value)
        assert "ckpt.safetensors" in message and "'model.b'" in message
        assert "checksum" in message and "\n" not in message
    # a file object is checked as well
    with open(path, "rb") as fh, pytest.raises(SerializationError, match="'model.b'.*checksum"):
        load(fh)


def test_files_without_checksums_load(tmp_path):
    # save_file writes what the safetensors package would: no checksum, like other tools' files
    save_file({"w": backprop.ones(2, 2)}, tmp_path / "plain.st", metadata={"format": "pt"})
    header = json.loads((tmp_path / "plain.st").read_bytes()[8:].split(b"}}", 1)[0] + b"}}")
    assert header["__metadata__"] == {"format": "pt"}
    assert load_file(tmp_path / "plain.st")["w"].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    # a backprop file whose checksum entry was stripped (by a tool that rewrote the header)
    path = tmp_path / "stripped.st"
    save({"w": backprop.ones(3)}, path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    del header["__metadata__"]["backprop.sha256"]
    craft(path, header, raw[8 + n:])
    assert load(path)["w"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("entry, match", [
    ("[1]", "must be a JSON object"),
    ('{"w": "00"}', "not a SHA-256"),
    ('{"w": %s, "x": %s}' % (json.dumps("0" * 64), json.dumps("0" * 64)), "not in the file"),
    ("{}", "missing"),
    ("{", "not valid JSON"),
])
def test_a_malformed_checksum_entry_is_a_clear_error(tmp_path, entry, match):
    path = craft(tmp_path / "bad.st", {"__metadata__": {"backprop.sha256": entry},
                                       "w": _entry()}, b"\0" * 8)
    for reader in (load, load_file, inspect):
        with pytest.raises(SerializationError, match=match):
            reader(path)


def test_deeply_nested_json_is_refused(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    craft(tmp_path / "a.st", None, raw_header=b'{"__metadata__": {"x": ' + deep.encode() + b"}}")
    with pytest.raises(SerializationError):
        load(tmp_path / "a.st")
    craft(tmp_path / "b.st", {"__metadata__": {"backprop.version": "1", "backprop.structure": deep}})
    with pytest.raises(SerializationError, match="nested too deeply"):
        load(tmp_path / "b.st")


def test_corrupted_bool_bytes_still_load_as_bools(tmp_path):
    craft(tmp_path / "b.st", {"m": _entry(dtype="BOOL", shape=(3,), offsets=(0, 3))}, b"\x00\x01\x07")
    m = load_file(tmp_path / "b.st")["m"]
    assert m.dtype == backprop.bool and m.tolist() == [False, True, True]


def test_huge_shapes_with_no_elements_are_handled(tmp_path):
    craft(tmp_path / "z.st", {"z": _entry(shape=(0, 2 ** 70), offsets=(0, 0))})
    with pytest.raises(SerializationError, match="can't allocate"):
        load_file(tmp_path / "z.st")
    assert inspect(tmp_path / "z.st")["tensors"]["z"].shape == (0, 2 ** 70)


def test_pytorch_pickles_and_other_formats_are_refused_unopened(tmp_path):
    (tmp_path / "zip.pt").write_bytes(b"PK\x03\x04" + bytes(100))
    (tmp_path / "legacy.pt").write_bytes(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8" + bytes(100))
    (tmp_path / "tiny.pkl").write_bytes(b"\x80\x04N.")
    np.save(tmp_path / "a.npy", np.ones(3))
    for name in ("zip.pt", "legacy.pt", "tiny.pkl"):
        with pytest.raises(SerializationError, match="never unpickles") as info:
            load(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(SerializationError, match="numpy.load"):
        load(tmp_path / "a.npy")


def test_a_header_length_that_looks_like_a_pickle_is_still_read(tmp_path):
    # 640 = 0x280: the file starts with b"\x80\x02", a pickle's first two bytes.
    header = json.dumps({"x": _entry()}).encode()
    header += b" " * (640 - len(header))
    path = tmp_path / "p.st"
    path.write_bytes(struct.pack("<Q", 640) + header + np.ones(2, np.float32).tobytes())
    assert path.read_bytes()[:2] == b"\x80\x02"
    np.testing.assert_array_equal(load_file(path)["x"]._data, [1.0, 1.0])


def test_a_real_torch_save_file_is_refused(tmp_path, oracle):
    oracle.save({"w": oracle.ones(2)}, tmp_path / "model.pt")
    with pytest.raises(SerializationError, match="PyTorch .pt/.pth file written by torch.save"):
        load(tmp_path / "model.pt")


def _fuzz_blob():
    ckpt = {
        "model": collections.OrderedDict(w=backprop.randn(3, 2), b=backprop.zeros(2, requires_grad=True)),
        "optimizer": {"state": {0: {"step": backprop.tensor(2.0), "m": backprop.ones(3, 2)}},
                      "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "params": [0, 1]}]},
        "mask": np.array([True, False]), "half": backprop.ones(2, dtype=backprop.float16),
        "epoch": 3, "history": [1.0, float("nan")], "sc": np.int8(3), "dt": backprop.int64,
        (1, 2.5): None,
    }
    buf = io.BytesIO()
    save(ckpt, buf)
    return buf.getvalue()


def _only_serialization_errors(blob, tmp_path=None):
    for fn in (load, load_file, inspect):
        try:
            if tmp_path is None:
                fn(io.BytesIO(blob))
            else:
                path = tmp_path / "fuzz.st"
                path.write_bytes(blob)
                fn(path)
        except SerializationError as e:
            assert "fuzz.st" in str(e) or "<file object>" in str(e)


def test_fuzz_truncated_files_only_raise_serialization_errors(tmp_path):
    blob = _fuzz_blob()
    for n in range(len(blob)):
        _only_serialization_errors(blob[:n])
        with pytest.raises(SerializationError):
            load(io.BytesIO(blob[:n]))  # every proper prefix is incomplete
    for n in range(0, len(blob), 97):  # the path reader too
        _only_serialization_errors(blob[:n], tmp_path)


def test_fuzz_bit_flips_and_byte_changes_only_raise_serialization_errors(tmp_path):
    blob = _fuzz_blob()
    (n,) = struct.unpack("<Q", blob[:8])
    rng = np.random.default_rng(0)
    for trial in range(1500):
        data = bytearray(blob)
        # Most damage in the header, where it changes meaning; some anywhere.
        limit = 8 + n if trial % 4 else len(blob)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, limit))
            if trial % 3:
                data[pos] ^= 1 << int(rng.integers(0, 8))
            else:
                data[pos] = int(rng.choice(list(b'{}[]",:0123456789-@ eE.\x00\xff')))
        _only_serialization_errors(bytes(data), tmp_path if trial % 50 == 0 else None)


_JUNK = [None, True, 0, -1, 2 ** 64, 10 ** 30, 1.5, -0.0, "", "x", "F32", "BOOL", "@", "dict",
         "tensor", "nan", "int8", "model.w", [], [0, 0], [1, 2, 3], {}, {"@": "dict"},
         {"@": "tensor", "name": "model.w"}, {"@": "tensor", "name": "mask", "requires_grad": True},
         {"@": "numpy_scalar", "dtype": "bool", "value": 1},
         {"@": "numpy_scalar", "dtype": "float16", "value": 1e300},
         {"@": "dict", "items": [[{"@": "tuple", "items": [[1]]}, 1]]}]


def _json_paths(x, path=()):
    yield path
    items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, v in items:
        yield from _json_paths(v, path + (k,))


def test_fuzz_schema_mutations_only_raise_serialization_errors():
    """Replace random JSON values in the header or the structure with plausible wrong ones."""
    blob = _fuzz_blob()
    (n,) = struct.unpack("<Q", blob[:8])
    body = blob[8 + n:]
    rng = np.random.default_rng(1)
    for trial in range(1500):
        header = json.loads(blob[8:8 + n])
        structure = json.loads(header["__metadata__"]["backprop.structure"])
        target = structure if trial % 2 else header
        paths = [p for p in _json_paths(target) if p]
        for _ in range(int(rng.integers(1, 3))):
            path = paths[int(rng.integers(len(paths)))]
            parent = target
            try:
                for key in path[:-1]:
                    parent = parent[key]
                parent[path[-1]] = json.loads(json.dumps(_JUNK[int(rng.integers(len(_JUNK)))]))
            except (KeyError, IndexError, TypeError):
                pass  # an earlier change removed this path
        if trial % 2:
            header["__metadata__"]["backprop.structure"] = json.dumps(structure)
        text = json.dumps(header).encode()
        text += b" " * (-(len(text) + 8) % 8)
        _only_serialization_errors(struct.pack("<Q", len(text)) + text + body)


# ---------------------------------------------------------------------------
# compatibility with the safetensors package (skipped when it is not installed)
# ---------------------------------------------------------------------------
def test_files_interoperate_with_the_safetensors_package(tmp_path, rng):
    st_numpy = pytest.importorskip("safetensors.numpy")
    safetensors = pytest.importorskip("safetensors")
    arrays = {d: sample_array(d, (4, 3), rng) for d in ALL_DTYPES}
    arrays["scalar"] = np.array(1.5, np.float32)
    arrays["empty"] = np.zeros((0, 3), np.float64)

    # ours -> theirs
    save_file(arrays, tmp_path / "ours.st", metadata={"format": "np", "note": "ü"})
    theirs = st_numpy.load_file(tmp_path / "ours.st")
    for k, v in arrays.items():
        assert_same(v, theirs[k], k)
    with safetensors.safe_open(tmp_path / "ours.st", framework="np") as fh:
        assert fh.metadata() == {"format": "np", "note": "ü"}

    # a structured save() file is a valid safetensors file too
    ckpt = {"model": {"w": backprop.randn(3, 3)}, "state": {0: {"m": np.arange(3)}}, "epoch": 2}
    save(ckpt, tmp_path / "ckpt.st")
    flat = st_numpy.load_file(tmp_path / "ckpt.st")
    assert set(flat) == {"model.w", "state.0.m"}
    np.testing.assert_array_equal(flat["model.w"], ckpt["model"]["w"]._data)

    # theirs -> ours
    st_numpy.save_file(arrays, tmp_path / "theirs.st", metadata={"format": "np"})
    back = load_file(tmp_path / "theirs.st")
    assert set(back) == set(arrays)
    for k, v in arrays.items():
        assert_same(v, back[k]._data, k)
    assert inspect(tmp_path / "theirs.st")["metadata"] == {"format": "np"}
    assert set(load(tmp_path / "theirs.st")) == set(arrays)


def test_reads_files_written_by_safetensors_torch(tmp_path, oracle):
    st_torch = pytest.importorskip("safetensors.torch")
    torch = oracle
    tensors = {"w": torch.randn(3, 4, dtype=torch.float64), "h": torch.randn(2).half(),
               "m": torch.tensor([True, False]), "i": torch.arange(5), "e": torch.zeros(0, 2)}
    st_torch.save_file(tensors, tmp_path / "t.st")
    back = load_file(tmp_path / "t.st")
    for k, v in tensors.items():
        np.testing.assert_array_equal(back[k]._data, v.numpy())
        assert back[k]._data.dtype == v.numpy().dtype
    # and torch reads ours
    save_file({k: backprop.from_numpy(v.numpy()) for k, v in tensors.items()}, tmp_path / "o.st")
    again = st_torch.load_file(tmp_path / "o.st")
    for k, v in tensors.items():
        assert torch.equal(again[k], v)
