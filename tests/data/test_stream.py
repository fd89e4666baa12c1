"""BatchStream: batches of any size, each epoch a fresh seeded permutation."""
import numpy as np
import pytest

import backprop
from backprop.data import BatchStream


def test_every_epoch_is_a_permutation_whatever_the_batch_sizes():
    stream = BatchStream(10, generator=backprop.Generator(0))
    drawn = np.concatenate([stream.next(b) for b in (3, 4, 1, 7, 5)])     # 20 = two epochs
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:]) == list(range(10))
    assert stream.epoch == 2 and stream.seen == 20
    assert len(stream.next(50)) == 10                    # at most the whole set


def test_the_same_seed_gives_the_same_batches():
    a = BatchStream(7, generator=backprop.Generator(3))
    b = BatchStream(7, generator=backprop.Generator(3))
    c = BatchStream(7, generator=backprop.Generator(4))
    sa, sb, sc = ([s.next(5).tolist() for _ in range(4)] for s in (a, b, c))
    assert sa == sb and sa != sc


@pytest.mark.parametrize("n,batch", [(0, 1), (-2, 1), (2.5, 1), (True, 1), (4, 0), (4, 1.5)])
def test_bad_sizes_are_refused(n, batch):
    with pytest.raises(ValueError, match="BatchStream"):
        BatchStream(n).next(batch)
