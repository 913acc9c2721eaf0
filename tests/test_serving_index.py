"""The index rule, and the shard index's live adds and removes against an exact scan."""

from __future__ import annotations

import numpy as np
import pytest

from modelverse.core.scores import normalized_means
from modelverse.serving.index_choice import IndexPlan, choose_index
from modelverse.serving.partition import shard_of
from modelverse.serving.shard.index import INDEX_FILE, ShardIndex
from modelverse.serving.shard.__main__ import parse_args as shard_args
from modelverse.serving.shard.state import ShardConfig, ShardState
from serving_fixtures import build_store

GiB = 1024**3


def test_index_rule_exact_below_the_threshold_then_inverted_files_sized_by_the_budget() -> None:
    small = choose_index(20_000, 512, GiB)
    assert small.factory == "Flat" and small.exhaustive
    mid = choose_index(100_000, 512, GiB)
    assert mid.factory == "IVF2048,Flat" and mid.nprobe == 64  # 8 sqrt(1e5) = 2530 -> 2048; nprobe >= 64
    big = choose_index(1_000_000, 512, 8 * GiB)
    assert big.factory == "IVF8192,Flat" and big.bytes_per_vector == 2056 and big.nprobe == 256
    assert choose_index(1_000_000, 512, GiB).factory == "IVF8192,SQ8"  # 2 GB raw > 1 GiB budget
    assert choose_index(1_000_000, 512, 100 * 1024**2).factory == "IVF8192,PQ64"
    assert choose_index(30_000, 64, GiB).nlist <= 30_000 // 39
    assert choose_index(5_000, 512, GiB, exhaustive_threshold=1_000).factory.startswith("IVF")
    # compact (the shards' default): 8-bit codes even when float32 fits; exact Flat stays exact
    assert choose_index(100_000, 512, 8 * GiB, compact=True).factory == "IVF2048,SQ8"
    assert choose_index(100_000, 512, 8 * GiB, compact=True).bytes_per_vector == 520
    assert choose_index(20_000, 512, GiB, compact=True).factory == "Flat"
    with pytest.raises(ValueError, match="do not fit"):
        choose_index(1_000_000, 512, 1024**2)


def test_plans_saved_before_the_rename_still_load() -> None:
    """Indexes saved before ``exact`` was renamed ``exhaustive`` load as they are (no rebuild),
    and the shard still takes the old flag name."""
    plan = choose_index(5_000, 64, GiB, exhaustive_threshold=1_000)
    old = {("exact" if k == "exhaustive" else k): v for k, v in plan.__dict__.items()}
    assert IndexPlan.from_record(old) == plan and IndexPlan.from_record(plan.__dict__) == plan
    required = ["--store", "s", "--shard", "0", "--shards", "1", "--index-dir", "i"]
    assert shard_args([*required, "--exact-threshold", "123"]).exhaustive_threshold == 123
    assert shard_args([*required, "--exhaustive-threshold", "45"]).exhaustive_threshold == 45


def test_partition_is_stable_and_spreads_models() -> None:
    ids = [f"model-{i}" for i in range(4000)]
    counts = np.bincount([shard_of(m, 4) for m in ids], minlength=4)
    assert counts.min() > 900
    assert shard_of("owner/name:v2", 7) == 4  # pinned: a change would move every model


def exact_top(ids: list[str], means: np.ndarray, q: np.ndarray, k: int) -> list[str]:
    scores = normalized_means(means) @ q
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.parametrize("exhaustive_threshold", [10_000, 500])  # Flat, then IVF with every list probed
def test_live_adds_and_removes_match_an_exact_scan(tmp_path, exhaustive_threshold) -> None:
    rng = np.random.default_rng(3)
    means = rng.standard_normal((3000, 32))
    ids = [f"m{i}" for i in range(3000)]
    plan = choose_index(2500, 32, GiB, exhaustive_threshold=exhaustive_threshold)
    plan = plan if plan.exhaustive else choose_index(2500, 32, GiB, exhaustive_threshold=exhaustive_threshold, nprobe=plan.nlist)
    index = ShardIndex.build(plan, ids[:2500], means[:2500], [1] * 2500)
    index.add(ids[2500:], means[2500:], [1] * 500)
    removed = ids[::7]
    index.remove(removed)
    index.add(["m14"], means[14:15] * -1, [2])  # removed from main, back with other statistics
    live = [m for m in ids if m not in set(removed)] + ["m14"]
    live_means = np.array([means[int(m[1:])] for m in live[:-1]] + [-means[14]])
    index.save(tmp_path)
    loaded = ShardIndex.load(tmp_path)  # memory-mapped
    in_memory = ShardIndex.load(tmp_path, memory_budget_bytes=GiB)
    assert loaded is not None and loaded.main_size == 2500 and in_memory is not None
    for q in rng.standard_normal((5, 32)):
        q /= np.linalg.norm(q)
        found = index.search(q, 20)
        assert found.ids == exact_top(live, live_means, q, 20)
        assert not set(found.ids) & (set(removed) - {"m14"})
        allowed = set(live[100:400])
        assert index.search(q, 10, allowed).ids == [m for m in exact_top(live, live_means, q, 3000) if m in allowed][:10]
        # The saved main index, memory-mapped, holds what was built (no live changes).
        assert loaded.search(q, 10).ids == exact_top(ids[:2500], means[:2500], q, 10)
        assert in_memory.search(q, 10).ids == loaded.search(q, 10).ids


def test_an_nprobe_override_scans_more_lists() -> None:
    """Second-order methods search the first-moment inverted file with more lists: with every
    list scanned the answer is the exact one, whatever the plan's own nprobe."""
    rng = np.random.default_rng(5)
    means = rng.standard_normal((2500, 32))
    ids = [f"m{i}" for i in range(2500)]
    plan = choose_index(2500, 32, GiB, exhaustive_threshold=500, nprobe=1)
    index = ShardIndex.build(plan, ids, means, [1] * 2500)
    queries = rng.standard_normal((20, 32))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    narrow = [index.search(q, 10).ids == exact_top(ids, means, q, 10) for q in queries]
    assert not all(narrow)  # one list of plan.nlist misses some of the exact top 10
    assert all(index.search(q, 10, nprobe=plan.nlist).ids == exact_top(ids, means, q, 10) for q in queries)


def test_a_shard_rebuilds_a_missing_index_from_the_store_and_follows_it(tmp_path) -> None:
    store, small = build_store(tmp_path / "store", count=24)
    config = ShardConfig(store=tmp_path / "store", shard=1, shards=2, index_dir=tmp_path / "index")
    state = ShardState(config)
    mine = sorted(m for m in small.ids if shard_of(m, 2) == 1)
    assert sorted(state.snapshot.row_of) == mine and (tmp_path / "index" / INDEX_FILE).exists()
    store.remove(mine[0])
    result = state.sync()
    assert (result.removed, result.models) == (1, len(mine) - 1)
    (tmp_path / "index" / INDEX_FILE).unlink()
    again = ShardState(config)
    assert sorted(again.snapshot.row_of) == mine[1:] and len(again.index) == len(mine) - 1


def test_the_columns_every_query_reads_are_faulted_in_before_serving(tmp_path) -> None:
    from modelverse.serving.shard.state import RESIDENT_COLUMNS, read_resident_columns

    store, _ = build_store(tmp_path / "store", count=12)
    pack = store.pack()
    assert pack is not None
    expected = sum(pack.arrays[name].nbytes for name in RESIDENT_COLUMNS)
    assert expected > 0 and read_resident_columns(pack) == expected
