"""Write a synthetic store of 100,000 to 10,000,000 models' statistics (the generator and how it
is calibrated: ``modelverse.bench.scale_stats``), then measure its cross-model structure beside the
profile's (``modelverse.bench.structure``): a table on stdout and, with --structure-json, a JSON file.

    .venv/bin/python tools/scale_stats.py --out /tmp/scale-100k --models 100000 \\
        --profile docs/benchmarks/zoo-profile.json --structure-json docs/benchmarks/scale-structure.json
    ... --structure random            # the generator before the structured mode (random directions)
    ... --measure-only [--profile P]  # measure a store written earlier (beside P's structure); write no store
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from modelverse.bench.scale_stats import (
    STRUCTURES,
    load_profile,
    measure_profile,
    measure_scale_store,
    structure_params,
    structure_rows,
    synthetic_reference_store,
    write_scale_store,
)
from modelverse.core.stats import DEFAULT_RANK
from modelverse.store.directory import DirectoryStore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="store directory to create")
    parser.add_argument("--models", type=int, default=100_000)
    parser.add_argument("--clusters", type=int, default=1000, help="concept directions (tags)")
    parser.add_argument("--calibrate", type=Path, default=None,
                        help="store of real statistics to measure (with --profile: only its structure is measured)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="a profile saved earlier (--save-profile, or the 'profile' of a store's scale.json) "
                             "instead of measuring one")
    parser.add_argument("--save-profile", type=Path, default=None,
                        help="also write the profile used to this JSON file (with the structured mode's fitted parameters)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=None,
                        help="feature dimension to generate (default: the calibration store's). The profile's "
                             "quantities carry over: norms, cosines, the spectrum relative to its largest "
                             "eigenvalue, the residual's share of the trace (spread over --dim coordinates), "
                             "and the structure: the fractions kept by k shared directions at the same k, the "
                             "energy fractions along the mean, concept and common directions")
    parser.add_argument("--structure", choices=STRUCTURES, default="structured",
                        help="covariance directions drawn from a shared basis fitted to the profile's structure "
                             "(default), or random orthonormal ones (the generator before issue 13)")
    parser.add_argument("--measure-only", action="store_true", help="measure the store at --out; generate nothing")
    parser.add_argument("--measure-models", type=int, default=100_000,
                        help="measure the structure on the first N models (default: %(default)s)")
    parser.add_argument("--structure-json", type=Path, default=None, help="write the measured structure beside the profile's here")
    args = parser.parse_args()
    if args.measure_only:
        meta = json.loads((args.out / "scale.json").read_text())
        # Compared with --profile when given (e.g. a random store, written before its profile had a structure).
        profile = load_profile(args.profile or args.out / "scale.json")
        structure, params, seconds = meta.get("structure", "random"), meta.get("structure_params"), None
    else:
        if args.profile and args.calibrate:
            # A saved profile keeps its numbers (the stores made from it stay the same); only the
            # structure, which it may predate, is measured on STORE.
            measured = measure_profile(DirectoryStore.open(args.calibrate))
            profile = replace(load_profile(args.profile), structure=measured.structure, fitted=None)
        elif args.profile:
            profile = load_profile(args.profile)
        elif args.calibrate:
            profile = measure_profile(DirectoryStore.open(args.calibrate))
        else:
            reference, tags = synthetic_reference_store(args.out.with_name(args.out.name + "-calibration"))
            profile = measure_profile(reference, tags)
        if args.dim is not None:
            profile = replace(profile, dim=args.dim)
        if profile.rank != DEFAULT_RANK:
            print(f"note: the calibration store has rank {profile.rank}", file=sys.stderr)
        structure, fitted = args.structure, None
        if structure == "structured":
            started = time.perf_counter()
            profile, fitted = structure_params(profile, args.clusters, args.seed)
            print(f"structured mode: {fitted} ({time.perf_counter() - started:.0f} s to fit or load)", file=sys.stderr)
        if args.save_profile:
            args.save_profile.write_text(json.dumps(asdict(profile), indent=1) + "\n")
        seconds = round(write_scale_store(args.out, args.models, profile, args.clusters, args.seed, fitted), 1)
        params = None if fitted is None else asdict(fitted)
    started = time.perf_counter()
    measured = measure_scale_store(args.out, args.measure_models)
    result = {"store": str(args.out), "models": json.loads((args.out / "scale.json").read_text())["models"],
              "structure": structure, "structure_params": params, "seconds": seconds,
              "measured": asdict(measured), "measure_seconds": round(time.perf_counter() - started, 1),
              "profile_structure": None if profile.structure is None else asdict(profile.structure)}
    if profile.structure is not None:
        print(f"{'measure':48s} {'generated':>10s} {'profile':>10s}")
        for name, mine, theirs in structure_rows(measured, profile.structure):
            print(f"{name:48s} {mine:10.4f} {theirs:10.4f}")
        print(f"(generated: {measured.models} models, d = {measured.dim}, {structure}; profile: {profile.structure.models} "
              f"models, d = {profile.structure.dim})")
    if args.structure_json:
        args.structure_json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("store", "models", "structure", "seconds", "measure_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
