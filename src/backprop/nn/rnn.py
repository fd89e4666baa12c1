"""Recurrent layers with PyTorch's names, arguments and parameters: ``RNN``, ``LSTM``,
``GRU`` and their one-step cells ``RNNCell``, ``LSTMCell``, ``GRUCell``.

Each layer and direction costs a handful of graph nodes, whatever the sequence length:
the input projection of every step is one matrix product (``linear`` over the whole
sequence), and the time loop with its backward is one fused op
(``backprop.ops.recurrent``). A padded batch is run as a packed one in which every
sequence is full length, so ``PackedSequence`` input takes the same path.

Parameters are named and shaped as in PyTorch (``weight_ih_l0``, ``weight_hh_l0``,
``bias_ih_l0``, ``bias_hh_l0``, ``_reverse`` for the backward direction,
``weight_hr_l0`` for an LSTM projection), with the gates stacked in PyTorch's order
(LSTM: i, f, g, o; GRU: r, z, n), so a PyTorch ``state_dict`` loads as it is.

Example::

    lstm = nn.LSTM(input_size=32, hidden_size=128, num_layers=2, batch_first=True)
    out, (h, c) = lstm(backprop.randn(8, 100, 32))   # out (8, 100, 128); h, c (2, 8, 128)
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from backprop import ops as _ops
from backprop._checks import is_real
from backprop.errors import DTypeError, ShapeError
from backprop.nn import functional as F
from backprop.nn import init
from backprop.nn.linear import _factory
from backprop.nn.module import Module, _options_repr
from backprop.nn.parameter import Parameter
from backprop.nn.utils.rnn import PackedSequence
from backprop.ops._util import require_tensor
from backprop.ops.recurrent import GRUSequence, LSTMSequence, RNNSequence
from backprop.tensor import Tensor

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _size(value, name: str, cls: str, minimum: int = 1) -> int:
    if not isinstance(value, (numbers.Integral, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{cls}: {name} should be of type int, got: {type(value).__name__}")
    if value < minimum:
        what = "greater than zero" if minimum else "non-negative"
        raise ValueError(f"{cls}: {name} must be {what}, got {value}")
    return int(value)


def _nonlinearity(nonlinearity, cls: str) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{cls}: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' "
                         f"or 'relu'.")
    return nonlinearity


def _check_dtype(x: Tensor, weight: Tensor, what: str, cls: str) -> None:
    if x._data.dtype != weight._data.dtype:
        raise DTypeError(f"{cls}: {what} must have the type {weight.dtype} (the parameters'), "
                         f"got type {x.dtype}")


def _final_rows(batch_sizes: tuple, reverse: bool) -> np.ndarray:
    """The packed row holding each (sorted) sequence's state after its last step."""
    batch = batch_sizes[0]
    if reverse:  # the reverse direction ends at step 0, whose rows are 0..B-1
        return np.arange(batch)
    sizes = np.asarray(batch_sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    lengths = (sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1)
    return starts[lengths - 1] + np.arange(batch)


class RNNBase(Module):
    """What ``RNN``, ``LSTM`` and ``GRU`` share: parameters, argument checks, the layer loop.

    ``mode`` is one of ``'RNN_TANH'``, ``'RNN_RELU'``, ``'LSTM'``, ``'GRU'``, as in PyTorch.
    """

    # Registered by name in __init__ (setattr), as every parameter is; every layer has it.
    weight_ih_l0: Parameter

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        cls = type(self).__name__
        if mode not in _GATES:
            raise ValueError(f"{cls}: unrecognized RNN mode: {mode!r}")
        if (not is_real(dropout) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError(f"{cls}: dropout should be a number in range [0, 1] representing "
                             f"the probability of an element being zeroed, got {dropout!r}")
        self.mode = mode
        self.input_size = _size(input_size, "input_size", cls, 0)
        self.hidden_size = _size(hidden_size, "hidden_size", cls)
        self.num_layers = _size(num_layers, "num_layers", cls)
        self.proj_size = _size(proj_size, "proj_size", cls, 0)
        if self.proj_size and mode != "LSTM":
            raise ValueError(f"{cls}: proj_size argument is only supported for LSTM, not RNN "
                             f"or GRU")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"{cls}: proj_size has to be smaller than hidden_size, got "
                             f"proj_size={proj_size}, hidden_size={hidden_size}")
        if dropout > 0 and self.num_layers == 1:
            warnings.warn(f"dropout option adds dropout after all but last recurrent layer, so "
                          f"non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}", UserWarning,
                          stacklevel=3)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        directions = 2 if self.bidirectional else 1
        gate_size = _GATES[mode] * self.hidden_size
        real_hidden = self.proj_size or self.hidden_size
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else real_hidden * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes: dict[str, tuple[int, ...]] = {"weight_ih": (gate_size, layer_input),
                                                      "weight_hh": (gate_size, real_hidden)}
                if self.bias:
                    shapes["bias_ih"] = (gate_size,)
                    shapes["bias_hh"] = (gate_size,)
                if self.proj_size:
                    shapes["weight_hr"] = (self.proj_size, self.hidden_size)
                names = []
                for kind, shape in shapes.items():
                    setattr(self, kind + suffix, _factory(shape, device, dtype))
                    names.append(kind + suffix)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/√hidden_size, 1/√hidden_size), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """Accepted for PyTorch compatibility: the weights need no flattening here."""

    @property
    def all_weights(self) -> list:
        """The parameters, one list per layer and direction (PyTorch's order)."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    @property
    def _flat_weights(self) -> list:
        return [getattr(self, name) for name in self._flat_weights_names]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + _options_repr(self, {
            "proj_size": 0, "num_layers": 1, "bias": True, "batch_first": False, "dropout": 0,
            "bidirectional": False})

    # -- forward --------------------------------------------------------------------------
    def _layer(self, names: list, inp: Tensor, h0, c0, batch_sizes: tuple, reverse: bool,
               final: np.ndarray):
        """One layer in one direction over the packed rows ``inp``: (output, h_n, c_n)."""
        params = [getattr(self, n) for n in names]
        w_ih, w_hh = params[0], params[1]
        b_ih = params[2] if self.bias else None
        b_hh = params[3] if self.bias else None
        xp = _ops.linear(inp, w_ih, b_ih)  # the input projection of every step at once
        if self.mode == "GRU":
            y = GRUSequence.apply(xp, h0, w_hh, b_hh, batch_sizes, reverse)
            return y, y[final], None
        if b_hh is not None:
            xp = xp + b_hh
        if self.mode == "LSTM":
            w_hr = params[-1] if self.proj_size else None
            y = LSTMSequence.apply(xp, h0, c0, w_hh, w_hr, batch_sizes, reverse)
            p = self.proj_size or self.hidden_size
            last = y[final]
            return y[:, :p], last[:, :p], last[:, p:]
        nonlinearity = "tanh" if self.mode == "RNN_TANH" else "relu"
        y = RNNSequence.apply(xp, h0, w_hh, batch_sizes, reverse, nonlinearity)
        return y, y[final], None

    def _check_hidden(self, h: Tensor, expected: tuple, what: str, unbatched: bool) -> None:
        cls = type(self).__name__
        if not isinstance(h, Tensor):
            raise TypeError(f"{cls}: expected {what} to be a Tensor, got {type(h).__name__}")
        if tuple(h.shape) != expected:
            raise ShapeError(f"{cls}: Expected {what} size {expected}, got {list(h.shape)}")
        _check_dtype(h, self.weight_ih_l0, what, cls)

    def forward(self, input, hx=None):
        """Run the layers over a sequence batch.

        Args:
            input: (T, B, input_size), or (B, T, input_size) with ``batch_first``, or
                (T, input_size) unbatched, or a ``PackedSequence``.
            hx: the initial state, (num_layers·directions, B, H_out) (no B when
                unbatched); for the LSTM a pair ``(h_0, c_0)``, c_0 with hidden_size.
                Zeros when omitted.

        Returns ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``): output (T, B,
        directions·H_out) (or as the input is laid out, or packed), H_out = proj_size or
        hidden_size; the final states of every layer and direction.
        """
        cls = type(self).__name__
        lstm = self.mode == "LSTM"
        directions = 2 if self.bidirectional else 1
        layers_dirs = self.num_layers * directions
        h_out = self.proj_size or self.hidden_size
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            data, batch_sizes_t, sorted_indices, unsorted_indices = input
            batch_sizes = tuple(int(b) for b in np.asarray(batch_sizes_t._data).reshape(-1))
            if data.ndim != 2 or data.shape[1] != self.input_size:
                raise ShapeError(f"{cls}: expected packed data of shape (N, {self.input_size}),"
                                 f" got {tuple(data.shape)}")
            batch = batch_sizes[0] if batch_sizes else 0
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"{cls}: expected a Tensor or a PackedSequence as input, got "
                                f"{type(input).__name__}")
            if input.ndim not in (2, 3):
                raise ValueError(f"{cls}: Expected input to be 2D or 3D, got {input.ndim}D "
                                 f"tensor instead (shape {tuple(input.shape)})")
            if input.shape[-1] != self.input_size:
                raise ShapeError(f"{cls}: input.size(-1) must be equal to input_size. "
                                 f"Expected {self.input_size}, got {input.shape[-1]}")
            unbatched = input.ndim == 2
            x = input
            if unbatched:
                x = x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
            steps, batch = x.shape[0], x.shape[1]
            if steps == 0 or batch == 0:
                raise ShapeError(f"{cls}: expected a non-empty sequence batch, got input "
                                 f"shape {tuple(input.shape)}")
            data = x.reshape(steps * batch, self.input_size)
            batch_sizes = (batch,) * steps
            sorted_indices = unsorted_indices = None
        _check_dtype(data, self.weight_ih_l0, "input", cls)

        h0 = c0 = None
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{cls}: hx must be a tuple (h_0, c_0), got "
                                    f"{type(hx).__name__}")
                h0, c0 = hx
            else:
                h0 = hx
            states = [h0] if c0 is None else [h0, c0]
            want = 2 if unbatched else 3
            for s in states:
                if isinstance(s, Tensor) and s.ndim != want:
                    raise ShapeError(f"{cls}: For {'unbatched 2-D' if unbatched else 'batched 3-D'}"
                                     f" input, hx{' and cx' if lstm else ''} should also be "
                                     f"{want}-D but got {s.ndim}-D")
            if unbatched:
                h0 = h0.unsqueeze(1) if isinstance(h0, Tensor) else h0
                c0 = c0.unsqueeze(1) if isinstance(c0, Tensor) else c0
            self._check_hidden(h0, (layers_dirs, batch, h_out), "hidden[0]" if lstm else
                               "hidden", unbatched)
            if lstm:
                self._check_hidden(c0, (layers_dirs, batch, self.hidden_size), "hidden[1]",
                                   unbatched)
            if sorted_indices is not None:  # the states follow the batch into sorted order
                order = np.asarray(sorted_indices._data)
                h0 = h0[:, order]
                c0 = c0[:, order] if lstm else None

        finals = [_final_rows(batch_sizes, False), _final_rows(batch_sizes, True)]
        if unsorted_indices is not None:  # and the final states back into the input's order
            back = np.asarray(unsorted_indices._data)
            finals = [f[back] for f in finals]
        inp, h_n, c_n = data, [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(directions):
                k = layer * directions + d
                out, h, c = self._layer(self._all_weights[k], inp,
                                        None if h0 is None else h0[k],
                                        None if c0 is None else c0[k],
                                        batch_sizes, d == 1, finals[d])
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            inp = outs[0] if directions == 1 else _ops.cat(outs, dim=1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                inp = F.dropout(inp, self.dropout, True)
        h_n = _ops.stack(h_n)
        c_n = _ops.stack(c_n) if lstm else None

        if packed:
            output = PackedSequence(inp, batch_sizes_t, sorted_indices, unsorted_indices)
        elif unbatched:
            output = inp
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if lstm else None
        else:
            output = inp.reshape(len(batch_sizes), batch, directions * h_out)
            if self.batch_first:
                output = output.transpose(0, 1)
        return (output, (h_n, c_n)) if lstm else (output, h_n)


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), act = tanh or relu.

    Args:
        input_size, hidden_size: features of x_t and of h_t.
        num_layers: stacked layers (each reads the previous one's output).
        nonlinearity: ``'tanh'`` (default) or ``'relu'``.
        bias: learn b_ih and b_hh (default True).
        batch_first: input and output are (B, T, feature) rather than (T, B, feature).
        dropout: dropout probability on the output of every layer but the last (training).
        bidirectional: also run the sequence backwards; outputs side by side.

    Example::

        rnn = nn.RNN(10, 20, num_layers=2)
        out, h_n = rnn(backprop.randn(5, 3, 10))   # out (5, 3, 20), h_n (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None):
        mode = "RNN_TANH" if _nonlinearity(nonlinearity, "RNN") == "tanh" else "RNN_RELU"
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory: per step, gates i, f, g, o of x_t W_ihᵀ + b_ih + h W_hhᵀ + b_hh;
    c_t = σ(f)·c_{t-1} + σ(i)·tanh(g), h_t = σ(o)·tanh(c_t) (times W_hrᵀ with ``proj_size``).

    Args: as ``RNN`` (no nonlinearity), plus ``proj_size``: when > 0, h_t is projected to
    this size (``weight_hr_l{k}``), and h_0/h_n and the output have this size.

    Example::

        lstm = nn.LSTM(10, 20, batch_first=True)
        out, (h_n, c_n) = lstm(backprop.randn(3, 5, 10))   # out (3, 5, 20), h_n (1, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit: r, z = σ(x W_i{r,z}ᵀ + b_i + h W_h{r,z}ᵀ + b_h),
    n = tanh(x W_inᵀ + b_in + r·(h W_hnᵀ + b_hn)), h_t = (1 - z)·n + z·h_{t-1}.

    Args: as ``RNN`` (no nonlinearity).

    Example::

        gru = nn.GRU(10, 20, bidirectional=True)
        out, h_n = gru(backprop.randn(5, 3, 10))   # out (5, 3, 40), h_n (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)


# -- cells ------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """What the one-step cells share: ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device=None, dtype=None):
        super().__init__()
        cls = type(self).__name__
        self.input_size = _size(input_size, "input_size", cls, 0)
        self.hidden_size = _size(hidden_size, "hidden_size", cls)
        self.bias = bool(bias)
        gates = num_chunks * self.hidden_size
        self.weight_ih = _factory((gates, self.input_size), device, dtype)
        self.weight_hh = _factory((gates, self.hidden_size), device, dtype)
        if self.bias:
            self.bias_ih = _factory((gates,), device, dtype)
            self.bias_hh = _factory((gates,), device, dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/√hidden_size, 1/√hidden_size), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nonlinearity = getattr(self, "nonlinearity", "tanh")
        if nonlinearity != "tanh":
            s += f", nonlinearity={nonlinearity}"
        return s

    def _prepare(self, input, states: list):
        """(2-D input, 2-D states, unbatched) after the checks PyTorch makes."""
        cls = type(self).__name__
        input = require_tensor(input, cls)
        if input.ndim not in (1, 2):
            raise ValueError(f"{cls}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{cls}: input has inconsistent input_size: got {input.shape[-1]} "
                             f"expected {self.input_size}")
        _check_dtype(input, self.weight_ih, "input", cls)
        unbatched = input.ndim == 1
        x = input.unsqueeze(0) if unbatched else input
        out = []
        for s in states:
            if s is not None:
                if not isinstance(s, Tensor):
                    raise TypeError(f"{cls}: expected the hidden state to be a Tensor, got "
                                    f"{type(s).__name__}")
                if s.ndim != input.ndim:
                    raise ShapeError(f"{cls}: Expected hidden state to be {input.ndim}D (as the "
                                     f"input), got {s.ndim}D (shape {tuple(s.shape)})")
                s = s.unsqueeze(0) if unbatched else s
                if tuple(s.shape) != (x.shape[0], self.hidden_size):
                    raise ShapeError(f"{cls}: hidden state has shape {tuple(s.shape)}, expected "
                                     f"{(x.shape[0], self.hidden_size)}")
                _check_dtype(s, self.weight_ih, "hidden state", cls)
            out.append(s)
        return x, out, unbatched


