"""Samples per second of one generator through each declarative format, against the zoo loader.

Exports zoo models (a 28x28 DCGAN, a 28x28 VAE decoder, the 64x64 face DCGAN, the 6-step 28x28
DDIM diffusion model) to TorchScript, torch.export and ONNX, reads the bundled weights through
``safetensors:?arch=``, builds the tiny diffusers pipelines of the tests (random weights), then
times ``Generator.sample`` (sampling only, no encoder) in this process, after one warm-up call.

    python tools/bench_generator_formats.py [--samples 512] [--threads 1] [--device cpu] [--half]
        [--out docs/benchmarks/generator-formats.json]

Prints a table and writes JSON. One torch thread by default: a fleet worker process gets one
(the unit of parallelism is the process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import torch

from modelverse.bench.tiny_pipelines import save_tiny_ddim, save_tiny_text_to_image
from modelverse.cli.output import print_table
from modelverse.fleet.resolve import load_generator
from modelverse.generators.card import read_card
from modelverse.generators.specs import GeneratorSpec
from modelverse.zoo import export as zoo_export
from modelverse.zoo.loader import WEIGHTS_DIR

ZOO_MODELS = {
    "fashion-dcgan-sneaker": f"safetensors:{WEIGHTS_DIR / 'fashion_mnist_dcgan.safetensors'}?arch=conditional_dcgan28&class_label=7",
    "fashion-vae-coat": f"safetensors:{WEIGHTS_DIR / 'fashion_mnist_vae.safetensors'}?arch=conditional_conv_decoder28&class_label=4",
    "digiface-dcgan": None,
    "animal-diffusion-dog": f"safetensors:{WEIGHTS_DIR / 'animal_shape_diffusion.safetensors'}?arch=ddim_tiny_unet28&class_label=4",
}


def timed(spec: str, samples: int, device: str) -> dict[str, Any]:
    start = time.perf_counter()
    generator = load_generator(spec, device=device)
    load_s = time.perf_counter() - start
    generator.sample(min(samples, 16), 1)  # warm-up: kernels chosen, caches filled
    start = time.perf_counter()
    generator.sample(samples, 2)
    elapsed = time.perf_counter() - start
    return {"load_s": round(load_s, 3), "seconds": round(elapsed, 3), "samples": samples,
            "samples_per_s": round(samples / elapsed, 1), "resolution": generator.resolution}


def exported_spec(directory: Path, model_file: Path, fmt: str, extra: dict[str, str]) -> str:
    return str(GeneratorSpec(fmt, str(model_file), {**read_card(directory).generator_options, **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--diffusers-samples", type=int, default=64, help="samples for the diffusers pipelines")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true", help="dtype=float16 for the torch formats and diffusers")
    parser.add_argument("--out", default="docs/benchmarks/generator-formats.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    half = {"dtype": "float16"} if args.half else {}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for zoo_id, weights in ZOO_MODELS.items():
            # The zoo loader first: exporting loads (and caches) the native generator.
            rows.append({"model": zoo_id, "format": "zoo (native)", **timed(f"zoo:{zoo_id}", args.samples, args.device)})
            specs = {}
            if weights is not None:
                specs["safetensors"] = weights + ("&dtype=float16" if args.half else "")
            for fmt in zoo_export.FORMATS:
                path = zoo_export.export(zoo_id, fmt, root / f"{zoo_id}-{fmt}")
                specs[fmt] = exported_spec(path.parent, path, fmt, {} if fmt == "onnx" else half)
            for fmt, spec in specs.items():
                rows.append({"model": zoo_id, "format": fmt, **timed(spec, args.samples, args.device)})
                print(f"{zoo_id} {fmt}: {rows[-1]['samples_per_s']} samples/s", flush=True)
        ddim = save_tiny_ddim(root / "ddim")
        t2i = save_tiny_text_to_image(root / "t2i", card="---\ninstance_prompt: a photo of sks dog\n---\n")
        suffix = "&dtype=float16" if args.half else ""
        for name, spec in (("tiny DDIMPipeline 16x16, 10 steps", f"diffusers:{ddim}?steps=10&batch=16{suffix}"),
                           ("tiny StableDiffusionPipeline 16x16, 10 steps, guidance 5",
                            f"diffusers:{t2i}?steps=10&guidance=5&batch=16{suffix}")):
            rows.append({"model": name, "format": "diffusers", **timed(spec, args.diffusers_samples, args.device)})
            print(f"{name}: {rows[-1]['samples_per_s']} samples/s", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores)")
    print_table(["model", "format", "res.", "samples/s", "load s"],
                [[r["model"], r["format"], r["resolution"], r["samples_per_s"], r["load_s"]] for r in rows])
    report = {
        "benchmark": "generator sampling throughput per declarative format (Generator.sample, no encoder)",
        "command": "python tools/bench_generator_formats.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "half")
        ) + (" --half" if args.half else ""),
        "date": str(date.today()),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), device {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""),
        "torch": torch.__version__,
        # The machine is shared: the 1-minute load average at the end says how much it was.
        "load_average_1min": round(os.getloadavg()[0], 2),
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
