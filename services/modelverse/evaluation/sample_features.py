"""Every zoo model's sample features, kept on disk chunk by chunk, for the quality benchmark.

The fleet reduces each chunk of samples to moments and throws the features away; the benchmark
needs the features themselves (Monte Carlo scores every sample) and the moments at several
sample counts N. Chunk i of a model is made by ``fleet.work.chunk_features`` with the fleet's
seed for (model, stats version, i), so the first N samples here are the samples of
``modelverse index --samples N --chunk-size C``; their merged moments equal the fleet's to
float32 rounding (the cache keeps float32 features, the fleet reduces each chunk straight away).

Filling is resumable (one ``.npy`` file per chunk, written atomically) and runs in worker
processes, one torch thread each, in the order of the requested sample counts: every model
reaches the smallest N before any model goes on to the next.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial, reduce
from pathlib import Path

import numpy as np

from modelverse.core.moments import PartialMoments
from modelverse.fleet.adaptive import Replay, replay
from modelverse.fleet.plan import SamplePlan

STATS_VERSION = 1  # the version a model gets the first time it is indexed


@dataclass(frozen=True)
class FeatureCache:
    """``root/<encoder id>/<precision>/c<chunk size>/<model id>/chunk-NNNNN.npy`` (float32, L2-normalised)."""

    root: Path
    encoder_id: str
    precision: str
    chunk_size: int

    @property
    def directory(self) -> Path:
        safe_encoder = re.sub(r"[^A-Za-z0-9._-]", "_", self.encoder_id)
        return self.root / safe_encoder / self.precision / f"c{self.chunk_size}"

    def chunk_path(self, model_id: str, chunk_index: int) -> Path:
        return self.directory / model_id / f"chunk-{chunk_index:05d}.npy"

    def chunks_for(self, samples: int) -> int:
        if samples % self.chunk_size:
            raise ValueError(f"{samples} samples is not a whole number of {self.chunk_size}-sample chunks")
        return samples // self.chunk_size

    def missing(self, model_id: str, samples: int) -> list[int]:
        return [i for i in range(self.chunks_for(samples)) if not self.chunk_path(model_id, i).exists()]

    def features(self, model_id: str, samples: int) -> np.ndarray:
        """The first ``samples`` features of a model, (samples, d) float32."""
        chunks = self.chunks_for(samples)
        missing = self.missing(model_id, samples)
        if missing:
            raise FileNotFoundError(
                f"{model_id}: chunks {missing[:5]} of {chunks} are not in {self.directory}; fill the cache first"
            )
        return np.concatenate([np.load(self.chunk_path(model_id, i)) for i in range(chunks)])

    def moments(self, model_id: str, samples: int) -> PartialMoments:
        """Moments of the first ``samples`` features, merged chunk by chunk in chunk order as the
        fleet's round callback merges its partials (equal to them to float32 rounding)."""
        chunks = [
            PartialMoments.from_samples(np.load(self.chunk_path(model_id, i)))
            for i in range(self.chunks_for(samples))
        ]
        return reduce(PartialMoments.merge, chunks)

    def replay_adaptive(self, model_id: str, plan: SamplePlan) -> Replay:
        """The fleet's adaptive decision for ``model_id`` over its cached chunks (each loaded
        when the replay needs it): where ``modelverse index`` with ``plan`` would stop."""
        return replay(plan, lambda i: PartialMoments.from_samples(np.load(self.chunk_path(model_id, i))))


@dataclass(frozen=True)
class ChunkTask:
    model_id: str
    chunk_index: int
    path: str


# One encoder and generator set per worker process, loaded on first use.
_WORKER: dict[str, object] = {}


def _init_worker(encoder_spec: str, precision: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER.update(encoder_spec=encoder_spec, precision=precision, generators={})


def _run_task(task: ChunkTask, chunk_size: int) -> tuple[ChunkTask, float]:
    from modelverse.encoders import load_encoder
    from modelverse.fleet.work import chunk_features
    from modelverse.zoo import load_generator

    started = time.perf_counter()
    encoder = load_encoder(str(_WORKER["encoder_spec"]), precision=str(_WORKER["precision"]))
    generators: dict[str, object] = _WORKER["generators"]  # type: ignore[assignment]
    if task.model_id not in generators:
        generators[task.model_id] = load_generator(task.model_id)
    features = chunk_features(
        generators[task.model_id], encoder, task.model_id, STATS_VERSION, task.chunk_index, chunk_size  # type: ignore[arg-type]
    )
    path = Path(task.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(partial, "wb") as handle:
        np.save(handle, features.astype(np.float32))
    partial.replace(path)  # atomic: a killed fill never leaves half a chunk behind
    return task, time.perf_counter() - started


def plan_tasks(cache: FeatureCache, model_ids: Sequence[str], sample_counts: Sequence[int]) -> list[ChunkTask]:
    """Missing chunks, smallest sample count first, so a partial fill is usable at the small Ns."""
    tasks: list[ChunkTask] = []
    planned: set[tuple[str, int]] = set()
    for samples in sorted(sample_counts):
        for model_id in model_ids:
            for chunk in cache.missing(model_id, samples):
                if (model_id, chunk) not in planned:
                    planned.add((model_id, chunk))
                    tasks.append(ChunkTask(model_id, chunk, str(cache.chunk_path(model_id, chunk))))
    return tasks


def fill(
    cache: FeatureCache,
    model_ids: Sequence[str],
    sample_counts: Sequence[int],
    *,
    encoder_spec: str = "bundled",
    processes: int = 2,
    report: Callable[[str], None] | None = None,
) -> int:
    """Sample and encode every missing chunk; returns how many chunks were made."""
    tasks = plan_tasks(cache, model_ids, sample_counts)
    if not tasks:
        return 0
    say = report or (lambda line: print(line, file=sys.stderr, flush=True))
    say(f"sampling {len(tasks)} chunks of {cache.chunk_size} with {processes} processes into {cache.directory}")
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # torch and fork do not mix
    with context.Pool(processes, _init_worker, (encoder_spec, cache.precision, 1)) as pool:
        for done, (task, seconds) in enumerate(
            pool.imap_unordered(partial(_run_task, chunk_size=cache.chunk_size), tasks), start=1
        ):
            elapsed = time.perf_counter() - started
            rate = done * cache.chunk_size / elapsed
            eta = (len(tasks) - done) * cache.chunk_size / rate
            say(
                f"[{done}/{len(tasks)}] {task.model_id} chunk {task.chunk_index} in {seconds:.1f} s; "
                f"{rate:.0f} samples/s overall, about {eta / 60:.0f} min left"
            )
    return len(tasks)
