"""Metric formulas checked against independent plain-numpy computations."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from bigr.evaluation.metrics import (
    bootstrap_fids,
    feature_statistics,
    fid,
    frechet_distance,
    inception_score,
    manifold_radii,
    precision_recall,
)


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + shift


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _reference_fid(x: np.ndarray, y: np.ndarray) -> float:
    """Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), a symmetric PSD matrix: eigh only."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = _psd_sqrt(s1)
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    return float(
        ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(inner.clip(0)).sum()
    )


def test_feature_statistics_are_mean_and_unbiased_covariance():
    x = _features(50, 6, seed=0)
    mu, sigma = feature_statistics(x)
    centred = x - x.mean(0)
    np.testing.assert_allclose(mu, x.sum(0) / 50)
    np.testing.assert_allclose(sigma, centred.T @ centred / 49, atol=1e-12)


def test_frechet_distance_matches_eigendecomposition():
    x, y = _features(300, 12, seed=1), _features(200, 12, seed=2, shift=0.3)
    got = frechet_distance(*feature_statistics(x), *feature_statistics(y))
    assert got == pytest.approx(_reference_fid(x, y), rel=1e-8)


def test_frechet_distance_of_known_gaussians():
    """Commuting covariances have a closed form: |mu1 - mu2|^2 + sum (s1 + s2 - 2 sqrt(s1 s2))
    over their common eigenvalues. Here 14 + (1 + 4 + 1) = 20, in any rotated basis."""
    mu1, mu2 = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    s1, s2 = np.diag([4.0, 9.0, 1.0]), np.diag([1.0, 1.0, 4.0])
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(20.0, abs=1e-9)
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rotated = frechet_distance(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T)
    assert rotated == pytest.approx(20.0, abs=1e-6)


def test_fid_of_a_set_with_itself_is_zero():
    stats = feature_statistics(_features(300, 16, seed=3))
    assert abs(fid(stats, stats)["fid"]) < 1e-6


def test_fid_of_a_shifted_copy_is_the_squared_shift_and_grows_with_it():
    x = _features(200, 8, seed=4)
    ref = feature_statistics(x)
    scores = [fid(feature_statistics(x + s), ref)["fid"] for s in (0.0, 0.5, 1.0, 2.0)]
    assert np.all(np.diff(scores) > 0)
    assert scores[2] == pytest.approx(8 * 1.0**2, rel=1e-6)  # same covariance: ||shift||^2


def test_frechet_distance_survives_singular_covariances():
    x = _features(5, 10, seed=5)  # N < D: both covariances have rank 4
    y = _features(5, 10, seed=6)
    got = frechet_distance(*feature_statistics(x), *feature_statistics(y))
    assert np.isfinite(got)
    assert got == pytest.approx(_reference_fid(x, y), rel=1e-3)


def test_frechet_distance_rejects_mismatched_shapes():
    a, b = feature_statistics(_features(20, 3, 0)), feature_statistics(_features(20, 4, 0))
    with pytest.raises(ValueError, match="shapes differ"):
        frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def _reference_inception_score(probs: np.ndarray, splits: int) -> tuple[float, float]:
    scores = []
    for part in np.array_split(probs, splits):  # equal chunks here, so the same split points
        py = part.mean(0)
        kls = [sum(p[c] * np.log(p[c] / py[c]) for c in range(len(p)) if p[c] > 0) for p in part]
        scores.append(np.exp(np.mean(kls)))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_plain_kl_loop():
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(100, 7)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs[0, 0] = 0.0  # a zero probability must not produce nan
    probs[0] /= probs[0].sum()
    got = inception_score(probs)
    mean, std = _reference_inception_score(probs, 10)
    assert got["inception_score"] == pytest.approx(mean, rel=1e-10)
    assert got["inception_score_std"] == pytest.approx(std, rel=1e-8)


def test_inception_score_is_class_count_for_confident_balanced_predictions():
    probs = np.tile(np.eye(5), (20, 1))  # every split sees each class twice, each one-hot
    assert inception_score(probs)["inception_score"] == pytest.approx(5.0)
    assert inception_score(np.full((50, 5), 0.2))["inception_score"] == pytest.approx(1.0)


def _brute_force_precision_recall(ref: np.ndarray, sample: np.ndarray, k: int):
    def radii(x):
        out = []
        for i in range(len(x)):
            d = sorted(np.linalg.norm(x[i] - x[j]) for j in range(len(x)) if j != i)
            out.append(d[k - 1])
        return np.array(out)

    def covered(queries, support, r):
        return np.mean(
            [
                any(np.linalg.norm(q - s) <= rs for s, rs in zip(support, r, strict=True))
                for q in queries
            ]
        )

    return covered(sample, ref, radii(ref)), covered(ref, sample, radii(sample))


def test_manifold_radii_are_kth_neighbour_squared_distances():
    x = _features(30, 4, seed=10)
    d = np.linalg.norm(x[:, None] - x[None], axis=-1) ** 2
    expected = np.sort(d, axis=1)[:, 3]  # column 0 is the point itself
    np.testing.assert_allclose(manifold_radii(x, k=3, batch_size=7), expected, rtol=1e-4)


def test_precision_recall_match_brute_force_knn():
    ref = _features(60, 5, seed=11)
    sample = _features(45, 5, seed=12, shift=0.7) * 1.3
    got = precision_recall(ref, sample, k=3, batch_size=8)  # several row blocks
    precision, recall = _brute_force_precision_recall(ref, sample, k=3)
    assert 0 < precision < 1 and 0 < recall < 1  # a case that tells the two apart
    assert got == {"precision": pytest.approx(precision), "recall": pytest.approx(recall)}


def test_precision_recall_of_identical_and_distant_sets():
    x = _features(40, 6, seed=13)
    assert precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}
    assert precision_recall(x, x + 100.0) == {"precision": 0.0, "recall": 0.0}


def test_bootstrap_fids_are_the_fids_of_resampled_rows():
    sample, ref = _features(60, 5, 1, shift=0.3), _features(80, 5, 2)
    reference = feature_statistics(ref)
    fids = bootstrap_fids(sample, reference, 3, seed=7)
    rng = np.random.default_rng(7)  # the same draws, then the general matrix square root
    for value in fids:
        rows = sample[rng.integers(0, len(sample), len(sample))]
        stats = feature_statistics(rows)
        expected = frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)
        assert value == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert len(set(fids.tolist())) == 3  # three different resamples
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_fids(sample, reference, 0)
