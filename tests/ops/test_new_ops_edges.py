"""The new primitives at their edges, compared with PyTorch: empty tensors, 0-d tensors,
size-1 dims, negative dims, non-contiguous inputs, integer inputs, float32 kept as float32.

Each case is one expression written once for both libraries, run in float64 on the same
data; values and gradients must agree.
"""
import re

import numpy as np
import pytest

import backprop
import backprop.nn.functional as BF

try:
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover
    TF = None


def _leaf(T, arr, grad=True):
    return T.tensor(arr, dtype=T.float64, requires_grad=grad)


def _data(shape, kind="normal", seed=0):
    rng = np.random.default_rng(seed)
    if kind == "unit":       # inside (-1, 1): asin, acos, erfinv
        return rng.uniform(-0.9, 0.9, shape)
    if kind == "pos":        # > 0: logarithms, xlogy's y
        return rng.uniform(0.2, 2.0, shape)
    return rng.standard_normal(shape)


# name -> (input shapes and kinds, expression over (namespace, functional, *inputs))
CASES = {
    # element-wise, one input: empty, 0-d, size-1, non-contiguous
    "tan-empty": ([((0, 3), "unit")], lambda T, F, x: x.tan()),
    "tan-0d": ([((), "unit")], lambda T, F, x: x.tan()),
    "sinh-noncontig": ([((3, 4), "normal")], lambda T, F, x: x.t().sinh()),
    "asin-strided": ([((4, 6), "unit")], lambda T, F, x: x[::2, ::3].asin()),
    "erfinv-size1": ([((1, 3, 1), "unit")], lambda T, F, x: x.erfinv()),
    "log2-0d": ([((), "pos")], lambda T, F, x: x.log2()),
    "reciprocal-empty": ([((2, 0), "pos")], lambda T, F, x: x.reciprocal()),
    "floor-noncontig": ([((3, 4), "normal")], lambda T, F, x: x.t().floor() * x.t()),
    "round-decimals": ([((3, 4), "normal")], lambda T, F, x: x.round(decimals=1) + x),
    # two inputs: broadcasting, scalars, 0-d against n-d
    "atan2-broadcast": ([((3, 1), "normal"), ((4,), "normal")],
                        lambda T, F, a, b: T.atan2(a, b)),
    "atan2-0d": ([((), "normal"), ((2, 3), "normal")], lambda T, F, a, b: T.atan2(a, b)),
    "fmod-broadcast": ([((2, 3), "normal"), ((1, 3), "pos")], lambda T, F, a, b: T.fmod(a, b)),
    "fmod-scalar": ([((2, 3), "normal")], lambda T, F, a: T.fmod(a, 0.7)),
    "logaddexp-broadcast": ([((2, 1, 3), "normal"), ((4, 1), "normal")],
                            lambda T, F, a, b: T.logaddexp(a, b)),
    "logaddexp-empty": ([((0, 3), "normal"), ((3,), "normal")],
                        lambda T, F, a, b: T.logaddexp(a, b)),
    "xlogy-broadcast": ([((2, 3), "normal"), ((3,), "pos")], lambda T, F, a, b: T.xlogy(a, b)),
    "xlogy-scalar-x": ([((2, 3), "pos")], lambda T, F, b: T.xlogy(2.0, b)),
    "xlogy-scalar-y": ([((2, 3), "normal")], lambda T, F, a: T.xlogy(a, 3.0)),
    "lerp-tensor-weight": ([((2, 3), "normal"), ((3,), "normal"), ((2, 1), "unit")],
                           lambda T, F, a, b, w: T.lerp(a, b, w)),
    # scans and order statistics
    "cumprod-negdim": ([((2, 3, 4), "normal")], lambda T, F, x: x.cumprod(-2)),
    "cumprod-size1": ([((3, 1), "normal")], lambda T, F, x: x.cumprod(1)),
    "cumprod-empty": ([((0, 3), "normal")], lambda T, F, x: x.cumprod(0)),
    "cumprod-0d": ([((), "normal")], lambda T, F, x: x.cumprod(0)),
    "cumprod-noncontig": ([((3, 4), "normal")], lambda T, F, x: x.t().cumprod(1)),
    "median-negdim": ([((3, 5), "normal")], lambda T, F, x: x.median(-1).values),
    "median-keepdim": ([((3, 5), "normal")], lambda T, F, x: x.median(0, keepdim=True).values),
    "kthvalue-negdim": ([((3, 5), "normal")], lambda T, F, x: x.kthvalue(2, -2).values),
    "diff-negdim": ([((3, 5), "normal")], lambda T, F, x: T.diff(x, dim=-2)),
    # views and diagonals
    "diagonal-offset": ([((3, 4), "normal")], lambda T, F, x: x.diagonal(1)),
    "diagonal-negoffset-negdims": ([((2, 3, 4), "normal")],
                                   lambda T, F, x: x.diagonal(-1, -1, -3)),
    "diagonal-offset-past-end": ([((3, 4), "normal")], lambda T, F, x: x.diagonal(5) * 2),
    "diagonal-noncontig": ([((3, 4), "normal")], lambda T, F, x: x.t().diagonal()),
    "diag_embed-negdims": ([((2, 3), "normal")], lambda T, F, x: T.diag_embed(x, 1, -1, 0)),
    "roll-negdim": ([((3, 4), "normal")], lambda T, F, x: x.roll(-5, -1)),
    "roll-flat": ([((3, 4), "normal")], lambda T, F, x: x.roll(2)),
    "roll-empty": ([((0, 4), "normal")], lambda T, F, x: x.roll(1, 0)),
    "unfold-negdim": ([((3, 7), "normal")], lambda T, F, x: x.unfold(-1, 3, 2)),
    "unfold-0d": ([((), "normal")], lambda T, F, x: x.unfold(0, 1, 1)),
    "unfold-size-equals-dim": ([((2, 4), "normal")], lambda T, F, x: x.unfold(1, 4, 1)),
    "unfold-noncontig": ([((4, 3), "normal")], lambda T, F, x: x.t().unfold(1, 2, 1)),
    "nan_to_num": ([((2, 3), "normal")], lambda T, F, x: T.nan_to_num(x.log(), nan=0.5)),
    # scatter family
    "scatter-negdim": ([((3, 4), "normal"), ((3, 2), "normal")],
                       lambda T, F, x, s: x.scatter(-1, T.tensor([[0, 1], [2, 3], [1, 0]]), s)),
    "index_add-alpha": ([((3, 4), "normal"), ((2, 4), "normal")],
                        lambda T, F, x, s: x.index_add(0, T.tensor([2, 2]), s, alpha=3)),
    "index_copy-negdim": ([((3, 4), "normal"), ((3, 2), "normal")],
                          lambda T, F, x, s: x.index_copy(-1, T.tensor([3, 0]), s)),
    "index_fill-0d-value": ([((3, 4), "normal"), ((), "normal")],
                            lambda T, F, x, v: x.index_fill(1, T.tensor([1, 3]), v)),
    "masked_scatter-broadcast-mask": (
        [((3, 4), "normal"), ((12,), "normal")],
        lambda T, F, x, s: x.masked_scatter(T.tensor([True, False, True, False]), s)),
    # transposed convolution: stride, dilation, groups, padding, output_padding, unbatched
    "conv_transpose2d-all-args": (
        [((2, 4, 3, 4), "normal"), ((4, 3, 2, 3), "normal"), ((6,), "normal")],
        lambda T, F, x, w, b: F.conv_transpose2d(x, w, b, stride=(2, 3), padding=(1, 0),
                                                 output_padding=(1, 2), groups=2,
                                                 dilation=(2, 1))),
    "conv_transpose2d-unbatched": ([((2, 3, 3), "normal"), ((2, 3, 2, 2), "normal")],
                                   lambda T, F, x, w: F.conv_transpose2d(x, w, stride=2)),
    "conv_transpose2d-noncontig": (
        [((2, 3, 4, 4), "normal"), ((3, 2, 3, 3), "normal")],
        lambda T, F, x, w: F.conv_transpose2d(x.transpose(2, 3), w.transpose(2, 3), padding=1)),
    "conv_transpose1d-unbatched": ([((3, 5), "normal"), ((3, 2, 3), "normal")],
                                   lambda T, F, x, w: F.conv_transpose1d(x, w, stride=3,
                                                                         padding=1)),
    # attention: one query, a boolean mask, causal with L != S
    "sdpa-one-query": ([((2, 1, 4), "normal"), ((2, 5, 4), "normal"), ((2, 5, 3), "normal")],
                       lambda T, F, q, k, v: F.scaled_dot_product_attention(q, k, v)),
    "sdpa-bool-mask": (
        [((2, 3, 4), "normal"), ((2, 5, 4), "normal"), ((2, 5, 4), "normal")],
        lambda T, F, q, k, v: F.scaled_dot_product_attention(
            q, k, v, attn_mask=T.tensor([[True, False, True, True, False]]))),
    "sdpa-causal-rect": ([((1, 3, 4), "normal"), ((1, 5, 4), "normal"), ((1, 5, 4), "normal")],
                         lambda T, F, q, k, v: F.scaled_dot_product_attention(
                             q, k, v, is_causal=True, scale=0.3)),
    "sdpa-no-keys": ([((2, 3, 4), "normal"), ((2, 0, 4), "normal"), ((2, 0, 5), "normal")],
                     lambda T, F, q, k, v: F.scaled_dot_product_attention(q, k, v)),
    "sdpa-no-features": ([((2, 3, 0), "normal"), ((2, 4, 0), "normal"), ((2, 4, 5), "normal")],
                         lambda T, F, q, k, v: F.scaled_dot_product_attention(q, k, v)),
    "sdpa-no-queries": ([((2, 0, 4), "normal"), ((2, 3, 4), "normal"), ((2, 3, 5), "normal")],
                        lambda T, F, q, k, v: F.scaled_dot_product_attention(q, k, v)),
    "sdpa-broadcast-kv": ([((2, 3, 4), "normal"), ((5, 4), "normal"), ((5, 2), "normal")],
                          lambda T, F, q, k, v: F.scaled_dot_product_attention(q, k, v)),
    "sdpa-causal-no-keys": ([((1, 3, 4), "normal"), ((1, 0, 4), "normal"), ((1, 0, 4), "normal")],
                            lambda T, F, q, k, v: F.scaled_dot_product_attention(
                                q, k, v, is_causal=True)),
    "sdpa-only-value-grad": (
        [((2, 3, 4), "normal"), ((2, 5, 4), "normal"), ((2, 5, 4), "normal")],
        lambda T, F, q, k, v: F.scaled_dot_product_attention(q.detach(), k.detach(), v)),
    "sdpa-only-query-grad": (
        [((2, 3, 4), "normal"), ((2, 5, 4), "normal"), ((2, 5, 4), "normal")],
        lambda T, F, q, k, v: F.scaled_dot_product_attention(q, k.detach(), v.detach())),
}


