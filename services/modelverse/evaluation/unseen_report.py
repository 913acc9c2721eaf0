"""The unseen-style evaluation run end to end, and its tables (tools/bench_unseen.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from modelverse.core.collection import Collection
from modelverse.core.confidence import (
    BackgroundModel,
    ScoreReference,
    calibrated_confidence,
    logsumexp,
    mixture_evidence,
    z_scores,
)
from modelverse.core.fusion import (
    HYBRID_RULE,
    HYBRID_WEIGHTS,
    METADATA_RRF_K,
    METADATA_RULE,
    METADATA_WEIGHTS,
    Fusion,
    Weights,
    hybrid_ranking,
    metadata_ranking,
)
from modelverse.core.params import ScoringParams
from modelverse.core.reference import ExactSearch
from modelverse.core.scores import first_moment
from modelverse.core.sentence_encoder import sentence_encoder
from modelverse.core.text_index import MetadataDocument
from modelverse.core.types import Method, QueryPart
from modelverse.encoders.base import Encoder
from modelverse.evaluation.metadata_baseline import MetadataSearch
from modelverse.evaluation.unseen import (
    ScoredQuery,
    auc,
    content_scores,
    encode_queries,
    ranking_of,
    top_k_rates,
)
from modelverse.evaluation.text_fusion import (
    Rule,
    TextScores,
    choose,
    cross_validated,
    hybrid_rules,
    metadata_rules,
    rates,
    text_scores,
)
from modelverse.evaluation.unseen_queries import UnseenQuery
from modelverse.query.sketches import prepare_sketch
from modelverse.zoo.manifest import ZooEntry

CONFIDENCE_MEASURES = ("raw score", "cosine", "z-score", "background", "mixture (served)", "mixture, text ranked hybrid")
SERVED = "mixture (served)"
# The mixture evidence of a text query's best top-10 hit when its hits are ranked by HYBRID (what
# the gateway shows a text query now) rather than by content alone
HYBRID_SERVED = "mixture, text ranked hybrid"
TOP_HITS = 10
# what HYBRID served before the dense match (content and BM25, text weight 0.6): a row for comparison
OLD_TEXT_WEIGHT = 0.6
OLD_HYBRID = Rule(Fusion.WEIGHTED, Weights(1 - OLD_TEXT_WEIGHT, OLD_TEXT_WEIGHT, 0.0))

Row = dict[str, object]


def _confidences(search: ExactSearch, reference: ExactSearch, background: BackgroundModel, method: Method,
                 vector: np.ndarray, values: np.ndarray, params: ScoringParams) -> dict[str, float]:
    top = float(values.max())
    ref = reference.score_parts([QueryPart(vector)], method)
    # the served confidence of the query: the highest of its top-10 hits' (a min_confidence
    # filter leaves the query without hits exactly when this is below it)
    shown = np.argsort(-values, kind="stable")[:TOP_HITS]
    mgf = search.score_parts([QueryPart(vector)], Method.MGF)
    ref_mgf = reference.score_parts([QueryPart(vector)], Method.MGF)
    served = float(mixture_evidence(mgf[shown], logsumexp(ref_mgf), len(ref_mgf)).max())
    return {
        "mixture (served)": served,
        "raw score": top,
        "cosine": float(first_moment(vector, search.collection.means).max()),
        "z-score": float(z_scores(np.array([top]), ref)[0]),
        "background": top - background.score(vector, method, params),
    }


def score_queries(collection: Collection, queries: Sequence[UnseenQuery], vectors: Sequence[np.ndarray],
                  params: ScoringParams) -> list[ScoredQuery]:
    search = ExactSearch(collection, params)
    reference = ExactSearch(ScoreReference.of(collection).reference, params)
    background = BackgroundModel.of(collection, params.eps)
    out = []
    for query, vector in zip(queries, vectors):
        method, values = content_scores(search, query, vector)
        out.append(ScoredQuery(query, method, ranking_of(collection.ids, values),
                               _confidences(search, reference, background, method, vector, values, params), values,
                               vector))
    return out


def _query_sets(scored: Sequence[ScoredQuery]) -> list[tuple[str, list[ScoredQuery]]]:
    sets: list[tuple[str, list[ScoredQuery]]] = [
        ("text: paraphrases", [s for s in scored if s.query.style == "paraphrase"]),
        ("sketch: all drawings", [s for s in scored if s.query.modality == "sketch" and s.query.has_match]),
    ]
    styles = sorted({s.query.style for s in scored if s.query.modality == "sketch" and s.query.has_match})
    sets += [(f"sketch: {style}", [s for s in scored if s.query.modality == "sketch" and s.query.style == style])
             for style in styles]
    sets += [
        ("image: faces (LFW photos the encoder held out)", [s for s in scored if s.query.style == "photo"]),
        ("image: product photos (dark on white, small)", [s for s in scored if s.query.style == "product-photo"]),
    ]
    return sets


def _text_variants(collection: Collection, scored: Sequence[ScoredQuery], encoder: Encoder,
                   entries: Sequence[ZooEntry], params: ScoringParams) -> tuple[list[Row], dict[str, object]]:
    """Text queries (paraphrases and the zoo's own descriptions) by content, by metadata (TF-IDF,
    the old baseline; the BM25 index; the dense match; both), and fused with content. The fusion
    rules are chosen on the own descriptions only (``text_fusion``); the served rows use
    core.fusion's constants, which are those choices."""
    ids = collection.ids
    by_id = {e.id: e for e in entries}
    documents = [MetadataDocument(m, by_id[m].metadata.name, by_id[m].metadata.description, by_id[m].tags,
                                  by_id[m].metadata.creator) for m in ids]
    tfidf = MetadataSearch(list(ids), [" ".join([by_id[m].metadata.name, by_id[m].metadata.description,
                                                 *by_id[m].tags]) for m in ids])
    own = [UnseenQuery(f"text/own/{e.id}", "text", "own-description", frozenset({e.id}), text=e.query_text)
           for e in entries if e.id in set(ids)]
    own_scored = score_queries(collection, own, encode_queries(own, encoder), params)
    paraphrases = [s for s in scored if s.query.style == "paraphrase"]
    signals = text_scores(ids, documents, [*paraphrases, *own_scored], sentence_encoder())
    sets = {"text: paraphrases": signals[:len(paraphrases)], "text: own descriptions": signals[len(paraphrases):]}
    tuning = sets["text: own descriptions"]

    hybrid = choose(ids, hybrid_rules(), tuning)
    metadata = choose(ids, metadata_rules(), tuning)
    rrf = choose(ids, [r for r in hybrid_rules() if r.fusion is Fusion.RRF], tuning)
    variants: list[tuple[str, Callable[[TextScores], np.ndarray]]] = [
        ("content", lambda m: m.content),
        ("metadata (TF-IDF)", lambda m: tfidf.scores(m.query.query.text or "")),
        ("metadata (BM25 index)", lambda m: m.bm25),
        ("metadata (dense: all-MiniLM-L6-v2)", lambda m: m.semantic),
        (f"metadata (served: {Rule(METADATA_RULE, METADATA_WEIGHTS, METADATA_RRF_K).label})",
         lambda m: metadata_ranking(ids, m.content, m.bm25, m.semantic)),
        (f"hybrid before the dense match (weighted, content {1 - OLD_TEXT_WEIGHT:g}, BM25 {OLD_TEXT_WEIGHT:g})",
         lambda m: OLD_HYBRID.scores(ids, m)),
        (f"hybrid (best RRF on own descriptions: {rrf.label})", lambda m: rrf.scores(ids, m)),
        (f"hybrid (served: {Rule(HYBRID_RULE, HYBRID_WEIGHTS).label})",
         lambda m: hybrid_ranking(ids, m.content, m.bm25, m.semantic)),
    ]
    rows: list[Row] = []
    for name, members in sets.items():
        for variant, score in variants:
            if name == "text: paraphrases" and variant == "content":
                continue  # the query sets' own row
            rows.append({"set": name, "variant": variant, **rates(ids, members, score)})
    rows.append({"set": "text: own descriptions", "variant": "hybrid (rule chosen on the other folds: 5-fold "
                 "cross-validated)", **cross_validated(ids, hybrid_rules(), tuning)})
    rows.append({"set": "text: own descriptions", "variant": "hybrid before the dense match (content and BM25 only; "
                 "rule chosen on the other folds)", **cross_validated(
                     ids, [r for r in hybrid_rules() if r.weights.semantic == 0], tuning)})
    flattering = choose(ids, hybrid_rules(), sets["text: paraphrases"])
    rows.append({"set": "text: paraphrases", "variant": f"hybrid (tuned on the paraphrases themselves, "
                 f"flattering: {flattering.label})",
                 **rates(ids, sets["text: paraphrases"], lambda m: flattering.scores(ids, m))})
    # the rules the grid chooses now: core.fusion's constants should be these (a test-free check
    # a reader sees in the JSON; the served rows above use the constants)
    choices = {"chosen on": "text: own descriptions", "hybrid": hybrid.label, "metadata": metadata.label,
               "best rrf": rrf.label, "tuned on paraphrases": flattering.label,
               "served hybrid": Rule(HYBRID_RULE, HYBRID_WEIGHTS).label,
               "served metadata": Rule(METADATA_RULE, METADATA_WEIGHTS, METADATA_RRF_K).label}
    return rows, choices


