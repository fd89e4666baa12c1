"""Attention layers: ``MultiheadAttention`` and the Transformer encoder and decoder.

PyTorch's constructors, defaults, parameter names and initialisation, so a PyTorch
``state_dict`` loads and gives the same outputs:

- ``MultiheadAttention``: ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E), or
  ``q_proj_weight`` / ``k_proj_weight`` / ``v_proj_weight`` when ``kdim`` / ``vdim``
  differ from ``embed_dim``; ``out_proj`` a Linear; ``bias_k`` / ``bias_v`` with
  ``add_bias_kv``.
- ``TransformerEncoderLayer``: ``self_attn``, ``linear1``, ``dropout``, ``linear2``,
  ``norm1``, ``norm2``, ``dropout1``, ``dropout2``; ``TransformerEncoder``: ``layers.<i>``
  and ``norm``. The decoder adds ``multihead_attn``, ``norm3`` and ``dropout3``.

Masks follow PyTorch too: in these layers a bool mask is True where attention is NOT
allowed (the opposite of ``F.scaled_dot_product_attention``), and a float mask is added to
the scores. Sequences are (seq, batch, feature) unless ``batch_first=True``.

Example::

    layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, batch_first=True)
    encoder = nn.TransformerEncoder(layer, num_layers=2)
    mask = nn.Transformer.generate_square_subsequent_mask(10)
    encoder(backprop.randn(8, 10, 32), mask=mask).shape      # (8, 10, 32)
"""
from __future__ import annotations

import copy
import math

import numpy as np

from backprop import dtypes as _dt
from backprop import ops as _ops
from backprop.errors import DTypeError, ShapeError
from backprop.nn import functional as F
from backprop.nn import init
from backprop.nn.container import ModuleList
from backprop.nn.dropout import Dropout
from backprop.nn.linear import Linear, _check_size, _factory
from backprop.nn.module import Module
from backprop.nn.norm import LayerNorm
from backprop.tensor import Tensor, _make

__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder",
           "TransformerDecoderLayer", "TransformerDecoder", "Transformer"]


class NonDynamicallyQuantizableLinear(Linear):
    """``Linear`` under the name PyTorch gives the output projection of attention."""


# -- masks ------------------------------------------------------------------------------------
def _canonical_mask(mask, name: str, dtype, op: str):
    """``mask`` as a float tensor to add to the scores: a bool mask becomes -inf where True
    (not allowed) and 0 elsewhere; a float mask is kept (as a tensor: it may carry a grad)."""
    if mask is None:
        return None
    data = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    if data.dtype == np.bool_:
        return _make(np.where(data, dtype.type(-np.inf), dtype.type(0)))
    if data.dtype.kind != "f":
        raise DTypeError(f"{op}: only bool and floating types of {name} are supported, got "
                         f"{data.dtype}")
    return mask if isinstance(mask, Tensor) else _make(data.astype(dtype, copy=False))


def _detect_is_causal_mask(mask, is_causal, size):
    """PyTorch's rule: ``is_causal`` when given; else True when ``mask`` is exactly the
    square causal mask of ``size`` (so it can be skipped for the causal fast form)."""
    if is_causal is not None or mask is None:
        return bool(is_causal)
    data = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    sz = size if size else data.shape[-2]
    causal = np.triu(np.full((sz, sz), -np.inf), 1)
    return data.shape == causal.shape and bool(np.all(data == causal))


def _seq_len(src: Tensor, batch_first: bool) -> int:
    if src.ndim == 2:  # unbatched: (seq, feature)
        return src.shape[0]
    return src.shape[1 if batch_first else 0]


