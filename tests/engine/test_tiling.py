"""Tile geometry: cores partition the axis, regions hold the context on the network's grid, weights sum to 1."""

from __future__ import annotations

import itertools

import pytest
import torch

from restore.engine.tiling import plan_averaged_axis, plan_blended_axis

CASES = [  # length, core, context, multiple, scale
    (40, 16, 8, 8, 2),
    (56, 16, 8, 8, 2),
    (208, 64, 32, 16, 4),
    (37, 5, 6, 1, 3),
    (96, 7, 3, 8, 1),
    (48, 1, 4, 16, 2),
    (1000, 256, 0, 8, 2),
]


@pytest.mark.parametrize(("length", "core", "context", "multiple", "scale"), CASES)
def test_blended_plan_geometry(length: int, core: int, context: int, multiple: int, scale: int) -> None:
    plan = plan_blended_axis(length, core, context, multiple, scale)
    if len(plan) == 1:
        assert plan.size == length and plan.starts == (0,)
        return
    assert [a for a, _ in plan.cores] == [0] + [b for _, b in plan.cores[:-1]]  # consecutive
    assert plan.cores[-1][1] == length
    assert max(b - a for a, b in plan.cores) <= core
    assert plan.size % multiple == 0 and plan.size < length
    for (a, b), start in zip(plan.cores, plan.starts):
        assert start % multiple == 0, "regions start on the network's grid"
        assert start >= 0 and start + plan.size <= length
        assert start <= max(a - context, 0), "left context missing"
        assert start + plan.size >= min(b + context, length), "right context missing"


@pytest.mark.parametrize(("length", "core", "context", "multiple", "scale"), CASES)
def test_blended_weights_sum_to_one_and_own_core_dominates(
    length: int, core: int, context: int, multiple: int, scale: int
) -> None:
    plan = plan_blended_axis(length, core, context, multiple, scale)
    if plan.weights is None:
        return
    total = torch.zeros(length * scale, dtype=torch.float64)
    own = torch.zeros(length * scale, dtype=torch.float64)
    for (a, b), start, w in zip(plan.cores, plan.starts, plan.weights):
        assert w.shape == (plan.size * scale,)
        assert (w >= 0).all()
        total[start * scale : (start + plan.size) * scale] += w
        lo, hi = (a - start) * scale, (b - start) * scale
        own[a * scale : b * scale] = w[lo:hi]
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)
    assert own.min() >= 0.5 - 1e-12, "every pixel gets at least half its weight from the tile whose core holds it"
    if core >= context:  # cores wider than the cross-fade: the border tiles keep full weight up to the border
        assert plan.weights[0][0] == 1 and plan.weights[-1][-1] == 1


def test_ramp_is_a_symmetric_raised_cosine() -> None:
    plan = plan_blended_axis(64, 32, 16, 8, 1)
    assert len(plan) == 2
    edge = plan.cores[0][1]
    left, right = plan.weights[0], plan.weights[1]
    band = [edge - 4 + k for k in range(8)]  # half width = context / 4 = 4 pixels each side
    fall = left[[u - plan.starts[0] for u in band]]
    rise = right[[u - plan.starts[1] for u in band]]
    torch.testing.assert_close(fall + rise, torch.ones(8, dtype=torch.float64))
    torch.testing.assert_close(fall, rise.flip(0))
    assert (fall[:-1] > fall[1:]).all() and (fall > 0).all() and (fall < 1).all()


def test_single_tile_when_the_context_covers_the_axis() -> None:
    assert len(plan_blended_axis(40, 16, 32, 8, 2)) == 1
    assert len(plan_blended_axis(16, 64, 0, 8, 2)) == 1


@pytest.mark.parametrize(("length", "tile", "overlap"), [(40, 16, 8), (56, 16, 8), (64, 64, 32), (100, 30, 7)])
def test_averaged_plan_matches_the_official_list(length: int, tile: int, overlap: int) -> None:
    plan = plan_averaged_axis(length, tile, overlap)
    assert list(plan.starts) == [*range(0, length - tile, tile - overlap), length - tile]
    covered = set(itertools.chain.from_iterable(range(s, s + tile) for s in plan.starts))
    assert covered == set(range(length))


def test_averaged_plan_refuses_overlap_not_below_tile() -> None:
    with pytest.raises(ValueError, match="smaller than the tile"):
        plan_averaged_axis(64, 16, 16)


def test_blended_plan_bad_arguments() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        plan_blended_axis(37, 16, 8, 8, 2)
    with pytest.raises(ValueError, match="tile must be"):
        plan_blended_axis(40, 0, 8, 8, 2)
