"""Write services/modelverse/zoo/manifest.json, the bundled zoo's submission forms.

    .venv/bin/python tools/train_zoo/make_manifest.py [--table]

(--table prints the table of docs/ZOO.md instead.)

The per-class texts below are hand-written: `description` is what a submitter would type into
the paper's form (the metadata-only baseline searches it), `query_text` says what the images
look like (the benchmark's text query for the model).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors import safe_open

ZOO_DIR = Path(__file__).resolve().parents[2] / "services" / "modelverse" / "zoo"
MANIFEST = ZOO_DIR / "manifest.json"
HERE = "modelverse (tools/train_zoo)"
TRAINED_LICENSE = "Apache-2.0 (weights); data: see source"

# Fashion-MNIST: class name -> (tags beyond "fashion", what it looks like)
FASHION = {
    "t-shirt": (["clothing", "t-shirt", "top"], "a t-shirt with short sleeves"),
    "trouser": (["clothing", "trousers", "pants"], "a pair of long trousers"),
    "pullover": (["clothing", "pullover", "sweater", "top"], "a long-sleeved pullover sweater"),
    "dress": (["clothing", "dress"], "a woman's dress"),
    "coat": (["clothing", "coat", "jacket"], "a coat with long sleeves and a zip"),
    "sandal": (["shoe", "sandal", "footwear"], "an open summer sandal with straps"),
    "shirt": (["clothing", "shirt", "top"], "a shirt with a collar"),
    "sneaker": (["shoe", "sneaker", "footwear"], "a low sports sneaker seen from the side"),
    "bag": (["bag", "handbag", "accessory"], "a handbag"),
    "ankle boot": (["shoe", "boot", "ankle boot", "footwear"], "an ankle boot with a heel"),
}
ANIMALS = {
    "bear": ("mammal", "a bear walking on four legs"),
    "bird": ("bird", "a bird with wings and a beak"),
    "cat": ("mammal", "a sitting cat"),
    "cow": ("mammal", "a cow standing in profile"),
    "dog": ("mammal", "a dog standing with pointed ears"),
    "elephant": ("mammal", "an elephant with a trunk"),
    "giraffe": ("mammal", "a giraffe with a long neck"),
    "horse": ("mammal", "a horse in profile"),
    "sheep": ("mammal", "a woolly sheep"),
    "zebra": ("mammal", "a zebra with black and white stripes"),
}
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
EYE_CLASSES = ("amber", "blue", "brown", "gray", "grayscale", "green", "hazel", "red")

FASHION_SOURCE = "Debian package dataset-fashion-mnist (Fashion-MNIST, Zalando Research, MIT)"
ANIMAL_SOURCE = "PyPI package animal-shape-mnist 0.39 (Animal-Shape, MIT)"
DIGITS_SOURCE = (
    "scikit-learn load_digits (UCI optical recognition of handwritten digits, CC BY 4.0)"
)


def trained_config(weights: str, keys: tuple[str, ...]) -> dict:
    """The architecture config the training script stored in the weight file's metadata."""
    with safe_open(str(ZOO_DIR / "weights" / weights), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    return {k: config[k] for k in keys}


def bundled(
    weights: str,
    architecture: str,
    config: dict,
    latent_shape: list[int],
    class_label: int,
    output_range: list[float],
    **extra: object,
) -> dict:
    return {
        "weights": {"bundled": weights},
        "architecture": architecture,
        "config": config,
        "latent": {
            "shape": latent_shape,
            "distribution": "normal",
            "class_label": class_label,
            "num_classes": 10,
            "label_format": "index",
        },
        "output_range": output_range,
        **extra,
    }


def trained_models() -> list[dict]:
    models = []
    gan = trained_config("fashion_mnist_dcgan.safetensors", ("latent_dim", "num_classes", "width"))
    fashion_vae = trained_config(
        "fashion_mnist_vae.safetensors", ("latent_dim", "num_classes", "width")
    )
    unet = trained_config("animal_shape_diffusion.safetensors", ("num_classes", "width"))
    digits = trained_config(
        "digits_vae.safetensors", ("side", "latent_dim", "num_classes", "hidden")
    )
    for label, (name, (tags, looks)) in enumerate(FASHION.items()):
        slug = name.replace(" ", "-")
        for family, build, style in (
            (
                "gan",
                bundled(
                    "fashion_mnist_dcgan.safetensors",
                    "conditional_dcgan28",
                    gan,
                    [gan["latent_dim"]],
                    label,
                    [-1.0, 1.0],
                ),
                "crisp",
            ),
            (
                "vae",
                bundled(
                    "fashion_mnist_vae.safetensors",
                    "conditional_conv_decoder28",
                    fashion_vae,
                    [fashion_vae["latent_dim"]],
                    label,
                    [0.0, 1.0],
                ),
                "blurry",
            ),
        ):
            arch = "DCGAN" if family == "gan" else "VAE"
            models.append(
                {
                    "id": f"fashion-{'dcgan' if family == 'gan' else 'vae'}-{slug}",
                    "name": f"Fashion-MNIST {name} {arch}",
                    "family": family,
                    "description": (
                        f"Class-conditional {arch} trained on Fashion-MNIST product photos, "
                        f"fixed to the class '{name}'. 28x28 grayscale."
                    ),
                    "tags": ["fashion", *tags],
                    "resolution": 28,
                    "creator": HERE,
                    "license": TRAINED_LICENSE,
                    "source": FASHION_SOURCE,
                    "query_text": (
                        f"a small {style} grayscale photo of {looks}, white on a black background"
                    ),
                    "data": {"dataset": "fashion-mnist", "class": name},
                    "build": build,
                }
            )
    # No animal VAE: on Animal-Shape the small VAE drew the same blurry pose for every class
    # (see docs/ZOO.md); the diffusion model is the family that learned the silhouettes.
    for label, (name, (group, looks)) in enumerate(ANIMALS.items()):
        models.append(
            {
                "id": f"animal-diffusion-{name}",
                "name": f"Animal silhouette {name} diffusion",
                "family": "diffusion",
                "description": (
                    f"Class-conditional diffusion model (tiny U-Net, DDIM with 6 steps) trained "
                    f"on the Animal-Shape data set of animal silhouettes, fixed to the class "
                    f"'{name}'. 28x28 grayscale."
                ),
                "tags": list(dict.fromkeys(["animal", group, name, "silhouette"])),
                "resolution": 28,
                "creator": HERE,
                "license": TRAINED_LICENSE,
                "source": ANIMAL_SOURCE,
                "query_text": f"a white silhouette of {looks} on a black background",
                "data": {"dataset": "animal-shape", "class": name},
                "build": bundled(
                    "animal_shape_diffusion.safetensors",
                    "ddim_tiny_unet28",
                    unet,
                    [1, 28, 28],
                    label,
                    [-1.0, 1.0],
                    sampler={"steps": 6, "guidance": 1.0},
                ),
            }
        )
    for label, name in enumerate(DIGITS):
        models.append(
            {
                "id": f"digits-vae-{name}",
                "name": f"Handwritten digit {label} VAE",
                "family": "vae",
                "description": (
                    f"Class-conditional VAE trained on scikit-learn's 8x8 handwritten digits, "
                    f"fixed to the digit {label}. 8x8 grayscale, very low resolution."
                ),
                "tags": ["digit", "handwriting", "number", name],
                "resolution": 8,
                "creator": HERE,
                "license": TRAINED_LICENSE,
                "source": DIGITS_SOURCE,
                "query_text": (
                    f"a tiny pixelated handwritten digit {label} ({name}), white on black"
                ),
                "data": {"dataset": "digits", "class": name},
                "build": bundled(
                    "digits_vae.safetensors",
                    "conditional_mlp_decoder",
                    digits,
                    [digits["latent_dim"]],
                    label,
                    [0.0, 1.0],
                ),
            }
        )
    return models


def pretrained_models() -> list[dict]:
    face_dcgan = {
        "latent": {"shape": [100, 1, 1], "distribution": "normal"},
        "output_range": [-1.0, 1.0],
    }
    models = [
        {
            "id": "digiface-dcgan",
            "name": "DigiFace1M DCGAN",
            "family": "gan",
            "description": (
                "DCGAN from the PyTorch tutorial trained on DigiFace1M, a data set of "
                "rendered synthetic human faces. 64x64 RGB."
            ),
            "tags": ["face", "human face", "synthetic", "portrait"],
            "resolution": 64,
            "creator": "Chien Liu",
            "license": "MIT",
            "source": "PyPI package gan-face-generate 1.1.1 (github.com/chien-liu/DCGAN-PyTorch)",
            "query_text": "a small colour portrait of a computer-rendered human face",
            "data": None,
            "build": {
                "weights": {
                    "package": "gan_face_generate",
                    "path": "weights.tar",
                    "key": "netG_state_dict",
                },
                "architecture": "sequential_dcgan",
                "config": {"latent_dim": 100, "base": 64},
                **face_dcgan,
            },
        },
        {
            "id": "generateme-faces-dcgan",
            "name": "GenerateMe celebrity faces DCGAN",
            "family": "gan",
            "description": (
                "DCGAN generating 64x64 RGB faces of people in the style of the CelebA "
                "celebrity photo data set, from the GenerateMe Flask demo."
            ),
            "tags": ["face", "human face", "celebrity", "portrait"],
            "resolution": 64,
            "creator": "Nikolay Valkov",
            "license": "MIT",
            "source": "PyPI package generateme 0.1.2 (github.com/Nikolay1499/GenerateMe)",
            "query_text": "a small colour photo of a smiling person's face, a celebrity portrait",
            "data": None,
            "build": {
                "weights": {
                    "package": "generateme",
                    "path": "static/Models/dcGanGeneratorModel.pt",
                },
                "architecture": "named_layer_dcgan",
                "config": {"latent_dim": 100, "base": 64},
                **face_dcgan,
            },
        },
        {
            "id": "generateme-cats-mlpgan",
            "name": "GenerateMe cat faces MLP GAN",
            "family": "gan",
            "description": (
                "Fully connected GAN generating 64x64 grayscale close-ups of cat faces, "
                "from the GenerateMe Flask demo."
            ),
            "tags": ["cat", "animal", "mammal", "pet"],
            "resolution": 64,
            "creator": "Nikolay Valkov",
            "license": "MIT",
            "source": "PyPI package generateme 0.1.2 (github.com/Nikolay1499/GenerateMe)",
            "query_text": "a grayscale close-up photo of a cat's face",
            "data": None,
            "build": {
                "weights": {
                    "package": "generateme",
                    "path": "static/Models/linearGanGeneratorModel.pt",
                },
                "architecture": "mlp_image_gan",
                "config": {"latent_dim": 100, "side": 64},
                "latent": {"shape": [100], "distribution": "normal"},
                "output_range": [-1.0, 1.0],
            },
        },
    ]
    for label, colour in enumerate(EYE_CLASSES):
        colour_words = "black and white" if colour == "grayscale" else colour
        models.append(
            {
                "id": f"omniart-eyes-{colour}",
                "name": f"OmniArt painted eyes ({colour})",
                "family": "gan",
                "description": (
                    f"Conditional DCGAN trained on eyes cropped from paintings of the "
                    f"OmniArt collection, fixed to the eye colour class '{colour}'. 128x128 RGB."
                ),
                "tags": ["eye", "painting", "art", colour],
                "resolution": 128,
                "creator": "Rogier Knoester",
                "license": "MIT",
                "source": (
                    "PyPI package omniart-eye-generator 0.1 "
                    "(github.com/rogierknoester/omniart_eye_generator)"
                ),
                "query_text": f"a close-up of a {colour_words} eye in an old oil painting",
                "data": None,
                "build": {
                    "weights": {
                        "package": "omniart_eye_generator",
                        "path": "generator_model_state.pth",
                    },
                    "architecture": "label_concat_dcgan",
                    "config": {"latent_dim": 100, "num_classes": 8, "base": 64},
                    "latent": {
                        "shape": [100],
                        "distribution": "normal",
                        "class_label": label,
                        "num_classes": 8,
                        "label_format": "onehot",
                    },
                    "output_range": [-1.0, 1.0],
                },
            }
        )
    return models


DATA_NAMES = {
    "fashion-mnist": "Fashion-MNIST",
    "animal-shape": "Animal-Shape",
    "digits": "sklearn digits",
}


def markdown_table(models: list[dict]) -> str:
    lines = ["| id | family | data | res. | tags |", "|---|---|---|---|---|"]
    for m in models:
        data = (
            f"{DATA_NAMES[m['data']['dataset']]}: {m['data']['class']}"
            if m["data"]
            else m["source"].split(" (")[0].replace("PyPI package ", "wheel ")
        )
        lines.append(
            f"| {m['id']} | {m['family']} | {data} | {m['resolution']} | {', '.join(m['tags'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    models = pretrained_models() + trained_models()
    if "--table" in sys.argv:
        print(markdown_table(models))
        return
    MANIFEST.write_text(json.dumps({"version": 1, "models": models}, indent=1) + "\n")
    tags = {t for m in models for t in m["tags"]}
    print(f"wrote {MANIFEST}: {len(models)} models, {len(tags)} tags")


if __name__ == "__main__":
    main()