class RNNCell(RNNCellBase):
    """One step of an Elman RNN: h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh).

    Args: input_size, hidden_size, bias (default True), nonlinearity (``'tanh'`` or
    ``'relu'``). Input (B, input_size) or (input_size,); hx likewise, zeros if omitted.

    Example::

        cell = nn.RNNCell(10, 20)
        h = cell(backprop.randn(3, 10))            # (3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = _nonlinearity(nonlinearity, "RNNCell")

    def forward(self, input, hx=None):
        x, (h,), unbatched = self._prepare(input, [hx])
        xp = _ops.linear(x, self.weight_ih, self.bias_ih)
        if self.bias_hh is not None:
            xp = xp + self.bias_hh
        out = RNNSequence.apply(xp, h, self.weight_hh, (x.shape[0],), False, self.nonlinearity)
        return out.squeeze(0) if unbatched else out


class LSTMCell(RNNCellBase):
    """One LSTM step: returns ``(h', c')`` from input and ``(h, c)`` (zeros if omitted).

    Example::

        cell = nn.LSTMCell(10, 20)
        h, c = cell(backprop.randn(3, 10))         # each (3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        x, (h, c), unbatched = self._prepare(input, [None, None] if hx is None else list(hx))
        xp = _ops.linear(x, self.weight_ih, self.bias_ih)
        if self.bias_hh is not None:
            xp = xp + self.bias_hh
        y = LSTMSequence.apply(xp, h, c, self.weight_hh, None, (x.shape[0],), False)
        hidden = self.hidden_size
        if unbatched:
            y = y.squeeze(0)
            return y[:hidden], y[hidden:]
        return y[:, :hidden], y[:, hidden:]


class GRUCell(RNNCellBase):
    """One GRU step: h' = (1 - z)·n + z·h (see ``GRU``); hx zeros if omitted.

    Example::

        cell = nn.GRUCell(10, 20)
        h = cell(backprop.randn(3, 10))            # (3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        x, (h,), unbatched = self._prepare(input, [hx])
        xp = _ops.linear(x, self.weight_ih, self.bias_ih)
        out = GRUSequence.apply(xp, h, self.weight_hh, self.bias_hh, (x.shape[0],), False)
        return out.squeeze(0) if unbatched else out
