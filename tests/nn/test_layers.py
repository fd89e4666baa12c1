"""Every layer against PyTorch (same weights, float64), gradient checks, and layer behaviour."""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.autograd import gradcheck

from tests.nn.common import assert_close, compare_layer, copy_to_torch

F64 = backprop.float64


# -- one table of layers: (backprop factory, torch factory, input shape) -------------------------
def _layers():
    return [
        ("linear", lambda m: m.Linear(5, 3), (4, 5)),
        ("linear_nobias", lambda m: m.Linear(5, 3, bias=False), (4, 5)),
        ("linear_3d", lambda m: m.Linear(5, 3), (2, 4, 5)),
        ("conv", lambda m: m.Conv2d(3, 4, 3), (2, 3, 7, 6)),
        ("conv_strided", lambda m: m.Conv2d(2, 4, (3, 2), stride=2, padding=1, dilation=(1, 2),
                                            bias=False), (2, 2, 9, 8)),
        ("conv_groups", lambda m: m.Conv2d(4, 6, 3, padding="same", groups=2), (2, 4, 5, 5)),
        ("conv_same_even", lambda m: m.Conv2d(2, 3, 4, padding="same"), (1, 2, 6, 7)),
        ("conv_valid", lambda m: m.Conv2d(2, 3, 2, padding="valid"), (1, 2, 5, 5)),
        ("conv_reflect", lambda m: m.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
         (2, 2, 5, 6)),
        ("conv_replicate", lambda m: m.Conv2d(2, 3, 3, padding=(2, 1), padding_mode="replicate"),
         (1, 2, 5, 6)),
        ("conv_circular", lambda m: m.Conv2d(2, 3, 3, padding="same", padding_mode="circular"),
         (1, 2, 5, 6)),
        ("maxpool", lambda m: m.MaxPool2d(2), (2, 3, 6, 6)),
        ("maxpool_args", lambda m: m.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
         (2, 2, 7, 8)),
        ("avgpool", lambda m: m.AvgPool2d(2), (1, 2, 4, 4)),
        ("avgpool_args", lambda m: m.AvgPool2d(3, 2, 1, count_include_pad=False), (1, 2, 5, 6)),
        ("adaptive_1", lambda m: m.AdaptiveAvgPool2d(1), (2, 3, 5, 6)),
        ("adaptive_div", lambda m: m.AdaptiveAvgPool2d((2, 3)), (2, 3, 4, 6)),
        ("adaptive_uneven", lambda m: m.AdaptiveAvgPool2d((3, 4)), (2, 3, 7, 5)),
        ("adaptive_none", lambda m: m.AdaptiveAvgPool2d((2, None)), (1, 2, 5, 3)),
        ("adaptive_3d", lambda m: m.AdaptiveAvgPool2d(3), (2, 5, 7)),
        ("flatten", lambda m: m.Flatten(), (2, 3, 4, 5)),
        ("flatten_args", lambda m: m.Flatten(0, 2), (2, 3, 4, 5)),
        ("unflatten", lambda m: m.Unflatten(1, (3, 4)), (2, 12)),
        ("identity", lambda m: m.Identity(), (3, 4)),
        ("layernorm", lambda m: m.LayerNorm(6), (3, 4, 6)),
        ("layernorm_2d", lambda m: m.LayerNorm((4, 6)), (3, 4, 6)),
        ("layernorm_noaffine", lambda m: m.LayerNorm(6, elementwise_affine=False), (3, 6)),
        ("layernorm_nobias", lambda m: m.LayerNorm(6, bias=False), (3, 6)),
        ("batchnorm1d", lambda m: m.BatchNorm1d(4), (8, 4)),
        ("batchnorm1d_3d", lambda m: m.BatchNorm1d(4), (3, 4, 2)),
        ("batchnorm2d", lambda m: m.BatchNorm2d(3), (4, 3, 5, 5)),
        ("batchnorm2d_noaffine", lambda m: m.BatchNorm2d(3, affine=False), (4, 3, 2, 2)),
        ("batchnorm_nobias", lambda m: m.BatchNorm1d(4, bias=False), (6, 4)),
        ("relu", lambda m: m.ReLU(), (4, 5)),
        ("leaky_relu", lambda m: m.LeakyReLU(0.2), (4, 5)),
        ("sigmoid", lambda m: m.Sigmoid(), (4, 5)),
        ("tanh", lambda m: m.Tanh(), (4, 5)),
        ("gelu", lambda m: m.GELU(), (4, 5)),
        ("gelu_tanh", lambda m: m.GELU("tanh"), (4, 5)),
        ("elu", lambda m: m.ELU(0.7), (4, 5)),
        ("softplus", lambda m: m.Softplus(2.0, 1.5), (4, 5)),
        ("silu", lambda m: m.SiLU(), (4, 5)),
        ("softmax", lambda m: m.Softmax(dim=1), (4, 5)),
        ("softmax_last", lambda m: m.Softmax(dim=-1), (2, 4, 5)),
        ("log_softmax", lambda m: m.LogSoftmax(dim=1), (4, 5)),
    ]


