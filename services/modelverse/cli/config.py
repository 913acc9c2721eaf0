"""`modelverse config show --process NAME`: a process's effective settings (defaults, config file,
environment, flags) and where each value came from (docs/CONFIG.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelverse.settings import PROCESSES, settings_class


def register(subparsers: argparse._SubParsersAction) -> None:
    config = subparsers.add_parser("config", help="the settings of the processes")
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show", help="print a process's effective settings and where each value came from",
        description="Resolves a process's settings as the process would: flags over environment variables "
        "over the config file over the defaults. Give the process's own flags after --, e.g. "
        "`modelverse config show --process shard -- --nprobe 8`.")
    show.add_argument("--process", required=True, choices=list(PROCESSES))
    show.add_argument("--config", type=Path, default=None, metavar="FILE",
                      help="settings file (TOML or YAML) with a table per process")
    show.add_argument("--json", action="store_true", help="JSON instead of a table")
    show.add_argument("flags", nargs="*", metavar="-- FLAGS", help="the process's own flags")
    show.set_defaults(handler=config_show)


def config_show(args: argparse.Namespace) -> int:
    from modelverse.settings.base import build_parser
    from modelverse.settings.show import report

    cls = settings_class(args.process)
    parsed = build_parser(cls).parse_args(args.flags)
    flags = {k: v for k, v in vars(parsed).items() if k in cls.model_fields}
    shown = report(cls, flags, args.config or parsed.config)
    print(shown.to_json() if args.json else shown.table())
    if shown.error:
        print(f"error: {shown.error}", file=sys.stderr)
        return 1
    return 0
