"""Text embedders for text queries (optional extra: ``pip install guardian[embed]`` for local models).

* :class:`HttpEmbedder` — an HTTP endpoint: OpenAI-compatible ``POST /v1/embeddings``
  (``{"model", "input": [...]}`` -> ``{"data": [{"embedding": [...], "index": i}]}``) or Text
  Embeddings Inference ``POST /embed`` (``{"inputs": [...]}`` -> ``[[...], ...]``). Standard library only.
* :class:`OnnxEmbedder` — a local model folder holding ``tokenizer.json`` and an ``.onnx`` file
  (``model.onnx``, ``model_optimized.onnx`` or ``onnx/model.onnx``), run with onnxruntime and
  tokenizers. Pooling: ``cls`` (the [CLS] token; bge models) or ``mean`` (attention-masked mean;
  MiniLM and others), from the folder's ``guardian_embed.json`` / ``pooling.json`` / a
  ``1_Pooling/config.json`` (sentence-transformers), else ``cls`` when the folder name says
  "bge", else ``mean``. Pointed at contextd's fastembed cache
  (``~/.config/contextd/models/fast-bge-small-en-v1.5/``) it embeds as contextd does.

Every embedder L2-normalizes its output and returns an (n, d) float32 matrix. Nothing is ever
downloaded.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

import numpy as np

from guardian.errors import ConfigError, QueryError

EMBED_HINT = "pip install guardian[embed]"
ONNX_CANDIDATES = ("model.onnx", "model_optimized.onnx", "onnx/model.onnx", "model_quantized.onnx")
MAX_TOKENS = 512


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


def embedder_from_config(config) -> Embedder | None:
    """The configured embedder (a local model folder wins over a URL), or None."""
    if config.embed_model_dir:
        return OnnxEmbedder(config.embed_model_dir)
    if config.embed_url:
        return HttpEmbedder(config.embed_url, api=config.embed_api, model=config.embed_model)
    return None


class HttpEmbedder:
    """Embeds through an HTTP endpoint (OpenAI-compatible or TEI)."""

    def __init__(self, url: str, api: str = "openai", model: str = "", timeout: float = 30.0,
                 token: str = "") -> None:
        if api not in ("openai", "tei"):
            raise ConfigError(f"invalid embed_api {api!r}", "use openai or tei")
        self.url = endpoint_url(url, api)
        self.api = api
        self.model = model
        self.timeout = timeout
        self.token = token

    def embed(self, texts: list[str]) -> np.ndarray:
        payload = {"inputs": texts} if self.api == "tei" else {"model": self.model, "input": texts}
        answer = self._post(payload)
        try:
            if self.api == "tei":
                vectors = answer
            else:
                vectors = [item["embedding"] for item in sorted(answer["data"], key=lambda d: d.get("index", 0))]
            matrix = np.asarray(vectors, dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            raise QueryError(f"the embedder at {self.url} answered in an unexpected shape",
                             f"check embed_api ({self.api}) matches the server", status=502) from None
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise QueryError(f"the embedder at {self.url} returned {matrix.shape} for {len(texts)} texts",
                             "check the embedding server", status=502)
        return l2_normalize(matrix)

    def _post(self, payload: dict):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, json.dumps(payload).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise QueryError(f"the embedder at {self.url} answered HTTP {exc.code}",
                             "check embed_url and embed_model", status=502) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise QueryError(f"cannot reach the embedder at {self.url}: {reason}",
                             "start the embedding server or fix embed_url", status=502) from None


def endpoint_url(url: str, api: str) -> str:
    """Accept a base URL or the full endpoint: ``http://h:p`` -> ``http://h:p/v1/embeddings`` or ``/embed``."""
    url = url.rstrip("/")
    suffix = "/embed" if api == "tei" else "/embeddings"
    if url.endswith(suffix):
        return url
    if api == "openai" and not url.endswith("/v1"):
        url += "/v1"
    return url + suffix


class OnnxEmbedder:
    """Runs a local ONNX sentence-embedding model (lazy imports of onnxruntime and tokenizers)."""

    def __init__(self, model_dir: str | Path, pooling: str | None = None, max_tokens: int = MAX_TOKENS) -> None:
        self.model_dir = Path(model_dir).expanduser()
        if not self.model_dir.is_dir():
            raise ConfigError(f"embedding model folder {self.model_dir} does not exist",
                              "point embed_model_dir at a folder with tokenizer.json and model.onnx")
        self.model_path = find_onnx(self.model_dir)
        tokenizer_path = self.model_dir / "tokenizer.json"
        if not tokenizer_path.is_file():
            raise ConfigError(f"{tokenizer_path} is missing", "the model folder needs the tokenizer.json")
        self.pooling = pooling or pooling_of(self.model_dir)
        onnxruntime, tokenizers = import_runtime()
        self.tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(self.model_path), options,
                                                    providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def embed(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask,
                 "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
        outputs = self.session.run(None, {name: feeds[name] for name in self.input_names if name in feeds})
        return l2_normalize(pool(outputs[0], mask, self.pooling))


def pool(hidden: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """(batch, seq, dim) hidden states -> (batch, dim): the first token, or the masked mean."""
    hidden = np.asarray(hidden, dtype=np.float32)
    if hidden.ndim == 2:  # the model already pooled
        return hidden
    if pooling == "cls":
        return hidden[:, 0, :]
    weights = mask[:, :, None].astype(np.float32)
    return (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)


def find_onnx(model_dir: Path) -> Path:
    for name in ONNX_CANDIDATES:
        if (model_dir / name).is_file():
            return model_dir / name
    found = sorted(model_dir.glob("*.onnx"))
    if found:
        return found[0]
    raise ConfigError(f"no .onnx file in {model_dir}", f"expected one of {', '.join(ONNX_CANDIDATES)}")


def pooling_of(model_dir: Path) -> str:
    """The model's pooling: an explicit config file, else "cls" for bge folders, else "mean"."""
    for name in ("guardian_embed.json", "pooling.json"):
        data = _read_json(model_dir / name)
        if isinstance(data, dict) and data.get("pooling") in ("cls", "mean"):
            return data["pooling"]
    st_pooling = _read_json(model_dir / "1_Pooling" / "config.json")
    if isinstance(st_pooling, dict):
        if st_pooling.get("pooling_mode_cls_token"):
            return "cls"
        if st_pooling.get("pooling_mode_mean_tokens"):
            return "mean"
    return "cls" if "bge" in model_dir.name.lower() else "mean"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def import_runtime():
    try:  # ~200 ms + ~35 ms, only where a local embedding model is used
        import onnxruntime
        import tokenizers
    except ImportError as exc:
        raise ConfigError(f"local embedding models need onnxruntime and tokenizers ({exc.name} is missing)",
                          EMBED_HINT) from None
    return onnxruntime, tokenizers
