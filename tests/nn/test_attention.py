"""Attention against PyTorch: F.scaled_dot_product_attention, nn.MultiheadAttention, the
Transformer encoder and decoder (float64, the same weights via a torch state_dict)."""
from __future__ import annotations

import numpy as np
import pytest

import backprop
from backprop import nn
from backprop.autograd import gradcheck
from backprop.errors import DTypeError, ShapeError
from backprop.nn import functional as F

# PyTorch deprecates mixing a bool key_padding_mask with a float attn_mask (and says so);
# both libraries still give the same numbers, which is what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning")

def _pair(torch, *arrays):
    """Each array as a backprop tensor and a torch tensor that require grad."""
    ours = [backprop.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    return ours, theirs


def _close(a, b, atol=1e-10, rtol=1e-8, msg=""):
    a = a.detach().numpy() if isinstance(a, backprop.Tensor) else np.asarray(a)
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    np.testing.assert_allclose(a, b, atol=atol, rtol=rtol, err_msg=msg)


def _backward_both(out, tout, rng):
    g = rng.standard_normal(tuple(out.shape))
    out.backward(backprop.tensor(g))
    tout.backward(tout.new_tensor(g))


def _from_torch(module, torch_module):
    """Load torch_module's state_dict into module (float64 both), as a user would."""
    torch_module.double()
    module.double()
    module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})
    return module


def _compare_params(module, torch_module, atol=1e-10):
    theirs = dict(torch_module.named_parameters())
    ours = dict(module.named_parameters())
    assert sorted(ours) == sorted(theirs)
    for name, p in ours.items():
        assert p.grad is not None, f"{name}: no gradient"
        _close(p.grad, theirs[name].grad, atol=atol, msg=name)


# -- scaled_dot_product_attention ------------------------------------------------------------
SDPA_CASES = {
    "plain-4d": dict(shapes=((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7))),
    "3d": dict(shapes=((2, 4, 5), (2, 6, 5), (2, 6, 3))),
    "2d": dict(shapes=((4, 5), (6, 5), (6, 3))),
    "5d-broadcast-batch": dict(shapes=((2, 1, 2, 4, 3), (1, 3, 2, 5, 3), (1, 3, 2, 5, 4))),
    "causal": dict(shapes=((2, 2, 5, 4), (2, 2, 5, 4), (2, 2, 5, 4)), is_causal=True),
    "causal-rectangular": dict(shapes=((2, 4, 3), (2, 6, 3), (2, 6, 3)), is_causal=True),
    "scale": dict(shapes=((2, 2, 4, 5), (2, 2, 6, 5), (2, 2, 6, 5)), scale=0.37),
    "bool-mask": dict(shapes=((2, 2, 4, 5), (2, 2, 6, 5), (2, 2, 6, 5)), mask="bool"),
    "bool-mask-full-rows": dict(shapes=((2, 2, 4, 5), (2, 2, 6, 5), (2, 2, 6, 5)),
                                mask="bool-dead"),
    "float-mask": dict(shapes=((2, 2, 4, 5), (2, 2, 6, 5), (2, 2, 6, 5)), mask="float"),
    "float-mask-inf-rows": dict(shapes=((2, 2, 4, 5), (2, 2, 6, 5), (2, 2, 6, 5)),
                                mask="float-dead"),
    "mask-per-batch": dict(shapes=((2, 2, 4, 5), (2, 2, 6, 5), (2, 2, 6, 5)),
                           mask="bool", mask_shape=(2, 1, 4, 6)),
    "gqa": dict(shapes=((2, 4, 3, 5), (2, 2, 6, 5), (2, 1, 6, 3)), enable_gqa=True),
}


def _mask(kind, shape, rng, torch):
    keep = rng.random(shape) > 0.3
    if kind.endswith("dead"):
        keep[..., 1, :] = False  # a query that may see no key at all
    if kind.startswith("bool"):
        return backprop.tensor(keep), torch.tensor(keep)
    m = np.where(keep, rng.standard_normal(shape), -np.inf)
    return backprop.tensor(m), torch.tensor(m)


