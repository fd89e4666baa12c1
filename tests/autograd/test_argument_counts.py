"""Lists that must pair up one to one (tensors and their gradients) are refused, by name, when
they do not, rather than cut to the shorter (issue 17: zip(strict=True))."""
import pytest

import backprop
from backprop import GradError


def _two_scalars():
    a = backprop.ones(2, requires_grad=True)
    return a, (a * 2).sum(), (a * 3).sum()


def test_backward_refuses_fewer_gradients_than_tensors():
    a, b, c = _two_scalars()
    with pytest.raises(GradError, match=r"backward: got 2 tensors and 1 gradients"):
        backprop.autograd.backward([b, c], [backprop.tensor(1.0)])
    assert a.grad is None  # nothing ran, not the first pair alone


def test_backward_refuses_more_gradients_than_tensors():
    a, b, _ = _two_scalars()
    with pytest.raises(GradError, match=r"got 1 tensors and 2 gradients"):
        backprop.autograd.backward([b], [backprop.tensor(1.0), backprop.tensor(1.0)])


def test_backward_with_matching_counts_still_accumulates_both():
    a, b, c = _two_scalars()
    backprop.autograd.backward((b, c), (backprop.tensor(1.0), backprop.tensor(2.0)))
    assert a.grad.tolist() == [8.0, 8.0]  # 2 * 1 + 3 * 2
