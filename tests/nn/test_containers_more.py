"""nn.ParameterList, nn.ParameterDict, nn.Buffer, Module.set_submodule, nn.init.dirac_,
nn.utils.clip_grad_norm / skip_init / fuse_conv_bn_eval / fuse_linear_bn_eval, compared
with torch where it is deterministic."""
import copy
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import backprop
from backprop import nn


# -- ParameterList --------------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.ws = nn.ParameterList([nn.Parameter(backprop.ones(2, 3)), backprop.zeros(3)])
        self.scales = nn.ParameterDict({"b": backprop.ones(3),
                                        "a": nn.Parameter(backprop.zeros(1))})


def test_parameter_list_registers_and_converts():
    pl = nn.ParameterList([nn.Parameter(backprop.ones(2)), backprop.zeros(3), "note"])
    assert len(pl) == 3 and isinstance(pl[1], nn.Parameter) and pl[1].requires_grad
    assert pl[2] == "note" and pl[-1] == "note"
    assert [tuple(p.shape) for p in pl.parameters()] == [(2,), (3,)]
    pl.append(backprop.full((4,), 2.0))
    pl.extend([nn.Parameter(backprop.ones(1))])
    pl += [backprop.zeros(5)]
    assert len(pl) == 6 and list(pl.state_dict()) == ["0", "1", "3", "4", "5"]
    pl[0] = backprop.full((2,), 7.0)
    assert isinstance(pl[0], nn.Parameter) and pl[0].tolist() == [7.0, 7.0]
    part = pl[1:3]
    assert isinstance(part, nn.ParameterList) and len(part) == 2 and part[0] is pl[1]
    with pytest.raises(IndexError, match="ParameterList: index 6 is out of range"):
        pl[6]
    with pytest.raises(TypeError, match="ParameterList.extend should be called with an iterable"):
        pl.extend(3)
    with pytest.raises(RuntimeError, match="ParameterList should not be called"):
        pl(backprop.ones(1))


def test_parameter_containers_in_a_model_match_torch(oracle):
    class TNet(oracle.nn.Module):
        def __init__(self):
            super().__init__()
            self.ws = oracle.nn.ParameterList([oracle.nn.Parameter(oracle.ones(2, 3)),
                                               oracle.zeros(3)])
            self.scales = oracle.nn.ParameterDict({"b": oracle.ones(3),
                                                   "a": oracle.nn.Parameter(oracle.zeros(1))})
    ours, theirs = Net(), TNet()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    # the repr of a ParameterList is PyTorch's, dtype names aside
    assert repr(ours.ws).replace("backprop.", "") == repr(theirs.ws).replace("torch.", "")
    # an optimizer updates the parameters held in the containers
    opt = backprop.optim.SGD(ours.parameters(), lr=0.5)
    (ours.ws[0].sum() + ours.scales["b"].sum() * 2).backward()
    opt.step()
    assert ours.ws[0].tolist() == [[0.5] * 3] * 2 and ours.scales["b"].tolist() == [0.0] * 3
    # the containers' contents convert with the module
    ours.double()
    assert ours.ws[1].dtype == backprop.float64 and ours.scales["a"].dtype == backprop.float64


def test_parameter_dict_is_a_dict_of_parameters():
    pd = nn.ParameterDict(OrderedDict([("z", backprop.ones(1)), ("y", backprop.ones(2))]))
    assert list(pd) == ["z", "y"]  # an OrderedDict keeps its order
    assert list(nn.ParameterDict({"z": backprop.ones(1), "y": backprop.ones(2)})) == ["y", "z"]
    pd["x"] = nn.Parameter(backprop.zeros(3))
    pd.update([("w", backprop.zeros(4))])
    assert len(pd) == 4 and "w" in pd and isinstance(pd["w"], nn.Parameter)
    assert list(pd.keys()) == ["z", "y", "x", "w"] and list(reversed(pd))[0] == "w"
    assert [tuple(v.shape) for v in pd.values()] == [(1,), (2,), (3,), (4,)]
    assert pd.get("missing") is None and pd.get("x") is pd["x"]
    assert pd.setdefault("v", backprop.ones(5)).shape == (5,)
    key, value = pd.popitem()
    assert key == "v" and value.shape == (5,) and "v" not in pd
    assert pd.pop("w").shape == (4,) and "w" not in dict(pd.named_parameters())
    merged = pd | nn.ParameterDict({"q": backprop.ones(1)})
    assert list(merged) == ["z", "y", "x", "q"] and merged["z"] is pd["z"]
    pd |= {"r": backprop.ones(1)}
    assert "r" in pd
    c = pd.copy()
    assert list(c) == list(pd) and c["z"] is pd["z"]
    f = pd.fromkeys(["m", "n"], backprop.zeros(2))
    assert list(f) == ["m", "n"]
    del pd["r"]
    with pytest.raises(KeyError):
        pd["r"]
    pd.clear()
    assert len(pd) == 0 and list(pd.parameters()) == []
    with pytest.raises(TypeError, match="ParameterDict keys must be strings"):
        pd[3] = backprop.ones(1)
    with pytest.raises(ValueError, match="element #0 has length 3"):
        pd.update([("a", backprop.ones(1), 3)])
    with pytest.raises(KeyError, match="name can.*t contain"):
        pd["a.b"] = backprop.ones(1)