def _add_hybrid_confidence(collection: Collection, scored: Sequence[ScoredQuery], entries: Sequence[ZooEntry],
                           params: ScoringParams) -> None:
    """HYBRID_SERVED for every query: for a text query the mixture evidence of its best hit among
    the top 10 of the hybrid ranking; the others keep the served measure."""
    by_id = {e.id: e for e in entries}
    ids = collection.ids
    documents = [MetadataDocument(m, by_id[m].metadata.name, by_id[m].metadata.description, by_id[m].tags,
                                  by_id[m].metadata.creator) for m in ids]
    texts = [s for s in scored if s.query.modality == "text"]
    reference = ExactSearch(ScoreReference.of(collection).reference, params)
    search = ExactSearch(collection, params)
    for signals in text_scores(ids, documents, texts, sentence_encoder()):
        s = signals.query
        ranking = hybrid_ranking(ids, signals.content, signals.bm25, signals.semantic)
        shown = np.lexsort((ids, -ranking))[:TOP_HITS]
        assert s.vector is not None
        mgf = s.values if s.method is Method.MGF else search.score_parts([QueryPart(s.vector)], Method.MGF)
        ref_mgf = reference.score_parts([QueryPart(s.vector)], Method.MGF)
        s.confidence[HYBRID_SERVED] = float(mixture_evidence(mgf[shown], logsumexp(ref_mgf), len(ref_mgf)).max())
    for s in scored:
        s.confidence.setdefault(HYBRID_SERVED, s.confidence[SERVED])


