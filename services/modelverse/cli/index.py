"""`modelverse index`: turn generative models into statistics, here or on the fleet."""

from __future__ import annotations

import argparse
import os

from modelverse.cli.jobs import add_fleet_arguments, run_index
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="sample, encode and summarise generative models (the bundled zoo or a manifest)",
        description="Without --broker the models are indexed in this process into --store, resuming "
        "where a previous run stopped; with --broker one job per model is queued for the fleet.",
    )
    models = parser.add_mutually_exclusive_group(required=True)
    models.add_argument("--zoo", choices=["bundled"], help="the zoo that ships with modelverse")
    models.add_argument("--manifest", metavar="FILE", help="a JSON manifest of models (docs/FLEET.md)")
    default_store = os.environ.get("MODELVERSE_STORE")
    parser.add_argument("--store", default=default_store, metavar="DIR",
                        help="model store directory, without --broker (default: $MODELVERSE_STORE)")
    parser.add_argument("--reindex", action="store_true", help="index models already in the store again")
    parser.add_argument("--rank", type=int, default=None,
                        help=f"rank of the compressed covariance for a new store (default: {DEFAULT_RANK})")
    parser.add_argument("--eps", type=float, default=None,
                        help=f"Gaussian regulariser for a new store (default: {DEFAULT_EPS})")
    parser.add_argument("--no-covariance", action="store_true", help="store only the compressed second order")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_fleet_arguments(parser)
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if args.broker is None and args.store is None:
        raise ValueError("say where to index: --store DIR (or $MODELVERSE_STORE), or --broker URL for the fleet")
    return run_index(args)