@pytest.mark.parametrize("name", list(SDPA_CASES))
def test_sdpa_matches_torch(oracle, name):
    torch = oracle
    case = SDPA_CASES[name]
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in case["shapes"]]
    (q, k, v), (tq, tk, tv) = _pair(torch, *arrays)
    kw = {key: case[key] for key in ("is_causal", "scale", "enable_gqa") if key in case}
    ours_kw, theirs_kw = dict(kw), dict(kw)
    if "mask" in case:
        shape = case.get("mask_shape", (case["shapes"][0][-2], case["shapes"][1][-2]))
        ours_kw["attn_mask"], theirs_kw["attn_mask"] = _mask(case["mask"], shape, rng, torch)
    out = F.scaled_dot_product_attention(q, k, v, **ours_kw)
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, **theirs_kw)
    assert out.shape == tuple(tout.shape)
    _close(out, tout)
    _backward_both(out, tout, rng)
    for a, b, n in ((q, tq, "query"), (k, tk, "key"), (v, tv, "value")):
        _close(a.grad, b.grad, msg=n)


def test_sdpa_gradient_of_a_float_mask(oracle):
    torch = oracle
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 2), (3, 5))]
    (q, k, v, m), (tq, tk, tv, tm) = _pair(torch, *arrays)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm)
    _backward_both(out, tout, rng)
    _close(m.grad, tm.grad)


@pytest.mark.parametrize("kw", [{}, {"is_causal": True}, {"mask": True}, {"gqa": True}],
                         ids=["plain", "causal", "float-mask", "gqa"])
def test_sdpa_gradcheck(kw):
    rng = np.random.default_rng(2)
    hk = 1 if kw.get("gqa") else 2
    q = backprop.tensor(rng.standard_normal((1, 2, 3, 4)), requires_grad=True)
    k = backprop.tensor(rng.standard_normal((1, hk, 4, 4)), requires_grad=True)
    v = backprop.tensor(rng.standard_normal((1, hk, 4, 3)), requires_grad=True)
    if kw.get("mask"):
        m = rng.standard_normal((3, 4))
        m[0, 1] = -np.inf
        mask = backprop.tensor(m, requires_grad=True)
        assert gradcheck(lambda a, b, c, d: F.scaled_dot_product_attention(a, b, c, d),
                         (q, k, v, mask))
    else:
        assert gradcheck(lambda a, b, c: F.scaled_dot_product_attention(
            a, b, c, is_causal=kw.get("is_causal", False), enable_gqa=kw.get("gqa", False)),
            (q, k, v))


def test_sdpa_takes_a_float32_mask_for_float64_inputs(oracle):
    torch = oracle
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4))
    m = np.triu(np.full((3, 3), -np.inf, np.float32), 1)
    (a,), (b,) = _pair(torch, x)
    out = F.scaled_dot_product_attention(a, a, a, attn_mask=backprop.tensor(m))
    tout = torch.nn.functional.scaled_dot_product_attention(b, b, b, attn_mask=torch.tensor(m))
    assert out.dtype == backprop.float64
    _close(out, tout)


def test_sdpa_dropout_statistics():
    backprop.manual_seed(0)
    q = backprop.zeros(4, 1, 200, 8, dtype=backprop.float64)  # uniform weights 1/S
    v = backprop.ones(4, 1, 200, 8, dtype=backprop.float64)
    out = F.scaled_dot_product_attention(q, q, v, dropout_p=0.25)
    # each output is (kept weights)/(0.75), mean 1 over the draws; the rows differ
    mean = out.numpy().mean()
    assert abs(mean - 1.0) < 0.02
    assert out.numpy().std() > 0.01
    same = F.scaled_dot_product_attention(q, q, v, dropout_p=0.0)
    np.testing.assert_allclose(same.numpy(), 1.0)


