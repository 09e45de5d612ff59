"""cnncost.shapes' broadcast and reduction rules against NumPy's (the rule PyTorch documents
as its own: "Broadcasting semantics", PyTorch docs), on drawn shapes."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cnncost.shapes import broadcast, reduced, spatial_ones

sizes = st.lists(st.sampled_from([0, 1, 2, 3, 5]), min_size=0, max_size=4)


def _numpy_broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


@given(st.lists(sizes, min_size=1, max_size=3))
def test_broadcast_is_numpys(shapes: list[list[int]]) -> None:
    as_tuples = [tuple(s) for s in shapes]
    assert broadcast(*as_tuples) == _numpy_broadcast(*as_tuples)


@given(sizes, sizes)
def test_broadcast_of_two_equal_ranks_is_numpys(a: list[int], b: list[int]) -> None:
    b = (b + a)[:len(a)]  # the same rank: broadcast's own path for two shapes
    assert broadcast(tuple(a), tuple(b)) == _numpy_broadcast(tuple(a), tuple(b))


@given(st.lists(st.integers(1, 9), min_size=2, max_size=5))
def test_spatial_ones_is_a_mean_over_the_spatial_dims_kept(shape: list[int]) -> None:
    nd = len(shape) - 2
    kept = np.zeros(shape).mean(axis=tuple(range(2, 2 + nd)), keepdims=True).shape
    assert spatial_ones(tuple(shape)) == tuple(kept)
    if nd:  # (no dims given: reduced reduces them all)
        assert reduced(tuple(shape), [-i for i in range(1, nd + 1)], True) == tuple(kept)
