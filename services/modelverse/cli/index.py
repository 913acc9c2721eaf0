"""`modelverse index`: turn generative models into statistics, here or on the fleet."""

from __future__ import annotations

import argparse
import os

from modelverse.cli.jobs import add_fleet_arguments, run_index
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK
from modelverse.errors import InvalidInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="sample, encode and summarise generative models (the bundled zoo, a manifest or a model directory)",
        description="Without --broker the models are indexed in this process into --store, resuming "
        "where a previous run stopped; with --broker one job per model is queued for the fleet. "
        "--model-dir indexes one model directory: a diffusers pipeline or a TorchScript, torch.export, "
        "ONNX or safetensors file with its model card (docs/MODELS.md).",
    )
    models = parser.add_mutually_exclusive_group(required=True)
    models.add_argument("--zoo", choices=["bundled"], help="the zoo that ships with modelverse")
    models.add_argument("--manifest", metavar="FILE", help="a JSON manifest of models (docs/FLEET.md)")
    models.add_argument("--model-dir", metavar="DIR",
                        help="one model directory; its README.md card fills the metadata (docs/MODELS.md)")
    card = parser.add_argument_group("with --model-dir (each overrides the model card)")
    card.add_argument("--id", default=None, help="model id (default: the directory's name)")
    card.add_argument("--name", default=None, help="display name")
    card.add_argument("--description", default=None)
    card.add_argument("--tags", default=None, help="comma-separated tags (replace the card's)")
    card.add_argument("--family", default=None, help="gan, diffusion, vae, ...")
    card.add_argument("--license", default=None)
    card.add_argument("--creator", default=None)
    card.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="a generator spec option, e.g. latent=100x1x1, steps=20, prompts=FILE (repeatable)")
    card.add_argument("--half", action="store_true",
                      help="sample in half precision (dtype=float16; for GPUs; torch formats and diffusers)")
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
    if args.model_dir is None:
        given = [flag for flag, value in (("--id", args.id), ("--name", args.name), ("--tags", args.tags),
                                          ("--option", args.option), ("--half", args.half)) if value]
        if given:
            raise InvalidInputError(f"{given[0]} applies to --model-dir only")
    if args.broker is None and args.store is None:
        raise InvalidInputError("say where to index: --store DIR (or $MODELVERSE_STORE), or --broker URL for the fleet")
    return run_index(args)
