"""Fixtures for `guardian mcp`: a small ONNX model + real WordPiece tokenizer laid out as fastembed's
cache, a reference embedding computed without onnxruntime, and a contextd-shaped chromem store
written by the real chromem-go (chromemh gen) with embeddings from that model."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("child_server.py")
FASTEMBED_FOLDER = "fast-bge-small-en-v1.5"
WORDS = ("jwt refresh token rotation broke mobile clients grace window react hydration mismatch render date "
         "postgres connection pool exhausted timeout flaky test shared temp dir ci build failed release key "
         "signed artifacts checkpoint auth frontend lesson database migration lock deadlock cache invalid "
         "the a of and in on for with was by to").split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + ["query", "passage", ":", "."] + WORDS + ["##s", "##ed", "##ing"]
DIM = 16
PROJECT = "webapp"


def model_table(dim: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(1234)
    table = rng.normal(size=(len(VOCAB), dim)).astype(np.float32)
    table[0] = 0.0
    return table


def write_test_model(models_dir: Path, dim: int = DIM, folder: str = FASTEMBED_FOLDER) -> Path:
    """hidden = tanh(reverse cumulative sum over the sequence of masked token embeddings).

    Token 0 ([CLS]) sees the whole text; the mean over tokens is something else, so pooling and
    every token (the "query: " prefix included) change the vector.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    target = models_dir / folder
    target.mkdir(parents=True, exist_ok=True)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["tokens"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "last_axis"], ["mask_3d"]),
        helper.make_node("Mul", ["tokens", "mask_3d"], ["masked"]),
        helper.make_node("CumSum", ["masked", "seq_axis"], ["summed"], reverse=1),
        helper.make_node("Tanh", ["summed"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny-bge",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
         for n in ("input_ids", "attention_mask", "token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", dim])],
        [numpy_helper.from_array(model_table(dim), "table"),
         numpy_helper.from_array(np.array(1, dtype=np.int64), "seq_axis"),
         numpy_helper.from_array(np.array([2], dtype=np.int64), "last_axis")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(target / "model_optimized.onnx"))
    write_tokenizer(target / "tokenizer.json")
    return target


def write_tokenizer(path: Path) -> None:
    """A BERT-style WordPiece tokenizer (normalizer, pre-tokenizer, [CLS] … [SEP] template)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {token: i for i, token in enumerate(VOCAB)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer.save(str(path))


def reference_embedding(model_folder: Path, text: str, prefix: str = "query: ", pooling: str = "cls",
                        dim: int = DIM, pad_to: int = 512) -> np.ndarray:
    """contextd's computation, re-done in numpy: prefix, tokens padded to 512 as fastembed-go pads,
    the model's math, [CLS] (or mean) pooling, L2 norm (+1e-12 as fastembed-go)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=512)
    tokenizer.enable_padding(length=pad_to, pad_id=0, pad_token="[PAD]")
    encoding = tokenizer.encode(prefix + text)
    ids = np.array(encoding.ids)
    mask = np.array(encoding.attention_mask, dtype=np.float64)
    tokens = model_table(dim).astype(np.float64)[ids] * mask[:, None]
    hidden = np.tanh(np.flip(np.cumsum(np.flip(tokens, axis=0), axis=0), axis=0))
    pooled = hidden[0] if pooling == "cls" else (hidden * mask[:, None]).sum(0) / mask.sum()
    return (pooled / np.linalg.norm(pooled) + 1e-12).astype(np.float32)


def memory(i: int, title: str, content: str, confidence: str = "0.800000", state: str = "active",
           project: str = PROJECT, tenant: str | None = None, updated: int = 1_760_000_000) -> dict:
    doc_id = f"00000000-0000-4000-8000-{i:012d}"
    return {"id": doc_id, "content": f"{title}\n\n{content}",
            "metadata": {"id": doc_id, "project_id": project, "tenant_id": tenant or project, "title": title,
                         "description": content[:60], "outcome": "success", "confidence": confidence,
                         "usage_count": "0", "tags": "[auth lesson]", "state": state,
                         "created_at": str(updated - 3600), "updated_at": str(updated)}}


