"""Activation modules: the non-linearities between layers, as modules for ``Sequential``.

Each wraps the function of the same name in ``nn.functional`` and takes PyTorch's
constructor arguments. ``inplace=True`` is accepted for compatibility, but the
result is always computed out of place (the input is left unchanged).

Example::

    nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
"""
from __future__ import annotations

from backprop.nn import functional as F
from backprop.nn import init as _init
from backprop.nn.linear import _check_size, _factory
from backprop.nn.module import Module


class ReLU(Module):
    """max(x, 0) element-wise.

    Example::

        nn.ReLU()(backprop.tensor([-1.0, 2.0]))   # tensor([0., 2.])
    """

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x where x > 0, ``negative_slope`` · x elsewhere (a small gradient for negative inputs).

    Example::

        nn.LeakyReLU(0.1)(backprop.tensor([-1.0, 2.0]))   # tensor([-0.1000, 2.0000])
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """The logistic function 1 / (1 + e⁻ˣ)."""

    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    """The hyperbolic tangent."""

    def forward(self, input):
        return F.tanh(input)


class GELU(Module):
    """x·Φ(x), Φ the standard normal CDF; ``approximate='tanh'`` uses the tanh formula.

    Example::

        nn.GELU()(backprop.tensor([1.0]))   # tensor([0.8413])
    """

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class ELU(Module):
    """x where x > 0, alpha·(eˣ - 1) elsewhere."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Softplus(Module):
    """log(1 + e^(β·x)) / β, a smooth relu; linear where β·x > ``threshold``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class SiLU(Module):
    """x · σ(x) (also called swish)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.silu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Hardtanh(Module):
    """clamp(x, min_val, max_val), gradient 0 at and beyond the ends.

    Example::

        nn.Hardtanh()(backprop.tensor([-2.0, 0.5, 2.0]))   # tensor([-1.0000, 0.5000, 1.0000])
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = inplace
        if max_val < min_val:
            raise ValueError(f"Hardtanh: min_val cannot be greater than max_val, got min_val="
                             f"{min_val} and max_val={max_val}")

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return (f"min_val={self.min_val}, max_val={self.max_val}"
                + (", inplace=True" if self.inplace else ""))


class ReLU6(Hardtanh):
    """min(max(x, 0), 6) (MobileNet's bounded relu)."""

    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Hardsigmoid(Module):
    """clamp(x/6 + 1/2, 0, 1), a piecewise-linear sigmoid."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.hardsigmoid(input)


class Hardswish(Module):
    """x · clamp(x/6 + 1/2, 0, 1) (MobileNetV3)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.hardswish(input)


class LogSigmoid(Module):
    """log σ(x), stable for any input."""

    def forward(self, input):
        return F.logsigmoid(input)


class Mish(Module):
    """x · tanh(softplus(x))."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.mish(input)


class PReLU(Module):
    """x where x > 0, a · x elsewhere, with the slope a learned (one, or one per channel).

    Args:
        num_parameters: 1 (one slope shared) or the number of channels (dim 1 of the input).
        init: the initial slope (0.25).

    Example::

        act = nn.PReLU(num_parameters=3)
        act(backprop.randn(2, 3, 4)).shape   # (2, 3, 4); act.weight.shape == (3,)
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = _check_size(num_parameters, "num_parameters", "PReLU",
                                          allow_zero=False)
        self.init = init
        self.weight = _factory((self.num_parameters,), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init.constant_(self.weight, self.init)

    def forward(self, input):
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class Softmax(Module):
    """exp(x) / Σ exp(x) along ``dim``: each slice becomes a probability distribution.

    Example::

        nn.Softmax(dim=1)(backprop.zeros(2, 4))   # every entry 0.25
    """

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log softmax along ``dim``: x - logsumexp(x), stable for logits of any size."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim, _stacklevel=5)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
