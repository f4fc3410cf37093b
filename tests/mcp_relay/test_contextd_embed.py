"""contextd's query embedding: a small ONNX model + real WordPiece tokenizer in fastembed's cache layout."""

from __future__ import annotations

import numpy as np
import pytest

from guardian.errors import ConfigError
from guardian.index import contextd_embed
from guardian.index.contextd_embed import ContextdEmbedder, contextd_embedder, find_contextd_model, models_dir

from tests.mcp_relay.conftest import DIM, FASTEMBED_FOLDER, reference_embedding

QUERIES = ["jwt refresh token", "React hydration mismatch in render", "postgres connection pool exhausted",
           "unknownword flaky tests"]


def test_query_vector_equals_contextds_computation(model_dir):
    embedder = ContextdEmbedder(find_contextd_model("BAAI/bge-small-en-v1.5", model_dir))
    for text in QUERIES:
        got = embedder.embed_query(text)
        assert got.dtype == np.float32 and got.shape == (DIM,)
        assert np.allclose(got, reference_embedding(model_dir / FASTEMBED_FOLDER, text), atol=1e-6, rtol=0)


def test_the_prefix_and_the_pooling_both_matter(model_dir, monkeypatch):
    folder = model_dir / FASTEMBED_FOLDER
    embedder = ContextdEmbedder(find_contextd_model("BAAI/bge-small-en-v1.5", model_dir))
    text = QUERIES[0]
    got = embedder.embed_query(text)
    assert not np.allclose(got, reference_embedding(folder, text, prefix=""), atol=1e-3)
    assert not np.allclose(got, reference_embedding(folder, text, pooling="mean"), atol=1e-3)
    monkeypatch.setattr(contextd_embed, "QUERY_PREFIX", "")  # guardian without contextd's prefix ...
    unprefixed = embedder.embed_query(text)
    assert not np.allclose(unprefixed, reference_embedding(folder, text), atol=1e-6)  # ... fails parity


def test_passages_get_the_passage_prefix(model_dir):
    embedder = ContextdEmbedder(find_contextd_model("BAAI/bge-small-en-v1.5", model_dir))
    got = embedder.embed_passages(["auth lesson\n\njwt refresh token"])
    want = reference_embedding(model_dir / FASTEMBED_FOLDER, "auth lesson\n\njwt refresh token", prefix="passage: ")
    assert np.allclose(got[0], want, atol=1e-6)


def test_model_names_map_to_fastembed_folders(tmp_path):
    for name, folder in (("BAAI/bge-small-en-v1.5", "fast-bge-small-en-v1.5"),
                         ("BAAI/bge-base-en-v1.5", "fast-bge-base-en-v1.5"),
                         ("sentence-transformers/all-MiniLM-L6-v2", "fast-all-MiniLM-L6-v2"),
                         ("fast-bge-base-en-v1.5", "fast-bge-base-en-v1.5")):
        with pytest.raises(ConfigError) as err:
            find_contextd_model(name, tmp_path)
        assert str(tmp_path / folder) in err.value.message
    with pytest.raises(ConfigError) as err:
        find_contextd_model("nomic-embed-text", tmp_path)
    assert "fastembed" in err.value.message


def test_environment_of_contextd_wins(tmp_path, model_dir):
    env = {"EMBEDDINGS_CACHE_DIR": str(model_dir), "EMBEDDINGS_MODEL": "BAAI/bge-small-en-v1.5"}
    assert models_dir("/elsewhere", env) == model_dir
    embedder, problem = contextd_embedder("", "/elsewhere", env)
    assert embedder is not None and problem == ""
    missing, why = contextd_embedder("", str(tmp_path / "none"), {})
    assert missing is None and "model_optimized.onnx is missing" in why


def test_damaged_model_file_is_a_reason_not_a_crash(model_dir):
    (model_dir / FASTEMBED_FOLDER / "model_optimized.onnx").write_bytes(b"not onnx")
    embedder, why = contextd_embedder("", str(model_dir), {})
    assert embedder is None and why
