"""`modelverse keys create|list|revoke`: the API keys a gateway or admin accepts (its --api-keys file)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from modelverse.errors import NotFoundError
from modelverse.security.keys import KEYS_FILE_ENV, KeysFile, Role, write_secret


def _keys_argument(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(KEYS_FILE_ENV)
    parser.add_argument("--keys", type=Path, default=default, required=default is None, metavar="FILE",
                        help=f"the hashed keys file the servers read with --api-keys (default: ${KEYS_FILE_ENV})")


def register(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="add a key; prints it once (only its hash is kept)")
    _keys_argument(create)
    create.add_argument("--role", required=True, choices=[r.value for r in Role],
                        help="read: Search, GetModel, ListModels, SampleImages; admin: also RegisterModel, RemoveModel, GetJob")
    create.add_argument("--label", default="", help="a note on who holds the key")
    create.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="write the key to this file (mode 0600) instead of printing it")
    create.set_defaults(handler=create_key)

    listing = actions.add_parser("list", help="list the keys (ids, roles, labels; never the keys)")
    _keys_argument(listing)
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    listing.set_defaults(handler=list_keys)

    revoke = actions.add_parser("revoke", help="remove a key by its id; servers drop it within a second")
    _keys_argument(revoke)
    revoke.add_argument("key_id", metavar="KEY_ID", help="the id `keys list` shows (the part after mv_)")
    revoke.set_defaults(handler=revoke_key)


def create_key(args: argparse.Namespace) -> int:
    keys = KeysFile.load(args.keys, missing_ok=True)
    key = keys.create(Role(args.role), args.label)
    keys.save()
    if args.out:
        write_secret(args.out, key)
        print(f"created {args.role} key {keys.records[-1].key_id} in {args.out}")
    else:
        print(key)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    records = KeysFile.load(args.keys).records
    if args.json:
        print(json.dumps([{"key_id": r.key_id, "role": r.role.value, "created": r.created, "label": r.label}
                          for r in records], indent=2))
        return 0
    for r in records:
        print(f"{r.key_id}  {r.role.value:<5}  {r.created}  {r.label}")
    return 0


def revoke_key(args: argparse.Namespace) -> int:
    keys = KeysFile.load(args.keys)
    if not keys.revoke(args.key_id):
        raise NotFoundError(f"no key with id {args.key_id[:40]!r} in {args.keys}")
    keys.save()
    print(f"revoked {args.key_id}")
    return 0