def test_sdpa_dropout_gradient():
    rng = np.random.default_rng(8)
    q, k, v = [backprop.tensor(rng.standard_normal(s), requires_grad=True)
               for s in ((2, 3, 4), (2, 5, 4), (2, 5, 3))]

    def fn(a, b, c):
        backprop.manual_seed(3)  # the same dropout mask on every evaluation
        return F.scaled_dot_product_attention(a, b, c, dropout_p=0.4)

    assert (fn(q, k, v).detach().numpy() != F.scaled_dot_product_attention(
        q, k, v).detach().numpy()).any()
    assert gradcheck(fn, (q, k, v))


def test_sdpa_bad_input_errors():
    q = backprop.randn(2, 3, 4)
    with pytest.raises(ShapeError, match="scaled_dot_product_attention.*query.*key"):
        F.scaled_dot_product_attention(q, backprop.randn(2, 5, 3), backprop.randn(2, 5, 3))
    with pytest.raises(ShapeError, match="key and value"):
        F.scaled_dot_product_attention(q, backprop.randn(2, 5, 4), backprop.randn(2, 4, 3))
    with pytest.raises(ShapeError, match=r"attn_mask of shape \(2, 2\)"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=backprop.ones(2, 2, dtype=backprop.bool))
    with pytest.raises(ValueError, match="is_causal"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=backprop.ones(3, 3), is_causal=True)
    with pytest.raises(DTypeError, match="attn_mask dtype"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=backprop.tensor([[1, 0, 1]] * 3))
    with pytest.raises(DTypeError, match="attn_mask dtype"):  # float64 mask, float32 query
        F.scaled_dot_product_attention(q, q, q, attn_mask=backprop.zeros(3, 3).double())
    with pytest.raises(DTypeError, match="floating-point"):
        F.scaled_dot_product_attention(backprop.tensor([[1, 2]]), q, q)
    with pytest.raises(ShapeError, match="multiple"):
        F.scaled_dot_product_attention(backprop.randn(1, 3, 2, 4), backprop.randn(1, 2, 2, 4),
                                       backprop.randn(1, 2, 2, 4), enable_gqa=True)


def test_tril_triu_match_torch(oracle):
    torch = oracle
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 5))
    x[0, 0, 4] = np.inf  # above the diagonal: tril must drop it, not multiply it by 0
    for name, diag in (("tril", 0), ("tril", -1), ("triu", 1), ("triu", 0), ("tril", 7)):
        (a,), (b,) = _pair(torch, x)
        out, tout = getattr(backprop, name)(a, diag), getattr(torch, name)(b, diag)
        _close(out, tout, msg=f"{name}({diag})")
        _close(getattr(a, name)(diagonal=diag), tout)
        _backward_both(out, tout, rng)
        _close(a.grad, b.grad)
    with pytest.raises(ShapeError, match="tril.*at least 2"):
        backprop.tril(backprop.ones(3))


# -- MultiheadAttention ------------------------------------------------------------------------
def _mha_pair(torch, **kw):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(**kw)
    ours = nn.MultiheadAttention(**kw)
    return _from_torch(ours, theirs), theirs


MHA_CASES = {
    "self-attention": dict(ctor={}, self_attn=True),
    "batch_first": dict(ctor={"batch_first": True}, self_attn=True),
    "cross-attention": dict(ctor={}, src_len=6),
    "no-bias": dict(ctor={"bias": False}, src_len=5),
    "kdim-vdim": dict(ctor={"kdim": 3, "vdim": 5}, src_len=6),
    "kdim-vdim-batch_first": dict(ctor={"kdim": 3, "vdim": 5, "batch_first": True}, src_len=6),
    "key_padding_mask-bool": dict(ctor={}, src_len=6, kpm="bool"),
    "key_padding_mask-float": dict(ctor={"batch_first": True}, src_len=6, kpm="float"),
    "attn_mask-bool-2d": dict(ctor={}, self_attn=True, attn_mask="bool2"),
    "attn_mask-float-3d": dict(ctor={}, src_len=6, attn_mask="float3"),
    "both-masks": dict(ctor={"batch_first": True}, src_len=6, attn_mask="bool2", kpm="bool"),
    "per-head-weights": dict(ctor={}, self_attn=True, average=False),
    "no-weights": dict(ctor={}, src_len=6, need_weights=False, kpm="bool", attn_mask="float3"),
    "causal": dict(ctor={"batch_first": True}, self_attn=True, attn_mask="causal",
                   is_causal=True, need_weights=False),
    "add_bias_kv": dict(ctor={"add_bias_kv": True}, src_len=6, kpm="bool", attn_mask="bool2"),
    "add_zero_attn": dict(ctor={"add_zero_attn": True}, src_len=6, kpm="bool"),
    "bias_kv-zero_attn-no-weights": dict(ctor={"add_bias_kv": True, "add_zero_attn": True},
                                         src_len=6, attn_mask="float3", need_weights=False),
    "unbatched": dict(ctor={}, src_len=6, unbatched=True, kpm="bool", average=False),
}


