"""Query embeddings exactly as contextd makes them (fastembed-go over an ONNX model).

contextd (v0.5, ``internal/embeddings/fastembed.go``) embeds through the fastembed-go library:

* the model lives in fastembed's cache, one folder per model under contextd's models folder
  (``~/.config/contextd/models`` unless ``EMBEDDINGS_CACHE_DIR`` says otherwise), named with
  fastembed's ``fast-`` names: ``fast-bge-small-en-v1.5`` (the default, 384 dimensions),
  ``fast-bge-base-en-v1.5`` (768), ``fast-all-MiniLM-L6-v2`` (384), ... holding
  ``model_optimized.onnx`` and ``tokenizer.json``;
* a query is embedded as ``"query: " + text`` (stored documents as ``"passage: " + text``),
  tokenized with special tokens and truncated to 512 tokens;
* the vector is the model's ``last_hidden_state`` at the first position ([CLS] pooling — the
  library does this for every model it knows, MiniLM included), L2-normalised.

A guardian query vector made without the prefix or with another pooling lands somewhere else in
the space and ranks documents differently from contextd, which is why this module exists next to
the generic :mod:`guardian.index.embed`. Nothing is ever downloaded: without the model files on
disk, :func:`find_contextd_model` says why and the caller falls back to keyword search.
"""

from __future__ import annotations

import os

import numpy as np

from guardian.errors import ConfigError
from guardian.index.contextd_model import (  # which model, where: kept importable from here too
    MODEL_FILE, TOKENIZER_FILE, ModelLocation, find_contextd_model, model_name, models_dir,
)

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
MAX_TOKENS = 512
NORMALIZE_EPSILON = np.float32(1e-12)  # fastembed-go adds it to every component after dividing


class ContextdEmbedder:
    """contextd's query embedding: prefix, tokenizer with special tokens, ONNX model, [CLS], L2."""

    def __init__(self, location: ModelLocation, max_tokens: int = MAX_TOKENS) -> None:
        from guardian.index.embed import import_runtime

        onnxruntime, tokenizers = import_runtime()
        self.location = location
        self.tokenizer = tokenizers.Tokenizer.from_file(str(location.folder / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1  # one short query: threads cost more than they save
        self.session = onnxruntime.InferenceSession(str(location.folder / MODEL_FILE), options,
                                                    providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def dimension(self) -> int:
        return self.location.dimension

    def embed_query(self, text: str) -> np.ndarray:
        """One query -> a (d,) float32 unit vector, as contextd's EmbedQuery returns it."""
        return self.embed_texts([QUERY_PREFIX + text])[0]

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.embed_texts([PASSAGE_PREFIX + t for t in texts])

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Already-prefixed texts -> (n, d). One text at a time: no padding, so no mask subtleties."""
        return np.stack([self._embed_one(text) for text in texts])

    def _embed_one(self, text: str) -> np.ndarray:
        encoding = self.tokenizer.encode(text, add_special_tokens=True)
        feeds = {"input_ids": np.array([encoding.ids], dtype=np.int64),
                 "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
                 "token_type_ids": np.array([encoding.type_ids], dtype=np.int64)}
        hidden = self.session.run(None, {n: feeds[n] for n in self.input_names if n in feeds})[0]
        return normalize(np.asarray(hidden, dtype=np.float32)[0, 0, :])


def normalize(vector: np.ndarray) -> np.ndarray:
    """fastembed-go's normalisation: divide by the float32 L2 norm, then add 1e-12."""
    vector = np.asarray(vector, dtype=np.float32)
    norm = np.float32(np.sqrt(np.dot(vector, vector)))
    if norm == 0:
        return vector
    return (vector / norm + NORMALIZE_EPSILON).astype(np.float32)


def contextd_embedder(configured_model: str = "", configured_dir: str = "", environ=os.environ):
    """The embedder for contextd's configured model, or (None, reason) when it cannot be used."""
    try:
        location = find_contextd_model(model_name(configured_model, environ), models_dir(configured_dir, environ))
        return ContextdEmbedder(location), ""
    except ConfigError as exc:
        return None, exc.message
    except Exception as exc:  # a damaged model file must not take the fallback down
        return None, f"cannot load the contextd model: {exc}"