LAYERS = _layers()


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels
@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_matches_torch(oracle, name, make, shape, rng):
    compare_layer(make(nn), make(oracle.nn), oracle, shape, rng)


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_repr_matches_torch(oracle, name, make, shape):
    assert repr(make(nn)) == repr(make(oracle.nn))


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_state_dict_keys_match_torch(oracle, name, make, shape):
    assert list(make(nn).state_dict()) == list(make(oracle.nn).state_dict())
    assert [n for n, _ in make(nn).named_parameters()] == \
        [n for n, _ in make(oracle.nn).named_parameters()]


GRADCHECK = [c for c in LAYERS if not c[0].startswith(("maxpool", "relu"))]


@pytest.mark.parametrize("name,make,shape", GRADCHECK, ids=[c[0] for c in GRADCHECK])
def test_layer_gradcheck(name, make, shape, rng):
    module = make(nn).double()
    x = backprop.tensor(rng.standard_normal(shape), requires_grad=True)
    params = [p for p in module.parameters()]

    def f(x, *ps):
        return module(x)

    assert gradcheck(f, (x, *params))


def test_maxpool_and_relu_gradcheck_away_from_ties(rng):
    # Distinct values far from 0 keep finite differences off the kinks.
    x = rng.permutation(2 * 2 * 4 * 4).reshape(2, 2, 4, 4) / 10.0 + 0.05
    xt = backprop.tensor(x, requires_grad=True)
    assert gradcheck(nn.MaxPool2d(2), (xt,))
    assert gradcheck(nn.ReLU(), (backprop.tensor(x - 3.2, requires_grad=True),))


# -- construction and defaults --------------------------------------------------------------------
def test_linear_default_init_bounds():
    backprop.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    assert w.dtype == np.float32 and w.shape == (300, 400)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert np.abs(b).max() <= bound
    # U(-b, b) has std b/√3
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    assert abs(w.mean()) < 0.01 * bound


def test_conv_default_init_bounds():
    conv = nn.Conv2d(8, 16, 5, groups=2)
    fan_in = 4 * 25
    bound = 1 / math.sqrt(fan_in)
    w = conv.weight.detach().numpy()
    assert w.shape == (16, 4, 5, 5)
    assert np.abs(w).max() <= bound and abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert np.abs(conv.bias.detach().numpy()).max() <= bound


def test_layers_are_seeded():
    backprop.manual_seed(3)
    a = nn.Linear(4, 4).weight.detach().numpy().copy()
    backprop.manual_seed(3)
    b = nn.Linear(4, 4).weight.detach().numpy().copy()
    np.testing.assert_array_equal(a, b)


def test_dtype_argument_and_device():
    layer = nn.Linear(2, 3, dtype=F64)
    assert layer.weight.dtype == F64 and layer.bias.dtype == F64
    assert nn.Conv2d(1, 2, 3, dtype=F64).weight.dtype == F64
    assert nn.BatchNorm1d(3, dtype=F64).running_mean.dtype == F64
    nn.Linear(2, 3, device="cpu")
    with pytest.raises(ValueError, match="cuda"):
        nn.Linear(2, 3, device="cuda")


