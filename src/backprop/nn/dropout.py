"""``Dropout``: randomly zero activations during training, a regulariser."""
from __future__ import annotations

import numbers

from backprop.nn import functional as F
from backprop.nn.module import Module


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
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
