#!/usr/bin/env python3
"""Compare bundled-encoder builds: held-out zero-shot caption retrieval per source and the checks
on the zoo's GAN samples. Prints a table and writes docs/benchmarks/encoder.json.

Usage:
  python tools/offline_encoder/compare_builds.py LABEL=REPORT.json [LABEL=REPORT.json ...]
         [--out docs/benchmarks/encoder.json] [--note TEXT]

Each REPORT.json is the card a build writes (build_encoder.py --report FILE).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "encoder.json"


def summarise(card: dict[str, Any]) -> dict[str, Any]:
    metrics = card["metrics"]
    held = metrics["held_out_image_to_caption"]
    eyes = metrics.get("gan_eye_samples")
    faces = metrics.get("gan_face_samples")
    return {
        "command": card["build"]["command"],
        "sources": card["data"]["sources"],
        "n_train": card["data"]["n_train"],
        "n_held_out": card["data"]["n_held_out"],
        "n_candidate_captions": held["n_candidate_captions"],
        "held_out_top1": held["top1"],
        "held_out_top5": held["top5"],
        "per_source": held["per_source"],
        "gan_face_samples_face_first": faces.get("top1_is_face") if isinstance(faces, dict) else None,
        "gan_eye_colour_accuracy": eyes.get("colour_accuracy") if isinstance(eyes, dict) else None,
        "gan_eye_colour_per_class": eyes.get("colour_accuracy_per_class") if isinstance(eyes, dict) else None,
        "gan_eye_prompt_first": eyes.get("eye_prompt_first") if isinstance(eyes, dict) else None,
        "timings_s": card["build"]["timings_s"],
    }


def table(builds: dict[str, dict[str, Any]]) -> str:
    labels = list(builds)
    sources = sorted({s for b in builds.values() for s in b["per_source"]})
    head = "| | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + "\n"

    def cell(value: Any) -> str:
        return "-" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))

    rows = [
        ("held-out images", [b["n_held_out"] for b in builds.values()]),
        ("candidate captions", [b["n_candidate_captions"] for b in builds.values()]),
        ("top-1 (all)", [b["held_out_top1"] for b in builds.values()]),
        ("top-5 (all)", [b["held_out_top5"] for b in builds.values()]),
    ]
    for source in sources:
        rows.append(
            (
                f"{source} top-1 / top-5 (n)",
                [
                    (
                        f"{b['per_source'][source]['top1']:.3f} / {b['per_source'][source]['top5']:.3f} "
                        f"({b['per_source'][source]['n']})"
                    )
                    if source in b["per_source"]
                    else None
                    for b in builds.values()
                ],
            )
        )
    rows += [
        ("face-GAN samples -> face prompt", [b["gan_face_samples_face_first"] for b in builds.values()]),
        ("eye-GAN samples: colour right (chance 0.125)", [b["gan_eye_colour_accuracy"] for b in builds.values()]),
        ("eye-GAN samples: an eye prompt first", [b["gan_eye_prompt_first"] for b in builds.values()]),
    ]
    return head + "".join(f"| {name} | " + " | ".join(cell(v) for v in values) + " |\n" for name, values in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", help="LABEL=REPORT.json")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--note", default="")
    ap.add_argument("--sketch-check", type=Path, default=None, help="JSON of sketch_check.py --json")
    args = ap.parse_args(argv)
    builds: dict[str, dict[str, Any]] = {}
    for item in args.reports:
        label, sep, path = item.partition("=")
        if not sep:
            ap.error(f"expected LABEL=REPORT.json, got {item!r}")
        builds[label] = summarise(json.loads(Path(path).read_text()))
    text = table(builds)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "metric": "zero-shot image->caption retrieval on the build's held-out split: candidates are "
        "the distinct canonical captions of the held-out samples; hit = own caption in top k",
        "note": args.note,
        "builds": builds,
        "table_markdown": text,
    }
    if args.sketch_check:
        record["sketch_queries"] = json.loads(args.sketch_check.read_text())
        print("sketch queries:", json.dumps(record["sketch_queries"]["results"]))
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
