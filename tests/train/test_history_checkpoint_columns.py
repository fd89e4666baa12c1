"""A checkpoint's history column of the wrong length is refused by name (issue 17: zip(strict=True))
rather than leaving the later records without that key."""
import numpy as np
import pytest

from backprop.train import History


def test_a_short_column_is_refused():
    h = History()
    for i in range(1, 4):
        h.add_step({"step": i, "epoch": 1, "loss": 1.0 / i})
    packed = h._to_checkpoint()
    packed["steps"]["arrays"]["loss"] = np.asarray(packed["steps"]["arrays"]["loss"][:2])
    with pytest.raises(ValueError, match=r"History: the checkpoint's column 'loss' holds 2 "
                                         r"values for 3 records"):
        History._from_checkpoint(packed)
