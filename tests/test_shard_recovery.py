"""A shard's saved index after a crash or disk damage: found, rebuilt from the store, served;
and a damaged pack row is never indexed (issue 14, section 5)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from serving_fixtures import build_store

from modelverse.core.scores import normalized_means
from modelverse.serving.partition import shard_of
from modelverse.serving.shard.index import IDS_FILE, INDEX_FILE, ShardIndex
from modelverse.serving.shard.state import ShardConfig, ShardState
from modelverse.v1 import shard_pb2, shard_pb2_grpc


def exact_ids(store, ids: list[str], q: np.ndarray, k: int) -> list[str]:
    collection = store.collection()
    rows = [collection.row_of(m) for m in ids]
    scores = normalized_means(np.asarray(collection.means[rows], dtype=np.float64)) @ q
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


def flip_bytes(path: Path, offset_fraction: float = 0.5, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * offset_fraction)
    data[start : start + count] = bytes(255 - b for b in data[start : start + count])
    path.write_bytes(bytes(data))


DAMAGE = {
    "flipped index bytes": lambda d: flip_bytes(d / INDEX_FILE),
    "truncated index": lambda d: (d / INDEX_FILE).write_bytes((d / INDEX_FILE).read_bytes()[:100]),
    "garbage ids.json": lambda d: (d / IDS_FILE).write_text('{"plan": '),
    "ids.json of another save": lambda d: (d / IDS_FILE).write_text(
        json.dumps({**json.loads((d / IDS_FILE).read_text()), "index_sha256": "0" * 64})),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_saved_index_is_rebuilt_at_start(tmp_path: Path, damage: str) -> None:
    store, small = build_store(tmp_path / "store", count=24)
    config = ShardConfig(store=tmp_path / "store", shard=0, shards=2, index_dir=tmp_path / "index")
    ShardState(config)
    assert ShardIndex.load(tmp_path / "index") is not None
    DAMAGE[damage](tmp_path / "index")
    assert ShardIndex.load(tmp_path / "index") is None  # found, never served
    state = ShardState(config)
    mine = sorted(m for m in small.ids if shard_of(m, 2) == 0)
    assert sorted(state.snapshot.row_of) == mine
    q = np.random.default_rng(1).standard_normal(store.config.dim)
    q /= np.linalg.norm(q)
    assert state.index.search(q, 5).ids == exact_ids(store, mine, q, 5)
    assert ShardIndex.load(tmp_path / "index") is not None  # saved again, whole
    assert not list((tmp_path / "index").glob(".*.tmp"))


def test_a_damaged_pack_row_is_not_indexed(tmp_path: Path) -> None:
    store, small = build_store(tmp_path / "store", count=24)
    mine = sorted(m for m in small.ids if shard_of(m, 2) == 1)
    pack = store.pack()
    victim = mine[0]
    means = tmp_path / "store" / "pack" / f"g{pack.generation:06d}" / "means.bin"
    column = np.memmap(means, dtype="<f4", mode="r+", shape=(pack.rows, store.config.dim))
    q = np.random.default_rng(2).standard_normal(store.config.dim)
    q /= np.linalg.norm(q)
    column[pack.live_rows()[victim]] = q  # would be the first hit with score 1.0
    column.flush()
    del column
    state = ShardState(ShardConfig(store=tmp_path / "store", shard=1, shards=2, index_dir=tmp_path / "index"))
    assert victim not in state.snapshot.row_of and sorted(state.snapshot.row_of) == mine[1:]
    assert state.index.search(q, 5).ids == exact_ids(store, mine[1:], q, 5)


@pytest.mark.slow
def test_a_shard_process_starts_and_serves_on_a_corrupt_saved_index(tmp_path: Path) -> None:
    _, small = build_store(tmp_path / "store", count=16)
    ShardState(ShardConfig(store=tmp_path / "store", shard=0, shards=1, index_dir=tmp_path / "index"))
    flip_bytes(tmp_path / "index" / INDEX_FILE, 0.3, 256)
    port_file = tmp_path / "shard.port"
    process = subprocess.Popen(
        [sys.executable, "-m", "modelverse.serving.shard", "--store", str(tmp_path / "store"), "--shard", "0",
         "--shards", "1", "--index-dir", str(tmp_path / "index"), "--port-file", str(port_file), "--lifted", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not port_file.exists():
            assert process.poll() is None, f"the shard exited: {process.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "the shard never started serving"
            time.sleep(0.1)
        with grpc.insecure_channel(f"127.0.0.1:{int(port_file.read_text())}") as channel:
            description = shard_pb2_grpc.ShardServiceStub(channel).Describe(shard_pb2.DescribeRequest(), timeout=30)
        assert description.models == len(small.ids)
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stderr.close()
    assert ShardIndex.load(tmp_path / "index") is not None