@pytest.mark.parametrize("make, match", [
    (lambda: nn.Linear(-1, 3), "in_features"),
    (lambda: nn.Linear(2.5, 3), "in_features"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), "in_channels"),
    (lambda: nn.Conv2d(4, 3, 3, groups=2), "out_channels"),
    (lambda: nn.Conv2d(4, 4, 3, padding="full"), "padding"),
    (lambda: nn.Conv2d(4, 4, 3, stride=2, padding="same"), "strided"),
    (lambda: nn.Conv2d(4, 4, 3, padding_mode="mirror"), "padding_mode"),
    (lambda: nn.Conv2d(4, 4, 0), "kernel_size"),
    (lambda: nn.Dropout(1.5), "between 0 and 1"),
    (lambda: nn.GELU("fast"), "approximate"),
    (lambda: nn.Embedding(5, 2, padding_idx=5), "padding_idx"),
    (lambda: nn.BatchNorm1d(0), "num_features"),
    (lambda: nn.Embedding(5, 2, sparse=True), "sparse"),
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_layer_input_errors_name_the_problem():
    with pytest.raises(backprop.ShapeError, match="linear"):
        nn.Linear(3, 2)(backprop.randn(4, 5))
    with pytest.raises(ValueError, match="2D or 3D"):
        nn.BatchNorm1d(3)(backprop.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(backprop.randn(1, 3))
    with pytest.raises(backprop.ShapeError, match="normalized_shape"):
        nn.LayerNorm(4)(backprop.randn(2, 5))
    with pytest.raises(backprop.ShapeError, match="adaptive_avg_pool2d"):
        nn.AdaptiveAvgPool2d(2)(backprop.randn(4, 4))


# -- BatchNorm: running statistics ---------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("kind,shape", [("BatchNorm1d", (8, 3)), ("BatchNorm1d", (6, 3, 4)),
                                        ("BatchNorm2d", (4, 3, 3, 5))])
def test_batchnorm_running_stats_follow_torch(oracle, rng, kind, shape, momentum):
    bn = getattr(nn, kind)(3, momentum=momentum).double()
    tbn = getattr(oracle.nn, kind)(3, momentum=momentum).double()
    with backprop.no_grad():
        bn.weight.copy_(backprop.tensor(rng.standard_normal(3)))
        bn.bias.copy_(backprop.tensor(rng.standard_normal(3)))
    copy_to_torch(bn, tbn, oracle)
    for step in range(5):
        x = rng.standard_normal(shape) * (step + 1) + step
        a, b = backprop.tensor(x, requires_grad=True), oracle.tensor(x, requires_grad=True)
        assert_close(bn(a), tbn(b), msg=f"train output, step {step}")
        assert_close(bn.running_mean, tbn.running_mean, msg="running_mean")
        assert_close(bn.running_var, tbn.running_var, msg="running_var (unbiased update)")
    assert int(bn.num_batches_tracked.item()) == 5 == int(tbn.num_batches_tracked)
    bn.eval()
    tbn.eval()
    x = rng.standard_normal(shape)
    before = bn.running_mean.numpy().copy()
    a, b = backprop.tensor(x, requires_grad=True), oracle.tensor(x, requires_grad=True)
    out_a, out_b = bn(a), tbn(b)
    assert_close(out_a, out_b, msg="eval output")
    g = rng.standard_normal(shape)
    out_a.backward(backprop.tensor(g))
    out_b.backward(oracle.tensor(g))
    assert_close(a.grad, b.grad, msg="eval input gradient")
    assert_close(bn.weight.grad, tbn.weight.grad, msg="eval weight gradient")
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)  # eval never updates
    assert int(bn.num_batches_tracked.item()) == 5


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval(oracle, rng):
    bn = nn.BatchNorm1d(3, track_running_stats=False).double().eval()
    tbn = oracle.nn.BatchNorm1d(3, track_running_stats=False).double().eval()
    assert bn.running_mean is None and list(bn.state_dict()) == ["weight", "bias"]
    x = rng.standard_normal((5, 3))
    assert_close(bn(backprop.tensor(x)), tbn(oracle.tensor(x)))


