"""The 1-D, transposed, adaptive, group/instance-norm, channel-dropout and resampling layers
against PyTorch (same weights, float64: outputs and every gradient), plus their behaviour."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.autograd import gradcheck
from backprop.errors import ShapeError
from backprop.nn import functional as F

from tests.nn.common import assert_close, compare_layer, copy_to_torch


def _layers():
    return [
        ("conv1d", lambda m: m.Conv1d(3, 4, 3), (2, 3, 9)),
        ("conv1d_args", lambda m: m.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),
         (2, 4, 11)),
        ("conv1d_same_even", lambda m: m.Conv1d(2, 3, 4, padding="same", bias=False), (2, 2, 7)),
        ("conv1d_valid", lambda m: m.Conv1d(2, 3, 2, padding="valid"), (1, 2, 5)),
        ("conv1d_reflect", lambda m: m.Conv1d(2, 3, 3, padding=2, padding_mode="reflect"),
         (2, 2, 6)),
        ("conv1d_replicate", lambda m: m.Conv1d(2, 3, 3, padding=1, padding_mode="replicate"),
         (2, 2, 6)),
        ("conv1d_circular", lambda m: m.Conv1d(2, 3, 4, padding="same",
                                               padding_mode="circular"), (1, 2, 6)),
        ("conv1d_unbatched", lambda m: m.Conv1d(3, 2, 3, padding=1), (3, 8)),
        ("convT2d", lambda m: m.ConvTranspose2d(3, 4, 3), (2, 3, 4, 4)),
        ("convT2d_up2", lambda m: m.ConvTranspose2d(4, 2, 3, stride=2, padding=1,
                                                    output_padding=1), (2, 4, 4, 5)),
        ("convT2d_args", lambda m: m.ConvTranspose2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0),
                                                     output_padding=(1, 0), groups=2,
                                                     dilation=(1, 2), bias=False), (1, 4, 3, 4)),
        ("convT2d_k4s2p1", lambda m: m.ConvTranspose2d(2, 3, 4, stride=2, padding=1),
         (2, 2, 3, 3)),
        ("convT2d_unbatched", lambda m: m.ConvTranspose2d(2, 3, 2, stride=2), (2, 3, 3)),
        ("convT1d", lambda m: m.ConvTranspose1d(3, 2, 4, stride=3, padding=1, output_padding=2),
         (2, 3, 5)),
        ("convT1d_unbatched_groups", lambda m: m.ConvTranspose1d(4, 2, 3, groups=2), (4, 6)),
        ("maxpool1d", lambda m: m.MaxPool1d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 8)),
        ("avgpool1d", lambda m: m.AvgPool1d(3, 2, 1, count_include_pad=False), (2, 3, 8)),
        ("adaptive_avg1d", lambda m: m.AdaptiveAvgPool1d(3), (2, 3, 7)),
        ("adaptive_max1d", lambda m: m.AdaptiveMaxPool1d(3), (2, 3, 7)),
        ("adaptive_max2d", lambda m: m.AdaptiveMaxPool2d((3, 2)), (1, 2, 7, 5)),
        ("adaptive_max2d_none", lambda m: m.AdaptiveMaxPool2d((None, 2)), (2, 2, 4, 5)),
        ("adaptive_max2d_up", lambda m: m.AdaptiveMaxPool2d(5), (3, 3, 4)),
        ("adaptive_avg2d_none", lambda m: m.AdaptiveAvgPool2d((None, 3)), (1, 2, 4, 7)),
        ("groupnorm", lambda m: m.GroupNorm(3, 6), (4, 6, 3, 3)),
        ("groupnorm_1", lambda m: m.GroupNorm(1, 4), (2, 4, 5)),
        ("groupnorm_c", lambda m: m.GroupNorm(4, 4, eps=1e-3), (2, 4, 2, 3)),
        ("groupnorm_2d", lambda m: m.GroupNorm(2, 4), (3, 4)),
        ("groupnorm_noaffine", lambda m: m.GroupNorm(2, 4, affine=False), (2, 4, 3)),
        ("groupnorm_nobias", lambda m: m.GroupNorm(2, 4, bias=False), (2, 4, 3)),
        ("instnorm2d", lambda m: m.InstanceNorm2d(3), (2, 3, 4, 4)),
        ("instnorm2d_affine", lambda m: m.InstanceNorm2d(3, affine=True), (2, 3, 4, 3)),
        ("instnorm2d_unbatched", lambda m: m.InstanceNorm2d(3, affine=True), (3, 4, 3)),
        ("instnorm1d_tracked", lambda m: m.InstanceNorm1d(3, affine=True,
                                                          track_running_stats=True), (2, 3, 6)),
        ("upsample_nearest", lambda m: m.Upsample(scale_factor=2), (2, 2, 3, 3)),
        ("upsample_nearest_size", lambda m: m.Upsample(size=(5, 4)), (1, 2, 3, 3)),
        ("upsample_nearest_1d", lambda m: m.Upsample(scale_factor=1.5), (2, 2, 5)),
        ("upsample_bilinear", lambda m: m.Upsample(scale_factor=2, mode="bilinear"),
         (1, 2, 3, 4)),
        ("upsample_bilinear_ac", lambda m: m.Upsample(size=(5, 7), mode="bilinear",
                                                      align_corners=True), (1, 2, 3, 4)),
        ("upsample_linear", lambda m: m.Upsample(scale_factor=2.5, mode="linear"), (2, 2, 4)),
        ("upsampling_nearest2d", lambda m: m.UpsamplingNearest2d(scale_factor=3), (1, 1, 2, 2)),
        ("upsampling_bilinear2d", lambda m: m.UpsamplingBilinear2d(size=(4, 5)), (1, 2, 3, 3)),
        ("pixel_shuffle", lambda m: m.PixelShuffle(2), (2, 8, 3, 2)),
        ("pixel_unshuffle", lambda m: m.PixelUnshuffle(3), (1, 2, 6, 3)),
        ("identity_args", lambda m: m.Identity(54, unused="x"), (3, 4)),
        ("unflatten_list", lambda m: m.Unflatten(-1, [2, 3]), (4, 6)),
        ("flatten_neg", lambda m: m.Flatten(-3, -2), (2, 3, 4, 5)),
    ]


LAYERS = _layers()
_IDS = [c[0] for c in LAYERS]


def _distinct(shape, rng):
    """Well-separated values: max pooling sees no ties, so gradients are unambiguous."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 - n * 0.05).reshape(shape)


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels
@pytest.mark.parametrize("name,make,shape", LAYERS, ids=_IDS)
def test_layer_matches_torch(oracle, name, make, shape, rng):
    x = _distinct(shape, rng) if "max" in name else None
    compare_layer(make(nn), make(oracle.nn), oracle, shape, rng, x=x)


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=_IDS)
def test_layer_repr_and_state_dict_match_torch(oracle, name, make, shape):
    ours, theirs = make(nn), make(oracle.nn)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]


