"""`modelverse demo`: index a collection and search it with every method, end to end.

Until the bundled zoo of real generative models exists, the demo indexes synthetic models whose
sample features imitate an image encoder's (``modelverse.synthetic``), and says so.
Re-running it resumes: models already in the store are not indexed again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from modelverse.cli.output import print_table
from modelverse.core.reference import ExactSearch, Method, QueryPart, SecondOrderForm
from modelverse.core.stats import DEFAULT_EPS, DEFAULT_RANK, stats_from_features
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.metadata import ModelMetadata
from modelverse.synthetic import SyntheticZoo

DEMO_DIM = 512


def run(args: argparse.Namespace) -> int:
    if args.models < 2 or args.samples < 2:
        raise ValueError("the demo needs at least 2 models and 2 samples per model")
    print(
        "The bundled zoo of real generative models is not built yet: this demo indexes "
        f"{args.models} synthetic models whose features imitate an image encoder's."
    )
    root = Path(args.store)
    store = DirectoryStore.open_or_create(root, StoreConfig(DEMO_DIM, DEFAULT_RANK, DEFAULT_EPS))
    zoo = SyntheticZoo(dim=DEMO_DIM)
    models = zoo.models(args.models)
    todo = [m for m in models if m.id not in store]
    for model in tqdm(todo, desc="indexing", unit="model", disable=not todo):
        features = model.sample_features(args.samples, seed=1)
        stats = stats_from_features(features, rank=store.config.rank, eps=store.config.eps, keep_samples=True)
        metadata = ModelMetadata(
            id=model.id,
            name=model.name,
            description=f"A synthetic generator of {' and '.join(model.tags)} images.",
            tags=model.tags,
            family="synthetic",
            creator="modelverse demo",
            license="CC0-1.0",
            source="modelverse.synthetic",
        )
        store.put(metadata, stats, replace=True)
    print(f"store: {root.resolve()} ({len(store)} models)\n")

    engine = ExactSearch(store.collection(full=True, samples=True))
    target = models[min(5, len(models) - 1)]
    image_like = target.sample_features(1, seed=10_000)[0]  # a fresh sample, never indexed
    concept = zoo.concepts[target.tags[0]] + 0.9 * zoo.common  # a query "about" a tag
    other = models[min(6, len(models) - 1)]
    queries = [
        (f"an unseen sample of {target.id} ({', '.join(target.tags)})", [QueryPart(image_like)], Method.GAUSSIAN),
        (f"the concept '{target.tags[0]}'", [QueryPart(concept)], Method.MGF),
        (f"the concept '{target.tags[0]}'", [QueryPart(concept)], Method.FIRST_MOMENT),
        (f"an unseen sample of {target.id}", [QueryPart(image_like)], Method.MONTE_CARLO),
        (
            f"multimodal: sample of {target.id} + sample of {other.id}",
            [QueryPart(image_like), QueryPart(other.sample_features(1, seed=10_001)[0])],
            Method.MGF,
        ),
    ]
    for title, parts, method in queries:
        hits = engine.search(parts, method, k=5, form=SecondOrderForm.FULL)
        _show(store, f"query: {title}   method: {method.value}", hits)
    hits = engine.similar(target.id, k=5, form=SecondOrderForm.FULL)
    _show(store, f"query: models like {target.id}   method: frechet", hits)
    print(f"Search it yourself: modelverse search --store {root} --like {target.id}")
    return 0


def _show(store: DirectoryStore, title: str, hits: list) -> None:
    print(title)
    rows = []
    for hit in hits:
        metadata = store.get(hit.id).metadata
        rows.append([hit.rank, hit.score, hit.id, ",".join(metadata.tags)])
    print_table(["rank", "score", "id", "tags"], rows)
    print()