@pytest.mark.parametrize("name", list(MHA_CASES))
def test_multihead_attention_matches_torch(oracle, name):
    torch = oracle
    case = MHA_CASES[name]
    E, H, N, L = 8, 2, 3, 4
    S = L if case.get("self_attn") else case["src_len"]
    ctor = dict(embed_dim=E, num_heads=H, **case["ctor"])
    ours, theirs = _mha_pair(torch, **ctor)
    rng = np.random.default_rng(4)
    bf, unb = ctor.get("batch_first", False), case.get("unbatched", False)

    def shape(seq, feat):
        return (seq, feat) if unb else ((N, seq, feat) if bf else (seq, N, feat))

    if case.get("self_attn"):
        (x,), (tx,) = _pair(torch, rng.standard_normal(shape(L, E)))
        args, targs = (x, x, x), (tx, tx, tx)
    else:
        arrays = [rng.standard_normal(shape(L, E)), rng.standard_normal(shape(S, ctor.get(
            "kdim", E))), rng.standard_normal(shape(S, ctor.get("vdim", E)))]
        args, targs = _pair(torch, *arrays)
    kw = {"need_weights": case.get("need_weights", True),
          "average_attn_weights": case.get("average", True),
          "is_causal": case.get("is_causal", False)}
    tkw = dict(kw)
    kpm = case.get("kpm")
    if kpm:
        pad = np.zeros((S,) if unb else (N, S), dtype=bool)
        pad[..., -2:] = True
        if not unb:
            pad[0, -3] = True
        if kpm == "float":
            pad = np.where(pad, -np.inf, 0.0)
        kw["key_padding_mask"], tkw["key_padding_mask"] = backprop.tensor(pad), torch.tensor(pad)
    am = case.get("attn_mask")
    if am == "bool2":
        m = rng.random((L, S)) < 0.3
        m[:, 0] = False  # every query may see key 0
        kw["attn_mask"], tkw["attn_mask"] = backprop.tensor(m), torch.tensor(m)
    elif am == "float3":
        m = rng.standard_normal(((1 if unb else N) * H, L, S))
        kw["attn_mask"], tkw["attn_mask"] = backprop.tensor(m), torch.tensor(m)
    elif am == "causal":
        m = nn.Transformer.generate_square_subsequent_mask(L, dtype=backprop.float64)
        kw["attn_mask"] = m
        tkw["attn_mask"] = torch.nn.Transformer.generate_square_subsequent_mask(
            L, dtype=torch.float64)
    out, w = ours(*args, **kw)
    tout, tw = theirs(*targs, **tkw)
    assert out.shape == tuple(tout.shape)
    _close(out, tout, msg="attn_output")
    if tw is None:
        assert w is None
    else:
        assert w.shape == tuple(tw.shape)
        _close(w, tw, msg="attn_weights")
    g = rng.standard_normal(tuple(out.shape))
    loss = (out * backprop.tensor(g)).sum()
    tloss = (tout * torch.tensor(g)).sum()
    if w is not None:
        gw = rng.standard_normal(tuple(w.shape))
        loss = loss + (w * backprop.tensor(gw)).sum()
        tloss = tloss + (tw * torch.tensor(gw)).sum()
    loss.backward()
    tloss.backward()
    for a, b, n in zip(args, targs, ("query", "key", "value")):
        if a.grad is not None or b.grad is not None:
            _close(a.grad, b.grad, msg=n)
    _compare_params(ours, theirs)