def _run(T, F, name, seed=0):
    specs, expr = CASES[name]
    inputs = [_leaf(T, _data(shape, kind, seed + i)) for i, (shape, kind) in enumerate(specs)]
    out = expr(T, F, *inputs)
    return out, inputs


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_gradient_match_pytorch(oracle, name):
    theirs, t_inputs = _run(oracle, TF, name)
    ours, b_inputs = _run(backprop, BF, name)
    assert tuple(ours.shape) == tuple(theirs.shape), name
    assert ours.dtype == backprop.float64
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-9,
                               atol=1e-12, err_msg=name)
    g = np.random.default_rng(1).standard_normal(tuple(theirs.shape))
    (theirs * oracle.tensor(g)).sum().backward()
    (ours * backprop.tensor(g)).sum().backward()
    for i, (b, t) in enumerate(zip(b_inputs, t_inputs)):
        tg = np.zeros(tuple(t.shape)) if t.grad is None else t.grad.numpy()
        bg = np.zeros(tuple(b.shape)) if b.grad is None else b.grad.numpy()
        np.testing.assert_allclose(bg, tg, rtol=1e-8, atol=1e-10,
                                   err_msg=f"{name}: gradient of input {i}")


# -- recurrent layers at their edges: one step, one sequence, unbatched, batch_first,
# packed unsorted, bidirectional stacks with projections, float32 kept -------------------
RNN_CASES = {
    "rnn-one-step-one-seq": ("RNN", dict(input_size=3, hidden_size=4), (1, 1, 3), {}),
    "rnn-relu-unbatched": ("RNN", dict(input_size=3, hidden_size=4, nonlinearity="relu"),
                           (5, 3), {}),
    "gru-batch-first-bidir": ("GRU", dict(input_size=3, hidden_size=4, batch_first=True,
                                          bidirectional=True, num_layers=2), (2, 5, 3), {}),
    "lstm-proj-bidir-h0": ("LSTM", dict(input_size=3, hidden_size=5, proj_size=2,
                                        bidirectional=True, num_layers=2), (4, 3, 3),
                           {"hx": True}),
    "lstm-no-bias-unbatched-h0": ("LSTM", dict(input_size=3, hidden_size=4, bias=False),
                                  (6, 3), {"hx": True}),
    "gru-packed-unsorted": ("GRU", dict(input_size=3, hidden_size=4, bidirectional=True),
                            (5, 3, 3), {"lengths": [2, 5, 3]}),
    "lstm-packed-unsorted": ("LSTM", dict(input_size=3, hidden_size=4), (4, 3, 3),
                             {"lengths": [1, 4, 4], "hx": True}),
}


