"""Embedders: a tiny ONNX model + WordLevel tokenizer built here, and a real local HTTP server."""

from __future__ import annotations

import http.server
import json
import threading

import numpy as np
import pytest

from guardian.config import Config
from guardian.errors import ConfigError, QueryError
from guardian.index import query as q
from guardian.index.embed import HttpEmbedder, OnnxEmbedder, embedder_from_config, endpoint_url, pool
from guardian.index.store_index import StoreIndex

VOCAB = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 4, "world": 5, "vector": 6, "store": 7}
DIM = 6


def table() -> np.ndarray:
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(len(VOCAB), DIM)).astype(np.float32)
    weights[0] = 0.0  # padding contributes nothing
    return weights


def write_model(folder, file_name="model.onnx"):
    """last_hidden_state = reverse cumulative sum over the sequence of the token embeddings."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["tokens"]),
         helper.make_node("CumSum", ["tokens", "axis"], ["last_hidden_state"], reverse=1)],
        "tiny",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
         for name in ("input_ids", "attention_mask", "token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", DIM])],
        [numpy_helper.from_array(table(), "table"), numpy_helper.from_array(np.array(1, dtype=np.int64), "axis")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    target = folder / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    write_tokenizer(folder / "tokenizer.json")
    return folder


def write_tokenizer(path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer.save(str(path))


def expected(texts, pooling):
    weights = table()
    rows = [[2] + [VOCAB.get(w, 1) for w in text.split()] + [3] for text in texts]
    width = max(map(len, rows))
    ids = np.array([r + [0] * (width - len(r)) for r in rows])
    mask = (np.arange(width)[None, :] < np.array([len(r) for r in rows])[:, None]).astype(np.int64)
    hidden = np.flip(np.cumsum(np.flip(weights[ids], axis=1), axis=1), axis=1)
    pooled = hidden[:, 0] if pooling == "cls" else (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


TEXTS = ["hello world", "vector store world hello", "unknown"]


def test_bge_folder_uses_cls_pooling(tmp_path):
    embedder = OnnxEmbedder(write_model(tmp_path / "fast-bge-tiny", "model_optimized.onnx"))
    assert embedder.pooling == "cls"
    got = embedder.embed(TEXTS)
    assert got.dtype == np.float32 and got.shape == (3, DIM)
    assert np.allclose(got, expected(TEXTS, "cls"), atol=1e-5)
    assert not np.allclose(got, expected(TEXTS, "mean"), atol=1e-3)


def test_minilm_folder_mean_pools_over_the_mask(tmp_path):
    embedder = OnnxEmbedder(write_model(tmp_path / "all-MiniLM-tiny", "onnx/model.onnx"))
    assert embedder.pooling == "mean"
    assert np.allclose(embedder.embed(TEXTS), expected(TEXTS, "mean"), atol=1e-5)


def test_pooling_from_sentence_transformers_config(tmp_path):
    folder = write_model(tmp_path / "plain-model")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert OnnxEmbedder(folder).pooling == "cls"


def test_bad_model_folders_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        OnnxEmbedder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as err:
        OnnxEmbedder(tmp_path / "empty")
    assert ".onnx" in err.value.message


def test_pool_math():
    hidden = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    mask = np.array([[1, 1, 0]])
    assert np.allclose(pool(hidden, mask, "cls"), [[0, 1, 2, 3]])
    assert np.allclose(pool(hidden, mask, "mean"), [[2, 3, 4, 5]])


class FakeEmbeddingServer(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeEmbeddingServer.seen.append((self.path, body))
        if self.path == "/embed":
            answer = [[float(len(t)), 1.0, 0.0] for t in body["inputs"]]
        elif self.path == "/v1/embeddings":
            data = [{"index": i, "embedding": [float(len(t)), 0.0, 1.0]} for i, t in enumerate(body["input"])]
            answer = {"data": list(reversed(data)), "model": body["model"]}
        else:
            self.send_response(404)
            self.end_headers()
            return
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def embedding_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeEmbeddingServer)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_embedders_openai_and_tei(embedding_server):
    openai = HttpEmbedder(embedding_server, api="openai", model="bge").embed(["ab", "abcd"])
    assert np.allclose(openai, [[2 / 5 ** 0.5, 0, 1 / 5 ** 0.5], [4 / 17 ** 0.5, 0, 1 / 17 ** 0.5]], atol=1e-6)
    tei = HttpEmbedder(embedding_server, api="tei").embed(["abc"])
    assert np.allclose(tei, [[3 / 10 ** 0.5, 1 / 10 ** 0.5, 0]], atol=1e-6)
    assert ("/v1/embeddings", {"model": "bge", "input": ["ab", "abcd"]}) in FakeEmbeddingServer.seen


def test_http_embedder_failures_are_clear(embedding_server):
    with pytest.raises(QueryError) as err:
        HttpEmbedder(embedding_server + "/nothing/here/embed", api="tei").embed(["x"])
    assert "HTTP 404" in err.value.message
    with pytest.raises(QueryError) as err:
        HttpEmbedder("http://127.0.0.1:9", api="tei", timeout=1).embed(["x"])
    assert "cannot reach" in err.value.message


def test_endpoint_url_and_config():
    assert endpoint_url("http://h:1", "openai") == "http://h:1/v1/embeddings"
    assert endpoint_url("http://h:1/v1/", "openai") == "http://h:1/v1/embeddings"
    assert endpoint_url("http://h:1", "tei") == "http://h:1/embed"
    assert embedder_from_config(Config()) is None
    assert isinstance(embedder_from_config(Config(embed_url="http://h:1")), HttpEmbedder)


def test_text_query_uses_the_embedder(plain_store, contents):
    doc = next(c for c in contents["collections"] if c["name"] == "checkpoints")["documents"][3]
    index = StoreIndex(plain_store).build()
    embed = lambda texts: np.array([doc["embedding"]] * len(texts), dtype=np.float32)  # noqa: E731
    answer = index.search("checkpoints", q.parse_request({"text": "anything", "k": 1}), embed)
    assert answer.results[0][0]["id"] == doc["id"]
