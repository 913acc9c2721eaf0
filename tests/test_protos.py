"""The generated gRPC code is what tools/gen_protos.py makes from protos/ today."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _gen_protos():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "tools" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_protos"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_in_sync_with_the_protos() -> None:
    stale = _gen_protos().out_of_sync()
    assert stale == [], f"regenerate with `.venv/bin/python tools/gen_protos.py`: {stale}"


def test_the_check_notices_a_stale_file(tmp_path, monkeypatch) -> None:
    gen = _gen_protos()
    fresh = tmp_path / "services"
    gen.generate(fresh)
    monkeypatch.setattr(gen, "OUTPUT_ROOT", fresh)
    assert gen.out_of_sync() == []
    target = fresh / "modelverse" / "v1" / "search_pb2.py"
    target.write_text(target.read_text() + "\n# edited by hand\n")
    assert gen.out_of_sync() == ["modelverse/v1/search_pb2.py"]


def test_the_api_package_is_modelverse_v1() -> None:
    from modelverse.v1 import admin_pb2, search_pb2, shard_pb2

    assert search_pb2.DESCRIPTOR.package == "modelverse.v1"
    assert {s for s in search_pb2.DESCRIPTOR.services_by_name} == {"SearchService"}
    assert {s for s in admin_pb2.DESCRIPTOR.services_by_name} == {"AdminService"}
    assert {s for s in shard_pb2.DESCRIPTOR.services_by_name} == {"ShardService"}
