"""One model's statistics as a self-describing .npz file (no pickles)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from modelverse.core.compression import CompressedCovariance
from modelverse.core.stats import ModelStats
from modelverse.store.errors import StoreCorruptError

STATS_FORMAT_VERSION = 1


def stats_to_bytes(stats: ModelStats) -> bytes:
    arrays: dict[str, np.ndarray] = {
        "format_version": np.array(STATS_FORMAT_VERSION),
        "count": np.array(stats.count, dtype=np.int64),
        "mean": stats.mean.astype(np.float64),
        "diag": stats.compressed.diag,
        "factor": stats.compressed.factor,
        "woodbury": stats.compressed.woodbury,
        "eps": np.array(stats.compressed.eps),
        "logdet": np.array(stats.compressed.logdet),
        "trace": np.array(stats.compressed.trace),
        "encoder": np.array(stats.encoder),  # a unicode scalar: readable without pickles
    }
    if stats.covariance is not None:
        arrays["covariance"] = stats.covariance.astype(np.float32)
    if stats.samples is not None:
        arrays["samples"] = stats.samples.astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def read_stats(path: Path) -> ModelStats:
    try:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format_version"])
            if version != STATS_FORMAT_VERSION:
                raise StoreCorruptError(
                    f"{path}: statistics format version {version}, this program reads "
                    f"{STATS_FORMAT_VERSION}"
                )
            return ModelStats(
                count=int(data["count"]),
                mean=data["mean"],
                compressed=CompressedCovariance(
                    diag=data["diag"],
                    factor=data["factor"],
                    eps=float(data["eps"]),
                    woodbury=data["woodbury"],
                    logdet=float(data["logdet"]),
                    trace=float(data["trace"]),
                ),
                covariance=data["covariance"].astype(np.float64) if "covariance" in data else None,
                samples=data["samples"] if "samples" in data else None,
                encoder=str(data["encoder"]) if "encoder" in data else "",
            )
    except FileNotFoundError as exc:
        raise StoreCorruptError(f"{path}: statistics file is missing") from exc
    except (zipfile.BadZipFile, ValueError, KeyError, EOFError, OSError) as exc:
        raise StoreCorruptError(f"{path}: cannot read statistics ({exc}); the file is corrupt or truncated") from exc
