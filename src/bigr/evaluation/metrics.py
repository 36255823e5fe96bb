"""Image-quality metrics as pure functions on numpy feature arrays.

Owns the formulas: Gaussian statistics of features, the Fréchet distance (FID on Inception
`pool_3` features, sFID on the `mixed_6/conv` spatial features, as in the ADM evaluator of
Dhariwal & Nichol 2021, which BiGR reports with), the Inception Score (Salimans et al. 2016, 10
splits) and improved precision/recall (Kynkäänniemi et al. 2019, k = 3 manifolds as in the ADM
evaluator). Producing the features is left to `inception.py` and `reference.py`.

Every evaluator returns `dict[str, float]`. scipy is needed only for the matrix square root.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np


class GaussianStats(NamedTuple):
    mu: np.ndarray  # (D,) mean
    sigma: np.ndarray  # (D, D) unbiased covariance


def feature_statistics(features: np.ndarray) -> GaussianStats:
    """Mean and covariance (float64, `np.cov` normalisation N - 1) of (N, D) features."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N >= 2, D) features, got shape {features.shape}")
    return GaussianStats(features.mean(axis=0), np.cov(features, rowvar=False))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    As pytorch-fid / the ADM evaluator: if the product's square root is not finite (a singular
    product), `eps` is added to both diagonals and it is retried; a small imaginary part from
    numerical error is dropped, a large one (diagonal above 1e-3) raises ValueError.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2)
    sigma2 = sigma2.astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shapes differ: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"FID: singular covariance product; adding {eps} to the diagonals", stacklevel=2
        )
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def bootstrap_fids(
    features: np.ndarray, reference: GaussianStats, resamples: int, seed: int = 0
) -> np.ndarray:
    """FIDs of `resamples` bootstrap resamples (rows drawn with replacement) of the (N, D)
    sample features against a fixed reference: the spread a generated set of this size has.

    Uses Tr((S R)^(1/2)) = Tr((R^(1/2) S R^(1/2))^(1/2)) for covariances S, R (both positive
    semi-definite), so the reference's square root is taken once and each resample costs one
    symmetric eigendecomposition instead of a general matrix square root.
    """
    features = np.asarray(features, dtype=np.float64)
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    values, vectors = np.linalg.eigh(np.asarray(reference.sigma, dtype=np.float64))
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T  # R^(1/2)
    trace_ref = float(np.trace(reference.sigma))
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for i in range(resamples):
        stats = feature_statistics(features[rng.integers(0, len(features), len(features))])
        eig = np.linalg.eigvalsh(root @ stats.sigma @ root)
        diff = stats.mu - reference.mu
        covmean = np.sqrt(np.clip(eig, 0, None)).sum()
        out[i] = diff @ diff + np.trace(stats.sigma) + trace_ref - 2 * covmean
    return out


def fid(sample: GaussianStats, reference: GaussianStats) -> dict[str, float]:
    """FID between the statistics of `pool_3` features."""
    return {"fid": frechet_distance(sample.mu, sample.sigma, reference.mu, reference.sigma)}


def sfid(sample: GaussianStats, reference: GaussianStats) -> dict[str, float]:
    """sFID: the same distance between statistics of the (N, 2023) spatial features."""
    return {"sfid": frechet_distance(sample.mu, sample.sigma, reference.mu, reference.sigma)}


def inception_score(probs: np.ndarray, num_splits: int = 10) -> dict[str, float]:
    """exp(E_x KL(p(y|x) || p(y))) per split of (N, C) class probabilities; mean and std.

    Splits are the contiguous chunks [i N / s, (i + 1) N / s) of the standard implementation.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) < num_splits:
        raise ValueError(f"need (N >= {num_splits}, C) probabilities, got shape {probs.shape}")
    n, scores = len(probs), []
    for i in range(num_splits):
        part = probs[i * n // num_splits : (i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return {"inception_score": float(np.mean(scores)), "inception_score_std": float(np.std(scores))}


# ---- precision and recall ------------------------------------------------------------------


def _row_blocks(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) squared Euclidean distances, clamped at 0 (as ADM's `DistanceBlock`)."""
    d = (a * a).sum(1)[:, None] - 2 * (a @ b.T) + (b * b).sum(1)[None, :]
    return np.maximum(d, 0)


def manifold_radii(features: np.ndarray, k: int = 3, batch_size: int = 2048) -> np.ndarray:
    """(N,) squared distance from each feature to its k-th nearest other feature.

    Distances are computed `batch_size` rows at a time against all N features, so memory is
    batch_size x N (10k features: 80 MB in float32 at the default).
    """
    features = np.asarray(features, dtype=np.float32)
    if len(features) <= k:
        raise ValueError(f"need more than k={k} features, got {len(features)}")
    radii = np.empty(len(features), dtype=np.float32)
    for rows in _row_blocks(len(features), batch_size):
        d = _squared_distances(features[rows], features)
        # Index 0 of the partition is the point itself (distance 0), so index k is the k-th NN.
        radii[rows] = np.partition(d, k, axis=1)[:, k]
    return radii


def _coverage(
    queries: np.ndarray, support: np.ndarray, support_radii: np.ndarray, batch_size: int
) -> np.ndarray:
    """(N_q,) bool: whether each query lies in some ball (support point, its radius)."""
    inside = np.empty(len(queries), dtype=bool)
    for rows in _row_blocks(len(queries), batch_size):
        d = _squared_distances(queries[rows], support)
        inside[rows] = (d <= support_radii[None, :]).any(axis=1)
    return inside


def precision_recall(
    reference: np.ndarray, sample: np.ndarray, k: int = 3, batch_size: int = 2048
) -> dict[str, float]:
    """Improved precision and recall of (N, D) sample features against reference features.

    Precision: fraction of samples inside the reference manifold (union of balls reaching each
    reference point's k-th neighbour); recall: fraction of reference points inside the sample
    manifold. Balls are closed (`<=`) as in the ADM evaluator, which computes distances in
    float16 on GPU; here they are float32, so rare boundary cases can differ.
    """
    reference = np.asarray(reference, dtype=np.float32)
    sample = np.asarray(sample, dtype=np.float32)
    ref_radii = manifold_radii(reference, k, batch_size)
    sample_radii = manifold_radii(sample, k, batch_size)
    precision = _coverage(sample, reference, ref_radii, batch_size).mean()
    recall = _coverage(reference, sample, sample_radii, batch_size).mean()
    return {"precision": float(precision), "recall": float(recall)}