def _rnn_run(T, name):
    kind, kwargs, shape, extra = RNN_CASES[name]
    T.manual_seed(0)
    module = getattr(T.nn, kind)(**kwargs).double()
    rng = np.random.default_rng(3)
    for pname, p in sorted(module.named_parameters()):  # the same weights in both
        with T.no_grad():
            p.copy_(T.tensor(rng.uniform(-0.5, 0.5, tuple(p.shape))))
    x = _leaf(T, rng.standard_normal(shape))
    inputs = [x]
    hx = None
    if extra.get("hx"):
        layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
        batch = () if len(shape) == 2 else (shape[0 if kwargs.get("batch_first") else 1],)
        h_out = kwargs.get("proj_size") or kwargs["hidden_size"]
        h0 = _leaf(T, rng.standard_normal((layers,) + batch + (h_out,)))
        inputs.append(h0)
        hx = h0
        if kind == "LSTM":
            c0 = _leaf(T, rng.standard_normal((layers,) + batch + (kwargs["hidden_size"],)))
            inputs.append(c0)
            hx = (h0, c0)
    if "lengths" in extra:
        rnn_utils = T.nn.utils.rnn
        packed = rnn_utils.pack_padded_sequence(x, T.tensor(extra["lengths"]),
                                                enforce_sorted=False)
        out, state = module(packed, hx)
        out = rnn_utils.pad_packed_sequence(out)[0]
    else:
        out, state = module(x, hx)
    states = list(state) if kind == "LSTM" else [state]
    return [out] + states, inputs, list(p for _, p in sorted(module.named_parameters()))


