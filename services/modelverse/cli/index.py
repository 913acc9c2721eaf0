"""`modelverse index`: turn generative models into statistics, here or on the fleet.

``register`` adds the command and its flags; ``add_fleet_arguments(parser)`` adds the sampling
and broker options, ``plan_from_args(args)`` turns them into a SamplePlan, ``submit_index(args)``
queues the models of ``--zoo bundled`` / ``--manifest FILE`` / ``--model-dir DIR`` on ``--broker``
and prints the job ids, and ``index_here(args)`` runs the same tasks in this process into
``--store``; ``run_index`` picks.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

from modelverse.cli.device import torch_device
from modelverse.cli.fleet_access import reaching
from modelverse.cli.output import print_json, progress_bar
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK
from modelverse.errors import InvalidInputError
from modelverse.fleet.adaptive import (
    DEFAULT_MIN_SAMPLES,
    DEFAULT_ROUND_SAMPLES,
    DEFAULT_SAMPLES,
    DEFAULT_TOLERANCE,
)
from modelverse.fleet.config import DEFAULT_CHUNK_SIZE, FleetConfig, read_job_secret
from modelverse.fleet.job_records import JobRecord, JobState
from modelverse.fleet.plan import SamplePlan
from modelverse.fleet.requests import (
    ModelRequest,
    bundled_requests,
    read_manifest,
    request_for_model_dir,
)
from modelverse.store.directory import DirectoryStore


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


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by embedded and fleet indexing (``--broker`` selects the fleet)."""
    parser.add_argument("--broker", default=None, metavar="URL",
                        help="submit to the fleet on this Redis broker and return (default: index in this process)")
    parser.add_argument("--job-secret-file", default=None, metavar="FILE",
                        help="with --broker: sign the jobs with this shared secret, as the workers' "
                        "(default: $MODELVERSE_JOB_SECRET_FILE or $MODELVERSE_JOB_SECRET)")
    parser.add_argument("--encoder", default=os.environ.get("MODELVERSE_ENCODER", "bundled"),
                        help="encoder spec (default: $MODELVERSE_ENCODER or bundled)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                        help="samples per model; with --adaptive the ceiling (default: %(default)s, the paper's N)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="N",
                        help="samples per chunk task (default: %(default)s)")
    parser.add_argument("--adaptive", action=argparse.BooleanOptionalAction, default=True,
                        help="stop sampling a model once its statistics converge (default: on)")
    parser.add_argument("--min-samples", type=int, default=DEFAULT_MIN_SAMPLES, metavar="N",
                        help="adaptive floor (default: %(default)s)")
    parser.add_argument("--round-samples", type=int, default=DEFAULT_ROUND_SAMPLES, metavar="N",
                        help="samples added per adaptive round (default: %(default)s)")
    parser.add_argument("--device", default=None,
                        help="torch device for indexing in this process, e.g. cuda:0 or cpu (default: "
                        "$MODELVERSE_DEVICE, else cuda when present); fleet workers take their own --device")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="NATS",
                        help="adaptive: stop once the standard error of the score a query like the model's "
                        "own samples gets is at most this (default: %(default)s; docs/FLEET.md)")


def plan_from_args(args: argparse.Namespace) -> SamplePlan:
    if not args.adaptive:
        return SamplePlan(args.samples, args.chunk_size)
    return SamplePlan(
        args.samples,
        args.chunk_size,
        min_samples=min(args.min_samples, args.samples),
        round_samples=args.round_samples,
        tolerance=args.tolerance,
    )


def requests_from_args(args: argparse.Namespace) -> tuple[list[ModelRequest], str]:
    """The models to index and the encoder spec (a manifest may name its own encoder)."""
    if getattr(args, "manifest", None):
        requests, encoder = read_manifest(args.manifest)
        return requests, encoder or args.encoder
    if getattr(args, "zoo", None) == "bundled":
        return bundled_requests(), args.encoder
    if getattr(args, "model_dir", None):
        return [model_dir_request(args)], args.encoder
    raise InvalidInputError("name the models to index: --zoo bundled, --manifest FILE or --model-dir DIR")


def model_dir_request(args: argparse.Namespace) -> ModelRequest:
    """`--model-dir DIR` and the flags that override its card."""
    options = {}
    for item in args.option:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise InvalidInputError(f"--option {item[:80]!r}: expected KEY=VALUE")
        options[key] = value
    if args.half:
        options["dtype"] = "float16"
    overrides = {"id": args.id, "name": args.name, "description": args.description, "family": args.family,
                 "license": args.license, "creator": args.creator,
                 "tags": [t.strip() for t in args.tags.split(",") if t.strip()] if args.tags else None}
    return request_for_model_dir(args.model_dir, overrides, options)