def test_batchnorm_float32_buffers_stay_float32(rng):
    bn = nn.BatchNorm2d(2)
    bn(backprop.tensor(rng.standard_normal((4, 2, 3, 3)).astype(np.float32)))
    assert bn.running_mean.dtype == backprop.float32
    assert bn.running_var.dtype == backprop.float32
    assert bn.num_batches_tracked.dtype == backprop.int64


# -- Dropout -------------------------------------------------------------------------------------
def test_dropout_train_and_eval():
    drop = nn.Dropout(0.25)
    x = backprop.ones(200, 50)
    y = drop(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    drop.eval()
    assert drop(x) is x
    assert nn.Dropout(0.0)(x) is x


def test_dropout_is_seeded():
    drop = nn.Dropout(0.5)
    backprop.manual_seed(7)
    a = drop(backprop.ones(100)).numpy().copy()
    backprop.manual_seed(7)
    b = drop(backprop.ones(100)).numpy().copy()
    np.testing.assert_array_equal(a, b)


def test_dropout_gradient_uses_the_mask():
    x = backprop.ones(1000, requires_grad=True)
    y = nn.Dropout(0.5)(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())


# -- Embedding -------------------------------------------------------------------------------------
def test_embedding_matches_torch(oracle, rng):
    emb = nn.Embedding(10, 4).double()
    temb = copy_to_torch(emb, oracle.nn.Embedding(10, 4).double(), oracle)
    idx = rng.integers(0, 10, (3, 5))
    out_a, out_b = emb(backprop.tensor(idx)), temb(oracle.tensor(idx))
    assert_close(out_a, out_b)
    g = rng.standard_normal((3, 5, 4))
    out_a.backward(backprop.tensor(g))
    out_b.backward(oracle.tensor(g))
    assert_close(emb.weight.grad, temb.weight.grad)


def test_embedding_padding_idx_is_zero_and_gets_no_gradient(oracle, rng):
    emb = nn.Embedding(6, 3, padding_idx=-2)
    assert emb.padding_idx == 4
    np.testing.assert_array_equal(emb.weight.detach().numpy()[4], 0)
    assert np.all(emb.weight.detach().numpy()[[0, 1, 2, 3, 5]] != 0)
    emb.double()
    temb = copy_to_torch(emb, oracle.nn.Embedding(6, 3, padding_idx=4).double(), oracle)
    idx = np.array([[4, 1, 4], [0, 4, 1]])
    out = emb(backprop.tensor(idx))
    (out * out).sum().backward()
    tout = temb(oracle.tensor(idx))
    (tout * tout).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy()[4], 0)
    assert_close(emb.weight.grad, temb.weight.grad)


def test_embedding_gradcheck_with_repeats(rng):
    w = backprop.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    idx = backprop.tensor([[0, 1, 1], [4, 0, 1]])
    # (padding_idx and scale_grad_by_freq are left out: they change the gradient by
    # design, not by calculus; both are compared with torch instead)
    assert gradcheck(lambda w: nn.functional.embedding(idx, w), (w,))


def test_embedding_scale_grad_by_freq_and_max_norm_match_torch(oracle, rng):
    w = rng.standard_normal((6, 3)) * 2
    idx = np.array([[0, 1, 1], [5, 0, 1]])
    a = backprop.tensor(w.copy(), requires_grad=True)
    b = oracle.tensor(w.copy(), requires_grad=True)
    F, TF = nn.functional, oracle.nn.functional
    out_a = F.embedding(backprop.tensor(idx), a, scale_grad_by_freq=True)
    out_b = TF.embedding(oracle.tensor(idx), b, scale_grad_by_freq=True)
    out_a.sum().backward()
    out_b.sum().backward()
    assert_close(a.grad, b.grad)
    emb = nn.Embedding(6, 3, max_norm=1.0, _weight=backprop.tensor(w.copy()))
    temb = oracle.nn.Embedding(6, 3, max_norm=1.0, _weight=oracle.tensor(w.copy()))
    assert_close(emb(backprop.tensor(idx)), temb(oracle.tensor(idx)), atol=1e-6)
    assert_close(emb.weight, temb.weight, atol=1e-6)  # looked-up rows renormalised in place


