"""The store and search subcommands of `modelverse`."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from modelverse.cli.output import print_json, print_table
from modelverse.core.ranking import Hit
from modelverse.core.reference import ExactSearch
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_TAU, stats_from_features, store_rank
from modelverse.core.sentence_encoder import DIM as SENTENCE_DIM
from modelverse.core.sentence_encoder import sentence_encoder
from modelverse.core.text_index import MetadataDocument, described_texts
from modelverse.core.types import Method, QueryPart, SecondOrderForm
from modelverse.errors import InvalidInputError
from modelverse.query.hybrid import RankedHit, TextMode, rank_collection, resolve_text_mode
from modelverse.query.images import ImageError, image_files, read_image
from modelverse.query.parts import Query, default_method, encode_query
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.embedding_cache import EmbeddingCache, embed_missing
from modelverse.store.errors import ModelExistsError, ModelNotFoundError, StoreCorruptError
from modelverse.store.metadata import ModelMetadata
from modelverse.store.pack import CHECKED_COLUMNS, FLAG_COVARIANCE

SECOND_ORDER_METHODS = {Method.MGF, Method.GAUSSIAN, Method.FRECHET}


class CommandError(InvalidInputError):
    """A flag or file the user gave that cannot be used; printed as one line."""


def load_array(path: str, what: str) -> np.ndarray:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file ({what})")
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CommandError(f"{path}: cannot read it as a .npy array ({exc})") from exc
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
        raise CommandError(f"{path}: expected a numeric array, got {getattr(array, 'dtype', type(array))}")
    if np.iscomplexobj(array):
        raise CommandError(f"{path}: complex numbers are not features")
    return array


# -- add ---------------------------------------------------------------------------------


def add(args: argparse.Namespace) -> int:
    features = load_array(args.features, "sample features")
    if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] < 2:
        raise CommandError(f"{args.features}: expected an N x d array of sample features, got shape {features.shape}")
    dim = int(features.shape[1])
    root = Path(args.store)
    rank = store_rank(dim, args.rank)
    eps = args.eps if args.eps is not None else DEFAULT_EPS
    tau = args.tau if args.tau is not None else DEFAULT_TAU
    # Created under the store's lock: of two adds creating one store, the second finds the
    # first's store and is checked against it below (and its encoder by the store).
    store = DirectoryStore.open_or_create(root, StoreConfig(dim, rank, eps, encoder=args.encoder, tau=tau))
    if dim != store.config.dim:
        raise CommandError(f"{args.features}: features have dimension {dim}, the store at {root} holds dimension {store.config.dim}")
    given_rank = None if args.rank is None else store_rank(dim, args.rank)
    for name, given, kept in (("rank", given_rank, store.config.rank), ("eps", args.eps, store.config.eps),
                              ("tau", args.tau, store.config.tau)):
        if given is not None and given != kept:
            raise CommandError(f"--{name} {given} differs from the store's {name} {kept}; it is fixed when a store is created")
    metadata = ModelMetadata(
        id=args.id,
        name=args.name,
        description=args.description,
        tags=tuple(t for t in args.tags.split(",") if t.strip()),
        family=args.family,
        resolution=args.resolution,
        creator=args.creator,
        license=args.license,
        source=args.source,
    )
    if args.id in store and not args.replace:
        raise ModelExistsError(f"model {args.id!r} is already in the store (use --replace to replace it)")
    stats = stats_from_features(
        features,
        rank=store.config.rank,
        eps=store.config.eps,
        keep_covariance=not args.no_covariance,
        keep_samples=args.keep_samples,
        encoder=args.encoder,
    )
    stored = store.put(metadata, stats, replace=args.replace)
    if args.json:
        print_json(stored.summary())
    else:
        print(f"added {args.id} ({stats.count} samples, d={dim}, stats version {stored.stats_version}) to {root}")
    return 0


# -- search --------------------------------------------------------------------------------


def _parse_weights(text: str | None, count: int) -> list[float]:
    if text is None:
        return [1.0] * count
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError as exc:
        raise CommandError(f"--weights: expected comma-separated numbers, got {text!r}") from exc
    if len(weights) != count:
        raise CommandError(f"--weights has {len(weights)} values for {count} query parts")
    return weights


def _build_query(args: argparse.Namespace) -> Query:
    """The query in the documented part order: texts, images, sketches, image folders, vectors."""
    texts = [t for t in args.text]
    if any(not t.strip() for t in texts):
        raise CommandError("--text is empty: describe the images you want")
    try:
        images = [read_image(p) for p in args.image]
        sketches = [read_image(p) for p in args.sketch]
        image_sets = [[read_image(f) for f in image_files(d)] for d in args.images]
    except ImageError as exc:
        raise CommandError(str(exc)) from exc
    vectors = [load_array(path, "query vector") for path in args.vector]
    weights = iter(_parse_weights(args.weights, len(texts) + len(images) + len(sketches) + len(image_sets) + len(vectors)))
    return Query(
        texts=[(t, next(weights)) for t in texts],
        images=[(i, next(weights)) for i in images],
        sketches=[(s, next(weights)) for s in sketches],
        image_sets=[(s, next(weights)) for s in image_sets],
        vectors=[(v, next(weights)) for v in vectors],
    )


def _resolve_method(args: argparse.Namespace, query: Query | None) -> Method:
    if query is None:  # --like
        if args.method not in (None, Method.FRECHET.value):
            raise CommandError(f"--like ranks by Frechet distance; --method {args.method} takes a query")
        return Method.FRECHET
    method = Method(args.method) if args.method else default_method(query.modalities())
    if method is Method.FRECHET:
        raise CommandError("--method frechet compares models: use --like MODEL_ID")
    return method


def _resolve_form(args: argparse.Namespace, store: DirectoryStore, method: Method) -> SecondOrderForm:
    if args.second_order != "auto":
        return SecondOrderForm(args.second_order)
    pack = store.pack()
    has_full = pack is not None and pack.all_live_have(FLAG_COVARIANCE)
    return SecondOrderForm.FULL if has_full and method in SECOND_ORDER_METHODS else SecondOrderForm.COMPRESSED


def _encoded_parts(args: argparse.Namespace, store: DirectoryStore, query: Query) -> list[QueryPart]:
    encoder = None
    if query.needs_encoder():
        from modelverse.encoders import encoder_id, load_encoder  # torch: only when needed

        encoder = load_encoder(args.encoder)
        store.check_query_encoder(encoder_id(encoder))
    return encode_query(query, encoder)


def search(args: argparse.Namespace) -> int:
    if args.top_k <= 0:
        raise CommandError(f"--top-k must be positive, got {args.top_k}")
    has_query = any((args.text, args.image, args.sketch, args.images, args.vector))
    if args.like is not None and has_query:
        raise CommandError("--like finds models similar to a stored model; it takes no other query")
    if args.like is None and not has_query:
        raise CommandError("give a query: --text, --image, --sketch, --images, --vector or --like")
    store = DirectoryStore.open(args.store)
    query = None if args.like is not None else _build_query(args)
    method = _resolve_method(args, query)
    form = _resolve_form(args, store, method)
    collection = store.collection(
        full=form is SecondOrderForm.FULL and method in SECOND_ORDER_METHODS,
        samples=method is Method.MONTE_CARLO,
        # Check the packed columns this method reads: a damaged row is left out, never ranked.
        check_columns=CHECKED_COLUMNS if method in SECOND_ORDER_METHODS else ("means", "scalars"),
        on_skip=warn_skipped,
    )
    engine = ExactSearch(collection, store.config.scoring)
    if query is None:
        if args.like not in store:
            raise ModelNotFoundError(f"no model {args.like!r} in {args.store}")
        try:
            hits = engine.similar(args.like, args.top_k, form)
        except KeyError as exc:  # in the pack, but left out of the collection as damaged
            raise StoreCorruptError(f"model {args.like!r} is damaged; run `modelverse verify --repair`") from exc
        _print_hits(store, hits, method, form, args.json)
        return 0
    if args.min_confidence is not None and not 0.0 <= args.min_confidence <= 1.0:
        raise CommandError(f"--min-confidence must be between 0 and 1, got {args.min_confidence}")
    try:
        text_mode = resolve_text_mode(TextMode(args.text_mode) if args.text_mode else None, bool(query.texts))
    except InvalidInputError as exc:
        raise CommandError(f"--text-mode: {exc}") from exc
    documents = []
    vectors = None
    if text_mode is not TextMode.CONTENT:
        live_ids = collection.ids[collection.live_mask()].tolist()
        documents = [document_of(_metadata_or_bare(store, m)) for m in live_ids]
        vectors = metadata_vectors(documents, EmbeddingCache(metadata_embeddings_dir(store.root)))
    ranked = rank_collection(engine, _encoded_parts(args, store, query), method, form, args.top_k,
                             texts=[t for t, _ in query.texts], text_mode=text_mode, documents=documents,
                             document_vectors=vectors, min_confidence=args.min_confidence)
    _print_ranked(store, ranked, method, form, text_mode, args.json)
    return 0


def metadata_vectors(documents: list[MetadataDocument], cache: EmbeddingCache) -> np.ndarray:
    """The documents' sentence embeddings (zero rows: nothing beyond the id), made where ``cache``
    lacks them."""
    positions, texts = described_texts(documents)
    embed_missing(cache, texts, sentence_encoder().encode)
    vectors = np.zeros((len(documents), SENTENCE_DIM), dtype=np.float32)
    vectors[positions] = cache.vectors(texts)
    return vectors


def metadata_embeddings_dir(store_root: Path) -> Path:
    """Where the CLI keeps a store's metadata embeddings (a search may not write into the store):
    ``$MODELVERSE_CACHE/metadata-embeddings/<hash of the store's path>``."""
    from modelverse.encoders.bundled import default_cache_dir

    name = hashlib.sha256(str(Path(store_root).resolve()).encode()).hexdigest()[:16]
    return default_cache_dir() / "metadata-embeddings" / name


