import numpy as np
import pytest

from cfnc_edge.errors import BundleError
from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.scoring.gaussian import GaussianAccumulator, whitening_factor
from cfnc_edge.scoring.packing import packed_dim, unpack


def random_features(rng, n, d, h, w):
    # correlated, offset features: a plain N(0, 1) would hide covariance bugs
    mix = rng.normal(size=(d, d))
    x = rng.normal(size=(n, h * w, d)) @ mix + rng.normal(5, 2, size=(h * w, d))
    return x.reshape(n, h, w, d).transpose(0, 3, 1, 2)


def test_streaming_statistics_match_float64_reference(rng):
    n, d, h, w = 37, 9, 3, 4
    x = random_features(rng, n, d, h, w)
    acc = GaussianAccumulator(h * w, d)
    for a, b in ((0, 5), (5, 6), (6, 20), (20, 37)):  # uneven batches, one of size 1
        acc.update(x[a:b].astype(np.float32))
    mean, cov = acc.finalize(eps=0.01)
    flat = x.astype(np.float32).astype(np.float64).reshape(n, d, h * w)
    for p in range(h * w):
        ref_cov = np.cov(flat[:, :, p], rowvar=False) + 0.01 * np.eye(d)
        np.testing.assert_allclose(mean[p], flat[:, :, p].mean(0), rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(cov[p], ref_cov, rtol=1e-9, atol=1e-9)


def test_accumulator_memory_does_not_grow_with_images(rng):
    acc = GaussianAccumulator(6, 4)
    sizes = {acc.s2.nbytes}
    for _ in range(10):
        acc.update(rng.normal(size=(8, 4, 2, 3)))
        sizes.add(acc.s2.nbytes + acc.s1.nbytes)
    assert len(sizes) == 2 and acc.n == 80  # fixed after the first batch


def test_whitening_factor_gives_mahalanobis_distance(rng):
    p, d = 5, 7
    a = rng.normal(size=(p, d, d))
    cov = a @ a.transpose(0, 2, 1) + 0.1 * np.eye(d)
    packed = whitening_factor(cov, chunk=2)
    assert packed.shape == (p, d * (d + 1) // 2) and packed_dim(packed.shape[1]) == d
    w = unpack(packed, d)
    assert np.allclose(np.triu(w, 1), 0)
    delta = rng.normal(size=(p, d))
    ref = np.einsum("pi,pij,pj->p", delta, np.linalg.inv(cov), delta)
    got = np.sum(np.einsum("pij,pj->pi", w, delta) ** 2, axis=1)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_cpu_distance_matches_float64_reference(rng, batch):
    d, h, w = 12, 4, 5
    train = random_features(rng, 200, d, h, w)
    acc = GaussianAccumulator(h * w, d)
    acc.update(train)
    mean, cov = acc.finalize(0.01)
    dist = CpuMahalanobis(mean, whitening_factor(cov))
    x = random_features(rng, batch, d, h, w).astype(np.float32)
    got = dist(x)
    xs = x.astype(np.float64).reshape(batch, d, h * w)
    inv = np.linalg.inv(cov)
    ref = np.empty((batch, h * w))
    for b in range(batch):
        delta = xs[b].T - mean
        ref[b] = np.sqrt(np.einsum("pi,pij,pj->p", delta, inv, delta))
    # float32 storage and arithmetic: 1e-4 relative is the stated tolerance
    np.testing.assert_allclose(got.reshape(batch, -1), ref, rtol=1e-4)
    assert ref.min() > 0.5  # a real distance, not a trivially-zero case


def test_distance_refuses_features_of_another_shape(rng):
    dist = CpuMahalanobis(rng.normal(size=(6, 3)), whitening_factor(np.broadcast_to(np.eye(3), (6, 3, 3)).copy()))
    with pytest.raises(BundleError, match="channels"):
        dist(rng.normal(size=(1, 4, 2, 3)).astype(np.float32))


@pytest.mark.parametrize("n", [12, 60, 400])  # fewer, about as many and more images than dimensions
@pytest.mark.parametrize("method", ["ledoit-wolf", "oas"])
def test_shrinkage_matches_scikit_learn_at_one_position(rng, n, method):
    from sklearn.covariance import OAS, LedoitWolf

    d = 30
    x = random_features(rng, n, d, 1, 2)
    acc = GaussianAccumulator(2, d)
    for a in range(0, n, 7):  # streamed in uneven batches
        acc.update(x[a:a + 7])
    mean, cov, shrink = acc.finalize_with_shrinkage(covariance=method)
    for p in range(2):
        ref = (LedoitWolf() if method == "ledoit-wolf" else OAS()).fit(x[:, :, 0, p])
        # float64 throughout; sums about a shift, so agreement to ~1e-9 relative
        np.testing.assert_allclose(shrink[p], ref.shrinkage_, rtol=1e-8)
        np.testing.assert_allclose(cov[p], ref.covariance_, rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(mean[p], ref.location_, rtol=1e-10)


def test_fold_sums_are_additive(rng):
    """Total minus one fold's sums = the Gaussian fitted on the other folds only."""
    x = random_features(rng, 30, 6, 2, 2)
    total, fold = GaussianAccumulator(4, 6), GaussianAccumulator(4, 6)
    total.update(x[:10])
    fold.shift = total.shift
    fold.update(x[10:20])
    total += fold
    total.update(x[20:])
    rest = GaussianAccumulator(4, 6, total.shift)
    rest.update(x[:10])
    rest.update(x[20:])
    for method in ("ledoit-wolf", "oas", "eps"):
        for a, b in zip((total - fold).finalize(covariance=method), rest.finalize(covariance=method)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)
