"""How well could a first stage recall the exact top 10 of a second-order method?

    .venv/bin/python tools/bench_first_stage.py --store /tmp/scale-100k --queries 20 \
        --out docs/benchmarks/serving-100k-first-stage.json

Exact scans over the whole collection (no FAISS, no shards), so it isolates the choice of
first-stage score from index approximation. For each query (a synthetic image feature, as in
tools/bench_serving.py) it reports the fraction of the exhaustive top 10 found among the top K
of:

- ``cosine``: q . mu / ||mu||, what the shards index today;
- ``lifted``: a per-method inner product in an augmented space, a candidate first stage:
  GAUSSIAN  q . mu / s^2 - (1 + ||mu||^2) / (2 s^2) - 1/2 logdet   (s^2 = mean(D) + eps:
            the density with an isotropic covariance, linear in q plus a per-model constant);
  MGF       tau q . mu + tau^2/2 (D . q^2) + tau^2/2 tr(W W^T) / d  (the |W^T q|^2 term replaced
            by its mean over directions), an inner product of [q, q^2, 1];
- ``tangent t=1``, ``tangent t=2`` (MGF): the shards' lifted first stage (``core.lift``, ``serving.first_stage``):
  the t largest columns of W by the tangent bound at alpha |w_k| (alpha = core.lift.DEFAULT_ALPHA;
  the figures in core/lift.py were measured at 0.1), the other
  columns and the diagonal by their means. Computed here in closed form,
  tau q.mu + tau^2/2 (mean(D) + sum_k>t |w_k|^2 / d + sum_k<=t (2 s_k |w_k . q| - s_k^2)), which
  is the maximum over the 2^t sign-pattern vectors the index holds
  (tests/test_mgf_first_stage.py checks the two agree).
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from modelverse.bench.queries import make_queries  # noqa: E402
from modelverse.core.reference import ExactSearch  # noqa: E402
from modelverse.core.scores import normalized_means  # noqa: E402
from modelverse.core.types import Method, QueryPart  # noqa: E402
from modelverse.core.lift import DEFAULT_ALPHA  # noqa: E402
from modelverse.store.directory import DirectoryStore  # noqa: E402

GRID = (100, 200, 400, 800, 1600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True, type=Path)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    store = DirectoryStore.open(args.store)
    collection = store.collection()
    means = np.asarray(collection.means, dtype=np.float64)
    c = collection.compressed
    diag = np.asarray(c.diag, dtype=np.float64)
    factor_energy = np.concatenate([
        (np.asarray(c.factor[s:s + 8192], dtype=np.float32) ** 2).sum(axis=(1, 2)) for s in range(0, len(collection), 8192)])
    s2 = diag.mean(axis=1) + c.eps
    squared_norms = (means**2).sum(axis=1)
    dim = means.shape[1]
    tau = store.config.tau
    queries, _ = make_queries(collection, args.queries, seed=1)
    oracle = ExactSearch(collection, store.config.scoring)
    cosine_keys = normalized_means(means)
    # The two largest columns of every W (squared norms, and the columns as float32) for the
    # tangent first stage; columns are stored largest first, re-sorted here to be sure.
    top_columns, top_energy = [], []
    for s in range(0, len(collection), 8192):
        w = np.asarray(c.factor[s:s + 8192], dtype=np.float32)
        energy = (w.astype(np.float64) ** 2).sum(axis=1)
        order = np.argsort(-energy, axis=1, kind="stable")[:, :2]
        top_columns.append(np.take_along_axis(w, order[:, None, :], axis=2))
        top_energy.append(np.take_along_axis(energy, order, axis=1))
    top_w, top_e = np.concatenate(top_columns), np.concatenate(top_energy)
    result: dict = {"models": len(collection), "queries": args.queries}
    for method in (Method.GAUSSIAN, Method.MGF):
        names = ["cosine", "lifted"] + (["tangent t=1", "tangent t=2"] if method is Method.MGF else [])
        found: dict[str, dict[int, list[float]]] = {n: {} for n in names}
        for q in queries.astype(np.float64):
            truth = {h.id for h in oracle.search([QueryPart(q)], method, 10)}
            if method is Method.GAUSSIAN:
                lifted = (means @ q) / s2 - (1 + squared_norms) / (2 * s2) - 0.5 * np.asarray(c.logdet)
            else:
                lifted = tau * (means @ q) + 0.5 * tau**2 * (diag @ (q * q) + factor_energy / dim)
            candidates = [("cosine", cosine_keys @ q), ("lifted", lifted)]
            if method is Method.MGF:
                x = np.abs(np.einsum("mdt,d->mt", top_w, q.astype(np.float32))).astype(np.float64)
                for t in (1, 2):
                    tangent_s = DEFAULT_ALPHA * np.sqrt(top_e[:, :t])
                    rest = (factor_energy - top_e[:, :t].sum(axis=1)) / dim
                    second = diag.mean(axis=1) + rest + (2 * tangent_s * x[:, :t] - tangent_s**2).sum(axis=1)
                    candidates.append((f"tangent t={t}", tau * (means @ q) + 0.5 * tau**2 * second))
            for name, score in candidates:
                top = np.argpartition(-score, GRID[-1])[: GRID[-1]]
                top = top[np.argsort(-score[top])]
                for k in GRID:
                    found[name].setdefault(k, []).append(len(truth & set(collection.ids[top[:k]])) / 10)
        result[method.value] = {n: {k: round(float(np.mean(v)), 3) for k, v in d.items()} for n, d in found.items()}
        print(method.value, json.dumps(result[method.value]))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