GRADCHECK = [c for c in LAYERS if c[0] in (
    "conv1d_args", "conv1d_reflect", "convT2d_args", "convT1d", "groupnorm", "groupnorm_2d",
    "instnorm2d_affine", "instnorm1d_tracked", "upsample_bilinear", "upsample_nearest_1d",
    "pixel_shuffle", "adaptive_max2d")]


@pytest.mark.parametrize("name,make,shape", GRADCHECK, ids=[c[0] for c in GRADCHECK])
def test_layer_gradcheck(name, make, shape, rng):
    module = make(nn).double()
    arr = _distinct(shape, rng) if "max" in name else rng.standard_normal(shape)
    x = backprop.tensor(arr, requires_grad=True)
    params = list(module.parameters())
    assert gradcheck(lambda x, *ps: module(x), (x, *params))


# -- transposed convolution -----------------------------------------------------------------------
def test_conv_transpose_layout_and_default_init():
    backprop.manual_seed(0)
    up = nn.ConvTranspose2d(6, 8, 3, groups=2)
    w = up.weight.detach().numpy()
    assert w.shape == (6, 4, 3, 3) and w.dtype == np.float32      # (in, out/groups, kH, kW)
    bound = 1 / math.sqrt(4 * 9)                                   # fan_in = out/groups · k²
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(up.bias.detach().numpy()).max() <= bound
    assert nn.Conv1d(4, 6, 5, groups=2).weight.shape == (6, 2, 5)
    assert nn.ConvTranspose1d(4, 6, 5, groups=2, bias=False).weight.shape == (4, 3, 5)


