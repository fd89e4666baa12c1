"""Module: registration, iteration, modes, dtype conversion, state dicts, printing."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.nn.module import StateDictError


class Net(nn.Module):
    """A small model with a buffer, a shared layer and nesting, built the same way in torch."""

    def __init__(self, m, torch=None):
        super().__init__()
        self.features = m.Sequential(m.Linear(2, 4), m.ReLU(), m.BatchNorm1d(4))
        self.scale = m.Parameter((torch or backprop).ones(1))
        self.head = m.Linear(4, 3)
        self.heads = m.ModuleList([self.head, m.Linear(4, 3)])
        self.register_buffer("steps", (torch or backprop).zeros(()))
        self.register_buffer("scratch", (torch or backprop).zeros(2), persistent=False)

    def forward(self, x):
        return self.heads[1](self.features(x)) * self.scale


class TorchNet:
    """The same architecture subclassing torch.nn.Module (built lazily: torch is optional)."""

    @staticmethod
    def build(torch):
        class _Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                m = torch.nn
                self.features = m.Sequential(m.Linear(2, 4), m.ReLU(), m.BatchNorm1d(4))
                self.scale = m.Parameter(torch.ones(1))
                self.head = m.Linear(4, 3)
                self.heads = m.ModuleList([self.head, m.Linear(4, 3)])
                self.register_buffer("steps", torch.zeros(()))
                self.register_buffer("scratch", torch.zeros(2), persistent=False)

            def forward(self, x):
                return self.heads[1](self.features(x)) * self.scale

        return _Net()


# -- registration ------------------------------------------------------------------------------
def test_attributes_register_and_stay_plain_attributes():
    net = Net(nn)
    assert net.head is net._modules["head"]          # no __getattr__ needed
    assert "head" in net.__dict__ and "scale" in net.__dict__
    assert isinstance(net.scale, nn.Parameter) and net.scale.requires_grad
    assert net._parameters == {"scale": net.scale}
    assert list(net._buffers) == ["steps", "scratch"]
    assert list(net._modules) == ["features", "head", "heads"]


def test_named_parameters_order_and_dedup_match_torch(oracle):
    net, tnet = Net(nn), TorchNet.build(oracle)
    names = [n for n, _ in net.named_parameters()]
    assert names == [n for n, _ in tnet.named_parameters()]
    # the shared head is listed once, under its first name
    assert names == ["scale", "features.0.weight", "features.0.bias", "features.2.weight",
                     "features.2.bias", "head.weight", "head.bias", "heads.1.weight",
                     "heads.1.bias"]
    assert len(list(net.parameters())) == 9
    assert len(list(net.named_parameters(remove_duplicate=False))) == 11
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_parameters(prefix="model")][0] == "model.scale"


def test_buffers_children_and_modules_match_torch(oracle):
    net, tnet = Net(nn), TorchNet.build(oracle)
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in tnet.named_buffers()]
    assert [n for n, _ in net.named_children()] == [n for n, _ in tnet.named_children()]
    assert [n for n, _ in net.named_modules()] == [n for n, _ in tnet.named_modules()]
    assert [type(m).__name__ for m in net.modules()][1:] == \
        [type(m).__name__ for m in tnet.modules()][1:]
    assert len(list(net.children())) == 3
    assert len(list(net.buffers())) == len(list(tnet.buffers()))


def test_state_dict_keys_match_torch(oracle):
    net, tnet = Net(nn), TorchNet.build(oracle)
    assert list(net.state_dict()) == list(tnet.state_dict())
    assert "scratch" not in net.state_dict()      # non-persistent
    assert "heads.0.weight" in net.state_dict()   # shared layers appear under every path


def test_state_dict_values_share_memory_and_are_detached():
    layer = nn.Linear(2, 2)
    sd = layer.state_dict()
    assert not sd["weight"].requires_grad
    assert np.shares_memory(sd["weight"].numpy(), layer.weight.detach().numpy())
    assert sd["weight"] is not layer.weight
    assert layer.state_dict(keep_vars=True)["weight"] is layer.weight
    assert list(layer.state_dict(prefix="fc.")) == ["fc.weight", "fc.bias"]


def test_register_parameter_buffer_module_and_errors():
    m = nn.Module()
    m.register_parameter("w", nn.Parameter(backprop.zeros(2)))
    m.register_parameter("b", None)
    assert m.b is None and list(m.state_dict()) == ["w"]
    m.b = nn.Parameter(backprop.ones(1))
    assert list(m.state_dict()) == ["w", "b"]
    m.register_buffer("buf", None)
    m.buf = backprop.zeros(3)
    assert m._buffers["buf"] is m.buf
    m.add_module("sub", nn.Linear(1, 1))
    m.register_module("other", None)
    assert [n for n, _ in m.named_children()] == ["sub"]
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = backprop.zeros(2)       # a plain tensor can't replace a parameter
    with pytest.raises(TypeError, match="child module 'sub'"):
        m.sub = 3
    with pytest.raises(TypeError, match="buffer 'buf'"):
        m.buf = 3
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("w", backprop.zeros(1))
    with pytest.raises(KeyError, match=r"\."):
        m.register_parameter("a.b", None)
    with pytest.raises(KeyError, match="empty"):
        m.add_module("", nn.ReLU())
    with pytest.raises(TypeError, match="not a Module"):
        m.add_module("x", 3)
    with pytest.raises(TypeError, match="Parameter"):
        m.register_parameter("x", backprop.zeros(1))
    with pytest.raises(ValueError, match="non-leaf"):
        p = nn.Parameter(backprop.zeros(1))
        p.grad_fn = (backprop.zeros(1, requires_grad=True) * 2).grad_fn
        m.register_parameter("y", p)


def test_reassigning_moves_between_registries():
    m = nn.Module()
    m.x = nn.Linear(1, 1)
    m.x = nn.Parameter(backprop.zeros(1))
    assert "x" not in m._modules and m._parameters["x"] is m.x
    m.x = None
    assert m._parameters["x"] is None
    m.plain = 3
    m.plain = nn.ReLU()
    assert m._modules["plain"] is m.plain
    del m.plain
    assert "plain" not in m._modules and not hasattr(m, "plain")


def test_uninitialised_module_errors():
    class Forgot(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Forgot()

    class ForgotPlain(nn.Module):
        def __init__(self):
            self.x = 1

        def forward(self, x):
            return x

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        ForgotPlain()(backprop.zeros(1))
    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        list(ForgotPlain().parameters())


def test_forward_missing():
    with pytest.raises(NotImplementedError, match='Module \\[Module\\] is missing the required '
                                                  '"forward" function'):
        nn.Module()(backprop.zeros(1))


def test_get_submodule_parameter_buffer():
    net = Net(nn)
    assert net.get_submodule("features.2") is net.features[2]
    assert net.get_submodule("") is net
    assert net.get_parameter("heads.1.bias") is net.heads[1].bias
    assert net.get_buffer("features.2.running_mean") is net.features[2].running_mean
    with pytest.raises(AttributeError, match="no submodule `nope`"):
        net.get_submodule("features.nope")
    with pytest.raises(AttributeError, match="no parameter"):
        net.get_parameter("head.nope")


# -- modes and bulk operations ------------------------------------------------------------------
def test_train_eval_propagate():
    net = Net(nn)
    assert net.training and net.features[2].training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")


def test_zero_grad_and_requires_grad_():
    layer = nn.Linear(3, 2)
    layer(backprop.randn(4, 3)).sum().backward()
    grad = layer.weight.grad
    layer.zero_grad(set_to_none=False)
    assert layer.weight.grad is grad and not grad.numpy().any()
    layer.zero_grad()
    assert layer.weight.grad is None
    assert layer.requires_grad_(False) is layer
    assert not any(p.requires_grad for p in layer.parameters())


def test_apply_visits_children_first():
    seen = []
    net = nn.Sequential(nn.Linear(1, 1), nn.Sequential(nn.ReLU()))
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Linear", "ReLU", "Sequential", "Sequential"]


def test_to_double_float_keep_identity_and_convert_buffers():
    net = Net(nn)
    params = list(net.parameters())
    bn = net.features[2]
    net(backprop.randn(5, 2)).sum().backward()
    version = params[1]._version
    assert net.double() is net
    assert all(a is b for a, b in zip(net.parameters(), params))
    assert all(p.dtype == backprop.float64 for p in net.parameters())
    assert all(p.grad.dtype == backprop.float64 for p in params if p.grad is not None)
    assert bn.running_mean.dtype == backprop.float64 and net.steps.dtype == backprop.float64
    assert bn.num_batches_tracked.dtype == backprop.int64   # integer buffers are left alone
    assert params[1]._version > version
    assert net(backprop.randn(5, 2, dtype=backprop.float64)).dtype == backprop.float64
    net.float()
    assert all(p.dtype == backprop.float32 for p in net.parameters())
    net.half()
    assert net.head.weight.dtype == backprop.float16
    net.to(dtype=backprop.float32)
    net.to(backprop.zeros(1, dtype=backprop.float64))
    assert net.head.weight.dtype == backprop.float64
    assert net.to("cpu") is net and net.to(device="cpu") is net and net.cpu() is net


def test_to_refuses_other_devices_and_integer_dtypes():
    layer = nn.Linear(1, 1)
    with pytest.raises(ValueError, match="CPU"):
        layer.to("cuda")
    with pytest.raises(ValueError, match="CPU"):
        layer.to(device="cuda:0")
    with pytest.raises(ValueError, match="CPU"):
        layer.cuda()
    with pytest.raises(backprop.DTypeError, match="floating point"):
        layer.to(backprop.int64)


def test_optimizer_style_reference_survives_to():
    layer = nn.Linear(2, 1)
    held = layer.weight
    layer.double()
    assert layer.weight is held and held.dtype == backprop.float64


# -- load_state_dict ---------------------------------------------------------------------------
def test_load_state_dict_copies_in_place():
    a, b = Net(nn), Net(nn)
    weight = b.head.weight
    result = b.load_state_dict(a.state_dict())
    assert repr(result) == "<All keys matched successfully>"
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b.head.weight is weight
    np.testing.assert_array_equal(weight.detach().numpy(), a.head.weight.detach().numpy())
    assert not np.shares_memory(weight.detach().numpy(), a.head.weight.detach().numpy())


def test_load_state_dict_accepts_numpy_and_casts():
    layer = nn.Linear(2, 3)
    state = {"weight": np.arange(6.0).reshape(3, 2), "bias": np.zeros(3)}
    layer.load_state_dict(state)
    assert layer.weight.dtype == backprop.float32
    np.testing.assert_array_equal(layer.weight.detach().numpy(), np.arange(6.0).reshape(3, 2))


def test_load_state_dict_lists_every_problem():
    net = Net(nn)
    state = net.state_dict()
    del state["head.bias"], state["features.2.running_var"]
    state["extra.weight"] = backprop.zeros(1)
    state["head.weight"] = backprop.zeros(5, 4)
    state["features.0.bias"] = backprop.zeros(7)
    state["scale"] = "oops"
    before = net.head.weight.detach().numpy().copy()
    with pytest.raises(StateDictError) as info:
        net.load_state_dict(state)
    msg = str(info.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:")
    assert 'Missing key(s) in state_dict: "features.2.running_var", "head.bias".' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight".' in msg
    assert ("size mismatch for head.weight: copying a param with shape (5, 4) from checkpoint, "
            "the shape in current model is (3, 4).") in msg
    assert "size mismatch for features.0.bias" in msg and "(7,)" in msg
    assert 'parameter named "scale"' in msg
    assert info.value.missing_keys == ["features.2.running_var", "head.bias"]
    assert info.value.unexpected_keys == ["extra.weight"]
    assert isinstance(info.value, RuntimeError)
    # nothing was changed by the failed load
    np.testing.assert_array_equal(net.head.weight.detach().numpy(), before)


def test_load_state_dict_non_strict(oracle):
    layer = nn.Linear(2, 3)
    result = layer.load_state_dict({"weight": backprop.zeros(3, 2), "foo": backprop.zeros(1)},
                                   strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["foo"]
    tresult = oracle.nn.Linear(2, 3).load_state_dict(
        {"weight": oracle.zeros(3, 2), "foo": oracle.zeros(1)}, strict=False)
    assert repr(result) == repr(tresult)
    assert not layer.weight.detach().numpy().any()
    with pytest.raises(StateDictError, match="size mismatch"):   # shapes are always checked
        layer.load_state_dict({"weight": backprop.zeros(4, 2)}, strict=False)


def test_load_state_dict_assign_and_roundtrip_with_torch(oracle):
    net, tnet = Net(nn), TorchNet.build(oracle)
    tnet.load_state_dict({k: oracle.tensor(np.array(v.numpy())) for k, v in
                          net.state_dict().items()})
    back = Net(nn)
    back.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    for (k, v), (_, w) in zip(net.state_dict().items(), back.state_dict().items()):
        np.testing.assert_array_equal(v.numpy(), w.numpy(), err_msg=k)
    layer = nn.Linear(2, 2)
    arr = np.ones((2, 2), dtype=np.float32)
    layer.load_state_dict({"weight": arr, "bias": np.zeros(2, np.float32)}, assign=True)
    assert layer.weight.detach().numpy() is arr


def test_load_state_dict_bumps_versions():
    layer = nn.Linear(2, 2)
    v = layer.weight._version
    layer.load_state_dict(layer.state_dict())
    assert layer.weight._version > v


# -- printing, copying ---------------------------------------------------------------------
def test_repr_of_nested_model_matches_torch(oracle):
    assert repr(Net(nn)) == repr(TorchNet.build(oracle)).replace("_Net", "Net")


def test_repr_with_multiline_extra_repr():
    class Two(nn.Module):
        def extra_repr(self):
            return "a=1\nb=2"

    assert repr(Two()) == "Two(\n  a=1\n  b=2\n)"
    assert repr(nn.Module()) == "Module()"


def test_parameter_basics(oracle):
    p = nn.Parameter(backprop.tensor([1.0, 2.0]))
    assert repr(p) == repr(oracle.nn.Parameter(oracle.tensor([1.0, 2.0])))
    assert p.requires_grad and p.is_leaf and isinstance(p, backprop.Tensor)
    assert type(p * 2) is backprop.Tensor
    assert not nn.Parameter(backprop.zeros(1), requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    t = backprop.zeros(3)
    assert np.shares_memory(nn.Parameter(t).detach().numpy(), t.numpy())
    with pytest.raises(backprop.DTypeError):
        nn.Parameter(backprop.tensor([1, 2]))


def test_deepcopy_and_pickle_keep_structure():
    net = Net(nn)
    clone = copy.deepcopy(net)
    assert isinstance(clone.scale, nn.Parameter)
    assert clone.head is clone.heads[0]            # sharing preserved
    assert clone.head.weight is clone._modules["head"]._parameters["weight"]
    assert not np.shares_memory(clone.head.weight.detach().numpy(),
                                net.head.weight.detach().numpy())
    restored = pickle.loads(pickle.dumps(net))
    assert list(restored.state_dict()) == list(net.state_dict())
    x = backprop.randn(3, 2)
    net.eval(), restored.eval()
    np.testing.assert_array_equal(net(x).detach().numpy(), restored(x).detach().numpy())


def test_call_without_hooks_is_forward():
    layer = nn.Linear(2, 2)
    x = backprop.randn(1, 2)
    np.testing.assert_array_equal(layer(x).detach().numpy(), layer.forward(x).detach().numpy())


def test_dir_lists_registered_names():
    assert {"weight", "bias", "forward"} <= set(dir(nn.Linear(1, 1)))
