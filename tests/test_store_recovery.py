"""Store faults with a way back (issue 14, section 5): real `modelverse` processes, real kill -9,
real damage to the files, checked against the exact NumPy reference search."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from modelverse.core.collection import Collection
from modelverse.core.params import PAPER_SCORING
from modelverse.core.reference import ExactSearch
from modelverse.core.stats import stats_from_features
from modelverse.core.types import Method, QueryPart
from modelverse.store.directory import (
    PAUSE_BEFORE_PACK_ENV,
    DirectoryStore,
    StoreConfig,
    model_dir_name,
)
from modelverse.store.metadata import ModelMetadata
from modelverse.store.verify import verify_store

MODELVERSE = str(Path(sys.executable).with_name("modelverse"))
DIM, RANK, SAMPLES = 24, 4, 80


def features(seed: int) -> np.ndarray:
    """The sample features of test model ``seed``: its own direction plus noise."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((SAMPLES, DIM)) * 0.3 + rng.standard_normal(DIM)


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in {"MODELVERSE_STORE", PAUSE_BEFORE_PACK_ENV}}
    return {**base, **extra}


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([MODELVERSE, *args], capture_output=True, text=True, env=env(), timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"modelverse {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def add(store: Path, tmp: Path, seed: int, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    path = tmp / f"features-{seed}.npy"
    np.save(path, features(seed))
    return run("add", "--store", str(store), "--id", f"model-{seed}", "--features", str(path), "--rank", str(RANK),
               *extra, check=check)


def search_ids(store: Path, query: Path, *extra: str) -> tuple[list[dict], str]:
    result = run("search", "--store", str(store), "--vector", str(query), "--json", "--top-k", "20", *extra)
    return json.loads(result.stdout), result.stderr


def reference_hits(seeds: list[int], query: np.ndarray, method: Method = Method.FIRST_MOMENT) -> list[tuple[str, float]]:
    """The exact NumPy reference search over the models made from ``features(seed)``."""
    ids = [f"model-{s}" for s in seeds]
    stats = [stats_from_features(features(s), rank=RANK) for s in seeds]
    engine = ExactSearch(Collection.from_stats(ids, stats), PAPER_SCORING)
    return [(h.id, h.score) for h in engine.search([QueryPart(query)], method, 20)]


def assert_matches_reference(hits: list[dict], expected: list[tuple[str, float]]) -> None:
    assert [h["id"] for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h["score"] for h in hits], [s for _, s in expected], rtol=1e-4, atol=1e-5)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Four models, written in this process as `modelverse add --rank 4` writes them."""
    root = tmp_path / "store"
    created = DirectoryStore.create(root, StoreConfig(DIM, RANK))
    for seed in range(4):
        created.put(ModelMetadata(f"model-{seed}"), stats_from_features(features(seed), rank=RANK))
    return root


def query_file(tmp: Path, vector: np.ndarray) -> Path:
    path = tmp / "query.npy"
    np.save(path, vector)
    return path


# -- kill -9 between meta.json and pack.json ------------------------------------------------------


def kill_add_before_pack(store: Path, tmp: Path, seed: int) -> None:
    """Start `modelverse add`, let it write the model's files, kill -9 it before the pack."""
    np.save(tmp / f"features-{seed}.npy", features(seed))
    marker = tmp / f"paused-{seed}"
    process = subprocess.Popen(
        [MODELVERSE, "add", "--store", str(store), "--id", f"model-{seed}", "--features", str(tmp / f"features-{seed}.npy")],
        env=env(**{PAUSE_BEFORE_PACK_ENV: str(marker)}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert process.poll() is None, "the writer ended before reaching the pause"
            assert time.monotonic() < deadline, "the writer never reached the pause"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert (store / "models" / model_dir_name(f"model-{seed}") / "meta.json").exists()


@pytest.mark.slow
def test_a_zombie_is_absent_for_info_list_and_search_and_add_writes_it_again(store: Path, tmp_path: Path) -> None:
    kill_add_before_pack(store, tmp_path, 7)
    info = run("info", "--store", str(store), "model-7", check=False)
    assert info.returncode == 1 and "interrupted add" in info.stderr and "verify --repair" in info.stderr
    listed = json.loads(run("list", "--store", str(store), "--json").stdout)
    assert "model-7" not in [m["id"] for m in listed] and len(listed) == 4
    query = query_file(tmp_path, features(7).mean(axis=0))
    hits, _ = search_ids(store, query)
    assert "model-7" not in [h["id"] for h in hits]
    # add agrees with them: the model is not in the store, so adding it needs no --replace.
    add(store, tmp_path, 7)
    hits, _ = search_ids(store, query)
    assert_matches_reference(hits, reference_hits([0, 1, 2, 3, 7], features(7).mean(axis=0)))
    assert run("info", "--store", str(store), "model-7", "--json").returncode == 0
    assert verify_store(store).findings == []


@pytest.mark.slow
def test_verify_finds_a_zombie_and_repair_completes_the_interrupted_add(store: Path, tmp_path: Path) -> None:
    kill_add_before_pack(store, tmp_path, 9)
    found = run("verify", "--store", str(store), "--json", check=False)
    assert found.returncode == 1
    assert [f["kind"] for f in json.loads(found.stdout)["findings"]] == ["zombie"]
    assert [f.kind for f in verify_store(store, deep=False).findings] == ["zombie"]  # the cheap part sees it too
    repaired = verify_store(store, repair=True)
    assert repaired.ok and repaired.models == 5
    hits, _ = search_ids(store, query_file(tmp_path, features(9).mean(axis=0)))
    assert_matches_reference(hits, reference_hits([0, 1, 2, 3, 9], features(9).mean(axis=0)))
    assert verify_store(store).findings == []


@pytest.mark.slow
def test_a_killed_replace_serves_the_old_version_until_repair_brings_the_new_one(store: Path, tmp_path: Path) -> None:
    """kill -9 of `add --replace` after meta.json: the pack still serves version 1 (verify calls
    the row stale); the leftover version is completed by repair."""
    np.save(tmp_path / "features-100.npy", features(100))
    marker = tmp_path / "paused"
    process = subprocess.Popen(
        [MODELVERSE, "add", "--store", str(store), "--id", "model-2", "--replace", "--features", str(tmp_path / "features-100.npy")],
        env=env(**{PAUSE_BEFORE_PACK_ENV: str(marker)}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    while not marker.exists():
        assert process.poll() is None
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=30)
    report = verify_store(store)
    assert sorted(f.kind for f in report.findings) == ["orphan-file", "row-stale"]
    assert verify_store(store, repair=True).ok
    model_dir = store / "models" / model_dir_name("model-2")
    assert sorted(p.name for p in model_dir.glob("stats-*")) == ["stats-v2.npz"]
    q = features(100).mean(axis=0)
    stats = [stats_from_features(features(s), rank=RANK) for s in (0, 1, 3)] + [stats_from_features(features(100), rank=RANK)]
    expected = ExactSearch(Collection.from_stats(["model-0", "model-1", "model-3", "model-2"], stats), PAPER_SCORING).search([QueryPart(q)], Method.FIRST_MOMENT, 20)
    hits, _ = search_ids(store, query_file(tmp_path, q))
    assert [h["id"] for h in hits] == [h.id for h in expected]


# -- damaged files -------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_overwritten_row_of_means_is_never_ranked_and_repair_restores_it(store: Path, tmp_path: Path) -> None:
    pack = DirectoryStore.open(store).pack()
    victim_row = pack.live_rows()["model-0"]
    query = features(3).mean(axis=0)
    means = store / "pack" / f"g{pack.generation:06d}" / "means.bin"
    column = np.memmap(means, dtype="<f4", mode="r+", shape=(pack.rows, DIM))
    column[victim_row] = query * 10  # exactly the query's direction: it would score 1.0, first
    column.flush()
    del column, pack
    hits, stderr = search_ids(store, query_file(tmp_path, query))
    assert "model-0" not in [h["id"] for h in hits] and "checksum" in stderr
    assert_matches_reference(hits, reference_hits([1, 2, 3], query))
    report = verify_store(store)
    assert [(f.kind, f.path) for f in report.findings] == [("row-checksum", f"models/{model_dir_name('model-0')}")]
    assert verify_store(store, repair=True).ok
    hits, stderr = search_ids(store, query_file(tmp_path, query))
    assert stderr == ""
    assert_matches_reference(hits, reference_hits([0, 1, 2, 3], query))


@pytest.mark.slow
def test_a_corrupt_pack_json_leaves_verify_repair_and_repack_working(store: Path, tmp_path: Path) -> None:
    (store / "pack" / "pack.json").write_text('{"format_version": 1, "generation": ')
    listed = run("list", "--store", str(store), check=False)
    assert listed.returncode == 1 and "pack.json" in listed.stderr and "verify --repair" in listed.stderr
    assert "Traceback" not in listed.stderr
    assert run("repack", "--store", str(store)).stdout.startswith("repacked 4 model(s)")
    (store / "pack" / "pack.json").write_text("[]")
    report = json.loads(run("verify", "--store", str(store), "--repair", "--json").stdout)
    assert [f["kind"] for f in report["findings"]] == ["pack-corrupt"] and report["models"] == 4
    query = features(1).mean(axis=0)
    hits, _ = search_ids(store, query_file(tmp_path, query))
    assert_matches_reference(hits, reference_hits([0, 1, 2, 3], query))


@pytest.mark.slow
def test_a_missing_pack_is_reported_as_missing_not_as_zero_models(store: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(store / "pack")
    for command in ("list", "search"):
        args = ["--vector", str(query_file(tmp_path, features(0).mean(axis=0)))] if command == "search" else []
        result = run(command, "--store", str(store), *args, check=False)
        assert result.returncode == 1 and "pack is missing" in result.stderr, result.stderr
    report = verify_store(store, repair=True)
    assert [f.kind for f in report.findings] == ["pack-missing"] and report.models == 4
    assert len(json.loads(run("list", "--store", str(store), "--json").stdout)) == 4


@pytest.mark.slow
def test_a_corrupt_model_file_is_quarantined_and_the_rest_keeps_working(store: Path, tmp_path: Path) -> None:
    model_dir = store / "models" / model_dir_name("model-1")
    stats_file = model_dir / "stats-v1.npz"
    stats_file.write_bytes(stats_file.read_bytes()[:300])
    query = query_file(tmp_path, features(2).mean(axis=0))
    # The default form reads each model's full covariance from its file: the damaged one is left out.
    hits, stderr = search_ids(store, query, "--method", "gaussian")
    assert "model-1" not in [h["id"] for h in hits] and len(hits) == 3 and "model-1" in stderr
    like = json.loads(run("search", "--store", str(store), "--like", "model-0", "--json").stdout)
    assert [h["id"] for h in like] and "model-1" not in [h["id"] for h in like]
    repack = run("repack", "--store", str(store))
    assert "repacked 3 model(s)" in repack.stdout and "model-1" in repack.stderr
    report = verify_store(store, repair=True)
    assert [f.kind for f in report.findings] == ["corrupt-model"] and report.ok
    assert not model_dir.exists() and list((store / "quarantine").glob(f"{model_dir.name}-*/stats-v1.npz"))
    assert verify_store(store).findings == []
    first = features(2).mean(axis=0)
    hits, stderr = search_ids(store, query_file(tmp_path, first))
    assert stderr == ""
    assert_matches_reference(hits, reference_hits([0, 2, 3], first))


def test_a_corrupt_model_record_fails_its_checksum(store: Path) -> None:
    meta = store / "models" / model_dir_name("model-3") / "meta.json"
    meta.write_text(meta.read_text().replace('"tags": []', '"tags": ["x"]'))  # valid JSON, wrong content
    report = verify_store(store)
    assert [f.kind for f in report.findings] == ["corrupt-model"] and "checksum" in report.findings[0].detail


def test_temporary_files_orphans_and_leftovers_of_killed_writes_are_cleaned(store: Path) -> None:
    model_dir = store / "models" / model_dir_name("model-0")
    # What atomic_write_bytes leaves when killed mid-write: its own temporary file naming.
    for directory, name in ((model_dir, "meta.json"), (store / "pack", "pack.json"), (store, "store.json")):
        fd, _ = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        os.write(fd, b"half")
        os.close(fd)
    (store / "models" / "half-written-0123456789abcdef").mkdir()  # an add killed before meta.json
    (store / "models" / "half-written-0123456789abcdef" / "stats-v1.npz").write_bytes(b"x")
    (store / "models" / ".removed-gone-0123456789abcdef-1234abcd").mkdir()
    kinds = sorted(f.kind for f in verify_store(store).findings)
    assert kinds == ["orphan-dir", "removed-leftover", "temporary", "temporary", "temporary"]
    assert sorted(f.kind for f in verify_store(store, deep=False).findings) == [
        "orphan-dir", "removed-leftover", "temporary", "temporary"]  # the cheap check lists no model directory
    assert verify_store(store, repair=True).ok
    assert verify_store(store).findings == []
    assert not list(store.rglob("*.tmp")) and len(DirectoryStore.open(store)) == 4


@pytest.mark.slow
def test_a_store_from_before_checksums_opens_and_gets_them_on_repair(store: Path, tmp_path: Path) -> None:
    manifest_path = store / "pack" / "pack.json"
    manifest = json.loads(manifest_path.read_text())
    manifest.pop("checksums")
    manifest_path.write_text(json.dumps(manifest))
    (store / "pack" / f"g{manifest['generation']:06d}" / "checksums.bin").unlink()
    query = features(0).mean(axis=0)
    hits, _ = search_ids(store, query_file(tmp_path, query))
    assert_matches_reference(hits, reference_hits([0, 1, 2, 3], query))
    add(store, tmp_path, 5)  # appending to an unchecked generation keeps it consistent
    assert [f.kind for f in verify_store(store).findings] == ["pack-unchecked"]
    assert verify_store(store, repair=True).ok
    assert DirectoryStore.open(store).pack().checksums is not None
    assert verify_store(store).findings == []


# -- creation under the lock ----------------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_creating_one_store_with_different_encoders_one_wins(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", features(0))
    for attempt in range(3):
        root = tmp_path / f"store-{attempt}"
        processes = [
            subprocess.Popen([MODELVERSE, "add", "--store", str(root), "--id", f"by-{name}", "--features",
                              str(tmp_path / "f.npy"), "--encoder", name],
                             env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("encoder-a", "encoder-b")
        ]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
        for p in processes:
            p.stdout.close()
            p.stderr.close()
        codes = sorted(code for code, _ in results)
        assert codes == [0, 1], results
        loser = next(err for code, err in results if code == 1)
        assert "encoder" in loser and "Traceback" not in loser
        winner = DirectoryStore.open(root)
        assert winner.ids() == [f"by-{winner.config.encoder}"]


# -- snapshot and restore while a writer goes on ----------------------------------------------------

WRITER = """
import json, sys, time
from pathlib import Path
import numpy as np
from modelverse.core.stats import stats_from_features
from modelverse.store.directory import DirectoryStore
from modelverse.store.metadata import ModelMetadata

root, tmp, rank, plan = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
store = DirectoryStore.open(root)
for op, seed in plan:
    if op == "add":
        stats = stats_from_features(np.load(tmp / f"features-{seed}.npy"), rank=rank)
        store.put(ModelMetadata(f"model-{seed}"), stats)
    else:
        store.remove(f"model-{seed}")
    time.sleep(0.03)
"""


@pytest.mark.slow
def test_a_snapshot_taken_while_a_writer_adds_and_removes_restores_a_consistent_store(store: Path, tmp_path: Path) -> None:
    plan: list[tuple[str, int]] = []
    for seed in range(10, 70):
        plan.append(("add", seed))
        if seed % 7 == 0:
            plan.append(("remove", seed - 3))
    for _, seed in plan:
        np.save(tmp_path / f"features-{seed}.npy", features(seed))
    # Every state the store passes through: the snapshot must be exactly one of them.
    states, current = [], {f"model-{s}" for s in range(4)}
    states.append(frozenset(current))
    for op, seed in plan:
        (current.add if op == "add" else current.discard)(f"model-{seed}")
        states.append(frozenset(current))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(tmp_path), str(RANK), json.dumps(plan)],
                              env=env(), stderr=subprocess.PIPE, text=True)
    try:
        live = DirectoryStore.open(store)
        deadline = time.monotonic() + 60
        while len(live) < 10:
            assert writer.poll() is None and time.monotonic() < deadline, writer.stderr.read() if writer.stderr else ""
            time.sleep(0.02)
        taken = json.loads(run("snapshot", "--store", str(store), "--out", str(tmp_path / "snap"), "--json").stdout)
        still_writing = writer.poll() is None
    finally:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
        writer.stderr.close()
    assert still_writing, "the writer ended before the snapshot: it did not run during it"
    assert len(DirectoryStore.open(store)) == len(states[-1]) > taken["models"]
    restored = tmp_path / "restored"
    assert json.loads(run("restore", "--snapshot", str(tmp_path / "snap"), "--store", str(restored), "--json").stdout)["restored"] == taken["models"]
    report = verify_store(restored)
    assert report.findings == [] and report.models == taken["models"]
    ids = frozenset(DirectoryStore.open(restored).ids())
    assert ids in states
    seeds = sorted(int(i.removeprefix("model-")) for i in ids)
    for probe in (seeds[0], seeds[len(seeds) // 2], seeds[-1]):
        query = features(probe).mean(axis=0) + 0.1
        hits, stderr = search_ids(restored, query_file(tmp_path, query))
        assert stderr == ""
        assert_matches_reference(hits, reference_hits(seeds, query))
    # The live store was not disturbed by the snapshot, nor the snapshot by the writes after it.
    assert verify_store(store).findings == []
    assert verify_store(tmp_path / "snap").findings == []


@pytest.mark.slow
def test_restore_refuses_a_damaged_snapshot_and_an_existing_store(store: Path, tmp_path: Path) -> None:
    run("snapshot", "--store", str(store), "--out", str(tmp_path / "snap"))
    existing = run("restore", "--snapshot", str(tmp_path / "snap"), "--store", str(store), check=False)
    assert existing.returncode == 1 and "not empty" in existing.stderr
    stats_file = next((tmp_path / "snap" / "models").glob("*/stats-v1.npz"))
    stats_file.unlink()
    stats_file.write_bytes(b"damaged")  # a new file: the live store's linked one stays intact
    damaged = run("restore", "--snapshot", str(tmp_path / "snap"), "--store", str(tmp_path / "new"), check=False)
    assert damaged.returncode == 1 and "corrupt-model" in damaged.stderr and not (tmp_path / "new").exists()
    assert verify_store(store).findings == []


@pytest.mark.slow
def test_the_admin_reports_what_a_crash_left_when_it_starts(store: Path, tmp_path: Path) -> None:
    kill_add_before_pack(store, tmp_path, 8)
    fd, _ = tempfile.mkstemp(dir=store / "pack", prefix=".pack.json.", suffix=".tmp")
    os.close(fd)
    port_file = tmp_path / "admin.port"
    admin = subprocess.Popen(
        [sys.executable, "-m", "modelverse.serving.admin", "--store", str(store), "--shard", "127.0.0.1:1",
         "--insecure-no-auth", "--port-file", str(port_file)],
        env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not port_file.exists():
            assert admin.poll() is None, admin.stdout.read()
            assert time.monotonic() < deadline, "the admin never started"
            time.sleep(0.1)
    finally:
        admin.terminate()
        output = admin.communicate(timeout=30)[0]
    assert "store check: zombie" in output and "store check: temporary" in output and "verify" in output
    assert sorted(f.kind for f in verify_store(store).findings) == ["temporary", "zombie"]  # reported, not repaired


def test_a_bulk_written_pack_without_model_files_is_never_emptied_by_repair(tmp_path: Path) -> None:
    import shutil

    from modelverse.store.pack import PackRow, PackWriter

    store = DirectoryStore.create(tmp_path / "bulk", StoreConfig(DIM, RANK))
    rows = [PackRow(f"bulk-{i}", stats_from_features(features(i), rank=RANK), 1) for i in range(3)]
    PackWriter(store.root / "pack", DIM, RANK, store.config.eps).rewrite(
        [([r.model_id for r in rows], PackWriter._encode(rows))])
    shutil.rmtree(store.root / "models")
    report = verify_store(store.root, repair=True)
    assert [f.kind for f in report.findings] == ["pack-only"] and not report.ok and report.models == 3
    assert DirectoryStore.open(store.root).ids() == ["bulk-0", "bulk-1", "bulk-2"]


@pytest.mark.slow
def test_a_damaged_second_order_row_is_left_out_of_second_order_searches_only(store: Path, tmp_path: Path) -> None:
    pack = DirectoryStore.open(store).pack()
    row = pack.live_rows()["model-0"]
    factor = store / "pack" / f"g{pack.generation:06d}" / "factor.bin"
    column = np.memmap(factor, dtype="<f2", mode="r+", shape=(pack.rows, DIM, RANK))
    column[row] = 0  # a zeroed covariance factor: a Gaussian score of garbage
    column.flush()
    del column, pack
    query = query_file(tmp_path, features(0).mean(axis=0))
    gaussian, stderr = search_ids(store, query, "--method", "gaussian", "--second-order", "compressed")
    assert "model-0" not in [h["id"] for h in gaussian] and len(gaussian) == 3 and "model-0" in stderr
    first, stderr = search_ids(store, query)  # reads means and scalars only: their rows are whole
    assert first[0]["id"] == "model-0" and stderr == ""
    assert [f.kind for f in verify_store(store).findings] == ["row-checksum"]