@pytest.mark.parametrize("name", sorted(RNN_CASES))
def test_recurrent_layers_match_pytorch(oracle, name):
    t_outs, t_inputs, t_params = _rnn_run(oracle, name)
    b_outs, b_inputs, b_params = _rnn_run(backprop, name)
    rng = np.random.default_rng(5)
    t_loss, b_loss = 0, 0
    for b, t in zip(b_outs, t_outs):
        assert tuple(b.shape) == tuple(t.shape), name
        np.testing.assert_allclose(b.detach().numpy(), t.detach().numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=name)
        g = rng.standard_normal(tuple(t.shape))
        t_loss = t_loss + (t * oracle.tensor(g)).sum()
        b_loss = b_loss + (b * backprop.tensor(g)).sum()
    t_loss.backward()
    b_loss.backward()
    for i, (b, t) in enumerate(zip(b_inputs + b_params, t_inputs + t_params)):
        np.testing.assert_allclose(b.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-10,
                                   err_msg=f"{name}: gradient {i}")


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_recurrent_layers_keep_float32(kind):
    module = getattr(backprop.nn, kind)(3, 4, batch_first=True)
    x = backprop.randn(2, 5, 3, requires_grad=True)
    out, _ = module(x)
    assert out.dtype == backprop.float32
    out.sum().backward()
    assert x.grad.dtype == backprop.float32
    assert all(p.grad.dtype == backprop.float32 for p in module.parameters())


