"""The interface every generative model of the system implements.

Indexing splits one model's samples into chunks that run on different workers, so sampling is a
pure function of (n, seed): the same call gives the same images on any machine and process.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Generator(Protocol):
    @property
    def resolution(self) -> int:
        """Side of the square images it returns, in pixels."""
        ...

    def sample(self, n: int, seed: int) -> np.ndarray:
        """n images as a uint8 array (n, resolution, resolution, 3), RGB, deterministic in seed."""
        ...