def _print_ranked(store: DirectoryStore, hits: list[RankedHit], method: Method, form: SecondOrderForm,
                  text_mode: TextMode, as_json: bool) -> None:
    """Hits with their confidence (and, for a metadata or hybrid text search, the BM25 score and
    the metadata's cosine with the text: the "meaning score")."""
    records = [_metadata_or_bare(store, hit.id) for hit in hits]
    with_text = text_mode is not TextMode.CONTENT
    if as_json:
        print_json([
            {"rank": h.rank, "id": h.id, "score": h.score, "confidence": h.confidence,
             **({"text_score": h.text_score, "semantic_score": h.semantic_score} if with_text else {}),
             "name": m.display_name, "tags": list(m.tags)}
            for h, m in zip(hits, records)
        ])
        return
    uses_second = method in SECOND_ORDER_METHODS
    # In hybrid mode the order is the fusion of the two rankings, so neither score column alone is
    # monotone down the table: say so, rather than let a reader take it for a sorting mistake.
    ranked_by = {TextMode.HYBRID: "; ranked by content and text together (hybrid)",
                 TextMode.METADATA: "; ranked by text"}.get(text_mode, "")
    print(f"method: {method.value}" + (f" ({form.value} second order)" if uses_second else "")
          + (f"; text mode: {text_mode.value}" if with_text else "") + ranked_by)
    if not hits:
        print("no model fits with the confidence asked for")
        return
    print_table(
        ["rank", "content score" if with_text else "score", "confidence",
         *(["text score", "meaning score"] if with_text else []), "id", "name", "tags"],
        [[h.rank, h.score, h.confidence, *([h.text_score, h.semantic_score] if with_text else []), h.id,
          m.display_name, m.tags] for h, m in zip(hits, records)],
    )