# -- special values: zeros, infinities, NaN, the ends of a domain ----------------------------
INF, NAN = float("inf"), float("nan")
SPECIAL = {
    "atan2-origin": (lambda T, a, b: T.atan2(a, b), [0.0, 0.0, -0.0, 1.0], [0.0, -0.0, 0.0, 0.0]),
    "xlogy-zeros": (lambda T, a, b: T.xlogy(a, b), [0.0, 0.0, 0.0, 1.0, 0.0],
                    [0.0, -1.0, NAN, 0.0, 2.0]),
    "logaddexp-infinities": (lambda T, a, b: T.logaddexp(a, b), [-INF, INF, -INF, 1.0],
                             [-INF, INF, 2.0, 1.0]),
    "fmod-by-zero": (lambda T, a, b: T.fmod(a, b), [1.0, -1.0, 0.0], [0.0, 0.0, 0.0]),
    "erfinv-ends": (lambda T, a, b: a.erfinv(), [1.0, -1.0, 0.0, 0.999999], None),
    "reciprocal-signed-zeros": (lambda T, a, b: a.reciprocal(), [0.0, -0.0, 2.0], None),
    "cumprod-two-zeros": (lambda T, a, b: a.cumprod(0), [2.0, 0.0, 3.0, 0.0, 5.0], None),
    "cumprod-one-zero": (lambda T, a, b: a.cumprod(0), [2.0, 0.0, 3.0, 4.0], None),
    "nan_to_num-all": (lambda T, a, b: T.nan_to_num(a, nan=1.0), [NAN, INF, -INF, 2.0], None),
    "median-with-nan": (lambda T, a, b: a.median(), [1.0, NAN, 3.0], None),
    "diff-n2-prepend": (lambda T, a, b: T.diff(a, n=2, prepend=b), [1.0, 4.0, 9.0, 16.0],
                        [0.0, -1.0]),
}


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_values_match_pytorch(oracle, name):
    expr, a, b = SPECIAL[name]
    results = []
    for T in (oracle, backprop):
        ta = _leaf(T, np.array(a))
        tb = None if b is None else _leaf(T, np.array(b))
        with np.errstate(all="ignore"):
            out = expr(T, ta, tb)
            out.sum().backward()
        results.append([out.detach().numpy(), ta.grad.numpy()]
                       + ([] if tb is None else [tb.grad.numpy()]))
    for theirs, ours in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, err_msg=name)  # NaN == NaN here


