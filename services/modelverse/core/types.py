"""The vocabulary every layer shares: how models are scored, and one weighted query vector."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


class Method(str, Enum):
    FIRST_MOMENT = "first_moment"
    MGF = "mgf"  # 1st + 2nd moment
    GAUSSIAN = "gaussian"
    MONTE_CARLO = "monte_carlo"
    FRECHET = "frechet"


class SecondOrderForm(str, Enum):
    FULL = "full"
    COMPRESSED = "compressed"


@dataclass(frozen=True)
class QueryPart:
    """One encoded query vector (raw: scorers normalise it) and its weight in the combination."""

    vector: np.ndarray
    weight: float = 1.0
