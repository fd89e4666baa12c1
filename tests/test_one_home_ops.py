"""One home for each job, below the surfaces: the tensor-argument check (ops._util.require_tensor),
the scans (cumsum/cumprod), mm/bmm's operand checks, the normalisations' running statistics,
module backward hooks' results, the named constants of backprop.dtypes, and Conv1d/Conv2d."""
import copy
import inspect
import pickle

import numpy as np
import pytest

import backprop
import backprop.nn.functional as F
from backprop import nn
from backprop.errors import ShapeError


@pytest.mark.parametrize("call, op", [
    (lambda: backprop.sin([1.0]), "sin"),                       # ops/elementwise
    (lambda: backprop.floor([1.0]), "floor"),                   # ops/math
    (lambda: backprop.cumsum([1.0, 2.0], 0), "cumsum"),          # ops/reduce
    (lambda: backprop.cumprod([1.0, 2.0], 0), "cumprod"),
    (lambda: backprop.nn.functional.hardsigmoid([1.0]), "hardsigmoid"),  # ops/activation
    (lambda: F.instance_norm([[[1.0, 2.0]]]), "instance_norm"),  # nn/spatial
    (lambda: F.batch_norm([[1.0]], None, None), "batch_norm"),  # nn/functional
])
def test_every_tensor_only_op_refuses_a_list_with_one_message(call, op):
    with pytest.raises(TypeError, match=rf"^{op}: expected a Tensor as input, got list$"):
        call()


def test_a_named_argument_is_named_in_the_message():
    x = backprop.randn(3)
    with pytest.raises(TypeError, match=r"^mse_loss: expected target to be a Tensor, got list$"):
        F.mse_loss(x, [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"^margin_ranking_loss: expected target to be a Tensor"):
        F.margin_ranking_loss(x, x, [1.0, -1.0, 1.0])


def test_cumsum_and_cumprod_share_dtype_dim_and_0d_handling():
    t = backprop.tensor([1, 2, 3])
    assert backprop.cumsum(t, 0, dtype=backprop.float64).dtype == backprop.float64
    assert backprop.cumprod(t, -1, dtype=backprop.float64).tolist() == [1.0, 2.0, 6.0]
    s = backprop.tensor(2.5, requires_grad=True)
    for fn in (backprop.cumsum, backprop.cumprod):
        out = fn(s, 0)
        assert out.item() == 2.5 and out is not s
    with pytest.raises(Exception, match="cumprod: dimension out of range"):
        backprop.cumprod(t, 1)


@pytest.mark.parametrize("fn, a, b, message", [
    (backprop.mm, (2, 3), (4, 3), r"mm: shapes \(2, 3\) and \(4, 3\) are not aligned: 3 != 4"),
    (backprop.mm, (2, 3, 1), (3, 4), r"mm: expected two 2-D tensors"),
    (backprop.bmm, (5, 2, 3), (4, 3, 4), r"bmm: batch sizes differ: .* \(5 != 4\)"),
    (backprop.bmm, (5, 2, 3), (5, 4, 4), r"bmm: shapes .* are not aligned: 3 != 4"),
])
def test_mm_and_bmm_check_their_operands_alike(fn, a, b, message):
    with pytest.raises(ShapeError, match=message):
        fn(backprop.ones(*a), backprop.ones(*b))


def test_mm_and_bmm_refuse_mixed_dtypes():
    with pytest.raises(Exception, match="bmm"):
        backprop.bmm(backprop.ones(1, 2, 2), backprop.ones(1, 2, 2, dtype=backprop.float64))


def test_running_statistics_follow_pytorch_for_batch_and_instance_norm(oracle):
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    for ours, theirs, kwargs in (
            (F.batch_norm, oracle.nn.functional.batch_norm, {"training": True}),
            (F.instance_norm, oracle.nn.functional.instance_norm, {"use_input_stats": True})):
        rm, rv = backprop.zeros(3), backprop.ones(3)
        trm, trv = oracle.zeros(3), oracle.ones(3)
        out = ours(backprop.tensor(x), rm, rv, momentum=0.3, **kwargs)
        ref = theirs(oracle.tensor(x), trm, trv, momentum=0.3, **kwargs)
        np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-6, atol=1e-7)


