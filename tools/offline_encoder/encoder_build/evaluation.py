"""Step 3, evaluation: held-out retrieval, a zero-shot sanity table, and checks on the zoo's GANs.

- ``evaluate``: image -> caption retrieval (top-1, top-5) on cached features, per source;
- ``sanity_probes`` + ``zero_shot_table``: a few images ranked against ``SANITY_PROMPTS`` through
  the full model;
- ``gan_face_check``, ``gan_eye_check``: samples of generators the zoo serves (optional PyPI
  packages; never trained on).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import concept_sources as cs
from .drawn_sources import COLOURS, draw_shape
from .registry_sources import EMOJI_FONT
from .samples import Sample
from .training import project


def evaluate(
    model,
    samples: Sequence[Sample],
    img_feats: np.ndarray,
    cap_feats: np.ndarray,
    cap_index: dict[str, int],
    idx: list[int],
) -> dict:
    """Zero-shot image->caption retrieval on `idx`: candidates are the distinct canonical
    captions of those samples; a hit is the sample's canonical caption in the top k."""
    if not idx:
        return {}
    canon = sorted({samples[i].captions[0] for i in idx})
    pos = {c: k for k, c in enumerate(canon)}
    img, _ = project(model, img_feats[idx])
    _, txt = project(model, None, cap_feats[[cap_index[c] for c in canon]])
    sims = img @ txt.T
    truth = np.array([pos[samples[i].captions[0]] for i in idx])
    rank = (sims > sims[np.arange(len(idx)), truth][:, None]).sum(1)
    res: dict = {
        "n_images": len(idx),
        "n_candidate_captions": len(canon),
        "top1": float((rank < 1).mean()),
        "top5": float((rank < 5).mean()),
        "per_source": {},
    }
    for src in sorted({samples[i].source for i in idx}):
        m = np.array([samples[i].source == src for i in idx])
        res["per_source"][src] = {
            "n": int(m.sum()),
            "top1": round(float((rank[m] < 1).mean()), 4),
            "top5": round(float((rank[m] < 5).mean()), 4),
        }
    return res


SANITY_PROMPTS = [
    "a photo of a face",
    "a photo of a cat",
    "a close-up photo of an eye",
    "a photo of a shirt",
    "a photo of a pair of trousers",
    "a photo of a sneaker",
    "a photo of a dress",
    "a handwritten digit 3",
    "a handwritten digit 7",
    "a silhouette of a horse",
    "a silhouette of an elephant",
    "a red circle",
    "a blue square",
    "clip art of a car",
    "an emoji of grinning face",
    "a photo of a cup of coffee",
    "a painting of a blue eye",
    "a sketch of a shirt",
    "a sketch of a face",
    "a grayscale photo of a cat's face",
]


def sanity_probes(
    samples: Sequence[Sample], held: list[int]
) -> list[tuple[str, str, str, Image.Image]]:
    """(name, expected prompt, status, image) for the zero-shot table. status says whether the
    image was trained on: 'held-out', 'train' (the skimage photos are in the training data:
    those rows only show the caption is learnt) or 'new' (a fresh render)."""
    from skimage import data

    probes: list[tuple[str, str, int | None, Image.Image]] = []
    wanted = [
        ("lfw held-out face", "lfw_faces", "a photo of a face"),
        ("fashion held-out shirt", "fashion_mnist", "a photo of a shirt"),
        ("fashion held-out sneaker", "fashion_mnist", "a photo of a sneaker"),
        ("fashion held-out trousers", "fashion_mnist", "a photo of a pair of trousers"),
        ("digit held-out 3", "digits", "a handwritten digit 3"),
        ("digit held-out 7", "digits", "a handwritten digit 7"),
        ("animal held-out elephant", "animal_shapes", "a silhouette of an elephant"),
        ("animal held-out horse", "animal_shapes", "a silhouette of a horse"),
    ]
    for name, src, prompt in wanted:
        for i in held:
            s = samples[i]
            if s.source == src and s.captions[0] == prompt:
                probes.append((name, prompt, "held-out", s.load()))
                break
    astro = Image.fromarray(data.astronaut())
    probes.append(
        ("astronaut face crop", "a photo of a face", "train", astro.crop((150, 20, 300, 175)))
    )
    probes.append(
        ("chelsea cat photo", "a photo of a cat", "train", Image.fromarray(data.chelsea()))
    )
    probes.append(
        ("coffee photo", "a photo of a cup of coffee", "train", Image.fromarray(data.coffee()))
    )
    probes.append(
        (
            "drawn red circle",
            "a red circle",
            "new",
            draw_shape("circle", COLOURS["red"], COLOURS["white"], 7),
        )
    )
    probes.append(
        (
            "drawn blue square",
            "a blue square",
            "new",
            draw_shape("square", COLOURS["blue"], COLOURS["white"], 8),
        )
    )
    if EMOJI_FONT.is_file():
        font = ImageFont.truetype(str(EMOJI_FONT), 109)
        img = Image.new("RGB", (160, 160), (255, 255, 255))
        ImageDraw.Draw(img).text(
            (80, 80), "\U0001f600", font=font, embedded_color=True, anchor="mm"
        )
        held_groups = {samples[i].group for i in held if samples[i].source == "emoji"}
        any_emoji = any(s.source == "emoji" and s.group == "U+1F600" for s in samples)
        status = "held-out" if "U+1F600" in held_groups else ("train" if any_emoji else "new")
        probes.append(("grinning face emoji", "an emoji of grinning face", status, img))
    return probes