def test_multihead_attention_state_dict_and_init_match_torch(oracle):
    torch = oracle
    for kw in ({}, {"add_bias_kv": True}, {"kdim": 3, "vdim": 5}, {"bias": False}):
        ours = nn.MultiheadAttention(12, 3, **kw)
        theirs = torch.nn.MultiheadAttention(12, 3, **kw)
        assert list(ours.state_dict()) == list(theirs.state_dict()), kw
        for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
            assert tuple(a.shape) == tuple(b.shape), k
            assert a.dtype == backprop.float32
    m = nn.MultiheadAttention(64, 4)
    bound = np.sqrt(6.0 / (64 + 3 * 64))  # xavier_uniform_ of the (3E, E) in_proj_weight
    w = m.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert not m.in_proj_bias.detach().numpy().any()
    assert not m.out_proj.bias.detach().numpy().any()
    assert type(m.out_proj).__name__ == "NonDynamicallyQuantizableLinear"
    assert isinstance(m.out_proj, nn.Linear)


def test_multihead_attention_errors():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(10, 3)
    m = nn.MultiheadAttention(8, 2)
    x = backprop.randn(4, 3, 8)
    with pytest.raises(ShapeError, match="MultiheadAttention.*embed_dim=8"):
        m(backprop.randn(4, 3, 6), x, x)
    with pytest.raises(ShapeError, match=r"key_padding_mask of shape \(3, 4\)"):
        m(x, x, x, key_padding_mask=backprop.zeros(4, 3, dtype=backprop.bool))
    with pytest.raises(ShapeError, match="attn_mask should have shape"):
        m(x, x, x, attn_mask=backprop.zeros(3, 3))
    with pytest.raises(ValueError, match="need attn_mask"):
        m(x, x, x, is_causal=True)
    with pytest.raises(DTypeError, match="only bool and floating"):
        m(x, x, x, attn_mask=backprop.zeros(4, 4, dtype=backprop.int64))


def test_multihead_attention_dropout_in_training_only():
    backprop.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, dropout=0.5).double()
    x = backprop.randn(6, 2, 8, dtype=backprop.float64)
    _, w = m(x, x, x, average_attn_weights=False)
    frac_zero = float((w.detach().numpy() == 0).mean())
    assert 0.3 < frac_zero < 0.7  # weights after dropout, as PyTorch returns them
    m.eval()
    out1, w1 = m(x, x, x)
    out2, _ = m(x, x, x, need_weights=False)
    np.testing.assert_allclose(w1.detach().numpy().sum(-1), 1.0)
    np.testing.assert_allclose(out1.detach().numpy(), out2.detach().numpy(), atol=1e-12)


# -- the Transformer ---------------------------------------------------------------------------
ENCODER_CASES = {
    "post-norm-relu": dict(norm_first=False, activation="relu"),
    "pre-norm-gelu": dict(norm_first=True, activation="gelu"),
    "batch_first-final-norm": dict(batch_first=True, final_norm=True),
    "causal-mask": dict(batch_first=True, mask="causal"),
    "causal-hint-and-padding": dict(mask="causal", is_causal=True, kpm=True),
    "bool-mask-no-bias": dict(mask="bool", bias=False, norm_first=True),
}


