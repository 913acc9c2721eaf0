"""One first stage per method (serving.first_stage): each method's query vector, index plan,
index directory, nprobe and default candidates, and, on a real shard over a small synthetic
store, the same ranking as the exact reference search (core.reference.ExactSearch).

The query vectors are checked against formulas written here in float64 NumPy, not against the
functions the first stages call.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from serving_fixtures import build_store

from modelverse.core.lift import DEFAULT_ALPHA, DEFAULT_COLUMNS, LiftSpec
from modelverse.core.params import ScoringParams
from modelverse.core.reference import ExactSearch
from modelverse.core.types import Method, QueryPart
from modelverse.serving.first_stage import (
    SECOND_ORDER_PROBE_FACTOR,
    FirstMomentRecall,
    LiftedRecall,
    default_candidates,
    default_candidates_text,
    first_stages,
)
from modelverse.serving.index_choice import IndexPlan, choose_index, choose_lifted_index
from modelverse.serving.rerank import QueryModelStats
from modelverse.serving.shard.state import ShardConfig, ShardState

GiB = 1024**3
PARAMS = ScoringParams(tau=30.0, eps=2e-3)
D = 64


def settings(**changes: object) -> ShardConfig:
    return replace(ShardConfig(store=Path("store"), shard=0, shards=1, index_dir=Path("index")), **changes)


def test_each_method_gets_its_kind_of_first_stage() -> None:
    stages = first_stages(settings(), PARAMS)
    assert set(stages) == set(Method)
    assert isinstance(stages[Method.MGF], LiftedRecall)  # the default: MGF lifted, the rest on the first moments
    for method in (Method.FIRST_MOMENT, Method.GAUSSIAN, Method.FRECHET):
        assert isinstance(stages[method], FirstMomentRecall) and stages[method].lift is None
        assert stages[method].method is method
    assert stages[Method.MGF].lift == LiftSpec("mgf", columns=DEFAULT_COLUMNS, alpha=DEFAULT_ALPHA, tau=PARAMS.tau)

    both = first_stages(settings(lifted=("mgf", "gaussian"), lift_columns=1, lift_alpha=0.2), PARAMS)
    assert both[Method.MGF].lift == LiftSpec("mgf", columns=1, alpha=0.2, tau=PARAMS.tau)
    assert both[Method.GAUSSIAN].lift == LiftSpec("gaussian")  # columns, alpha and tau shape only MGF's vectors
    assert both[Method.GAUSSIAN].method is Method.GAUSSIAN

    none = first_stages(settings(lifted=()), PARAMS)
    assert all(isinstance(stage, FirstMomentRecall) for stage in none.values())
    with pytest.raises(ValueError, match="no lifted first stage"):
        first_stages(settings(lifted=("first_moment",)), PARAMS)


def test_query_vectors() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(D), rng.standard_normal(D)
    parts = [QueryPart(a, 2.0), QueryPart(b, 0.5)]
    combined = 2.0 * a / np.linalg.norm(a) + 0.5 * b / np.linalg.norm(b)
    stages = first_stages(settings(lifted=("mgf", "gaussian")), PARAMS)

    first = first_stages(settings(), PARAMS)[Method.FIRST_MOMENT].query(D, parts, None)
    assert first.dtype == np.float32 and first.shape == (D,)
    np.testing.assert_allclose(first, combined / np.linalg.norm(combined), rtol=1e-6)

    mean = rng.standard_normal(D)
    model = QueryModelStats.from_arrays("m", mean, np.ones(D), np.zeros((D, 2)), 1.0, PARAMS.eps)
    frechet = stages[Method.FRECHET].query(D, None, model)
    np.testing.assert_allclose(frechet, mean / np.linalg.norm(mean), rtol=1e-6)

    for method in (Method.MGF, Method.GAUSSIAN):  # [sum_i w_i q_i / |q_i|, sum_i w_i], zeros to a multiple of 16
        lifted = stages[method].query(D, parts, None)
        assert lifted.dtype == np.float32 and lifted.shape == (80,)
        np.testing.assert_allclose(lifted[:D], combined, rtol=1e-6)
        assert lifted[D] == pytest.approx(2.5) and not lifted[D + 1:].any()
        with pytest.raises(ValueError, match="needs query vectors"):
            stages[method].query(D, None, model)
    with pytest.raises(ValueError, match="at least one part"):
        stages[Method.FIRST_MOMENT].query(D, [], None)
    with pytest.raises(ValueError, match="all zeros"):
        stages[Method.FIRST_MOMENT].query(D, [QueryPart(a), QueryPart(-a)], None)


def test_index_plans_and_directories() -> None:
    config = settings(exhaustive_threshold=500, memory_budget_bytes=GiB, lifted=("mgf", "gaussian"))
    stages = first_stages(config, PARAMS)
    first = stages[Method.FIRST_MOMENT].plan(2500, 32)
    assert first == choose_index(2500, 32, GiB, exhaustive_threshold=500, compact=True)
    assert first.factory.startswith("IVF") and first.factory.endswith("SQ8") and not first.exhaustive
    assert stages[Method.FRECHET].plan(2500, 32) == first  # the unlifted methods share the first-moment index
    mgf = stages[Method.MGF].plan(2500, 32)  # 4 vectors a model, [q, 1] padded to 48
    assert mgf == choose_lifted_index(10_000, 48, GiB, exhaustive_threshold=500)
    assert mgf.factory == "SQ8" and mgf.exhaustive
    assert stages[Method.MGF].plan(100, 32).factory == "Flat"
    root = Path("/indexes/shard-0")
    assert stages[Method.FIRST_MOMENT].index_dir(root) == root
    assert stages[Method.MGF].index_dir(root) == root / "lifted-mgf"
    assert stages[Method.GAUSSIAN].index_dir(root) == root / "lifted-gaussian"
    assert stages[Method.FRECHET].index_dim(64) == 64 and stages[Method.MGF].index_dim(64) == 80


def test_nprobe_per_method() -> None:
    ivf = IndexPlan("IVF256,SQ8", False, 256, 64, 40, "")
    flat = IndexPlan("Flat", True, 0, 0, 256, "")
    stages = first_stages(settings(), PARAMS)
    assert stages[Method.FIRST_MOMENT].nprobe(ivf) is None  # its own score: the plan's lists
    for method in (Method.GAUSSIAN, Method.FRECHET):  # a score the cosine only approximates
        assert stages[method].nprobe(ivf) == 64 * SECOND_ORDER_PROBE_FACTOR
        assert stages[method].nprobe(flat) is None
    assert stages[Method.MGF].nprobe(ivf) is None
    unlifted = first_stages(settings(lifted=(), second_order_probe_factor=2), PARAMS)
    assert unlifted[Method.MGF].nprobe(ivf) == 128

    # A saved index keeps its plan; the operator's nprobe (per kind of index) wins over it.
    tuned = first_stages(settings(nprobe=100, lifted_nprobe=7), PARAMS)
    assert tuned[Method.FIRST_MOMENT].loaded_plan(ivf).nprobe == 100
    assert tuned[Method.GAUSSIAN].loaded_plan(ivf).nprobe == 100
    assert tuned[Method.MGF].loaded_plan(ivf).nprobe == 7
    assert tuned[Method.FIRST_MOMENT].loaded_plan(flat) == flat
    assert stages[Method.FIRST_MOMENT].loaded_plan(ivf) == ivf


def test_default_candidates_per_method() -> None:
    expected = {Method.FIRST_MOMENT: 20, Method.MGF: 3200, Method.GAUSSIAN: 200, Method.FRECHET: 200}
    for config in (settings(), settings(lifted=("mgf", "gaussian")), settings(lifted=())):
        stages = first_stages(config, PARAMS)
        for method, count in expected.items():
            assert default_candidates(method) == stages[method].default_candidates == count
    assert default_candidates_text() == "3200 for mgf, 20 for first_moment, 200 for the other methods"


@pytest.mark.parametrize("lifted", [("mgf",), ("mgf", "gaussian"), ()])
def test_every_method_ranks_as_the_exact_search_when_the_candidates_cover_the_shard(tmp_path, lifted) -> None:
    """A first-moment inverted file (every list probed) and the lifted indexes: with every model
    a candidate the first stage decides nothing, so the shard's ranking is the reference's."""
    store, small = build_store(tmp_path / "store", count=60)
    state = ShardState(ShardConfig(store=tmp_path / "store", shard=0, shards=1, index_dir=tmp_path / "index",
                                   exhaustive_threshold=10, nprobe=1024, lifted=lifted))
    assert not state.index.plan.exhaustive and set(state.lifted) == {Method(m) for m in lifted}
    oracle = ExactSearch(store.collection(), store.config.scoring)
    for i in (4, 17):
        parts = [QueryPart(small.features[i][0]), QueryPart(small.features[i + 1][1], 0.5)]
        for method in (Method.FIRST_MOMENT, Method.MGF, Method.GAUSSIAN):
            found = state.recall(method, 100, parts=parts)
            assert len(found) == 60
            assert found.best(10) == [h.id for h in oracle.search(parts, method, 10)], method
        model_id = small.ids[i]
        similar = state.recall(Method.FRECHET, 100, query_model=state.query_model(model_id))
        assert model_id not in similar.ids and len(similar) == 59
        assert similar.best(10) == [h.id for h in oracle.similar(model_id, 10)]
