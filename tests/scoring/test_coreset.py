"""Greedy k-center coreset: the batched selection is the plain greedy
algorithm (up to rounding), and its covering radius is what brute force says it is and within
the 2-approximation of the optimum."""

from itertools import combinations

import numpy as np
import pytest

from cfnc_edge.scoring.coreset import bank_count, greedy_coreset, random_projection


def assert_plain_greedy(x: np.ndarray, sel: np.ndarray, rtol: float = 1e-5) -> None:
    """`sel` is what the textbook algorithm (in float64: one full distance pass per
    selected point) picks from sel[0], up to rounding: each pick is the farthest
    point from those before it. Not index equality: the batched selection computes
    float32 distances with BLAS, whose rounding differs between CPUs, so two
    points within rounding of the farthest may be picked either way on another
    machine (either is the greedy choice)."""
    x = x.astype(np.float64)
    mind = ((x - x[sel[0]]) ** 2).sum(1)
    for step, j in enumerate(sel[1:], 1):
        assert mind[j] >= (1 - rtol) * mind.max(), (step, mind[j], mind.max())
        mind = np.minimum(mind, ((x - x[j]) ** 2).sum(1))


def covering_radius(x: np.ndarray, sel) -> float:
    x = x.astype(np.float64)
    d = np.sqrt(((x[:, None, :] - x[None, sel, :]) ** 2).sum(-1))
    return float(d.min(1).max())


@pytest.mark.parametrize("n,count", [(3000, 300), (500, 499), (300, 1)])
def test_batched_selection_is_the_plain_greedy_one(rng, n, count):
    # 16 channels: below the projection size, so distances are the data's own
    x = rng.standard_normal((n, 16)).astype(np.float32)
    sel, radius = greedy_coreset(x, count, seed=3)
    assert len(set(sel.tolist())) == count
    assert_plain_greedy(x, sel)
    assert radius == pytest.approx(covering_radius(x, sel), rel=1e-5)


def test_radius_within_twice_the_brute_force_optimum(rng):
    # clusters of different spread: a poor selection would leave a cluster uncovered
    centres = rng.standard_normal((4, 5)) * 10
    x = np.concatenate([c + rng.standard_normal((4, 5)) * s for c, s in zip(centres, (0.1, 0.5, 1, 2))])
    k = 4
    optimum = min(covering_radius(x, list(c)) for c in combinations(range(len(x)), k))
    sel, radius = greedy_coreset(x.astype(np.float32), k, seed=0)
    assert covering_radius(x, sel) == pytest.approx(radius, rel=1e-5)
    assert optimum <= radius <= 2 * optimum


def test_projection_keeps_the_greedy_guarantee_approximately(rng):
    # 400 channels projected to 128: distances are preserved to ~10%, so the
    # radius in the original space stays close to the projected one
    x = rng.standard_normal((2000, 400)).astype(np.float32)
    sel, radius = greedy_coreset(x, 200, seed=1)
    assert random_projection(x, 128, 1).shape == (2000, 128)
    true = covering_radius(x, sel)
    proj = random_projection(x, 128, 1)
    assert covering_radius(proj, sel) == pytest.approx(radius, rel=1e-4)
    assert 0.8 < radius / true < 1.2


def test_reproducible_from_the_seed(rng):
    x = rng.standard_normal((1000, 200)).astype(np.float32)
    a, _ = greedy_coreset(x, 50, seed=7)
    b, _ = greedy_coreset(x, 50, seed=7)
    c, _ = greedy_coreset(x, 50, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bank_count_fraction_or_count():
    assert bank_count(1000, 0.1) == 100
    assert bank_count(1000, 250) == 250
    assert bank_count(1000, 5000) == 1000
    assert bank_count(10, 0.01) == 1
    with pytest.raises(ValueError):
        bank_count(10, 0)