def test_conv_transpose_is_the_adjoint_of_conv(rng):
    # <conv2d(x, W), y> = <x, conv_transpose2d(y, W)> for every x, y: the defining property.
    w = backprop.tensor(rng.standard_normal((4, 3, 3, 3)))
    x = backprop.tensor(rng.standard_normal((2, 3, 9, 8)))
    y = backprop.tensor(rng.standard_normal((2, 4, 5, 4)))
    lhs = (F.conv2d(x, w, stride=2, padding=1) * y).sum().item()
    back = F.conv_transpose2d(y, w, stride=2, padding=1, output_padding=(0, 1))
    assert back.shape == x.shape
    assert lhs == pytest.approx((x * back).sum().item(), rel=1e-10)


@pytest.mark.parametrize("size", [(9, 9), (10, 10), (2, 4, 10, 9)])
def test_conv_transpose_output_size_matches_torch(oracle, size, rng):
    ours = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1).double()
    theirs = copy_to_torch(ours, oracle.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1).double(),
                           oracle)
    x = rng.standard_normal((2, 4, 5, 5))
    a = ours(backprop.tensor(x), output_size=size)
    b = theirs(oracle.tensor(x), output_size=size)
    assert a.shape == tuple(b.shape) and a.shape[-2:] == tuple(size[-2:])
    assert_close(a, b)


def test_conv_transpose_output_size_out_of_range(oracle):
    x = backprop.randn(1, 4, 5, 5)
    with pytest.raises(ValueError, match=r"valid sizes range from \(9, 9\) to \(10, 10\)"):
        nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)(x, output_size=(11, 9))
    with pytest.raises(ValueError):  # torch refuses it too
        oracle.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)(
            oracle.randn(1, 4, 5, 5), output_size=(11, 9))


def test_conv_transpose_bad_arguments_name_the_op():
    x, w = backprop.randn(1, 4, 5, 5), backprop.randn(4, 2, 3, 3)
    with pytest.raises(ShapeError, match=r"conv_transpose2d: input has 3 channels"):
        F.conv_transpose2d(backprop.randn(1, 3, 5, 5), w)
    with pytest.raises(ShapeError, match=r"conv_transpose2d: output_padding must be smaller"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ShapeError, match=r"conv_transpose2d: expected bias of shape \(2,\)"):
        F.conv_transpose2d(x, w, backprop.randn(4))
    with pytest.raises(ShapeError, match=r"conv_transpose2d: output size .* is not positive"):
        F.conv_transpose2d(backprop.randn(1, 4, 1, 1), w, padding=2)
    with pytest.raises(ShapeError, match=r"conv_transpose1d: expected weight with 3 dim"):
        F.conv_transpose1d(backprop.randn(1, 4, 5), w)
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        nn.ConvTranspose2d(4, 2, 3, padding_mode="reflect")


def test_conv1d_bad_arguments_name_the_op():
    with pytest.raises(ShapeError, match=r"conv1d: expected input with 3 dimensions"):
        F.conv1d(backprop.randn(1, 2, 3, 4), backprop.randn(2, 2, 3))
    with pytest.raises(ShapeError, match=r"conv1d: input has 3 channels .* expects 4"):
        F.conv1d(backprop.randn(1, 3, 8), backprop.randn(2, 2, 3), groups=2)
    with pytest.raises(ShapeError, match=r"conv1d: kernel size 5 .* padded input length 4"):
        F.conv1d(backprop.randn(1, 2, 4), backprop.randn(2, 2, 5))
    with pytest.raises(ShapeError, match=r"conv1d: padding='same' is not supported for strided"):
        F.conv1d(backprop.randn(1, 2, 4), backprop.randn(2, 2, 3), stride=2, padding="same")
    with pytest.raises(ValueError, match="Conv1d: kernel_size must be an int"):
        nn.Conv1d(2, 2, (3, 3))


# -- adaptive max pooling -------------------------------------------------------------------------
@pytest.mark.parametrize("shape,size", [((2, 3, 7, 5), (3, 2)), ((2, 6, 6), 4),
                                        ((1, 2, 3, 3), (5, None))])
