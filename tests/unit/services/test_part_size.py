"""part_size: S3's multipart limits hold for every object size up to 48.8 TiB."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_pub.errors import InvalidInput
from media_pub.services.direct_uploads import MAX_OBJECT, MAX_PART, MAX_PARTS, MIB, MIN_PART, part_size

TIB = 1024**4


@given(st.integers(min_value=0, max_value=MAX_OBJECT))
def test_any_size_fits_in_10000_parts_of_5_mib_to_5_gib(total: int) -> None:
    size = part_size(total)
    assert MIN_PART <= size <= MAX_PART
    assert size % MIB == 0
    assert math.ceil(total / size) <= MAX_PARTS


@given(st.integers(min_value=1, max_value=MAX_OBJECT), st.integers(min_value=5, max_value=5 * 1024))
def test_a_larger_minimum_is_kept_within_the_limits(total: int, minimum_mib: int) -> None:
    size = part_size(total, minimum_mib * MIB)
    assert max(minimum_mib * MIB, MIN_PART) <= size or size == MAX_PART
    assert size <= MAX_PART
    assert math.ceil(total / size) <= MAX_PARTS


def test_the_edges() -> None:
    assert part_size(0) == MIN_PART
    assert part_size(1) == MIN_PART
    assert part_size(MAX_PARTS * MIN_PART) == MIN_PART
    assert part_size(MAX_PARTS * MIN_PART + 1) == MIN_PART + MIB
    assert part_size(MAX_OBJECT) == MAX_PART
    assert round(MAX_OBJECT / TIB, 2) == 48.83
    for bad in (-1, MAX_OBJECT + 1):
        with pytest.raises(InvalidInput):
            part_size(bad)