# -- multi-head attention ---------------------------------------------------------------------
class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads of ``embed_dim // num_heads`` features each.

    Args:
        embed_dim: features of the query (and of the output).
        num_heads: parallel heads; ``embed_dim`` must divide evenly among them.
        dropout: dropout on the attention weights, in training mode.
        bias: biases on the input and output projections.
        add_bias_kv: learn a bias key and value appended to the key/value sequences.
        add_zero_attn: append a zero key and value (after the projections).
        kdim, vdim: features of key and value (default ``embed_dim``).
        batch_first: inputs and outputs are (batch, seq, feature), not (seq, batch, feature).

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(attn_output, attn_weights)``;
    the weights are None unless ``need_weights``, (N, L, S) averaged over the heads or
    (N, num_heads, L, S) with ``average_attn_weights=False``.

    Example::

        mha = nn.MultiheadAttention(16, 4, batch_first=True)
        x = backprop.randn(2, 5, 16)
        out, weights = mha(x, x, x)       # (2, 5, 16), (2, 5, 5)
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None,
                 dtype=None):
        super().__init__()
        cls = "MultiheadAttention"
        self.embed_dim = _check_size(embed_dim, "embed_dim", cls, allow_zero=False)
        self.kdim = _check_size(kdim, "kdim", cls, False) if kdim is not None else embed_dim
        self.vdim = _check_size(vdim, "vdim", cls, False) if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = _check_size(num_heads, "num_heads", cls, allow_zero=False)
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"{cls}: dropout probability has to be between 0 and 1, but got "
                             f"{dropout}")
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise ValueError(f"{cls}: embed_dim must be divisible by num_heads, got embed_dim="
                             f"{embed_dim} and num_heads={num_heads}")
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _factory((3 * embed_dim, embed_dim), device, dtype)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = _factory((embed_dim, embed_dim), device, dtype)
            self.k_proj_weight = _factory((embed_dim, self.kdim), device, dtype)
            self.v_proj_weight = _factory((embed_dim, self.vdim), device, dtype)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = _factory((3 * embed_dim,), device, dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias,
                                                        device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = _factory((1, 1, embed_dim), device, dtype)
            self.bias_v = _factory((1, 1, embed_dim), device, dtype)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's: Xavier-uniform projections, zero biases, Xavier-normal bias_k/bias_v."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def _project(self, query, key, value):
        """The input projections q, k, v, each (..., embed_dim)."""
        E, b = self.embed_dim, self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if query is key and key is value:  # self-attention: one product, then split
                return _ops.chunk(F.linear(query, w, b), 3, dim=-1)
            return (F.linear(query, w[:E], bq), F.linear(key, w[E:2 * E], bk),
                    F.linear(value, w[2 * E:], bv))
        return (F.linear(query, self.q_proj_weight, bq), F.linear(key, self.k_proj_weight, bk),
                F.linear(value, self.v_proj_weight, bv))

    def _check_inputs(self, query, key, value, key_padding_mask, attn_mask):
        op = "MultiheadAttention"
        for name, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{op}: expected {name} to be a Tensor, got {type(t).__name__}")
        q, k, v = tuple(query.shape), tuple(key.shape), tuple(value.shape)
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(f"{op}: query, key and value must all be 3-D (batched) or 2-D "
                             f"(unbatched), got shapes {q}, {k} and {v}")
        if q[-1] != self.embed_dim or k[-1] != self.kdim or v[-1] != self.vdim:
            raise ShapeError(f"{op}: expected last dims embed_dim={self.embed_dim}, kdim="
                             f"{self.kdim}, vdim={self.vdim}, got shapes {q}, {k} and {v}")
        if k[:-1] != v[:-1]:
            raise ShapeError(f"{op}: key shape {k} does not match value shape {v}")
        batched = query.ndim == 3
        if batched:
            bq = q[0] if self.batch_first else q[1]
            bk = k[0] if self.batch_first else k[1]
            if bq != bk:
                raise ShapeError(f"{op}: query and key must have the same batch size, got "
                                 f"shapes {q} and {k}")
        n_batch = (q[0] if self.batch_first else q[1]) if batched else None
        src_len = (k[1] if self.batch_first else k[0]) if batched else k[0]
        tgt_len = (q[1] if self.batch_first else q[0]) if batched else q[0]
        if key_padding_mask is not None:
            want = (n_batch, src_len) if batched else (src_len,)
            if tuple(key_padding_mask.shape) != want:
                raise ShapeError(f"{op}: expected key_padding_mask of shape {want}, got "
                                 f"{tuple(key_padding_mask.shape)}")
        if attn_mask is not None:
            heads = (n_batch or 1) * self.num_heads
            m = tuple(attn_mask.shape)
            if m not in ((tgt_len, src_len), (heads, tgt_len, src_len)):
                raise ShapeError(f"{op}: attn_mask should have shape {(tgt_len, src_len)} or "
                                 f"{(heads, tgt_len, src_len)}, got {m}")

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        self._check_inputs(query, key, value, key_padding_mask, attn_mask)
        op = "MultiheadAttention"
        dtype = np.dtype(query._data.dtype)
        batched = query.ndim == 3
        if not batched:  # a batch of one, dropped again at the end
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:  # keep identity: self-attention is detected by `is`
            same_kv, same_qk = key is value, query is key
            query = query.transpose(0, 1)
            key = query if same_qk else key.transpose(0, 1)
            value = key if same_kv else value.transpose(0, 1)
        # From here on the layout is PyTorch's (seq, batch, feature).
        key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", dtype, op)
        if is_causal and attn_mask is None:
            raise ValueError(f"{op}: need attn_mask if specifying the is_causal hint (you may "
                             f"use nn.Transformer.generate_square_subsequent_mask)")
        if is_causal and key_padding_mask is None and not need_weights:
            attn_mask = None  # the mask is the causal one: scaled_dot_product_attention makes it
        else:
            attn_mask = _canonical_mask(attn_mask, "attn_mask", dtype, op)
            if key_padding_mask is not None:
                is_causal = False
        L, N = query.shape[0], query.shape[1]
        H, D = self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value)
        if attn_mask is not None:  # (L, S) or (N·H, L, S) -> broadcastable to (N, H, L, S)
            attn_mask = attn_mask if attn_mask.ndim == 2 else attn_mask.reshape(N, H, L, -1)
        if self.bias_k is not None:
            k = _ops.cat([k, self.bias_k.expand(1, N, self.embed_dim)], dim=0)
            v = _ops.cat([v, self.bias_v.expand(1, N, self.embed_dim)], dim=0)
            attn_mask = None if attn_mask is None else _ops.pad(attn_mask, (0, 1))
            if key_padding_mask is not None:
                key_padding_mask = _ops.pad(key_padding_mask, (0, 1))
        # (seq, N, E) -> (N, H, seq, D)
        q = q.reshape(L, N, H, D).permute(1, 2, 0, 3)
        k = k.reshape(k.shape[0], N, H, D).permute(1, 2, 0, 3)
        v = v.reshape(v.shape[0], N, H, D).permute(1, 2, 0, 3)
        if self.add_zero_attn:
            k = _ops.cat([k, _make(np.zeros((N, H, 1, D), dtype))], dim=2)
            v = _ops.cat([v, _make(np.zeros((N, H, 1, D), dtype))], dim=2)
            attn_mask = None if attn_mask is None else _ops.pad(attn_mask, (0, 1))
            if key_padding_mask is not None:
                key_padding_mask = _ops.pad(key_padding_mask, (0, 1))
        if key_padding_mask is not None:  # (N, S) -> (N, 1, 1, S), added to the scores
            kpm = key_padding_mask.reshape(N, 1, 1, -1)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q * math.sqrt(1.0 / D)) @ k.transpose(-2, -1)
            if attn_mask is not None:
                scores = scores + attn_mask
            weights = F.softmax(scores, dim=-1)
            if dropout_p > 0.0:
                weights = F.dropout(weights, p=dropout_p)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
        out = out.permute(2, 0, 1, 3).reshape(L, N, self.embed_dim)  # (L, N, E)
        out = self.out_proj(out)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            out = out.squeeze(1)
            weights = None if weights is None else weights.squeeze(0)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, weights


