"""One first stage per method: how a shard recalls candidates before the exact rerank.

A method's first stage owns the four things that decide its recall:

- its query vector (what the index is searched with);
- its index (the first-moment index, shared, or the method's own lifted index), where that
  index is saved and the plan it is built with (``index_choice``);
- its nprobe (how many lists of an inverted file a search scans);
- its default candidates per shard (what the gateway asks for when neither the request nor
  the operator sets a count).

There are two kinds:

- ``FirstMomentRecall``: the cosine of the normalised means. FIRST_MOMENT scores exactly that.
  GAUSSIAN and FRECHET (and MGF on a shard without a lifted MGF index) rank by a score the
  cosine only approximates, so they scan ``second_order_probe_factor`` times the inverted
  file's nprobe lists (docs/SERVING.md).
- ``LiftedRecall``: the method's lifted index (``core.lift``: the second-order score as a
  maximum of inner products), for each method in the shard's ``lifted`` setting.

``first_stages`` picks one per method from the shard's settings; ``default_candidates`` is
what the gateway asks for (it does not know which kind each shard runs, so the count depends
on the method only).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from modelverse.core.lift import LiftSpec, lift_query
from modelverse.core.params import ScoringParams
from modelverse.core.scores import normalize_query, normalized_means
from modelverse.core.types import Method, QueryPart
from modelverse.serving.index_choice import IndexPlan, choose_index, choose_lifted_index

if TYPE_CHECKING:
    from modelverse.serving.rerank import QueryModelStats

SECOND_ORDER_PROBE_FACTOR = 4

# Candidates per shard when neither the request nor the operator sets them.
OTHER_METHODS_CANDIDATES = 200  # top-10 agreement >= 95 % for GAUSSIAN at 100k (docs/SERVING.md)
# MGF recalls through the lifted first stage, whose tangent bound needs many candidates on
# zoo-like collections: at 1M models (2 shards) and alpha = 0.05, 0.735 / 0.93 / 0.975 of the
# exhaustive top 10 at 400 / 1,600 / 3,200 per shard; 3,200 is the smallest measured count over
# the 0.95 bar, at about 330 ms of shard CPU per query there, most of it reading factor rows
# the page cache cannot hold (docs/SERVING.md, run 7). FIRST_MOMENT's first stage ranks by its own
# score (to 8-bit codes), so its misses are the inverted file's, which no number of candidates
# mends: its agreement with the exhaustive top 10 at 1M models is the same from 10 to 800
# candidates per shard (docs/SERVING.md), and each candidate costs rerank and message work.
METHOD_CANDIDATES = {Method.MGF: 3200, Method.FIRST_MOMENT: 20}


def default_candidates(method: Method) -> int:
    """Candidates per shard the gateway asks for when neither the request nor the operator sets them."""
    return METHOD_CANDIDATES.get(method, OTHER_METHODS_CANDIDATES)


def default_candidates_text() -> str:
    """The defaults in words, for help texts: '3200 for mgf, 20 for first_moment, 200 for the other methods'."""
    return ", ".join(f"{n} for {m.value}" for m, n in METHOD_CANDIDATES.items()) + \
        f", {OTHER_METHODS_CANDIDATES} for the other methods"


class FirstStageSettings(Protocol):
    """The shard settings a first stage reads (``ShardConfig`` has them)."""

    @property
    def memory_budget_bytes(self) -> int: ...
    @property
    def exhaustive_threshold(self) -> int: ...
    @property
    def nprobe(self) -> int | None: ...
    @property
    def compact_index(self) -> bool: ...
    @property
    def second_order_probe_factor(self) -> int: ...
    @property
    def lifted(self) -> tuple[str, ...]: ...
    @property
    def lift_columns(self) -> int: ...
    @property
    def lift_alpha(self) -> float: ...
    @property
    def lifted_nprobe(self) -> int | None: ...


def first_moment_query(dim: int, parts: list[QueryPart] | None, query_model: QueryModelStats | None) -> np.ndarray:
    """(dim,) float64 unit vector: the query model's normalised mean (FRECHET), else the normalised
    sum_k w_k q_k / |q_k|, whose inner product with mu / |mu| is the weighted sum of the parts' cosines."""
    if query_model is not None:
        combined = normalized_means(query_model.mean[None])[0]
    elif parts:
        combined = sum(p.weight * normalize_query(p.vector, dim) for p in parts)
    else:
        raise ValueError("a query needs at least one part")
    return normalize_query(combined, dim)


