"""The access rule of a public server's command line (gateway, admin; the web service too).

Secure by default: a server starts only with a keys file (``--api-keys FILE`` or
$MODELVERSE_API_KEYS_FILE, e.g. a mounted secret). ``--insecure-no-auth`` turns the check off,
and is accepted only when the server listens on loopback, where nobody else can reach it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

import grpc

from modelverse.security.access import Authenticator
from modelverse.security.interceptor import ApiKeyInterceptor
from modelverse.security.keys import KEYS_FILE_ENV, KeyFileError, KeyRing

log = logging.getLogger("modelverse.auth")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def authenticator_from_args(args: Any, service: str) -> Authenticator | None:
    """The authenticator of ``--api-keys``; None under ``--insecure-no-auth``; exits otherwise."""
    if args.insecure_no_auth:
        if args.api_keys is not None and os.environ.get(KEYS_FILE_ENV) != str(args.api_keys):
            raise SystemExit(f"{service}: --api-keys and --insecure-no-auth contradict each other")
        if not is_loopback(args.host):
            raise SystemExit(f"{service}: --insecure-no-auth is allowed on a loopback --host only (not {args.host})")
        log.warning("serving WITHOUT access control (--insecure-no-auth, loopback only)", extra={"service": service})
        return None
    if args.api_keys is None:
        raise SystemExit(f"{service}: no API keys: give --api-keys FILE (or ${KEYS_FILE_ENV}); create keys with "
                         "`modelverse keys create --role admin --keys FILE`, or run on loopback with --insecure-no-auth")
    try:
        return Authenticator(KeyRing(args.api_keys))
    except (OSError, KeyFileError) as exc:
        raise SystemExit(f"{service}: --api-keys: {exc}") from exc


def interceptors_from_args(args: Any, service: str) -> list[grpc.ServerInterceptor]:
    authenticator = authenticator_from_args(args, service)
    return [] if authenticator is None else [ApiKeyInterceptor(authenticator)]
