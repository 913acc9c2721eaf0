"""The deploy files are not run here (no Docker engine), so they are checked: they parse, and
every command they give is one our entry points accept, with a consistent shard layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelverse.serving.admin.__main__ import parse_args as admin_args
from modelverse.serving.gateway.__main__ import parse_args as gateway_args
from modelverse.serving.shard.__main__ import parse_args as shard_args
from modelverse.web.__main__ import parse_args as web_args

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "serving"
PARSERS = {"modelverse.serving.shard": shard_args, "modelverse.serving.gateway": gateway_args,
           "modelverse.serving.admin": admin_args, "modelverse.web": web_args}


def commands(document) -> list[list[str]]:
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "command" and isinstance(value, list) and value[:2] == ["python", "-m"]:
                found.append([str(v) for v in value])
            else:
                found += commands(value)
    elif isinstance(document, list):
        for item in document:
            found += commands(item)
    return found


@pytest.mark.parametrize("name", ["docker-compose.yml", "k8s.yaml"])
def test_deploy_commands_parse_and_agree_on_the_shards(name) -> None:
    documents = list(yaml.safe_load_all((DEPLOY / name).read_text()))
    found = [c for d in documents for c in commands(d)]
    modules = {c[2] for c in found}
    assert modules == set(PARSERS), modules
    shard_counts, shard_indexes, gateway_layouts = set(), set(), []
    for command in found:
        args = PARSERS[command[2]](command[3:])
        if command[2].endswith("shard"):
            shard_counts.add(args.shards)
            shard_indexes.add(args.shard)
        elif command[2] == "modelverse.web":
            # The page reads through the gateway's public port with a read key from a secret.
            assert args.gateway.endswith(":50051") and args.api_key_file and not args.api_key, command
        else:
            gateway_layouts.append(len(args.shard))
            # Public ports: keys from a mounted secret, never --insecure-no-auth (docs/SECURITY.md).
            assert args.api_keys is not None and not args.insecure_no_auth, command
    assert len(shard_counts) == 1
    (count,) = shard_counts
    assert shard_indexes == set(range(count))
    assert gateway_layouts and all(n == count for n in gateway_layouts)


def test_the_dockerfile_installs_the_package_and_pins_threads() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "pip install" in text and "COPY services" in text and "OMP_NUM_THREADS=1" in text