def test_adaptive_max_pool2d_indices_match_torch(oracle, shape, size, rng):
    x = rng.standard_normal(shape)
    x.flat[::3] = x.flat[1::3][:len(x.flat[::3])]  # ties: both pick the first maximum
    out, idx = F.adaptive_max_pool2d(backprop.tensor(x), size, return_indices=True)
    t_out, t_idx = oracle.nn.functional.adaptive_max_pool2d(oracle.tensor(x), size,
                                                            return_indices=True)
    assert_close(out, t_out, atol=0, rtol=0)
    assert idx.dtype == backprop.int64 and np.array_equal(idx.numpy(), t_idx.numpy())
    layer = nn.AdaptiveMaxPool1d(3, return_indices=True)
    a, ia = layer(backprop.tensor(x.reshape(x.shape[0], -1)[None]))
    b, ib = oracle.nn.AdaptiveMaxPool1d(3, return_indices=True)(
        oracle.tensor(x.reshape(x.shape[0], -1)[None]))
    assert_close(a, b) and np.array_equal(ia.numpy(), ib.numpy())


def test_adaptive_max_pool_gradient_goes_to_one_maximum():
    x = backprop.tensor([[[1.0, 3.0, 3.0, 0.0]]], requires_grad=True)
    F.adaptive_max_pool1d(x, 1).sum().backward()
    assert x.grad.numpy().tolist() == [[[0.0, 1.0, 0.0, 0.0]]]


# -- normalisation --------------------------------------------------------------------------------
def test_group_norm_normalises_each_group(rng):
    x = backprop.tensor(rng.standard_normal((3, 6, 4, 4)) * 5 + 2)
    y = nn.GroupNorm(3, 6)(x).detach().numpy().reshape(3, 3, -1)
    assert np.allclose(y.mean(-1), 0, atol=1e-5) and np.allclose(y.var(-1), 1, atol=1e-3)
    # a group's statistics never see another sample or group
    x2 = x.numpy().copy()
    x2[1] += 100.0
    x2[0, 2:4] *= 7
    y2 = nn.GroupNorm(3, 6)(backprop.tensor(x2)).detach().numpy().reshape(3, 3, -1)
    assert np.allclose(y2[[0, 2]][:, [0, 2]], y[[0, 2]][:, [0, 2]], atol=1e-5)


def test_group_norm_bad_arguments():
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels \(6\) must be divisible by "
                                         r"num_groups \(4\)"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ShapeError, match=r"group_norm: expected number of channels in input to "
                                         r"be divisible by num_groups.*\(2, 6, 3\)"):
        F.group_norm(backprop.randn(2, 6, 3), 4)
    with pytest.raises(ShapeError, match=r"group_norm: expected weight of shape \(6,\)"):
        F.group_norm(backprop.randn(2, 6, 3), 3, backprop.randn(3))


def test_instance_norm_running_stats_match_torch(oracle, rng):
    ours = nn.InstanceNorm2d(3, momentum=0.3, track_running_stats=True).double()
    theirs = oracle.nn.InstanceNorm2d(3, momentum=0.3, track_running_stats=True).double()
    for _ in range(2):
        x = rng.standard_normal((4, 3, 5, 5)) * 3 + 1
        assert_close(ours(backprop.tensor(x)), theirs(oracle.tensor(x)))
    assert_close(ours.running_mean, theirs.running_mean)
    assert_close(ours.running_var, theirs.running_var)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    assert_close(ours(backprop.tensor(x)), theirs(oracle.tensor(x)))   # running statistics


def test_instance_norm_checks_like_torch():
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected 3D or 4D input \(got 2D"):
        nn.InstanceNorm2d(3)(backprop.randn(3, 4))
    with pytest.raises(ValueError, match="expected input's size at dim=1 to match num_features"):
        nn.InstanceNorm1d(3, affine=True)(backprop.randn(2, 4, 5))
    with pytest.warns(UserWarning, match="does not match num_features"):
        nn.InstanceNorm1d(3)(backprop.randn(2, 4, 5))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        nn.InstanceNorm1d(3)(backprop.randn(2, 3, 1))


# -- channel dropout ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,shape,channel_axes", [
    ("Dropout1d", (4, 6, 5), 2), ("Dropout1d", (6, 5), 1), ("Dropout2d", (4, 6, 3, 3), 2),
    ("Dropout3d", (4, 6, 2, 3, 3), 2), ("Dropout3d", (6, 2, 3, 3), 1)])