# -- bad input: a backprop error that names the op (and plain shapes, not torch.Size) ----------
def _scatter_family():
    x = backprop.zeros(3, 4)
    idx = backprop.tensor([[0, 1, 2, 0]])
    src = backprop.ones(1, 4, dtype=backprop.float64)
    return {
        "scatter": lambda: x.scatter(0, idx, src),
        "scatter_": lambda: x.clone().scatter_(0, idx, src),
        "index_add": lambda: x.index_add(0, backprop.tensor([1]), src),
        "index_copy": lambda: x.index_copy(0, backprop.tensor([1]), src),
        "masked_scatter": lambda: x.masked_scatter(x == 0, src),
    }


@pytest.mark.parametrize("op", sorted(_scatter_family()))
def test_scatter_family_refuses_a_source_of_another_dtype(op):
    # (PyTorch refuses too; a silent cast would truncate floats written into an int tensor)
    with pytest.raises(backprop.DTypeError, match=op.rstrip("_")):
        _scatter_family()[op]()


def test_scatter_family_still_takes_a_number():
    x = backprop.zeros(2, 3, dtype=backprop.int64)
    assert x.scatter(1, backprop.tensor([[2], [0]]), 2.5).tolist() == [[0, 0, 2], [2, 0, 0]]
    assert x.index_fill(1, backprop.tensor([1]), 7).tolist() == [[0, 7, 0], [0, 7, 0]]


@pytest.mark.parametrize("method, args", [("tan_", ()), ("xlogy_", (2.0,)),
                                          ("lerp_", (backprop.ones(3, dtype=backprop.int64), 0.5)),
                                          ("fmod_", (2.5,)), ("erfinv_", ())])
def test_inplace_float_result_into_an_integer_tensor_is_refused(method, args):
    # PyTorch: "result type Float can't be cast to the desired output type Long"
    x = backprop.ones(3, dtype=backprop.int64)
    with pytest.raises(backprop.DTypeError, match=f"{method}: result type float32 can't be cast"):
        getattr(x, method)(*args)
    assert x.tolist() == [1, 1, 1]  # untouched


def test_inplace_into_an_integer_tensor_keeps_what_pytorch_keeps():
    x = backprop.tensor([5, 7, 9])
    assert x.fmod_(4).tolist() == [1, 3, 1]  # int result: allowed
    assert x.cumprod_(0).tolist() == [1, 3, 3]
    assert backprop.ones(2, 2, dtype=backprop.int64).fill_diagonal_(2.5).tolist() == \
        [[2, 1], [1, 2]]  # a fill value is cast, as in PyTorch


def test_random_with_an_empty_range_is_refused():
    with pytest.raises(ValueError, match="random_: expects 'from' to be less than 'to'"):
        backprop.ones(3).random_(0)
    drawn = backprop.ones(200).random_(3)
    assert set(drawn.tolist()) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize("call", [
    lambda: backprop.zeros(2, 3).flatten(1, 0),
    lambda: backprop.zeros(2, 3).unflatten(1, (2, 2)),
    lambda: backprop.zeros(2, 3).split([1, 1], 1),
    lambda: BF.pad(backprop.zeros(2, 3), (1, 1, 1, 1, 1, 1)),
    lambda: BF.pad(backprop.zeros(2, 3), (-3, -3)),
    lambda: BF.scaled_dot_product_attention(backprop.zeros(2, 4), backprop.zeros(2, 4),
                                            backprop.zeros(2, 4), enable_gqa=True),
    lambda: backprop.nn.MultiheadAttention(4, 2)(backprop.zeros(2, 2, 4), backprop.zeros(2, 3, 4),
                                                 backprop.zeros(2, 2, 4)),
    lambda: backprop.nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1,
                                    num_decoder_layers=1, dim_feedforward=8)(
        backprop.zeros(3, 2, 4), backprop.zeros(3, 3, 4)),
    lambda: backprop.nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1,
                                    num_decoder_layers=1, dim_feedforward=8)(
        backprop.zeros(3, 2, 4), backprop.zeros(3, 2, 5)),
])
def test_shape_errors_print_plain_tuples(call):
    with pytest.raises(backprop.ShapeError) as info:
        call()
    message = str(info.value)
    assert "Size" not in message, message
    assert re.search(r"\(\d+, \d+", message), message  # shapes as tuples


