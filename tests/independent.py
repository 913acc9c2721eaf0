"""An independent float64 implementation of the paper's formulas, one model at a time.

Written from the formulas, not from the package's code: scipy for the Gaussian density and the
matrix square root, plain sums for Monte Carlo. Tests compare the package against it.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.special
from scipy.stats import multivariate_normal

TAU = 100.0
EPS = 1e-3


def normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def model_moments(raw_features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.asarray(raw_features, dtype=np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    return z.mean(axis=0), np.cov(z, rowvar=False, ddof=1), z


def score(method: str, q: np.ndarray, mu: np.ndarray, sigma: np.ndarray, z: np.ndarray, tau: float = TAU) -> float:
    if method == "first_moment":
        return float(q @ mu / np.linalg.norm(mu))
    if method == "mgf":
        return float(tau * q @ mu + 0.5 * tau**2 * q @ sigma @ q)
    if method == "gaussian":
        return float(multivariate_normal.logpdf(q, mu, sigma + EPS * np.eye(len(q))))
    if method == "monte_carlo":
        return float(scipy.special.logsumexp(tau * z @ q) - np.log(len(z)))
    raise ValueError(method)


def frechet_score(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    cross = np.real(scipy.linalg.sqrtm(s1 @ s2))
    return -float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2.0 * cross))


def ranking(ids: list[str], scores: list[float]) -> list[tuple[str, float]]:
    """Best first; ties by id."""
    return sorted(zip(ids, scores), key=lambda pair: (-pair[1], pair[0]))