def test_channel_dropout_zeroes_whole_channels(cls, shape, channel_axes):
    layer = getattr(nn, cls)(0.5)
    x = backprop.ones(*shape, requires_grad=True)
    y = layer(x)
    per_channel = y.detach().numpy().reshape(int(np.prod(shape[:channel_axes])), -1)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert (per_channel.min(1) == per_channel.max(1)).all()        # one draw per channel
    assert 0 < (per_channel[:, 0] == 0).sum() < per_channel.shape[0]
    y.sum().backward()
    assert np.array_equal(x.grad.numpy(), y.detach().numpy())      # the gradient is the mask
    assert layer.eval()(x) is x
    assert repr(layer) == f"{cls}(p=0.5, inplace=False)"


def test_channel_dropout_shape_rules_and_warnings_follow_torch(oracle):
    with pytest.raises(ShapeError, match=r"dropout1d: Expected 2D or 3D input, but received a 4D"):
        F.dropout1d(backprop.ones(2, 3, 4, 5))
    for fn, shape in (("dropout2d", (4, 6, 5)), ("dropout2d", (4, 6, 5, 2, 2)),
                      ("dropout3d", (4, 6, 5))):
        with warnings.catch_warnings(record=True) as ours:
            warnings.simplefilter("always")
            getattr(F, fn)(backprop.ones(*shape))
        with warnings.catch_warnings(record=True) as theirs:
            warnings.simplefilter("always")
            getattr(oracle.nn.functional, fn)(oracle.ones(*shape))
        assert [str(w.message) for w in ours] == [str(w.message) for w in theirs], (fn, shape)
    # dropout2d on 3-D input drops along dim 1 of (N, C, L), as torch does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = F.dropout2d(backprop.ones(20, 6, 5), 0.5).numpy()
    assert (y.min(-1) == y.max(-1)).all() and not (y.min((0, 2)) == y.max((0, 2))).all()
    assert not F.dropout2d(backprop.ones(2, 3, 2, 2), 1.0).numpy().any()
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.Dropout2d(1.5)


def test_alpha_dropout_keeps_mean_and_variance():
    backprop.manual_seed(0)
    x = backprop.randn(200_000)
    y = nn.AlphaDropout(0.3)(x).numpy()
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.02
    # every dropped element takes the one value a·(-λα) + b
    a = 1 / math.sqrt((1.7580993408473766 ** 2 * 0.3 + 1) * 0.7)
    dropped = -1.7580993408473766 * a + 1.7580993408473766 * a * 0.3
    share = np.isclose(y, dropped, atol=1e-6).mean()
    assert abs(share - 0.3) < 0.01
    assert F.alpha_dropout(x, 0.3) is x                # training defaults to False, as torch
    assert nn.AlphaDropout(0.3).eval()(x) is x


# -- resampling -----------------------------------------------------------------------------------
def test_interpolate_arguments_follow_torch():
    x = backprop.randn(1, 2, 3, 3)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x, size=4, scale_factor=2)
    with pytest.raises(ValueError, match="either size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError, match="bilinear mode needs 4D input"):
        F.interpolate(backprop.randn(1, 2, 3), scale_factor=2, mode="bilinear")
    with pytest.raises(NotImplementedError, match="'bicubic' is not supported"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    assert F.interpolate(x, size=(3, 3)) is not x


def test_pixel_shuffle_round_trip(rng):
    x = backprop.tensor(rng.standard_normal((2, 12, 2, 3)))
    assert F.pixel_shuffle(x, 2).shape == (2, 3, 4, 6)
    assert np.array_equal(F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2).numpy(), x.numpy())
    with pytest.raises(ShapeError, match="pixel_shuffle: .* divisible by upscale_factor"):
        F.pixel_shuffle(backprop.randn(1, 6, 2, 2), 2)


# -- functional forms exist where PyTorch has them -------------------------------------------------
def test_functional_names_exist():
    for name in ("conv1d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "avg_pool1d",
                 "adaptive_max_pool2d", "adaptive_max_pool1d", "adaptive_avg_pool1d",
                 "group_norm", "instance_norm", "dropout1d", "dropout2d", "dropout3d",
                 "alpha_dropout", "interpolate", "pixel_shuffle", "pixel_unshuffle"):
        assert callable(getattr(F, name)) and name in F.__all__, name
