"""Bugs and edge cases the type checker (mypy over src/backprop) pointed at, kept fixed."""
import os

import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.serialization import atomic_write


def test_save_and_load_take_a_bytes_path(tmp_path):
    # A bytes path reached the atomic write as bytes and failed there with a TypeError
    # (str.startswith given bytes); os.fsdecode turns it into the str path it needs.
    path = os.fsencode(str(tmp_path / "weights.safetensors"))
    backprop.save({"w": backprop.arange(3.0)}, path)
    loaded = backprop.load(path)
    np.testing.assert_array_equal(loaded["w"]._data, np.arange(3.0, dtype=np.float32))


def test_atomic_write_takes_a_bytes_path(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write(os.fsencode(str(path)), lambda fh: fh.write(b"payload"))
    assert path.read_bytes() == b"payload"


def test_get_submodule_refuses_a_missing_or_empty_child():
    model = nn.Sequential(nn.Linear(2, 2))
    model.register_module("gap", None)
    assert model.get_submodule("0") is model[0]
    for target in ("gap", "1", "0.nothing"):
        with pytest.raises(AttributeError, match="has no submodule"):
            model.get_submodule(target)


def test_methods_that_return_self_keep_the_class():
    model = nn.Sequential(nn.Linear(2, 2))
    assert model.to(backprop.float64) is model
    assert model.double() is model and model.train() is model and model.eval() is model


def test_get_parameter_refuses_a_parameter_registered_as_none():
    # As PyTorch: get_parameter("bias") of Linear(bias=False) is an AttributeError, not None
    # (mypy saw the registry's None reach a function annotated to return a Parameter).
    torch = pytest.importorskip("torch")
    with pytest.raises(AttributeError, match="is not an nn.Parameter"):
        torch.nn.Linear(2, 2, bias=False).get_parameter("bias")
    ours = nn.Linear(2, 2, bias=False)
    with pytest.raises(AttributeError, match="`bias` is not an nn.Parameter"):
        ours.get_parameter("bias")
    assert ours.get_parameter("weight") is ours.weight


def test_ops_exports_every_op_module_by_its_star_import():
    # backprop.ops names its modules' functions with star imports (so type checkers see
    # them); a new op module must be star-imported there and listed in _MODULES.
    import importlib
    import pkgutil

    from backprop import ops

    for info in pkgutil.iter_modules(ops.__path__):
        module = importlib.import_module(f"backprop.ops.{info.name}")
        if hasattr(module, "__all__") or hasattr(module, "TENSOR_METHODS"):
            assert module in ops._MODULES, info.name
        for name in getattr(module, "__all__", ()):
            exported = getattr(ops, name, None)
            assert exported is not None, f"backprop.ops.{name} (from ops/{info.name}.py)"
            assert getattr(exported, "__wrapped__", exported) is getattr(module, name), name
