"""The paper's metadata-only baseline: the query text matched against each model's name,
description and tags by TF-IDF cosine similarity, as a hub's keyword search would."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer


class MetadataSearch:
    def __init__(self, ids: Sequence[str], documents: Sequence[str]) -> None:
        self.ids = np.asarray(ids, dtype=str)
        self.vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
        self.matrix = self.vectorizer.fit_transform(documents)

    def scores(self, text: str) -> np.ndarray:
        query = self.vectorizer.transform([text])
        return np.asarray((self.matrix @ query.T).todense()).ravel()

    def rank(self, text: str) -> list[str]:
        """All ids, best first; ties (e.g. no shared word at all) in id order."""
        values = self.scores(text)
        order = np.lexsort((self.ids, -values))
        return [str(i) for i in self.ids[order]]