def evaluate_unseen(collection: Collection, queries: Sequence[UnseenQuery], encoder: Encoder,
                    entries: Sequence[ZooEntry], params: ScoringParams) -> dict[str, object]:
    """Every table's rows: top-k per query set and variant, and the confidence AUCs."""
    vectors = encode_queries(queries, encoder)
    scored = score_queries(collection, queries, vectors, params)
    rows: list[Row] = []
    for name, members in _query_sets(scored):
        rows.append({"set": name, "variant": "content", **top_k_rates(members)})

    # Sketches again, brought into the encoder's sketch domain first (query.sketches), as the
    # CLI and the gateway now do; the no-match drawings too, so the AUC below sees them.
    sketch_rows = [i for i, q in enumerate(queries) if q.modality == "sketch"]
    prepared_vectors = encode_queries([queries[i] for i in sketch_rows], encoder, prepare_sketch=prepare_sketch)
    prepared = score_queries(collection, [queries[i] for i in sketch_rows], prepared_vectors, params)
    for name, members in _query_sets(prepared):
        if members and name.startswith("sketch"):
            rows.append({"set": name, "variant": "content, sketch prepared", **top_k_rates(members)})
    scored = [s for s in scored if s.query.modality != "sketch"] + prepared

    hybrid_rows, fusion_choices = _text_variants(collection, scored, encoder, entries, params)
    rows += hybrid_rows
    _add_hybrid_confidence(collection, scored, entries, params)

    aucs: list[Row] = []
    for measure in CONFIDENCE_MEASURES:
        for modality in ("text", "image", "sketch", "all"):
            chosen = [s for s in scored if modality in ("all", s.query.modality)]
            aucs.append({"measure": measure, "modality": modality, "auc": auc(chosen, measure)})
    calibration = _fit_calibration(scored)
    counts = {
        "queries": len(queries),
        "with_match": sum(q.has_match for q in queries),
        "no_match": sum(not q.has_match for q in queries),
    }
    per_query = [{"name": s.query.name, "method": s.method.value, "truth": sorted(s.query.ground_truth),
                  "top5": s.ranking[:5], "confidence": s.confidence} for s in scored]
    return {"counts": counts, "rows": rows, "auc": aucs, "fusion_choices": fusion_choices, "calibration": calibration, "per_query": per_query}