def test_parameter_dict_state_dict_round_trip():
    a, b = Net(), Net()
    for p in a.parameters():
        p._data[...] = np.random.default_rng(0).standard_normal(p.shape)
    b.load_state_dict(a.state_dict())
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb
        np.testing.assert_array_equal(pa.detach().numpy(), pb.detach().numpy())


# -- Buffer and Module methods --------------------------------------------------------------
def test_buffer_registers_itself_like_torchs(oracle):
    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = nn.Buffer(backprop.zeros((), dtype=backprop.int64))
            self.cache = nn.Buffer(backprop.ones(3), persistent=False)
            self.lin = nn.Linear(2, 2)

    class Theirs(oracle.nn.Module):
        def __init__(self):
            super().__init__()
            self.steps = oracle.nn.Buffer(oracle.zeros((), dtype=oracle.int64))
            self.cache = oracle.nn.Buffer(oracle.ones(3), persistent=False)
            self.lin = oracle.nn.Linear(2, 2)

    ours, theirs = Ours(), Theirs()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert not ours.cache.requires_grad
    ours.steps = backprop.tensor(5)  # a plain tensor keeps the buffer registration
    assert ours.get_buffer("steps").item() == 5 and "steps" in ours.state_dict()
    ours.double()
    assert ours.cache.dtype == backprop.float64 and ours.steps.dtype == backprop.int64


def test_buffer_shares_storage_and_checks_assignment():
    t = backprop.ones(2)
    buf = nn.Buffer(t)
    buf._data[0] = 3.0
    assert t.tolist() == [3.0, 1.0] and nn.Buffer().shape == (0,)
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign 'Buffer' as parameter 'weight'"):
        m.weight = nn.Buffer(backprop.ones(2, 2))


def test_set_submodule_replaces_a_layer():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    model.set_submodule("1.0", nn.Tanh())
    assert isinstance(model[1][0], nn.Tanh) and model.get_submodule("1.0") is model[1][0]
    model.set_submodule("1.2", nn.Sigmoid())
    assert isinstance(model[1][2], nn.Sigmoid)
    with pytest.raises(AttributeError, match="has no submodule `5`"):
        model.set_submodule("5", nn.ReLU(), strict=True)
    with pytest.raises(AttributeError, match="has no submodule `x`"):
        model.set_submodule("x.y", nn.ReLU())
    with pytest.raises(TypeError, match="set_submodule: `module` is not an nn.Module"):
        model.set_submodule("0", 3)


def test_module_methods_match_torch(oracle):
    """The Module API covers PyTorch's except the few listed (compile, hooks on state dicts,
    extra state, devices that backprop lacks)."""
    missing = {n for n in dir(oracle.nn.Module) if not n.startswith("_")} - set(dir(nn.Module))
    known = {"T_destination", "bfloat16", "call_super_init", "compile", "dump_patches",
             "get_extra_state", "set_extra_state", "ipu", "mtia", "xpu", "share_memory",
             "to_empty", "type", "register_backward_hook",
             "register_load_state_dict_post_hook", "register_load_state_dict_pre_hook",
             "register_state_dict_post_hook", "register_state_dict_pre_hook"}
    assert missing <= known, sorted(missing - known)


# -- init.dirac_ ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape, groups", [((4, 4, 3), 1), ((6, 3, 3, 3), 2), ((2, 5, 3, 3), 1),
                                           ((4, 2, 3, 5, 5), 2), ((3, 3, 2, 2), 3)])
