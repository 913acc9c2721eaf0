"""Write a synthetic store of 100,000 to 10,000,000 models' statistics (the generator and how it
is calibrated: ``modelverse.bench.scale_stats``).

    .venv/bin/python tools/scale_stats.py --out /tmp/scale-100k --models 100000
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from modelverse.bench.scale_stats import (
    load_profile,
    measure_profile,
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
    parser.add_argument("--calibrate", type=Path, default=None, help="store of real statistics to measure")
    parser.add_argument("--profile", type=Path, default=None,
                        help="a profile saved earlier (--save-profile, or the 'profile' of a store's scale.json) "
                             "instead of measuring one")
    parser.add_argument("--save-profile", type=Path, default=None, help="also write the profile used to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=None,
                        help="feature dimension to generate (default: the calibration store's). The profile's "
                             "quantities carry over: norms, cosines, the spectrum relative to its largest "
                             "eigenvalue, the residual's share of the trace (spread over --dim coordinates)")
    args = parser.parse_args()
    if args.calibrate and args.profile:
        parser.error("give --calibrate STORE or --profile JSON, not both")
    if args.profile:
        profile = load_profile(args.profile)
    elif args.calibrate:
        profile = measure_profile(DirectoryStore.open(args.calibrate))
    else:
        reference, tags = synthetic_reference_store(args.out.with_name(args.out.name + "-calibration"))
        profile = measure_profile(reference, tags)
    if args.dim is not None:
        profile = replace(profile, dim=args.dim)
    if args.save_profile:
        args.save_profile.write_text(json.dumps(asdict(profile), indent=1) + "\n")
    if profile.rank != DEFAULT_RANK:
        print(f"note: the calibration store has rank {profile.rank}", file=sys.stderr)
    seconds = write_scale_store(args.out, args.models, profile, args.clusters, args.seed)
    print(json.dumps({"models": args.models, "seconds": round(seconds, 1), "profile": asdict(profile)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
