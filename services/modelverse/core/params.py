"""The scoring constants that a store fixes at creation and every scorer reads from it.

tau (the temperature of the Monte Carlo and 1st + 2nd moment scores) and eps (the Gaussian
density's regulariser) change rankings, so two paths that score the same store must use the
same values. They travel as one object from the store's configuration to every scorer; no
scorer below that boundary has a default of its own (a default there is how the CLI once ranked
Gaussian queries with the paper's eps on a store created with another).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelverse.core.stats import DEFAULT_EPS, DEFAULT_TAU
from modelverse.errors import InvalidInputError


@dataclass(frozen=True)
class ScoringParams:
    tau: float  # temperature of MGF and Monte Carlo: the encoder's exp(logit_scale)
    eps: float  # Gaussian regulariser: Sigma + eps I

    def __post_init__(self) -> None:
        for name in ("tau", "eps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidInputError(f"scoring parameter {name} must be a finite positive number, not {value!r}")


# The paper's values (CLIP's temperature, its regulariser): what a store is created with unless
# told otherwise. Named, so that a caller who scores with them says so.
PAPER_SCORING = ScoringParams(tau=DEFAULT_TAU, eps=DEFAULT_EPS)
