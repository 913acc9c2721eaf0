"""`modelverse`: the command line for people and scripts.

User errors (``modelverse.errors``: missing store, wrong dimension, NaN, unknown id, unreadable
file) end with a one-line message on stderr and exit status 1; usage errors exit 2, as argparse
does. Anything else is a bug: one line "internal error, see log: PATH" and exit status 70
(EX_SOFTWARE), the traceback in the log (``cli/internal_errors.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from modelverse.cli import cluster, commands, config, demo, index, internal_errors, jobs, keys, maintenance, web, worker
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK, DEFAULT_TAU
from modelverse.core.types import Method
from modelverse.errors import ModelverseError
from modelverse.query.hybrid import TextMode
from modelverse.query.parts import Modality, default_method_rule

EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 70  # sysexits' EX_SOFTWARE
CLI_MODALITY_NAMES = {Modality.TEXT: "--text", Modality.IMAGE: "--image", Modality.SKETCH: "--sketch",
                      Modality.IMAGE_SET: "--images", Modality.VECTOR: "--vector"}


def _store_argument(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get("MODELVERSE_STORE")
    parser.add_argument(
        "--store",
        default=default,
        required=default is None,
        metavar="DIR",
        help="model store directory (default: $MODELVERSE_STORE)",
    )


def _json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelverse",
        description="Content-based search over deep generative image models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add = sub.add_parser("add", help="add a model from its samples' features")
    _store_argument(add)
    add.add_argument("--id", required=True, help="model id (unique in the store)")
    add.add_argument("--features", required=True, metavar="FILE.npy", help="N x d array of sample features")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--description", default="")
    add.add_argument("--tags", default="", help="comma-separated tags")
    add.add_argument("--family", default="", help="architecture family (gan, diffusion, vae, ...)")
    add.add_argument("--resolution", type=int, default=None, help="output resolution in pixels")
    add.add_argument("--creator", default="")
    add.add_argument("--license", default="")
    add.add_argument("--source", default="", help="where the model comes from")
    add.add_argument("--encoder", default="", metavar="NAME",
                     help="the encoder that made the features; a store holds one encoder's features")
    add.add_argument("--replace", action="store_true", help="replace a model with the same id")
    add.add_argument("--keep-samples", action="store_true", help="also store the raw features (Monte Carlo scoring)")
    add.add_argument("--no-covariance", action="store_true", help="store only the compressed second order")
    add.add_argument("--rank", type=int, default=None, help=f"rank of the compressed covariance, fixed when the store is created (default: {DEFAULT_RANK})")
    add.add_argument("--eps", type=float, default=None, help=f"Gaussian regulariser, fixed when the store is created (default: {DEFAULT_EPS})")
    add.add_argument("--tau", type=float, default=None,
                     help="temperature of the Monte Carlo and 1st + 2nd moment scores, fixed when the store is created: "
                          f"the encoder's exp(logit_scale) (default: {DEFAULT_TAU:g}, CLIP's)")
    _json_argument(add)
    add.set_defaults(handler=commands.add)

    search = sub.add_parser("search", help="rank the stored models for a query")
    _store_argument(search)
    search.add_argument("--text", action="append", default=[], metavar="TEXT", help="describe the images you want")
    search.add_argument("--image", action="append", default=[], metavar="FILE", help="an image like those you want")
    search.add_argument("--sketch", action="append", default=[], metavar="FILE", help="a line drawing of what you want")
    search.add_argument("--images", action="append", default=[], metavar="DIR",
                        help="a folder of images: which model could have made these?")
    search.add_argument("--vector", action="append", default=[], metavar="FILE.npy", help="a raw query feature")
    search.add_argument("--like", metavar="MODEL_ID", help="models similar to a stored model (Frechet distance); alone")
    search.add_argument("--weights", default=None,
                        help="comma-separated weight per query part, in the order texts, images, sketches, "
                             "image folders, vectors (default: all 1)")
    search.add_argument("--method", choices=[m.value for m in Method], default=None,
                        help=f"score (default: {default_method_rule(CLI_MODALITY_NAMES)}; frechet for --like)")
    search.add_argument("--encoder", default=None, metavar="SPEC",
                        help="encoder for text and pictures (default: $MODELVERSE_ENCODER or the bundled one); "
                             "it must be the one the store was indexed with")
    search.add_argument("--second-order", choices=["auto", "full", "compressed"], default="auto",
                        help="covariance form for second-order scores; auto = full when every model has it")
    search.add_argument("--top-k", type=int, default=10, metavar="K")
    search.add_argument("--text-mode", choices=[m.value for m in TextMode], default=None,
                        help="how --text finds models: content (the encoded text), metadata (names, descriptions, "
                             "tags by their words (BM25) and by meaning (sentence embeddings)), hybrid (all fused; "
                             "the default for a query with text)")
    search.add_argument("--min-confidence", type=float, default=None, metavar="P",
                        help="leave out hits whose confidence (0..1: that the model fits the query at all) is below P")
    _json_argument(search)
    search.set_defaults(handler=commands.search)

    listing = sub.add_parser("list", help="list the stored models")
    _store_argument(listing)
    listing.add_argument("--limit", type=int, default=None, help="show at most this many")
    _json_argument(listing)
    listing.set_defaults(handler=commands.list_models)

    info = sub.add_parser("info", help="show one model")
    _store_argument(info)
    info.add_argument("id", metavar="ID")
    _json_argument(info)
    info.set_defaults(handler=commands.info)

    remove = sub.add_parser("remove", help="remove a model")
    _store_argument(remove)
    remove.add_argument("id", metavar="ID")
    _json_argument(remove)
    remove.set_defaults(handler=commands.remove)

    repack = sub.add_parser("repack", help="rebuild the packed search table from the per-model files")
    _store_argument(repack)
    _json_argument(repack)
    repack.set_defaults(handler=commands.repack)

    maintenance.register(sub)
    demo.register(sub, cli=lambda argv: main(argv))
    index.register(sub)
    worker.register(sub)
    jobs.register(sub)
    cluster.register(sub)
    config.register(sub)
    keys.register(sub)
    web.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    try:
        return handler(args) or 0
    except ModelverseError as exc:
        print(f"modelverse {args.command}: error: {exc.message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except FileNotFoundError as exc:  # a path the user named (its message names it): theirs to fix
        print(f"modelverse {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("modelverse: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `modelverse list | head`
        return 0
    except Exception as exc:  # a bug: one line here, the traceback in the log
        written = internal_errors.record(exc, list(sys.argv[1:] if argv is None else argv))
        where = f"see log: {written}" if written else "traceback above"
        print(f"modelverse {args.command}: internal error, {where}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
