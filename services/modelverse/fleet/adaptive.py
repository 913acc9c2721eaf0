"""When to stop sampling a model: the convergence criterion of adaptive sampling.

**The rule.** After each round the merged moments so far (mean mu, covariance Sigma, n samples)
estimate the paper's "1st + 2nd moment" score s(q) = tau q.mu + 1/2 tau^2 q^T Sigma q for any
query q. Its standard error under a Gaussian approximation of the features is

    se(q) = sqrt((tau^2 v + tau^4 v^2 / 2) / n),   v = q^T Sigma q

(the variance of the mean's projection is v / n, that of the sample variance 2 v^2 / n). The
model has converged when ``se`` is at most ``tolerance`` nats for a *typical query*: one that
looks like the model's own samples, since those are the queries for which this model's score
decides the ranking. Over the model's L2-normalised samples x, E[x^T Sigma x] = mu^T Sigma mu +
tr(Sigma^2) exactly (|x| = 1), so v needs no probe set and no extra pass over the data:

    v_typical = mu^T Sigma mu + ||Sigma||_F^2.

A round's check happens only at or above the floor; the ceiling bounds the cost of a model that
never settles. The decision is a function of the merged moments at the round's end only, so an
adaptive run that stops after k chunks has exactly the statistics of a fixed run of k chunks
(``fleet.plan``), and ``replay`` over cached chunks gives the fleet's stopping point.

**Why not the change between rounds** (the first version: the largest change of 64 random unit
probes' scores since the previous round, tolerance 0.05 nats). At tau = 100 that change is
itself sampling noise: between n and n + r samples it has standard deviation se * sqrt(r / (n +
r)), so a fixed tolerance in nats stops a model on a lucky round, and 0.05 nats needs tens to
hundreds of thousands of samples on the zoo (within 10,000 only 12 of 51 models met it, saving
5 %; the last round's change was 0.03-0.26 nats). Random unit probes are also nearly orthogonal
to where real queries lie: their q^T Sigma q is 3-11x smaller than a real text or image query's on the bundled zoo, while
v_typical is within about 2x of it. The standard error is the quantity the change was a noisy
estimate of, without the noise.

**Why this tolerance** (tools/bench_adaptive.py on the bundled zoo, bf16 encoder, chunks of 500,
floor 1,000, rounds of 1,000, ceiling 10,000; docs/FLEET.md): a real query's score gap between
its first and second model is a median 5.6 (text) to 9.7 (images) nats at tau = 100, and a fixed
10,000-sample run leaves a typical query's score with se 0.09-3.2 nats (median 0.63). At 0.75 nats
the zoo used 340,000 of 510,000 samples (33 % saved; 68 % extrapolated to a 50,000 ceiling) and
every headline cell of the retrieval benchmark stayed within the difference between two
independent fixed runs of 5,000; at 1.0 (48 % saved) one text query's first-moment hit changed.
The Gaussian approximation is within about 15 % of the empirical standard error for most zoo
models and underestimates it by up to 2x for a few heavy-tailed ones (digiface,
fashion-vae-trouser); the tolerance was calibrated with those included.

**Which tau.** The criterion is evaluated at ``CRITERION_TAU`` = 100, the paper's temperature,
whatever temperature the store later scores at (the bundled encoder's is 23.2, a real CLIP's
exp(logit_scale) = 100). The standard error grows with tau, so a model converged at 100 is
converged at any lower store tau: the rule is conservative there, never loose, and one tolerance
serves every encoder. A store at tau 23.2 could stop earlier (its tau^4 term is 350x smaller),
but the tolerance would then have to be recalibrated on the retrieval benchmark at that tau,
which has not been measured (docs/FLEET.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modelverse.core.moments import PartialMoments
from modelverse.fleet.plan import SamplePlan

CRITERION_TAU = 100.0  # the paper's tau; >= any store's, so the rule is conservative (module doc)
DEFAULT_TOLERANCE = 0.75  # nats: the standard error of a typical query's score (docs/FLEET.md)
DEFAULT_MIN_SAMPLES = 1_000
DEFAULT_SAMPLES = 50_000  # the paper's N: the ceiling when adaptive (CLI, admin, manifests)
DEFAULT_ROUND_SAMPLES = 1_000


def typical_query_variance(moments: PartialMoments) -> float:
    """E[x^T Sigma x] over the model's own (unit-norm) samples: mu^T Sigma mu + ||Sigma||_F^2."""
    covariance = moments.covariance()
    return float(moments.mean @ covariance @ moments.mean + np.sum(covariance * covariance))


def score_standard_error(moments: PartialMoments, tau: float = CRITERION_TAU, variance: float | None = None) -> float:
    """Gaussian standard error (nats) of the 1st + 2nd moment score of a query with
    q^T Sigma q = ``variance`` (default: a typical query's) from ``moments.count`` samples."""
    if moments.count < 2:
        return float("inf")
    v = typical_query_variance(moments) if variance is None else variance
    return float(np.sqrt((tau**2 * v + tau**4 * v**2 / 2) / moments.count))


@dataclass(frozen=True)
class RoundCheck:
    """The criterion at one round's end."""

    samples: int
    standard_error: float
    converged: bool


def check_round(moments: PartialMoments, plan: SamplePlan, tau: float = CRITERION_TAU) -> RoundCheck:
    """Converged: at least the floor and a typical query's score known to ``plan.tolerance`` nats."""
    se = score_standard_error(moments, tau)
    enough = moments.count >= plan.min_samples
    return RoundCheck(moments.count, se, enough and se <= (plan.tolerance or 0.0))


@dataclass(frozen=True)
class Replay:
    """Where an adaptive plan stops over a fixed chunk stream, and the criterion per round."""

    chunks: int
    samples: int
    moments: PartialMoments
    rounds: tuple[RoundCheck, ...]

    @property
    def converged(self) -> bool:
        return bool(self.rounds) and self.rounds[-1].converged


def replay(plan: SamplePlan, chunk: Callable[[int], PartialMoments] | Sequence[PartialMoments],
           tau: float = CRITERION_TAU) -> Replay:
    """Run ``plan``'s rounds over precomputed chunk moments exactly as ``fleet.work.close_round``
    does: merge chunks in chunk order (a left fold, so the bits equal close_round's re-merge),
    check at every round end but the last, stop at the first converged round or the ceiling."""
    get = chunk.__getitem__ if isinstance(chunk, Sequence) else chunk
    merged: PartialMoments | None = None
    checks: list[RoundCheck] = []
    round_index = 0
    while True:
        for index in plan.round_chunks(round_index):
            part = get(index)
            merged = part if merged is None else merged.merge(part)
        assert merged is not None, "every round has at least one chunk"
        if not plan.adaptive or plan.is_last_round(round_index):
            break
        check = check_round(merged, plan, tau)
        checks.append(check)
        if check.converged:
            break
        round_index += 1
    chunks = plan.round_end(round_index)
    return Replay(chunks, merged.count, merged, tuple(checks))