class FirstStage(ABC):
    """One method's first stage (module doc)."""

    method: Method
    lift: LiftSpec | None  # what its index holds: None for the normalised first moments

    @property
    def default_candidates(self) -> int:
        return default_candidates(self.method)

    @abstractmethod
    def query(self, dim: int, parts: list[QueryPart] | None, query_model: QueryModelStats | None) -> np.ndarray:
        """float32, of the index's dimension: what the index is searched with."""

    @abstractmethod
    def plan(self, models: int, dim: int) -> IndexPlan:
        """The index for ``models`` models of feature dimension ``dim``."""

    def index_dim(self, dim: int) -> int:
        """The dimension of its index's vectors for features of dimension ``dim``."""
        return dim if self.lift is None else self.lift.dim(dim)

    @abstractmethod
    def index_dir(self, root: Path) -> Path:
        """Where its index is saved, under the shard's index directory."""

    @abstractmethod
    def operator_nprobe(self) -> int | None:
        """The nprobe the operator set for its index (None: the plan's)."""

    def nprobe(self, plan: IndexPlan) -> int | None:
        """The lists a search of an index with ``plan`` scans (None: the plan's)."""
        return None

    def loaded_plan(self, plan: IndexPlan) -> IndexPlan:
        """A saved index keeps the plan it was built with; an operator's nprobe wins over it."""
        nprobe = self.operator_nprobe()
        return replace(plan, nprobe=nprobe) if nprobe and not plan.exhaustive else plan


@dataclass(frozen=True)
class FirstMomentRecall(FirstStage):
    """The shard's first-moment index: the cosine of the normalised means."""

    method: Method
    memory_budget_bytes: int
    exhaustive_threshold: int
    index_nprobe: int | None  # the operator's nprobe (None: the index rule's)
    compact_index: bool
    probe_factor: int  # the plan's nprobe times this for a method the cosine only approximates
    lift: LiftSpec | None = None

    def query(self, dim: int, parts: list[QueryPart] | None, query_model: QueryModelStats | None) -> np.ndarray:
        return first_moment_query(dim, parts, query_model).astype(np.float32)

    def plan(self, models: int, dim: int) -> IndexPlan:
        return choose_index(models, dim, self.memory_budget_bytes, exhaustive_threshold=self.exhaustive_threshold,
                            nprobe=self.index_nprobe, compact=self.compact_index)

    def index_dir(self, root: Path) -> Path:
        return root

    def operator_nprobe(self) -> int | None:
        return self.index_nprobe

    def nprobe(self, plan: IndexPlan) -> int | None:
        if plan.exhaustive or self.probe_factor == 1:
            return None
        return plan.nprobe * self.probe_factor


@dataclass(frozen=True)
class LiftedRecall(FirstStage):
    """The method's lifted index (``core.lift``): a few vectors per model, the query lifted to [q, 1]."""

    lift: LiftSpec
    memory_budget_bytes: int
    exhaustive_threshold: int
    index_nprobe: int | None  # the operator's nprobe of a lifted inverted file (None: nlist / 8)

    @property
    def method(self) -> Method:  # type: ignore[override]
        return Method(self.lift.method)

    def query(self, dim: int, parts: list[QueryPart] | None, query_model: QueryModelStats | None) -> np.ndarray:
        if not parts:
            raise ValueError(f"the lifted first stage of {self.method.value} needs query vectors")
        return lift_query(parts, dim)

    def plan(self, models: int, dim: int) -> IndexPlan:
        return choose_lifted_index(models * self.lift.copies, self.lift.dim(dim), self.memory_budget_bytes,
                                   exhaustive_threshold=self.exhaustive_threshold, nprobe=self.index_nprobe)

    def index_dir(self, root: Path) -> Path:
        return root / f"lifted-{self.method.value}"

    def operator_nprobe(self) -> int | None:
        return self.index_nprobe


def lift_specs(settings: FirstStageSettings, params: ScoringParams) -> dict[Method, LiftSpec]:
    """The lifted methods' specs. Columns, alpha and the store's tau shape only MGF's vectors (a
    GAUSSIAN index keeps the defaults, so changing them does not rebuild it)."""
    return {Method(m): LiftSpec(m, columns=settings.lift_columns, alpha=settings.lift_alpha, tau=params.tau)
            if Method(m) is Method.MGF else LiftSpec(m) for m in settings.lifted}


def first_stages(settings: FirstStageSettings, params: ScoringParams) -> dict[Method, FirstStage]:
    """Every method's first stage on a shard with these settings, scoring with ``params``."""
    lifts = lift_specs(settings, params)
    stages: dict[Method, FirstStage] = {}
    for method in Method:
        if method in lifts:
            stages[method] = LiftedRecall(lifts[method], settings.memory_budget_bytes, settings.exhaustive_threshold,
                                          settings.lifted_nprobe)
        else:
            factor = 1 if method is Method.FIRST_MOMENT else settings.second_order_probe_factor
            stages[method] = FirstMomentRecall(method, settings.memory_budget_bytes, settings.exhaustive_threshold,
                                               settings.nprobe, settings.compact_index, factor)
    return stages
