"""Shape ops: error messages, views, dtypes and edge cases (values and gradients are in the
catalogue, tests/ops/cases_shape.py)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backprop
from backprop import IndexOutOfRange, ShapeError
from backprop.ops import shape as S


def t(*shape, grad=False, dtype=np.float64):
    data = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    return backprop.tensor(data, requires_grad=grad)


# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call, cls, match", [
    (lambda: t(3, 4).split([1, 1]), ShapeError,
     r"split: split sizes \[1, 1\] must be non-negative and sum exactly to 3"),
    (lambda: t(3, 4).split([2, 3], dim=1), ShapeError, r"sum exactly to 4"),
    (lambda: t(3, 4).split(0), ShapeError, r"split_size can only be 0 if"),
    (lambda: t(3, 4).split(-1), ShapeError, r"split_size must be non-negative, got -1"),
    (lambda: t(3, 4).split(2.0), TypeError, r"split: split_size_or_sections must be an int"),
    (lambda: t().split(1), ShapeError, r"split: expects at least a 1-dimensional tensor"),
    (lambda: t(3).chunk(0), ShapeError, r"chunk: expects `chunks` to be greater than 0, got 0"),
    (lambda: t(3, 4).squeeze(2), IndexOutOfRange,
     r"squeeze: dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"),
    (lambda: t(3, 4).squeeze((0, 0)), ShapeError, r"squeeze: dim \(0, 0\) names the same"),
    (lambda: t(3, 4).unsqueeze(3), IndexOutOfRange,
     r"unsqueeze: dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"),
    (lambda: t(3, 4).unsqueeze(-4), IndexOutOfRange, r"unsqueeze: dimension out of range"),
    (lambda: t(3, 4).expand(3, 5), ShapeError,
     r"expand: the expanded size of the tensor \(5\) must match the existing size \(4\) at "
     r"non-singleton dimension 1; target sizes \(3, 5\), tensor shape \(3, 4\)"),
    (lambda: t(3, 4).expand(4), ShapeError,
     r"expand: the number of sizes provided \(1\) must be greater or equal to the number of "
     r"dimensions in the tensor \(2\)"),
    (lambda: t(3, 1).expand(-1, 3, 1), ShapeError,
     r"expand: the expanded size -1 isn't allowed in a leading, new dimension 0"),
    (lambda: t(3, 1).expand(3, -2), ShapeError, r"expanded size -2 isn't allowed"),
    (lambda: t(3, 1).expand(3, 2.5), TypeError, r"expand: shape must be ints"),
    (lambda: t(2, 4).expand_as(t(2, 3)), ShapeError, r"expand_as: the expanded size"),
    (lambda: S.broadcast_to(t(3), (2, 4)), ShapeError, r"broadcast_to: the expanded size"),
    (lambda: S.stack([t(3, 4), t(3, 5)]), ShapeError,
     r"stack: expects each tensor to be equal size, but got \(3, 4\) at entry 0 and \(3, 5\) "
     r"at entry 1"),
    (lambda: S.stack([]), ShapeError, r"stack: expected a non-empty list of tensors"),
    (lambda: S.stack([t(2), t(2)], dim=2), IndexOutOfRange, r"stack: dimension out of range"),
    (lambda: S.cat([t(2, 3), t(4, 3)], dim=1), ShapeError,
     r"cat: tensors must have the same shape except in dim 1, got \(2, 3\) and \(4, 3\)"),
    (lambda: S.cat([t(3, 4), t(3)]), ShapeError,
     r"cat: tensors must have the same number of dimensions, got \(3, 4\) and \(3,\)"),
    (lambda: S.cat([]), ShapeError, r"cat: expected a non-empty list of tensors"),
    (lambda: S.cat([t(), t()]), ShapeError,
     r"cat: zero-dimensional tensor \(at position 0\) cannot be concatenated"),
    (lambda: S.cat(t(2, 3)), TypeError, r"cat: expected a list or tuple of tensors, got Tensor"),
    (lambda: S.cat([t(2), [1.0]]), TypeError, r"cat: .* element 1 is a list"),
    (lambda: S.cat([t(2, 3)], dim=2), IndexOutOfRange, r"cat: dimension out of range"),
    (lambda: t(2, 3, 4).flatten(2, 1), ShapeError,
     r"flatten: start_dim \(2\) cannot come after end_dim \(1\)"),
    (lambda: t(2, 3).flatten(0, 2), IndexOutOfRange, r"flatten: dimension out of range"),
    (lambda: t(2, 12).unflatten(1, (5, -1)), ShapeError,
     r"unflatten: provided sizes \(5, -1\) don't multiply up to the size of dim 1 \(12\)"),
    (lambda: t(2, 12).unflatten(1, (-1, -1)), ShapeError, r"only one -1"),
    (lambda: t(2, 12).unflatten(1, ()), ShapeError, r"unflatten: sizes must be non-empty"),
    (lambda: S.pad(t(3, 4), (1, 2, 3)), ShapeError,
     r"pad: padding length must be divisible by 2, got 3"),
    (lambda: S.pad(t(3, 4), (1,) * 6), ShapeError,
     r"pad: padding length should be at most twice the number of dimensions"),
    (lambda: S.pad(t(3, 4), (1, 1), mode="foo"), ValueError, r"pad: unknown padding mode 'foo'"),
    (lambda: S.pad(t(3, 4), (1, 1), mode="reflect", value=2.0), ValueError,
     r"pad: padding mode 'reflect' doesn't take a value argument"),
    (lambda: S.pad(t(3, 4), (4, 1), mode="reflect"), ShapeError,
     r"pad: reflect padding must be less than the size of the dimension, got padding \(4, 1\) "
     r"for dimension 1 of size 4"),
    (lambda: S.pad(t(3, 4), (5, 0), mode="circular"), ShapeError, r"circular padding"),
    (lambda: S.pad(t(2, 0), (1, 1), mode="replicate"), ShapeError,
     r"replicate padding needs a non-empty dimension"),
    (lambda: S.pad(t(3, 4), (-3, -2)), ShapeError,
     r"pad: padding \(-3, -2\) leaves a negative size for dimension 1 of size 4"),
    (lambda: S.pad(t(3, 4), (1.5, 1)), TypeError, r"pad: pad must be a tuple of ints"),
    (lambda: t(3, 4).repeat(2), ShapeError,
     r"repeat: number of dimensions of repeat dims \(1\) can not be smaller than number of "
     r"dimensions of tensor \(2"),
    (lambda: t(3, 4).repeat(-1, 1), ShapeError, r"repeat: repeats must be non-negative"),
    (lambda: t(3, 4).flip(0, 0), ShapeError, r"flip: dim \(0, 0\) names the same dimension"),
    (lambda: t(3, 4).flip(2), IndexOutOfRange, r"flip: dimension out of range"),
    (lambda: t(3, 4).flip(0, dims=1), TypeError, r"flip: got dims both"),
    (lambda: t(3, 4).narrow(1, 3, 2), ShapeError,
     r"narrow: start \(3\) \+ length \(2\) exceeds dimension size \(4\)"),
    (lambda: t(3, 4).narrow(1, 5, 0), ShapeError, r"narrow: start \(5\) is out of range"),
    (lambda: t().narrow(0, 0, 1), ShapeError, r"narrow: cannot be applied to a 0-dim tensor"),
    (lambda: t(2, 3).movedim((0, 1), 0), ShapeError, r"movedim: source \(0, 1\) and "),
    (lambda: t(2, 3).movedim((0, 0), (0, 1)), ShapeError, r"movedim: repeated dim"),
    (lambda: t(2, 3).unbind(2), IndexOutOfRange, r"unbind: dimension out of range"),
])
def test_errors(call, cls, match):
    with pytest.raises(cls, match=match):
        call()


def test_errors_are_the_natural_python_classes():
    with pytest.raises(ValueError):
        S.cat([t(2, 3), t(4, 3)], dim=1)
    with pytest.raises(IndexError):
        t(3, 4).squeeze(5)


# -- views, dtypes, semantics ----------------------------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda x: x.flatten(), lambda x: x.unsqueeze(1), lambda x: x.squeeze(),
    lambda x: x.expand(2, 3, 4), lambda x: x.narrow(1, 1, 2), lambda x: x.split(2)[1],
    lambda x: x.chunk(2, dim=1)[0], lambda x: x.movedim(0, 1),
    lambda x: x.unflatten(1, (2, 2)), lambda x: x.view_as(x), lambda x: x.unbind(1)[2],
])
def test_views_share_memory_and_keep_dtype(fn):
    x = t(3, 4, dtype=np.float32)
    y = fn(x)
    assert np.shares_memory(y.numpy(), x.numpy())
    assert y.dtype == backprop.float32


def test_flip_copies_as_in_pytorch():
    # (a view would let an in-place change of the result reach x)
    x = t(3, 4, dtype=np.float32)
    assert not np.shares_memory(x.flip(0, 1).numpy(), x.numpy())


@pytest.mark.parametrize("fn", [
    lambda x: S.cat([x, x]), lambda x: S.stack([x, x]), lambda x: x.repeat(2, 1),
    lambda x: S.pad(x, (1, 1)), lambda x: S.pad(x, (1, 1), mode="reflect"),
    lambda x: S.tile(x, (2,)),
])
def test_copying_ops_keep_dtype(fn):
    for dtype, name in ((np.float32, "float32"), (np.int64, "int64"), (np.float16, "float16")):
        assert fn(t(3, 4, dtype=dtype)).dtype.name == name


def test_cat_and_stack_promote_like_torch():
    a32, a64, i64 = t(2, dtype=np.float32), t(2), t(2, dtype=np.int64)
    assert S.cat([a32, a64]).dtype == backprop.float64
    assert S.cat([i64, a32]).dtype == backprop.float32
    assert S.cat([i64, t(2, dtype=np.int32)]).dtype == backprop.int64
    assert S.stack([a32, i64]).dtype == backprop.float32
    assert S.concatenate([t(1, dtype=np.bool_), t(1, dtype=np.uint8)]).dtype == backprop.uint8


def test_cat_mixed_precision_gradients_keep_each_dtype():
    a = backprop.tensor(np.ones(2, np.float32), requires_grad=True)
    b = backprop.tensor(np.ones(3), requires_grad=True)
    out = S.cat([a, b])
    (out * backprop.tensor(np.arange(5.0))).sum().backward()
    assert a.grad.dtype == backprop.float32 and b.grad.dtype == backprop.float64
    np.testing.assert_array_equal(a.grad.numpy(), [0, 1])
    np.testing.assert_array_equal(b.grad.numpy(), [2, 3, 4])


def test_cat_skips_legacy_empty_1d_and_handles_all_empty():
    assert S.cat([t(0), t(2, 3), t(0)]).shape == (2, 3)
    assert S.cat([t(0), t(0)]).shape == (0,)


def test_squeeze_of_a_non_1_dim_is_a_no_op():
    assert t(3, 1, 4).squeeze(0).shape == (3, 1, 4)
    assert t(3, 1, 4).squeeze((0, 1)).shape == (3, 4)
    assert t().squeeze().shape == ()


def test_split_and_chunk_piece_sizes_match_torch():
    assert [p.shape[0] for p in t(5).split(2)] == [2, 2, 1]
    assert [p.shape[0] for p in t(0).split(2)] == [0]
    assert [p.shape[0] for p in t(6).chunk(4)] == [2, 2, 2]
    assert [p.shape[0] for p in t(5).chunk(4)] == [2, 2, 1]
    assert [p.shape[0] for p in t(0).chunk(3)] == [0, 0, 0]
    assert [p.shape[0] for p in t(2).chunk(4)] == [1, 1]
    assert isinstance(t(4).split(2), tuple)


def test_split_pieces_have_their_own_gradient_paths():
    x = t(5, 2, grad=True)
    a, b, c = x.split(2)
    (b * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy()[:, 0], [0, 0, 3, 3, 0])
    (a.sum() + c.sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy()[:, 1], [1, 1, 3, 3, 1])


def test_expand_gradient_sums_and_output_is_a_zero_stride_view():
    x = t(3, 1, grad=True)
    y = x.expand(2, 3, 4)
    assert y.shape == (2, 3, 4) and y.detach().numpy().strides[0] == 0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((3, 1), 8.0))


def test_flip_accepts_int_list_tuple_and_keyword():
    x = t(2, 3)
    ref = x.numpy()[::-1, ::-1]
    for y in (x.flip(0, 1), x.flip([0, 1]), x.flip((0, 1)), S.flip(x, dims=(0, 1))):
        np.testing.assert_array_equal(y.numpy(), ref)
    np.testing.assert_array_equal(S.flip(x, 1).numpy(), x.numpy()[:, ::-1])


def test_movedim_matches_numpy():
    x = t(2, 3, 4, 5)
    np.testing.assert_array_equal(x.movedim((0, 3), (2, 0)).numpy(),
                                  np.moveaxis(x.numpy(), (0, 3), (2, 0)))
    np.testing.assert_array_equal(S.moveaxis(x, -1, 0).numpy(), np.moveaxis(x.numpy(), -1, 0))


def test_tensor_methods_and_aliases_are_installed():
    x = t(2, 3)
    for name in ("flatten", "unflatten", "squeeze", "unsqueeze", "expand", "expand_as",
                 "broadcast_to", "split", "chunk", "unbind", "repeat", "tile", "flip", "narrow",
                 "movedim", "moveaxis", "swapaxes", "swapdims", "view_as", "reshape_as",
                 "ravel"):
        assert callable(getattr(x, name)), name
    for name in ("cat", "concat", "concatenate", "stack", "flatten", "squeeze", "unsqueeze",
                 "split", "chunk", "pad", "flip", "narrow", "movedim", "broadcast_to"):
        assert callable(getattr(backprop.ops, name)), name


def test_pad_int_tensor_casts_value_like_torch():
    np.testing.assert_array_equal(S.pad(t(2, dtype=np.int64), (1, 1), value=2.5).numpy(),
                                  [2, 0, 1, 2])


def test_pad_under_no_grad_records_nothing():
    x = t(2, 3, grad=True)
    with backprop.no_grad():
        y = S.pad(x, (1, 1), mode="replicate")
    assert not y.requires_grad and y.grad_fn is None


# -- properties ------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_split_then_cat_is_the_identity(shape, data):
    x = backprop.tensor(np.random.default_rng(0).standard_normal(shape), requires_grad=True)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    size = data.draw(st.integers(1, shape[dim] + 1))
    pieces = x.split(size, dim)
    y = S.cat(list(pieces), dim)
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy())
    w = np.random.default_rng(1).standard_normal(shape)
    (y * backprop.tensor(w)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), w)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["constant", "reflect", "replicate", "circular"]),
       st.lists(st.integers(1, 5), min_size=2, max_size=4), st.data())
def test_pad_matches_torch(mode, shape, data):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    nd = len(shape)
    # torch's non-constant modes pad the last k = 1..3 dims of a (k+1)- or (k+2)-D tensor
    npairs = data.draw(st.integers(1, nd) if mode == "constant" else
                       st.integers(max(1, nd - 2), min(nd - 1, 3)))
    pads = []
    for k in range(npairs):
        n = shape[nd - 1 - k]
        if mode == "constant":
            lo = data.draw(st.integers(-n, 3))
            hi = data.draw(st.integers(-(n + min(lo, 0)), 3))
        elif mode == "reflect":
            lo, hi = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
        elif mode == "circular":
            lo, hi = data.draw(st.integers(0, n)), data.draw(st.integers(0, n))
        else:
            lo, hi = data.draw(st.integers(-1 if n > 1 else 0, 3)), data.draw(st.integers(0, 3))
        pads += [lo, hi]
    x = np.random.default_rng(0).standard_normal(shape)
    ours = backprop.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    out = S.pad(ours, tuple(pads), mode=mode)
    ref = F.pad(theirs, tuple(pads), mode=mode)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy())
    w = np.random.default_rng(1).standard_normal(ref.shape)
    out.backward(backprop.tensor(w))
    ref.backward(torch.tensor(w))
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=0, max_size=3), st.data())
def test_repeat_matches_numpy_tile_and_gradient_counts_copies(shape, data):
    reps = data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape) + 2))
    x = backprop.tensor(np.random.default_rng(0).standard_normal(shape), requires_grad=True)
    y = x.repeat(*reps) if reps else x.repeat(())
    lead = (1,) * (len(reps) - len(shape))
    np.testing.assert_array_equal(y.detach().numpy(),
                                  np.tile(x.detach().numpy().reshape(lead + tuple(shape)), reps))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(shape, float(np.prod(reps))))
