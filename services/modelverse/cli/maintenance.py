"""`modelverse verify`, `snapshot` and `restore`: checking, repairing and copying a store."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict

from modelverse.cli.output import print_json, print_table
from modelverse.store.snapshot import restore_store, snapshot_store
from modelverse.store.verify import verify_store

EXIT_PROBLEMS_LEFT = 1  # verify found something it did not (or was not asked to) repair


def _store_argument(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get("MODELVERSE_STORE")
    parser.add_argument("--store", default=default, required=default is None, metavar="DIR",
                        help="model store directory (default: $MODELVERSE_STORE)")


def register(subparsers: argparse._SubParsersAction) -> None:
    verify = subparsers.add_parser(
        "verify", help="check every file and checksum of a store; --repair fixes what it finds",
        description="Finds temporary files of killed writes, zombies (models an interrupted add left "
        "out of the pack), orphans, corrupt models and pack rows that fail their checksums. Exit "
        "status 0 when the store is sound (or was repaired), 1 when problems are left (docs/OPERATIONS.md).",
    )
    _store_argument(verify)
    verify.add_argument("--repair", action="store_true",
                        help="delete leftovers, quarantine corrupt models, rebuild the pack from the model files")
    verify.add_argument("--quick", action="store_true",
                        help="only the cheap checks (manifests, sizes, listings), as the admin runs at start")
    verify.add_argument("--json", action="store_true", help="print machine-readable JSON")
    verify.set_defaults(handler=_verify)

    snapshot = subparsers.add_parser("snapshot", help="take a consistent copy of a store, also while it is written")
    _store_argument(snapshot)
    snapshot.add_argument("--out", required=True, metavar="DIR", help="new directory for the snapshot")
    snapshot.add_argument("--json", action="store_true", help="print machine-readable JSON")
    snapshot.set_defaults(handler=_snapshot)

    restore = subparsers.add_parser("restore", help="bring a snapshot back as a store (verified first)")
    restore.add_argument("--snapshot", required=True, metavar="DIR", help="a directory `modelverse snapshot` made")
    _store_argument(restore)
    restore.add_argument("--json", action="store_true", help="print machine-readable JSON")
    restore.set_defaults(handler=_restore)


def _verify(args: argparse.Namespace) -> int:
    report = verify_store(args.store, deep=not args.quick, repair=args.repair)
    if args.json:
        print_json(report.to_dict())
    else:
        if report.findings:
            print_table(["kind", "path", "detail", "repair"],
                        [[f.kind, f.path, f.detail, f.action or "-"] for f in report.findings])
        checks = "quick checks" if args.quick else "every file and checksum checked"
        state = "sound" if not report.findings else ("repaired" if report.ok else
                                                     f"{len(report.findings)} problem(s); run with --repair")
        print(f"{args.store}: {state} ({report.models} model(s) served; {checks})")
    return 0 if report.ok else EXIT_PROBLEMS_LEFT


def _snapshot(args: argparse.Namespace) -> int:
    result = snapshot_store(args.store, args.out)
    if args.json:
        print_json(asdict(result))
    else:
        print(f"snapshot of {result.models} model(s) (pack generation {result.generation}) in {result.path}: "
              f"{result.linked} file(s) linked, {result.copied} copied; writers waited {result.locked_seconds:.2f} s "
              f"of {result.seconds:.2f} s")
    return 0


def _restore(args: argparse.Namespace) -> int:
    models = restore_store(args.snapshot, args.store)
    if args.json:
        print_json({"restored": models, "store": args.store})
    else:
        print(f"restored {models} model(s) from {args.snapshot} into {args.store}")
    return 0