def document_of(metadata: ModelMetadata) -> MetadataDocument:
    return MetadataDocument(metadata.id, metadata.name, metadata.description, metadata.tags, metadata.creator)


def warn_skipped(model_id: str, reason: str) -> None:
    """A damaged model a command leaves out, on stderr (stdout stays the command's answer)."""
    print(f"modelverse: warning: left out model {model_id[:80]!r}: {reason}; run `modelverse verify --repair`",
          file=sys.stderr)


def _metadata_or_bare(store: DirectoryStore, model_id: str) -> ModelMetadata:
    """A hit's metadata; a damaged record is reported and shown as the bare id."""
    try:
        return store.get(model_id).metadata
    except StoreCorruptError as exc:
        warn_skipped(model_id, f"metadata unreadable ({exc})")
        return ModelMetadata(model_id)


def _print_hits(store: DirectoryStore, hits: list[Hit], method: Method, form: SecondOrderForm, as_json: bool) -> None:
    records = [_metadata_or_bare(store, hit.id) for hit in hits]
    if as_json:
        print_json(
            [
                {"rank": h.rank, "id": h.id, "score": h.score, "name": m.display_name, "tags": list(m.tags)}
                for h, m in zip(hits, records)
            ]
        )
        return
    uses_second = method in SECOND_ORDER_METHODS
    print(f"method: {method.value}" + (f" ({form.value} second order)" if uses_second else ""))
    print_table(
        ["rank", "score", "id", "name", "tags"],
        [[h.rank, h.score, h.id, m.display_name, m.tags] for h, m in zip(hits, records)],
    )


