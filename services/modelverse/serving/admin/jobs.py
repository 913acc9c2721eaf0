"""Features jobs of the admin service (RegisterModel with sample features), run one at a time
on a background thread.

A job is done (SUCCEEDED) once the model is in the store *and* every shard replica that
answers has synced, so a finished job's model is searchable. The job table lives in the admin
process's memory; generator jobs are the indexing fleet's (``generator_jobs``).
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Callable

MAX_JOBS_KEPT = 10_000


@dataclass(frozen=True)
class JobRecord:
    id: str
    model_id: str
    state: str  # pending, running, succeeded, failed
    error: str = ""
    created_at: str = ""
    finished_at: str = ""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JobRunner:
    def __init__(self) -> None:
        self._jobs: dict[str, JobRecord] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="indexing-job")

    def submit(self, model_id: str, work: Callable[[], None]) -> JobRecord:
        job = JobRecord(uuid.uuid4().hex, model_id, "pending", created_at=_now())
        with self._lock:
            if len(self._jobs) >= MAX_JOBS_KEPT:  # forget the oldest finished jobs
                for old in [j for j in self._jobs.values() if j.finished_at][: MAX_JOBS_KEPT // 10]:
                    del self._jobs[old.id]
            self._jobs[job.id] = job
        self._executor.submit(self._run, job.id, work)
        return job

    def _set(self, job_id: str, **changes: str) -> None:
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)

    def _run(self, job_id: str, work: Callable[[], None]) -> None:
        self._set(job_id, state="running")
        try:
            work()
        except Exception as exc:
            self._set(job_id, state="failed", error=f"{type(exc).__name__}: {exc}", finished_at=_now())
        else:
            self._set(job_id, state="succeeded", finished_at=_now())

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._jobs.get(job_id)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)
