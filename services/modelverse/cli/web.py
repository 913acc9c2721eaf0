"""`modelverse web --gateway HOST:PORT`: the search page in a browser (docs/WEB.md)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from modelverse.settings.base import build_parser
    from modelverse.settings.web import WebSettings

    parser = subparsers.add_parser("web", help="serve the search web page in front of a gateway",
                                   description="A web page (search by text, picture and sketch; model pages with "
                                   "fresh samples) that talks to the gateway through its public gRPC API.")
    build_parser(WebSettings, parser)  # every flag from settings.web
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from modelverse.settings.base import from_namespace
    from modelverse.settings.web import WebSettings
    from modelverse.web.__main__ import serve

    return serve(from_namespace(WebSettings, args).settings)  # type: ignore[arg-type]  (SettingsError: a one-line error)
