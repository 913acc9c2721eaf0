"""When to stop sampling a model: the convergence criterion of adaptive sampling.

After each round, the merged moments so far score a fixed probe set with the paper's
"1st + 2nd moment" score, s(q) = tau q.mu + 1/2 tau^2 q^T Sigma q (the log of E exp(tau q.z) for
a Gaussian; it depends on both moments, so it moves when either does). The model has converged
when no probe's score moved by more than ``tolerance`` (in nats) since the previous round.

The probes are unit vectors drawn from a fixed seed, the same for every model and round, so a
score change is a change of the statistics, not of the probes. The floor guards against two
small rounds agreeing by chance; the ceiling bounds the cost of a model that never settles.
"""

from __future__ import annotations

import numpy as np

from modelverse.core.moments import PartialMoments
from modelverse.core.stats import DEFAULT_TAU

DEFAULT_PROBES = 64
PROBE_SEED = 20231211
DEFAULT_TOLERANCE = 0.05


def probe_set(dim: int, count: int = DEFAULT_PROBES, seed: int = PROBE_SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    probes = rng.standard_normal((count, dim))
    return probes / np.linalg.norm(probes, axis=1, keepdims=True)


def probe_scores(moments: PartialMoments, probes: np.ndarray, tau: float = DEFAULT_TAU) -> np.ndarray:
    covariance = moments.covariance()
    first = probes @ moments.mean
    second = np.einsum("pi,ij,pj->p", probes, covariance, probes)
    return tau * first + 0.5 * tau**2 * second


def score_change(previous: np.ndarray, current: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(current) - np.asarray(previous))))
