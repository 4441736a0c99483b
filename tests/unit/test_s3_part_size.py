"""How large the parts of an S3 upload are: small and bounded, unless the object would not fit."""

from __future__ import annotations

import pytest

from tma_ops.stores.s3 import MAX_PARTS, PART_SIZE, part_size_for

pytestmark = pytest.mark.unit
MiB = 1 << 20
GiB = 1 << 30


@pytest.mark.parametrize(
    ("size_hint", "expected"),
    [
        (None, PART_SIZE),
        (0, PART_SIZE),
        (1, PART_SIZE),
        (10 * GiB, PART_SIZE),
        (70 * GiB, PART_SIZE),  # 77 GiB with the margin: still fits 10,000 parts of 8 MiB
        (80 * GiB, 10 * MiB),
        (500 * GiB, 57 * MiB),
    ],
)
def test_part_size(size_hint: int | None, expected: int) -> None:
    assert part_size_for(size_hint) == expected


@pytest.mark.parametrize("size_hint", [1, 78 * GiB, 79 * GiB, 1234 * GiB + 7, 4 * 1024 * GiB])
def test_the_object_always_fits_with_room_to_spare(size_hint: int) -> None:
    part = part_size_for(size_hint)
    assert part % MiB == 0
    assert part * MAX_PARTS >= size_hint * 1.1