def _fit_calibration(scored: Sequence[ScoredQuery]) -> dict[str, float]:
    """A logistic regression of "has a right model" on the served evidence of each query:
    the curve's centre and scale (core.confidence.CALIBRATION takes them), and how the shipped
    constants separate the two kinds at confidence 0.5."""
    from sklearn.linear_model import LogisticRegression

    evidence = np.array([[s.confidence[SERVED]] for s in scored])
    labels = np.array([s.query.has_match for s in scored])
    # balanced: 0.5 means "as likely to fit as not" with equal priors, not this set's 9:1 mix
    fit = LogisticRegression(C=1e6, class_weight="balanced").fit(evidence, labels)
    slope, intercept = float(fit.coef_[0][0]), float(fit.intercept_[0])
    shipped = calibrated_confidence(evidence[:, 0]) >= 0.5
    return {"centre": -intercept / slope, "scale": 1.0 / slope,
            "shipped_true_positive_rate": float(shipped[labels].mean()),
            "shipped_false_positive_rate": float(shipped[~labels].mean())}


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("" if value is None else str(value))


def tables(result: dict[str, object]) -> str:
    rows: list[Row] = result["rows"]  # type: ignore[assignment]
    aucs: list[Row] = result["auc"]  # type: ignore[assignment]
    counts = result["counts"]
    out = [f"{counts['queries']} queries: {counts['with_match']} with a right model, {counts['no_match']} with none "
           "(every modality's default method; exact reference search, compressed second order).", "",
           "| query set | variant | queries | top-1 | top-5 |", "|---|---|---|---|---|"]
    order = list(dict.fromkeys(str(r["set"]) for r in rows))
    rows = sorted(rows, key=lambda r: order.index(str(r["set"])))  # stable: variants keep their order
    out += [f"| {r['set']} | {r['variant']} | {r.get('count', '')} | {_cell(r.get('top1'))} | {_cell(r.get('top5'))} |"
            for r in rows]
    modalities = ("text", "image", "sketch", "all")
    out += ["", "No model fits: ROC AUC of the best hit's confidence, queries with a right model against "
            "queries with none.", "", "| confidence measure | " + " | ".join(modalities) + " |",
            "|---|" + "---|" * len(modalities)]
    for measure in dict.fromkeys(str(a["measure"]) for a in aucs):
        cells = [_cell(next(a["auc"] for a in aucs if a["measure"] == measure and a["modality"] == m))
                 for m in modalities]
        out.append(f"| {measure} | " + " | ".join(cells) + " |")
    fit = result["calibration"]
    out += ["", f"Served confidence = logistic((evidence - {fit['centre']:.2f}) / {fit['scale']:.2f}) as fitted here; "
            f"at confidence >= 0.5 the shipped curve keeps {fit['shipped_true_positive_rate']:.2f} of the queries with a "
            f"right model and {fit['shipped_false_positive_rate']:.2f} of those with none."]
    return "\n".join(out)


def headline_table(result: dict[str, object]) -> str:
    rows: list[Row] = result["rows"]  # type: ignore[assignment]
    aucs: list[Row] = result["auc"]  # type: ignore[assignment]
    wanted = ("text: paraphrases", "text: own descriptions", "sketch: all drawings", "image: faces (LFW photos the encoder held out)",
              "image: product photos (dark on white, small)")
    out = ["| query set | variant | top-1 | top-5 |", "|---|---|---|---|"]
    out += [f"| {r['set']} | {r['variant']} | {_cell(r.get('top1'))} | {_cell(r.get('top5'))} |"
            for r in rows if r["set"] in wanted]
    out += ["", "| no-match ROC AUC (all modalities) | " + " | ".join(
        f"{a['measure']}: {_cell(a['auc'])}" for a in aucs if a["modality"] == "all") + " |"]
    return "\n".join(out)
