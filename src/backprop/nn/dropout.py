"""Dropout layers: randomly zero activations (or whole channels) during training, a regulariser."""
from __future__ import annotations

from collections.abc import Callable

from backprop._checks import is_real
from backprop.nn import functional as F
from backprop.nn.module import Module
from backprop.tensor import Tensor


class Dropout(Module):
    """Zero each element with probability ``p`` in training, scaling the rest by 1/(1-p).

    The scaling keeps each activation's expected value, so in eval mode (after
    ``model.eval()``) the layer is the identity. Masks come from the seeded global
    generator.

    Args:
        p: probability of zeroing an element, in [0, 1].
        inplace: accepted for compatibility; the result is computed out of place.

    Example::

        drop = nn.Dropout(0.5)
        drop(backprop.ones(8))          # about half zeros, the rest 2.0
        drop.eval()(backprop.ones(8))   # all ones
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not is_real(p) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class _DropoutNd(Dropout):
    _fn: Callable[..., Tensor]  # each subclass's functional form (a staticmethod)

    def forward(self, input):
        return type(self)._fn(input, self.p, self.training)


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) or (C, L) inputs with probability ``p`` in training,
    scaling the rest by 1/(1-p) (neighbouring positions are correlated, so dropping
    single elements would regularise little).

    Example::

        nn.Dropout1d(0.5)(backprop.ones(2, 4, 3))   # each [i, c, :] is all 0 or all 2
    """

    _fn = staticmethod(F.dropout1d)


class Dropout2d(_DropoutNd):
    """Zero whole channels of (N, C, H, W) inputs with probability ``p`` in training (a 3-D
    input is taken as (N, C, L), with PyTorch's warning).

    Example::

        nn.Dropout2d(0.5)(backprop.ones(2, 4, 3, 3)).shape   # (2, 4, 3, 3)
    """

    _fn = staticmethod(F.dropout2d)


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs with probability ``p``.

    Example::

        nn.Dropout3d(0.5)(backprop.ones(2, 4, 2, 3, 3)).shape   # (2, 4, 2, 3, 3)
    """

    _fn = staticmethod(F.dropout3d)


class AlphaDropout(_DropoutNd):
    """Dropout that keeps SELU activations' mean 0 and variance 1 (``F.alpha_dropout``).

    Example::

        nn.AlphaDropout(0.2)(backprop.randn(4, 5)).shape   # (4, 5)
    """

    _fn = staticmethod(F.alpha_dropout)