@pytest.mark.parametrize("name", list(ENCODER_CASES))
def test_transformer_encoder_matches_torch_from_its_state_dict(oracle, name):
    torch = oracle
    case = dict(ENCODER_CASES[name])
    final_norm, mask_kind = case.pop("final_norm", False), case.pop("mask", None)
    is_causal, kpm = case.pop("is_causal", None), case.pop("kpm", False)
    d, heads, ff, n_layers, N, L = 8, 2, 16, 2, 3, 5
    kw = dict(dim_feedforward=ff, dropout=0.1, **case)
    torch.manual_seed(0)
    tlayer = torch.nn.TransformerEncoderLayer(d, heads, **kw)
    theirs = torch.nn.TransformerEncoder(tlayer, n_layers,
                                         norm=torch.nn.LayerNorm(d) if final_norm else None,
                                         enable_nested_tensor=False)
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, heads, **kw), n_layers,
                                 norm=nn.LayerNorm(d) if final_norm else None)
    _from_torch(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.eval()
    theirs.eval()
    rng = np.random.default_rng(5)
    shape = (N, L, d) if case.get("batch_first") else (L, N, d)
    (x,), (tx,) = _pair(torch, rng.standard_normal(shape))
    fkw, tkw = {}, {}
    if mask_kind == "causal":
        fkw["mask"] = nn.Transformer.generate_square_subsequent_mask(L, dtype=backprop.float64)
        tkw["mask"] = torch.nn.Transformer.generate_square_subsequent_mask(L,
                                                                           dtype=torch.float64)
    elif mask_kind == "bool":
        m = rng.random((L, L)) < 0.3
        np.fill_diagonal(m, False)
        fkw["mask"], tkw["mask"] = backprop.tensor(m), torch.tensor(m)
    if is_causal is not None:
        fkw["is_causal"] = tkw["is_causal"] = is_causal
    if kpm:
        pad = np.zeros((N, L), dtype=bool)
        pad[1:, -2:] = True
        fkw["src_key_padding_mask"] = backprop.tensor(pad)
        tkw["src_key_padding_mask"] = torch.tensor(pad)
    out, tout = ours(x, **fkw), theirs(tx, **tkw)
    _close(out, tout, atol=1e-9)
    _backward_both(out, tout, rng)
    _close(x.grad, tx.grad, atol=1e-9)
    _compare_params(ours, theirs, atol=1e-9)


def test_transformer_full_model_matches_torch(oracle):
    torch = oracle
    kw = dict(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=2,
              dim_feedforward=16, dropout=0.0, batch_first=True)
    torch.manual_seed(1)
    theirs = torch.nn.Transformer(**kw)
    ours = _from_torch(nn.Transformer(**kw), theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(6)
    (src, tgt), (tsrc, ttgt) = _pair(torch, rng.standard_normal((2, 5, 8)),
                                     rng.standard_normal((2, 4, 8)))
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(4, dtype=backprop.float64)
    ttgt_mask = torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64)
    mpad = np.array([[False] * 5, [False, False, False, True, True]])
    out = ours(src, tgt, tgt_mask=tgt_mask, memory_key_padding_mask=backprop.tensor(mpad))
    tout = theirs(tsrc, ttgt, tgt_mask=ttgt_mask, memory_key_padding_mask=torch.tensor(mpad))
    _close(out, tout, atol=1e-9)
    _backward_both(out, tout, rng)
    _close(src.grad, tsrc.grad, atol=1e-9)
    _close(tgt.grad, ttgt.grad, atol=1e-9)
    _compare_params(ours, theirs, atol=1e-9)


def test_generate_square_subsequent_mask(oracle):
    torch = oracle
    ours = nn.Transformer.generate_square_subsequent_mask(4)
    theirs = torch.nn.Transformer.generate_square_subsequent_mask(4)
    assert ours.dtype == backprop.float32
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_encoder_layer_activation_choices_and_errors():
    with pytest.raises(ValueError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=nn.Tanh())
    x = backprop.randn(3, 2, 8)
    assert layer(x).shape == (3, 2, 8)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.TransformerEncoderLayer(8, 3)


def test_encoder_dropout_statistics_in_training():
    backprop.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.3)
    enc = nn.TransformerEncoder(layer, 1)
    x = backprop.randn(6, 4, 16)
    a, b = enc(x), enc(x)  # training mode: fresh dropout masks each call
    assert np.abs(a.detach().numpy() - b.detach().numpy()).max() > 1e-3
    enc.eval()
    np.testing.assert_array_equal(enc(x).detach().numpy(), enc(x).detach().numpy())