# -- the Transformer --------------------------------------------------------------------------
def _activation(activation, cls: str):
    if isinstance(activation, str):
        if activation == "relu":
            return F.relu
        if activation == "gelu":
            return F.gelu
        raise ValueError(f"{cls}: activation should be relu/gelu, not {activation}")
    if not callable(activation):
        raise TypeError(f"{cls}: activation must be 'relu', 'gelu' or a callable, got "
                        f"{type(activation).__name__}")
    return activation


def _check_dropout(p, cls: str) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{cls}: dropout probability has to be between 0 and 1, but got {p}")
    return p


def _build_layer(layer, cls, attentions, d_model, nhead, dim_feedforward, dropout, activation,
                 layer_norm_eps, batch_first, norm_first, bias, device, dtype):
    """The parts of an encoder or decoder layer, registered in PyTorch's order (so that
    parameters and state_dict keys line up): the attention blocks named in ``attentions``,
    the feed-forward block, then one LayerNorm and one Dropout per block."""
    fk = {"device": device, "dtype": dtype}
    _check_dropout(dropout, cls)
    for name in attentions:
        setattr(layer, name, MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                batch_first=batch_first, **fk))
    layer.linear1 = Linear(d_model, dim_feedforward, bias=bias, **fk)
    layer.dropout = Dropout(dropout)
    layer.linear2 = Linear(dim_feedforward, d_model, bias=bias, **fk)
    layer.norm_first = norm_first
    blocks = range(1, len(attentions) + 2)       # each attention, and the feed-forward block
    for i in blocks:
        setattr(layer, f"norm{i}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **fk))
    for i in blocks:
        setattr(layer, f"dropout{i}", Dropout(dropout))
    layer.activation = _activation(activation, cls)


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with a residual connection and
    LayerNorm (after each block, or before it with ``norm_first=True``).

    Args:
        d_model: features per position; nhead: attention heads.
        dim_feedforward: width of the feed-forward block (default 2048).
        dropout: after attention, inside and after the feed-forward block (default 0.1).
        activation: "relu" (default), "gelu" or a callable.
        layer_norm_eps, batch_first, norm_first, bias: as in PyTorch.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``.

    Example::

        layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32)
        layer(backprop.randn(10, 2, 16)).shape      # (10, 2, 16): (seq, batch, feature)
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None):
        super().__init__()
        _build_layer(self, "TransformerEncoderLayer", ("self_attn",), d_model, nhead, dim_feedforward, dropout, activation,
                     layer_norm_eps, batch_first, norm_first, bias, device, dtype)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoderLayer(Module):
    """Self-attention, attention over the encoder's output (``memory``), then a
    feed-forward block; each with a residual connection and LayerNorm.

    Arguments as ``TransformerEncoderLayer``. ``forward(tgt, memory, tgt_mask=None,
    memory_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
    tgt_is_causal=False, memory_is_causal=False)``.

    Example::

        layer = nn.TransformerDecoderLayer(d_model=16, nhead=4, dim_feedforward=32)
        layer(backprop.randn(7, 2, 16), backprop.randn(10, 2, 16)).shape   # (7, 2, 16)
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None):
        super().__init__()
        _build_layer(self, "TransformerDecoderLayer", ("self_attn", "multihead_attn"),
                     d_model, nhead, dim_feedforward, dropout, activation,
                     layer_norm_eps, batch_first, norm_first, bias, device, dtype)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask,
                                    memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                               memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           is_causal=is_causal, need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, is_causal=is_causal,
                                need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


def _clones(module: Module, n: int, cls: str) -> ModuleList:
    if not isinstance(module, Module):
        raise TypeError(f"{cls}: expected a layer (a Module) to copy, got "
                        f"{type(module).__name__}")
    return ModuleList([copy.deepcopy(module) for _ in range(_check_size(n, "num_layers", cls))])


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` in a row, then ``norm`` if given.

    ``enable_nested_tensor`` and ``mask_check`` are accepted for compatibility (they
    choose PyTorch's fast inference path, which gives the same numbers).
    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)``.

    Example::

        layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32)
        encoder = nn.TransformerEncoder(layer, num_layers=2)
        encoder(backprop.randn(10, 2, 16)).shape      # (10, 2, 16)
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers, "TransformerEncoder")
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.use_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        op = "TransformerEncoder"
        if not isinstance(src, Tensor):
            raise TypeError(f"{op}: expected src to be a Tensor, got {type(src).__name__}")
        dtype = np.dtype(src._data.dtype)
        src_key_padding_mask = _canonical_mask(src_key_padding_mask, "src_key_padding_mask",
                                               dtype, op)
        mask = _canonical_mask(mask, "mask", dtype, op)
        batch_first = self.layers[0].self_attn.batch_first if len(self.layers) and hasattr(
            self.layers[0], "self_attn") else False
        is_causal = _detect_is_causal_mask(mask, is_causal, _seq_len(src, batch_first))
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, is_causal=is_causal,
                        src_key_padding_mask=src_key_padding_mask)
        if self.norm is not None:
            out = self.norm(out)
        return out


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer`` in a row, then ``norm`` if given.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False)``.

    Example::

        layer = nn.TransformerDecoderLayer(d_model=16, nhead=4, dim_feedforward=32)
        decoder = nn.TransformerDecoder(layer, num_layers=2)
        decoder(backprop.randn(7, 2, 16), backprop.randn(10, 2, 16)).shape   # (7, 2, 16)
    """

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers, "TransformerDecoder")
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        batch_first = self.layers[0].self_attn.batch_first if len(self.layers) and hasattr(
            self.layers[0], "self_attn") else False
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal,
                                               _seq_len(tgt, batch_first))
        out = tgt
        for layer in self.layers:
            out = layer(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        if self.norm is not None:
            out = self.norm(out)
        return out


class Transformer(Module):
    """The encoder-decoder Transformer of "Attention Is All You Need", as PyTorch builds it.

    Args as PyTorch: d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
    dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
    custom_decoder=None, layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True.
    Every parameter with more than one dim is re-initialised Xavier-uniform.

    Example::

        model = nn.Transformer(d_model=16, nhead=4, num_encoder_layers=1,
                               num_decoder_layers=1, dim_feedforward=32)
        model(backprop.randn(10, 2, 16), backprop.randn(7, 2, 16)).shape   # (7, 2, 16)
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                 dim_feedforward=2048, dropout=0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps=1e-5, batch_first=False, norm_first=False,
                 bias=True, device=None, dtype=None):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        layer_kw = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                        layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                        norm_first=norm_first, bias=bias, **fk)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(
                TransformerEncoderLayer(d_model, nhead, **layer_kw), num_encoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **fk))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(
                TransformerDecoderLayer(d_model, nhead, **layer_kw), num_decoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **fk))
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        op = "Transformer"
        batched = src.ndim == 3
        if batched and src.shape[0 if self.batch_first else 1] != \
                tgt.shape[0 if self.batch_first else 1]:
            raise ShapeError(f"{op}: the batch number of src and tgt must be equal, got shapes "
                             f"{tuple(src.shape)} and {tuple(tgt.shape)}")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ShapeError(f"{op}: the feature number of src and tgt must be equal to d_model"
                             f"={self.d_model}, got shapes {tuple(src.shape)} and "
                             f"{tuple(tgt.shape)}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """The (sz, sz) causal mask: -inf above the diagonal (future positions), 0 elsewhere.

        Example::

            nn.Transformer.generate_square_subsequent_mask(3)
            # [[0., -inf, -inf], [0., 0., -inf], [0., 0., 0.]]
        """
        sz = _check_size(sz, "sz", "generate_square_subsequent_mask")
        np_dtype = _dt.default_float if dtype is None else _dt.to_numpy_dtype(dtype)
        return _make(np.triu(np.full((sz, sz), -np.inf, dtype=np_dtype), 1))