def test_normalising_by_running_statistics_needs_both():
    x = backprop.randn(4, 3, 5)
    with pytest.raises(ValueError, match="batch_norm: running_mean and running_var must be "
                                         "given when not training"):
        F.batch_norm(x, backprop.zeros(3), None)
    with pytest.raises(ValueError, match="instance_norm: running_mean and running_var must be "
                                         "given when use_input_stats is False"):
        F.instance_norm(x, None, backprop.ones(3), use_input_stats=False)


def test_module_backward_hooks_check_the_count_they_return():
    lin = nn.Linear(2, 2)
    lin.register_full_backward_pre_hook(lambda m, g: (g[0], g[0]))
    with pytest.raises(RuntimeError, match="Backward pre hook returned an invalid number of "
                                           "grad_output, got 2, but expected 1"):
        lin(backprop.randn(3, 2, requires_grad=True)).sum().backward()
    lin = nn.Linear(2, 2)
    lin.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="Backward hook returned an invalid number of "
                                           "grad_input, got 2, but expected 1"):
        lin(backprop.randn(3, 2, requires_grad=True)).sum().backward()


def test_a_backward_hook_may_replace_the_gradients():
    lin = nn.Linear(2, 2)
    lin.register_full_backward_pre_hook(lambda m, g: (g[0] * 0,))
    x = backprop.randn(3, 2, requires_grad=True)
    lin(x).sum().backward()
    assert x.grad.abs().sum().item() == 0


def test_layout_and_memory_formats_stay_one_instance_through_pickle_and_copy():
    from backprop import dtypes

    constants = (dtypes.strided, dtypes.contiguous_format, dtypes.preserve_format,
                 dtypes.channels_last, dtypes.channels_last_3d)
    for c in constants:
        assert pickle.loads(pickle.dumps(c)) is c
        assert copy.deepcopy(c) is c and copy.copy(c) is c
        assert repr(c) == f"backprop.{c.name}"
    assert isinstance(backprop.strided, backprop.layout)
    assert isinstance(backprop.channels_last, backprop.memory_format)
    assert not isinstance(backprop.strided, backprop.memory_format)


def test_conv1d_and_conv2d_keep_pytorchs_constructor_and_stay_apart(oracle):
    for ours, theirs in ((nn.Conv1d, oracle.nn.Conv1d), (nn.Conv2d, oracle.nn.Conv2d)):
        assert list(inspect.signature(ours).parameters) == \
            list(inspect.signature(theirs).parameters)
    assert not isinstance(nn.Conv1d(1, 1, 1), nn.Conv2d)
    assert not isinstance(nn.Conv2d(1, 1, 1), nn.Conv1d)
    assert nn.Conv1d(2, 3, 3, padding=1, padding_mode="circular")(
        backprop.randn(1, 2, 7)).shape == (1, 3, 7)


def test_pixel_shuffle_factors_are_checked_alike():
    x = backprop.randn(1, 8, 2, 2)
    with pytest.raises(ValueError, match="pixel_shuffle: upscale_factor must be a positive int, "
                                         "got 0"):
        F.pixel_shuffle(x, 0)
    with pytest.raises(ValueError, match="pixel_unshuffle: downscale_factor must be a positive "
                                         "int, got 1.5"):
        F.pixel_unshuffle(x, 1.5)


@pytest.mark.parametrize("name, args, kwargs", [
    ("Embedding", (10, 3), {}),
    ("Embedding", (10, 3), dict(padding_idx=0, max_norm=1.0, norm_type=1.0,
                                scale_grad_by_freq=True)),
    ("Embedding", (10, 3), dict(norm_type=2.0)),
    ("LSTM", (3, 4), dict(proj_size=2, num_layers=2, bias=False, batch_first=True, dropout=0.5,
                          bidirectional=True)),
    ("GRU", (3, 4), dict(dropout=0.0)),
    ("Conv2d", (3, 4, 3), dict(stride=2, padding=1, dilation=2, bias=False,
                               padding_mode="reflect")),
    ("Conv1d", (4, 4, 3), dict(padding="same", groups=2)),
    ("ConvTranspose2d", (4, 2, 3), dict(stride=2, output_padding=1)),
])
def test_extra_repr_lists_the_non_default_options_as_pytorch(oracle, name, args, kwargs):
    assert repr(getattr(nn, name)(*args, **kwargs)) == \
        repr(getattr(oracle.nn, name)(*args, **kwargs))
