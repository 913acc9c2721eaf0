"""How a model's samples split into chunks and rounds, and the seed of every chunk.

The seed of a chunk depends only on (model id, stats version, chunk index), never on which
worker runs it, how often it is delivered or how many chunks run before it. So any run with the
same chunk size gives bit-identical partials, and an adaptive run that stops after k chunks has
exactly the statistics of a fixed run of those k chunks.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

from modelverse.errors import InvalidInputError

SEED_BITS = 63  # numpy and torch both accept any non-negative int64


def chunk_seed(model_id: str, stats_version: int, chunk_index: int) -> int:
    """A 63-bit seed from a cryptographic hash, so neighbouring chunks are unrelated streams."""
    digest = hashlib.blake2b(
        f"{model_id}\x00{stats_version}\x00{chunk_index}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") >> (64 - SEED_BITS)


@dataclass(frozen=True)
class SamplePlan:
    """How many samples a model gets.

    Fixed (``tolerance`` None): exactly ``max_samples``. Adaptive: at least ``min_samples``,
    then rounds of ``round_samples`` until the statistics converge (see ``adaptive``), never
    more than ``max_samples``.
    """

    max_samples: int
    chunk_size: int
    min_samples: int = 0
    round_samples: int = 0
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise InvalidInputError(f"chunk size must be positive, got {self.chunk_size}")
        if self.max_samples < 2:
            raise InvalidInputError(f"a model needs at least 2 samples, got {self.max_samples}")
        if self.adaptive:
            if not 2 <= self.min_samples <= self.max_samples:
                raise InvalidInputError(
                    f"adaptive sampling needs 2 <= floor <= ceiling, got {self.min_samples} and {self.max_samples}"
                )
            if self.round_samples < 1:
                raise InvalidInputError(f"adaptive rounds must add samples, got {self.round_samples}")
            if self.tolerance is not None and self.tolerance <= 0:
                raise InvalidInputError(f"the convergence tolerance must be positive, got {self.tolerance}")

    @property
    def adaptive(self) -> bool:
        return self.tolerance is not None

    @property
    def total_chunks(self) -> int:
        return math.ceil(self.max_samples / self.chunk_size)

    def chunk_samples(self, chunk_index: int) -> int:
        if not 0 <= chunk_index < self.total_chunks:
            raise IndexError(f"chunk {chunk_index} is outside the plan's {self.total_chunks} chunks")
        return min(self.chunk_size, self.max_samples - chunk_index * self.chunk_size)

    def samples_in_chunks(self, chunks: int) -> int:
        return sum(self.chunk_samples(i) for i in range(chunks))

    def round_end(self, round_index: int) -> int:
        """Chunks [0, round_end) make up rounds 0..round_index."""
        if not self.adaptive:
            return self.total_chunks
        first = math.ceil(self.min_samples / self.chunk_size)
        step = max(1, math.ceil(self.round_samples / self.chunk_size))
        return min(self.total_chunks, first + round_index * step)

    def round_chunks(self, round_index: int) -> range:
        start = 0 if round_index == 0 else self.round_end(round_index - 1)
        return range(start, self.round_end(round_index))

    def is_last_round(self, round_index: int) -> bool:
        return self.round_end(round_index) >= self.total_chunks

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SamplePlan:
        return cls(**data)  # type: ignore[arg-type]