# -- in place: writes into saved arrays are caught, views see writes --------------------------
@pytest.mark.parametrize("write", [
    lambda y: y.tan_(), lambda y: y.cumprod_(0), lambda y: y.fill_diagonal_(0.5),
    lambda y: y.index_add_(0, backprop.tensor([0]), backprop.ones(1, 3, dtype=backprop.float64)),
    lambda y: y.scatter_(0, backprop.tensor([[0, 1, 2]]), 2.0), lambda y: y.nan_to_num_(),
    lambda y: y.diagonal().mul_(2), lambda y: y.erfinv_(),
])
def test_inplace_write_into_a_saved_input_is_caught(write):
    x = backprop.rand(3, 3, dtype=backprop.float64, requires_grad=True)
    y = x * 1
    z = y.sinh()  # saves y
    write(y)
    with pytest.raises(backprop.InplaceError):
        z.sum().backward()


@pytest.mark.parametrize("name, expr", [
    ("diagonal-write", lambda T, y: (y.diagonal().mul_(3), y)[1]),
    ("diagonal-erf_", lambda T, y: (y.diagonal(1).erf_(), y)[1]),
    ("diagonal-sees-base", lambda T, y: (lambda d: (y.mul_(2), d)[1])(y.diagonal())),
    ("unfold-sees-base", lambda T, y: (lambda u: (y.cumprod_(1), u)[1])(y.unfold(0, 2, 1))),
    ("row-tan_", lambda T, y: (y[1].tan_(), y)[1]),
    ("view-fill_diagonal_", lambda T, y: (y[1:].fill_diagonal_(0.0), y)[1]),
    ("view-index_fill_", lambda T, y: (y[:, 1:].index_fill_(1, T.tensor([0]), 0.0), y)[1]),
])
def test_inplace_through_views_matches_pytorch(oracle, name, expr):
    results = []
    for T in (oracle, backprop):
        x = _leaf(T, _data((3, 3), "unit"))
        out = expr(T, x * 1)
        (out * T.tensor(_data(tuple(out.shape), "normal", 7))).sum().backward()
        results.append((out.detach().numpy(), x.grad.numpy()))
    (tv, tg), (bv, bg) = results
    np.testing.assert_allclose(bv, tv, rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(bg, tg, rtol=1e-10, err_msg=name)


@pytest.mark.parametrize("make", [lambda t: t.diagonal(), lambda t: t.diagonal(-1, 1, 0),
                                  lambda t: t.unfold(1, 2, 2)])
def test_diagonal_and_unfold_are_tracked_views(make):
    from backprop.ops._util import view_base

    base = backprop.zeros(4, 4)
    view = make(base)
    assert view_base.get(view) is base
    base.add_(1)
    assert view.tolist() == np.ones(tuple(view.shape)).tolist()  # a view sees the write


def test_attention_saves_only_what_its_backward_needs():
    q, k, v = backprop.randn(2, 3, 4), backprop.randn(2, 5, 4), backprop.randn(2, 5, 4)
    only_v = BF.scaled_dot_product_attention(q, k, v.requires_grad_())
    saved_q, saved_k, saved_v, weights, _ = only_v.grad_fn.saved_tensors
    assert saved_q is None and saved_k is None and saved_v is None  # dV = Pᵀ g: P only
    assert weights.shape == (2, 3, 5)
    only_q = BF.scaled_dot_product_attention(q.detach().requires_grad_(), k.detach(), v.detach())
    saved_q, saved_k, saved_v, _, _ = only_q.grad_fn.saved_tensors
    assert saved_q is None and saved_k is not None and saved_v is not None