def test_embedding_errors():
    emb = nn.Embedding(4, 2)
    with pytest.raises(backprop.IndexOutOfRange, match="out of range"):
        emb(backprop.tensor([0, 4]))
    with pytest.raises(backprop.IndexOutOfRange):
        emb(backprop.tensor([-1]))
    with pytest.raises(backprop.DTypeError, match="integer"):
        emb(backprop.tensor([0.0, 1.0]))


def test_embedding_from_pretrained():
    emb = nn.Embedding.from_pretrained(backprop.eye(4))
    assert not emb.weight.requires_grad
    np.testing.assert_array_equal(emb(backprop.tensor([2])).numpy(), [[0, 0, 1, 0]])
    assert nn.Embedding.from_pretrained(backprop.eye(4), freeze=False).weight.requires_grad


# -- Residual -------------------------------------------------------------------------------
def test_residual_adds_the_input(rng):
    inner = nn.Linear(4, 4).double()
    block = nn.Residual(inner)
    x = backprop.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    np.testing.assert_allclose(block(x).detach().numpy(),
                               (x + inner(x)).detach().numpy())
    assert gradcheck(lambda x, w, b: block(x), (x, inner.weight, inner.bias))
    assert [n for n, _ in block.named_parameters()] == ["module.weight", "module.bias"]
    assert repr(block) == ("Residual(\n  (module): Linear(in_features=4, out_features=4, "
                           "bias=True)\n)")


def test_residual_refuses_a_shape_change():
    with pytest.raises(backprop.ShapeError, match=r"Residual.*\(3, 4\) to \(3, 5\)"):
        nn.Residual(nn.Linear(4, 5))(backprop.randn(3, 4))
    with pytest.raises(TypeError):
        nn.Residual(lambda x: x)


# -- conv details ----------------------------------------------------------------------------------
def test_conv_unbatched_input(oracle, rng):
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    tconv = copy_to_torch(conv, oracle.nn.Conv2d(2, 3, 3, padding=1).double(), oracle)
    x = rng.standard_normal((2, 5, 5))
    assert_close(conv(backprop.tensor(x)), tconv(oracle.tensor(x)))


def test_maxpool_return_indices(oracle, rng):
    x = rng.standard_normal((1, 2, 4, 4))
    out, idx = nn.MaxPool2d(2, return_indices=True)(backprop.tensor(x))
    tout, tidx = oracle.nn.MaxPool2d(2, return_indices=True)(oracle.tensor(x))
    assert_close(out, tout)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())


def test_softmax_without_dim_warns_and_uses_torchs_choice(oracle, rng):
    x = rng.standard_normal((2, 3, 4))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        out = nn.Softmax()(backprop.tensor(x))
    with pytest.warns(UserWarning):
        tout = oracle.nn.Softmax()(oracle.tensor(x))
    assert_close(out, tout)


def test_float32_layers_stay_float32(rng):
    x = backprop.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(4), nn.Linear(4, 2))
    assert model(x).dtype == backprop.float32


def test_ordered_dict_model_matches_torch(oracle, rng):
    def build(m):
        return m.Sequential(OrderedDict([("conv", m.Conv2d(1, 2, 3, padding=1)),
                                         ("bn", m.BatchNorm2d(2)), ("act", m.GELU()),
                                         ("pool", m.AvgPool2d(2)), ("flat", m.Flatten()),
                                         ("fc", m.Linear(8, 3))]))
    compare_layer(build(nn), build(oracle.nn), oracle, (3, 1, 4, 4), rng)
