"""Features jobs of the admin service (RegisterModel with sample features), run one at a time
on a background thread.

A job is done (SUCCEEDED) once the model is in the store *and* every shard replica that
answers has synced, so a finished job's model is searchable. RemoveModel cancels a model's
unfinished jobs: the work checks ``is_cancelled`` under the admin's write lock before it
writes, so a removal once acknowledged is never undone by a job that was already running.
The job table lives in the admin process's memory; generator jobs are the indexing fleet's
(``generator_jobs``).
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Callable

MAX_JOBS_KEPT = 10_000
# Features jobs waiting to run: each holds its request's sample features (up to 256 MiB), so
# the queue is bounded and RegisterModel answers RESOURCE_EXHAUSTED beyond it.
MAX_PENDING_JOBS = 8
CANCELLED = "cancelled: the model was removed (RemoveModel) before this job finished"


@dataclass(frozen=True)
class JobRecord:
    id: str
    model_id: str
    state: str  # pending, running, succeeded, failed
    error: str = ""
    created_at: str = ""
    finished_at: str = ""
    notice: str = ""  # a successful job's caveat (admin.sync.SyncReport.notice_for)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JobQueueFull(Exception):
    pass


class JobRunner:
    def __init__(self, max_pending: int = MAX_PENDING_JOBS) -> None:
        self.max_pending = max_pending
        self._jobs: dict[str, JobRecord] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="indexing-job")

    def submit(self, model_id: str, work: Callable[[str], str | None]) -> JobRecord:
        """Run ``work(job_id)`` on the job thread; the work checks ``is_cancelled(job_id)``
        under the admin's write lock before writing, and may return a notice for the job."""
        job = JobRecord(uuid.uuid4().hex, model_id, "pending", created_at=_now())
        with self._lock:
            pending = sum(1 for j in self._jobs.values() if j.state == "pending")
            if pending >= self.max_pending:
                raise JobQueueFull(f"{pending} features jobs are waiting to run (at most {self.max_pending}); retry later")
            if len(self._jobs) >= MAX_JOBS_KEPT:  # forget the oldest finished jobs
                for old in [j for j in self._jobs.values() if j.finished_at][: MAX_JOBS_KEPT // 10]:
                    del self._jobs[old.id]
            self._jobs[job.id] = job
        self._executor.submit(self._run, job.id, work)
        return job

    def _run(self, job_id: str, work: Callable[[str], str | None]) -> None:
        if not self._transition(job_id, "pending", state="running"):
            return  # cancelled while queued
        try:
            notice = work(job_id)
        except Exception as exc:
            self._transition(job_id, "running", state="failed", error=f"{type(exc).__name__}: {exc}", finished_at=_now())
        else:
            self._transition(job_id, "running", state="succeeded", finished_at=_now(), notice=notice or "")

    def _transition(self, job_id: str, expected: str, **changes: str) -> bool:
        """Change the job only from ``expected``: a cancelled job keeps its state."""
        with self._lock:
            if self._jobs[job_id].state != expected:
                return False
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)
            return True

    def cancel_model(self, model_id: str) -> list[str]:
        """Fail the model's pending and running jobs (RemoveModel); returns their ids."""
        with self._lock:
            unfinished = [j for j in self._jobs.values() if j.model_id == model_id and j.state in ("pending", "running")]
            for job in unfinished:
                self._jobs[job.id] = replace(job, state="failed", error=CANCELLED, finished_at=_now())
            return [job.id for job in unfinished]

    def is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            return job is not None and job.error == CANCELLED

    def counts(self) -> dict[str, int]:
        """Jobs by state."""
        with self._lock:
            counts: dict[str, int] = {}
            for job in self._jobs.values():
                counts[job.state] = counts.get(job.state, 0) + 1
            return counts

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._jobs.get(job_id)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