# -- list, info, remove, repack ----------------------------------------------------------------


def list_models(args: argparse.Namespace) -> int:
    store = DirectoryStore.open(args.store)
    ids = store.ids()
    if args.limit is not None:
        ids = ids[: max(args.limit, 0)]
    models = []
    for model_id in ids:
        try:
            models.append(store.get(model_id))
        except StoreCorruptError as exc:
            warn_skipped(model_id, str(exc))
    if args.json:
        print_json([m.summary() for m in models])
        return 0
    print_table(
        ["id", "name", "tags", "samples", "version"],
        [[m.metadata.id, m.metadata.display_name, m.metadata.tags, m.count, m.stats_version] for m in models],
    )
    print(f"{len(store)} model(s) in {args.store}")
    return 0


def info(args: argparse.Namespace) -> int:
    store = DirectoryStore.open(args.store)
    if args.id not in store:  # the same answer as list and search give (a zombie is not served)
        hint = (" (its files are there, left by an interrupted add: `modelverse verify --repair` completes it, "
                "`modelverse add` writes it again)" if store.is_zombie(args.id) else "")
        raise ModelNotFoundError(f"no model {args.id!r} in {args.store}{hint}")
    record = store.get(args.id).summary()
    if args.json:
        print_json(record)
        return 0
    width = max(len(k) for k in record)
    for key, value in record.items():
        shown = ", ".join(value) if isinstance(value, list) else ("" if value is None else value)
        print(f"{key.ljust(width)}  {shown}")
    return 0


def remove(args: argparse.Namespace) -> int:
    store = DirectoryStore.open(args.store)
    store.remove(args.id)
    if args.json:
        print_json({"removed": args.id})
    else:
        print(f"removed {args.id} from {args.store}")
    return 0


def repack(args: argparse.Namespace) -> int:
    store = DirectoryStore.open(args.store)
    count = store.repack(on_skip=warn_skipped)
    if args.json:
        print_json({"packed": count})
    else:
        print(f"repacked {count} model(s) in {args.store}")
    return 0
