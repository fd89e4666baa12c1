"""default_collate refuses samples with different numbers of fields, namedtuples included,
by name, instead of cutting every sample to the shortest (issue 17: zip(strict=True))."""
from collections import namedtuple

import pytest

from backprop import ShapeError
from backprop.data import default_collate

Point = namedtuple("Point", "x y")


def test_namedtuple_samples_with_a_short_one_are_refused():
    with pytest.raises(ShapeError, match=r"default_collate: each sample in the batch should "
                                         r"have the same number of fields, got lengths \[1, 2\]"):
        default_collate([Point(1, 2.0), (3,)])


def test_namedtuple_samples_collate_into_the_namedtuple():
    out = default_collate([Point(1, 2.0), Point(3, 4.0)])
    assert type(out) is Point and out.x.tolist() == [1, 3] and out.y.tolist() == [2.0, 4.0]