def submit_index(args: argparse.Namespace) -> int:
    """`modelverse index --broker URL ...`: queue one job per model and print their ids."""
    from modelverse.fleet.submit import submit_jobs

    requests, encoder = requests_from_args(args)
    config = FleetConfig.from_env(broker_url=args.broker)
    if getattr(args, "job_secret_file", None):
        config = replace(config, job_secret=read_job_secret(args.job_secret_file), job_secret_file=args.job_secret_file)
    if not config.job_secret:
        print("modelverse index: warning: no job secret (--job-secret-file): workers that have one refuse these "
              "jobs", file=sys.stderr)
    with reaching(config.broker_url):
        records = submit_jobs(
            config,
            requests,
            encoder,
            plan_from_args(args),
            rank=getattr(args, "rank", None),
            eps=getattr(args, "eps", None),
            keep_covariance=not getattr(args, "no_covariance", False),
        )
    if getattr(args, "json", False):
        print_json([{"job_id": r.job_id, "model_id": r.spec.model_id, "stats_version": r.spec.stats_version}
                    for r in records])
    else:
        for record in records:
            print(f"{record.job_id}  {record.spec.model_id}  (stats version {record.spec.stats_version})")
        print(f"submitted {len(records)} job(s) to {config.broker_url}; follow them with `modelverse jobs --watch`")
    return 0


def index_here(args: argparse.Namespace) -> int:
    """`modelverse index --store DIR ...` without --broker: the fleet's tasks in this process.

    Reads ``args.store`` besides the options of ``add_fleet_arguments``; prints one line per
    model; exit status 1 when a model failed (the others are indexed all the same).
    """
    from modelverse.fleet.embedded import index_embedded

    requests, encoder = requests_from_args(args)
    requests = _skip_indexed(args, requests)
    device = torch_device(getattr(args, "device", None))
    interactive = sys.stdout.isatty() and not getattr(args, "json", False)

    def progress(record: JobRecord) -> None:
        if interactive and not record.state.finished:
            done, planned = len(record.chunks_done), record.chunks_planned
            print(f"\r{record.spec.model_id}: {progress_bar(done, planned)} {record.samples_done} samples",
                  end="", flush=True)

    records = []
    for position, request in enumerate(requests, start=1):
        [record] = index_embedded(
            args.store, [request], encoder, plan_from_args(args), device=device,
            rank=getattr(args, "rank", None), eps=getattr(args, "eps", None),
            keep_covariance=not getattr(args, "no_covariance", False), progress=progress,
        )
        records.append(record)
        if interactive:
            print("\r\x1b[K", end="")
        if not getattr(args, "json", False):
            rate = record.samples_per_second()
            outcome = (f"{record.samples_used} samples, stats version {record.spec.stats_version}"
                       + ("" if rate is None else f", {rate:.0f} samples/s")
                       if record.state is JobState.DONE else f"FAILED: {record.error}")
            print(f"[{position}/{len(requests)}] {request.model_id}: {outcome}", flush=True)
    failed = [r for r in records if r.state is JobState.FAILED]
    if getattr(args, "json", False):
        print_json([r.summary() for r in records])
    else:
        print(f"indexed {len(records) - len(failed)} of {len(records)} model(s) into {args.store}")
    for record in failed:
        print(f"modelverse index: {record.spec.model_id} failed: {record.error}", file=sys.stderr)
    return 1 if failed else 0


def _skip_indexed(args: argparse.Namespace, requests: list[ModelRequest]) -> list[ModelRequest]:
    """Resuming: models already in the store are left as they are unless --reindex."""
    if getattr(args, "reindex", False) or not DirectoryStore.exists(args.store):
        return requests
    have = set(DirectoryStore.open(args.store).ids())
    todo = [r for r in requests if r.model_id not in have]
    if len(todo) < len(requests) and not getattr(args, "json", False):
        print(f"{len(requests) - len(todo)} of {len(requests)} model(s) already in {args.store}: skipped "
              "(--reindex to index them again)", flush=True)
    return todo


def run_index(args: argparse.Namespace) -> int:
    """The whole of `modelverse index`: the fleet with --broker, this process otherwise."""
    return submit_index(args) if args.broker else index_here(args)
