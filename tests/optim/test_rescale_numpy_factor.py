"""LRScheduler.rescale takes any real factor, NumPy's scalars included (as the library's other
number checks do), and gives the same rates as the Python float."""
import numpy as np
import pytest

from backprop import nn, optim
from backprop.optim.lr_scheduler import StepLR


@pytest.mark.parametrize("factor", [np.float32(0.5), np.int64(2), 0.5, 2])
def test_rescale_takes_numpy_scalars(factor):
    opt = optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    sched = StepLR(opt, step_size=1, gamma=0.5)
    sched.rescale(factor)
    assert opt.param_groups[0]["lr"] == 0.1 * float(factor)
    assert sched.base_lrs == [0.1 * float(factor)]