def test_dirac_matches_torch(oracle, shape, groups):
    ours = nn.init.dirac_(backprop.randn(*shape), groups=groups)
    theirs = oracle.nn.init.dirac_(oracle.randn(*shape), groups=groups)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_dirac_conv_is_the_identity():
    conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
    nn.init.dirac_(conv.weight)
    x = backprop.randn(2, 3, 5, 5)
    np.testing.assert_allclose(conv(x).detach().numpy(), x.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="only tensors with 3, 4, or 5 dimensions"):
        nn.init.dirac_(backprop.zeros(3, 3))
    with pytest.raises(ValueError, match="must be divisible by groups"):
        nn.init.dirac_(backprop.zeros(3, 3, 3), groups=2)


# -- nn.utils -------------------------------------------------------------------------------
def test_clip_grad_norm_is_a_deprecated_alias(oracle):
    w = backprop.tensor([0.0, 0.0], requires_grad=True)
    (w * backprop.tensor([3.0, 4.0])).sum().backward()
    with pytest.warns(FutureWarning, match="clip_grad_norm_"):
        total = nn.utils.clip_grad_norm([w], max_norm=1.0)
    tw = oracle.tensor([0.0, 0.0], requires_grad=True)
    (tw * oracle.tensor([3.0, 4.0])).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ttotal = oracle.nn.utils.clip_grad_norm([tw], max_norm=1.0)
    assert total.item() == pytest.approx(ttotal.item())
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-6)


def test_skip_init_builds_the_module():
    layer = nn.utils.skip_init(nn.Linear, 4, 2, bias=False)
    assert isinstance(layer, nn.Linear) and layer.weight.shape == (2, 4) and layer.bias is None
    with pytest.raises(RuntimeError, match="expected a Module class"):
        nn.utils.skip_init(int, 3)

    class NoDevice(nn.Module):
        def __init__(self, n):
            super().__init__()

    with pytest.raises(RuntimeError, match="must accept a 'device' argument"):
        nn.utils.skip_init(NoDevice, 3)


def _bn_stats(bn, rng):
    c = bn.num_features
    bn.running_mean._data[...] = rng.standard_normal(c)
    bn.running_var._data[...] = rng.random(c) + 0.5
    bn.weight._data[...] = rng.standard_normal(c)
    bn.bias._data[...] = rng.standard_normal(c)


@pytest.mark.parametrize("bias", [True, False])
def test_fuse_conv_bn_eval(bias):
    rng = np.random.default_rng(0)
    conv, bn = nn.Conv2d(3, 4, 3, bias=bias).double(), nn.BatchNorm2d(4).double()
    _bn_stats(bn, rng)
    conv.eval(), bn.eval()
    fused = nn.utils.fuse_conv_bn_eval(conv, bn)
    x = backprop.tensor(rng.standard_normal((2, 3, 6, 6)))
    np.testing.assert_allclose(fused(x).detach().numpy(), bn(conv(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    assert fused is not conv and fused.weight is not conv.weight  # conv is left as it was
    assert isinstance(fused.bias, nn.Parameter)
    with pytest.raises(RuntimeError, match="fusion only for eval"):
        nn.utils.fuse_conv_bn_eval(conv.train(), bn)


def test_fuse_linear_bn_eval_and_transposed_conv_match_torch(oracle):
    rng = np.random.default_rng(1)
    lin, bn = nn.Linear(5, 3).double().eval(), nn.BatchNorm1d(3).double().eval()
    _bn_stats(bn, rng)
    fused = nn.utils.fuse_linear_bn_eval(lin, bn)
    x = backprop.tensor(rng.standard_normal((4, 5)))
    np.testing.assert_allclose(fused(x).detach().numpy(), bn(lin(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    # the weights equal torch's fusion of the same layers
    w = rng.standard_normal((2, 4, 3, 3))
    stats = [rng.standard_normal(4), rng.random(4) + 0.5, rng.standard_normal(4),
             rng.standard_normal(4)]
    ours = nn.utils.fuse_conv_bn_weights(
        backprop.tensor(w), None, backprop.tensor(stats[0]), backprop.tensor(stats[1]), 1e-5,
        backprop.tensor(stats[2]), backprop.tensor(stats[3]), transpose=True)
    theirs = oracle.nn.utils.fuse_conv_bn_weights(
        oracle.tensor(w), None, oracle.tensor(stats[0]), oracle.tensor(stats[1]), 1e-5,
        oracle.tensor(stats[2]), oracle.tensor(stats[3]), transpose=True)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12)


def test_containers_deepcopy():
    net = Net()
    twin = copy.deepcopy(net)
    assert list(twin.state_dict()) == list(net.state_dict())
    assert twin.ws[0] is not net.ws[0] and len(twin.scales) == 2
