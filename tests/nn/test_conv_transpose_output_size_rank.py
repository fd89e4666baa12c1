"""ConvTranspose with output_size and an input of the wrong rank: the op's own error, naming it."""
import pytest

import backprop
from backprop import ShapeError, nn


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5, 6)])
def test_wrong_rank_with_output_size_gets_the_ops_error(shape):
    m = nn.ConvTranspose2d(2, 3, 3)
    with pytest.raises(ShapeError, match=r"conv_transpose2d: expected input with 4 dimensions"):
        m(backprop.randn(*shape), output_size=(7, 7))


def test_output_size_still_picks_the_output_padding():
    m = nn.ConvTranspose2d(2, 3, 3, stride=2)
    assert tuple(m(backprop.randn(1, 2, 4, 4), output_size=(10, 10)).shape) == (1, 3, 10, 10)
