"""What an indexing job is asked to do (``JobSpec``) and what is known of it (``JobRecord``)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from modelverse.fleet.plan import SamplePlan
from modelverse.store.metadata import ModelMetadata


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED)


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to index one model; travels as JSON in every task message."""

    job_id: str
    metadata: ModelMetadata
    generator: str  # generator spec, resolved by ``resolve.load_generator``
    encoder: str  # encoder spec, resolved by ``resolve.load_encoder``
    stats_version: int
    plan: SamplePlan
    rank: int
    eps: float
    keep_covariance: bool = True

    @property
    def model_id(self) -> str:
        return self.metadata.id

    @classmethod
    def new(cls, metadata: ModelMetadata, generator: str, encoder: str, stats_version: int,
            plan: SamplePlan, rank: int, eps: float, keep_covariance: bool = True) -> JobSpec:
        if stats_version < 1:
            raise ValueError(f"stats versions start at 1, got {stats_version}")
        return cls(uuid.uuid4().hex, metadata, generator, encoder, stats_version, plan, rank, eps, keep_covariance)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "metadata": self.metadata.to_dict(),
            "generator": self.generator,
            "encoder": self.encoder,
            "stats_version": self.stats_version,
            "plan": self.plan.to_dict(),
            "rank": self.rank,
            "eps": self.eps,
            "keep_covariance": self.keep_covariance,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        return cls(
            job_id=str(data["job_id"]),
            metadata=ModelMetadata.from_dict(data["metadata"]),
            generator=str(data["generator"]),
            encoder=str(data["encoder"]),
            stats_version=int(data["stats_version"]),
            plan=SamplePlan.from_dict(data["plan"]),
            rank=int(data["rank"]),
            eps=float(data["eps"]),
            keep_covariance=bool(data["keep_covariance"]),
        )


@dataclass(frozen=True)
class JobRecord:
    """A job's progress as ``modelverse jobs`` shows it. Times are Unix seconds (0 = not yet)."""

    spec: JobSpec
    state: JobState = JobState.QUEUED
    submitted_at: float = field(default_factory=time.time)
    started_at: float = 0.0
    finished_at: float = 0.0
    chunks_done: frozenset[int] = frozenset()
    round_index: int = 0
    error: str = ""
    samples_used: int = 0  # samples in the published statistics (set when done)
    probe_scores: tuple[float, ...] = ()  # previous round's probe scores (adaptive sampling)
    converged_change: float | None = None  # adaptive: the score's standard error when the last round closed
    updated_at: float = 0.0  # last progress (a chunk done, a round closed)
    resubmits: int = 0  # rounds the watchdog sent again after the job stalled

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def chunks_planned(self) -> int:
        """Chunks this job will run as far as is known now (adaptive: up to the current round)."""
        plan = self.spec.plan
        if self.state is JobState.DONE:
            return len(self.chunks_done)
        return plan.round_end(self.round_index)

    @property
    def samples_done(self) -> int:
        return sum(self.spec.plan.chunk_samples(i) for i in self.chunks_done)

    def samples_per_second(self, now: float | None = None) -> float | None:
        if not self.started_at or not self.chunks_done:
            return None
        end = self.finished_at or (time.time() if now is None else now)
        elapsed = end - self.started_at
        return self.samples_done / elapsed if elapsed > 0 else None

    def idle_seconds(self, now: float | None = None) -> float:
        """Seconds since the last progress of an unfinished job (0 for a finished one)."""
        if self.state.finished:
            return 0.0
        return (time.time() if now is None else now) - (self.updated_at or self.submitted_at)

    def with_(self, **changes: Any) -> JobRecord:
        return replace(self, **changes)

    # -- flat string form, for a Redis hash ---------------------------------------------------

    def to_fields(self) -> dict[str, str]:
        return {
            "spec": json.dumps(self.spec.to_dict(), sort_keys=True),
            "state": self.state.value,
            "submitted_at": repr(self.submitted_at),
            "started_at": repr(self.started_at),
            "finished_at": repr(self.finished_at),
            "round_index": str(self.round_index),
            "error": self.error,
            "samples_used": str(self.samples_used),
            "probe_scores": json.dumps(list(self.probe_scores)),
            "converged_change": "" if self.converged_change is None else repr(self.converged_change),
            "updated_at": repr(self.updated_at),
            "resubmits": str(self.resubmits),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str], chunks_done: frozenset[int]) -> JobRecord:
        change = fields.get("converged_change", "")
        return cls(
            spec=JobSpec.from_dict(json.loads(fields["spec"])),
            state=JobState(fields["state"]),
            submitted_at=float(fields["submitted_at"]),
            started_at=float(fields.get("started_at") or 0.0),
            finished_at=float(fields.get("finished_at") or 0.0),
            chunks_done=chunks_done,
            round_index=int(fields.get("round_index") or 0),
            error=fields.get("error", ""),
            samples_used=int(fields.get("samples_used") or 0),
            probe_scores=tuple(json.loads(fields.get("probe_scores") or "[]")),
            converged_change=float(change) if change else None,
            updated_at=float(fields.get("updated_at") or 0.0),
            resubmits=int(fields.get("resubmits") or 0),
        )

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """The JSON form of ``modelverse jobs --json``."""
        rate = self.samples_per_second(now)
        return {
            "job_id": self.job_id,
            "model_id": self.spec.model_id,
            "state": self.state.value,
            "chunks_done": len(self.chunks_done),
            "chunks_planned": self.chunks_planned,
            "chunks_max": self.spec.plan.total_chunks,
            "samples_done": self.samples_done,
            "samples_per_second": rate,
            "stats_version": self.spec.stats_version,
            "samples_used": self.samples_used,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at or None,
            "finished_at": self.finished_at or None,
            "error": self.error,
            "idle_seconds": self.idle_seconds(now),
            "resubmits": self.resubmits,
        }