def zero_shot_table(model, preprocess, tokenizer, probes) -> list[dict]:
    """Rank SANITY_PROMPTS for each probe image through the full model (encode_image/text)."""
    import torch

    with torch.no_grad():
        t = model.encode_text(tokenizer(SANITY_PROMPTS), normalize=True)
        rows = []
        for name, expected, status, img in probes:
            i = model.encode_image(preprocess(img).unsqueeze(0), normalize=True)
            sims = (i @ t.T)[0]
            order = sims.argsort(descending=True).tolist()
            rank = order.index(SANITY_PROMPTS.index(expected)) + 1
            rows.append(
                {
                    "probe": name,
                    "status": status,
                    "expected": expected,
                    "rank_of_expected": rank,
                    "top3": [SANITY_PROMPTS[k] for k in order[:3]],
                }
            )
    return rows


def gan_face_check(model, preprocess, tokenizer, n: int = 64) -> dict | None:
    """Optional: samples of the DCGAN face generator in PyPI `gan-face-generate` (install with
    --no-deps; not needed for the build). Fraction whose best prompt among SANITY_PROMPTS is
    "a photo of a face": the use case of the project (search generative models by content)."""
    try:
        import gan_face_generate
        from gan_face_generate.models import Generator
    except ImportError:
        return None
    import torch

    gen = Generator(0, 3, 100, 64)  # ngpu, channels, z size, feature maps (as its inference.py)
    ckpt = torch.load(
        Path(gan_face_generate.__file__).parent / "weights.tar",
        map_location="cpu",
        weights_only=False,
    )  # a pinned package's own pickle
    gen.load_state_dict(ckpt["netG_state_dict"])
    gen.eval()
    with torch.no_grad():
        fake = gen(torch.randn(n, 100, 1, 1, generator=torch.Generator().manual_seed(0)))
        imgs = [
            Image.fromarray(
                ((t.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
            )
            for t in fake
        ]
        t = model.encode_text(tokenizer(SANITY_PROMPTS), normalize=True)
        i = model.encode_image(torch.stack([preprocess(im) for im in imgs]), normalize=True)
    top = (i @ t.T).argmax(1).tolist()
    face = SANITY_PROMPTS.index("a photo of a face")
    return {
        "n": n,
        "top1_is_face": sum(k == face for k in top) / n,
        "package": "gan-face-generate " + _version("gan-face-generate"),
    }


def gan_eye_check(model, tokenizer, n_per_class: int = 16) -> dict | None:
    """Samples of the conditional painted-eye GAN of PyPI `omniart-eye-generator` (the zoo's
    eight eye models; never trained on): how often the right colour prompt wins among the eight
    colour prompts, and how often an eye prompt wins among SANITY_PROMPTS."""
    import importlib.util

    spec = importlib.util.find_spec("omniart_eye_generator")
    if spec is None or not spec.submodule_search_locations:
        return None
    import torch

    folder = Path(next(iter(spec.submodule_search_locations)))
    # Its __init__ torch.loads without map_location (fails on CPU): load the two files by path.
    mod_spec = importlib.util.spec_from_file_location("omniart_generator", folder / "generator.py")
    module = importlib.util.module_from_spec(mod_spec)
    assert mod_spec.loader is not None
    mod_spec.loader.exec_module(module)
    gen = module.Generator()
    gen.load_state_dict(
        torch.load(folder / "generator_model_state.pth", map_location="cpu", weights_only=True)
    )
    gen.eval()
    colours = list(cs.EYE_IRIS)  # same order as the package's classes
    colour_prompts = [cs.eye_captions(c)[0] for c in colours]
    eye_prompts = {SANITY_PROMPTS.index(p) for p in ("a close-up photo of an eye", "a painting of a blue eye")}
    correct, eye_first, per_class = 0, 0, {}
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        t_col = model.encode_text(tokenizer(colour_prompts), normalize=True)
        t_all = model.encode_text(tokenizer(SANITY_PROMPTS), normalize=True)
        for c, _ in enumerate(colours):
            labels = torch.zeros(n_per_class, len(colours))
            labels[:, c] = 1
            x = gen(torch.randn(n_per_class, module.latent_space_size, 1, 1, generator=g), labels)
            # the GAN's [-1, 1] output is already normalised with mean = std = 0.5; resize to 224
            x = torch.nn.functional.interpolate(x, size=224, mode="bicubic", align_corners=False)
            i = model.encode_image(x.clamp(-1, 1), normalize=True)
            hits = int(((i @ t_col.T).argmax(1) == c).sum())
            per_class[colours[c]] = hits / n_per_class
            correct += hits
            eye_first += sum(k in eye_prompts for k in (i @ t_all.T).argmax(1).tolist())
    total = n_per_class * len(colours)
    return {
        "n": total,
        "colour_accuracy": correct / total,
        "colour_accuracy_per_class": per_class,
        "eye_prompt_first": eye_first / total,
        "chance": 1 / len(colours),
        "package": "omniart-eye-generator " + _version("omniart-eye-generator"),
    }


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"