MEMORIES = [
    memory(1, "auth lesson", "jwt refresh token rotation broke mobile clients added a grace window"),
    memory(2, "frontend lesson", "react hydration mismatch caused by date in render"),
    memory(3, "database lesson", "postgres connection pool exhausted timeout under load"),
    memory(4, "ci lesson", "flaky test shared temp dir on ci"),
    memory(5, "auth lesson low", "jwt refresh token rotation broke mobile clients", confidence="0.500000"),
    memory(6, "auth lesson archived", "jwt refresh token rotation grace window", state="archived"),
    memory(7, "release lesson", "release key signed artifacts build failed"),
    memory(8, "other tenant", "jwt refresh token rotation", tenant="someone_else"),
    memory(9, "cache lesson", "cache invalid after database migration lock deadlock"),
    memory(10, "auth lesson two", "token refresh window for mobile clients"),
]
CHECKPOINTS = [
    {"id": f"ckpt-{i}", "content": f"ckpt {i}\n\ncheckpoint {i} summary",
     "metadata": {"id": f"ckpt-{i}", "session_id": "sess-1", "tenant_id": "alice", "project_id": PROJECT,
                  "project_path": "/home/alice/src/webapp", "name": f"ckpt {i}", "summary": f"summary {i}",
                  "context": f"context {i}", "full_state": f"full state {i}", "token_count": str(100 + i),
                  "threshold": "0.500000", "auto_created": "true" if i % 2 else "false",
                  "created_at": str(1_760_000_000 + i)}}
    for i in range(1, 5)
]


def store_spec(model_folder: Path | None) -> list[dict]:
    """Collections for chromemh gen; embeddings are "passage: " embeddings of the test model."""
    def embed(text: str) -> list[float]:
        if model_folder is None:
            vector = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)).normal(size=DIM)
            return (vector / np.linalg.norm(vector)).astype(np.float32).tolist()
        return reference_embedding(model_folder, text, prefix="passage: ").tolist()

    def docs(items):
        return [dict(item, embedding=embed(item["content"])) for item in items]

    return [{"name": f"{PROJECT}_memories", "metadata": {}, "docs": docs(MEMORIES)},
            {"name": "checkpoints", "metadata": {}, "docs": docs(CHECKPOINTS)}]


def generate_store(chromemh: Path, out: Path, model_folder: Path | None) -> Path:
    spec = out.parent / (out.name + "-spec.json")
    spec.write_text(json.dumps(store_spec(model_folder)))
    subprocess.run([str(chromemh), "gen", str(spec), str(out), "0"], check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture
def model_dir(tmp_path) -> Path:
    models = tmp_path / "models"
    write_test_model(models)
    return models


@pytest.fixture
def contextd_store(chromemh, tmp_path, model_dir) -> Path:
    return generate_store(chromemh, tmp_path / "store", model_dir / FASTEMBED_FOLDER)


def expected_memory_ids(model_folder: Path | None, query: str, limit: int = 5) -> list[str]:
    """memory_search's answer computed here: rank by the reference query vector, drop other
    tenants, low confidence and archived, keep the order (no boost applies to these queries)."""
    kept = [m for m in MEMORIES if m["metadata"]["tenant_id"] == PROJECT
            and float(m["metadata"]["confidence"]) >= 0.7 and m["metadata"]["state"] != "archived"]
    vector = reference_embedding(model_folder, query)
    scores = [float(np.dot(vector, reference_embedding(model_folder, m["content"], prefix="passage: ")))
              for m in kept]
    order = sorted(range(len(kept)), key=lambda i: -scores[i])
    return [kept[i]["id"] for i in order[:limit]]


