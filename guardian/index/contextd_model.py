"""Which embedding model contextd uses and where fastembed keeps it (no numpy, no onnxruntime).

Apart from :mod:`guardian.index.contextd_embed` so that a `guardian mcp` session answered by the
sidecar can say which model its contextd would use without loading any of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from guardian.errors import ConfigError

MODEL_FILE = "model_optimized.onnx"
TOKENIZER_FILE = "tokenizer.json"
DEFAULT_MODEL = "BAAI/bge-small-en-v1.5"
DEFAULT_MODELS_DIR = "~/.config/contextd/models"

# contextd's accepted model names -> fastembed's cache folder and the model's width.
FASTEMBED_MODELS = {
    "BAAI/bge-small-en-v1.5": ("fast-bge-small-en-v1.5", 384),
    "BAAI/bge-small-en": ("fast-bge-small-en", 384),
    "BAAI/bge-base-en-v1.5": ("fast-bge-base-en-v1.5", 768),
    "BAAI/bge-base-en": ("fast-bge-base-en", 768),
    "BAAI/bge-small-zh-v1.5": ("fast-bge-small-zh-v1.5", 512),
    "sentence-transformers/all-MiniLM-L6-v2": ("fast-all-MiniLM-L6-v2", 384),
}
for _name, _entry in list(FASTEMBED_MODELS.items()):
    FASTEMBED_MODELS.setdefault(_entry[0], _entry)  # contextd also takes the folder names themselves


@dataclass(frozen=True)
class ModelLocation:
    name: str
    folder: Path
    dimension: int


def models_dir(configured: str = "", environ=os.environ) -> Path:
    """contextd's model cache: its EMBEDDINGS_CACHE_DIR, else guardian's setting, else the default."""
    chosen = environ.get("EMBEDDINGS_CACHE_DIR") or configured or DEFAULT_MODELS_DIR
    return Path(os.path.expanduser(chosen))


def model_name(configured: str = "", environ=os.environ) -> str:
    """The model contextd uses: its EMBEDDINGS_MODEL, else guardian's setting, else bge-small-en-v1.5."""
    return environ.get("EMBEDDINGS_MODEL") or configured or DEFAULT_MODEL


def find_contextd_model(name: str, folder: Path) -> ModelLocation:
    """Where fastembed keeps ``name`` under ``folder``; ConfigError (with the reason) when unusable."""
    entry = FASTEMBED_MODELS.get(name)
    if entry is None:
        raise ConfigError(f"contextd model {name!r} is not one fastembed knows",
                          f"use one of {', '.join(sorted(k for k in FASTEMBED_MODELS if '/' in k))}")
    model_folder = folder / entry[0]
    for needed in (MODEL_FILE, TOKENIZER_FILE):
        if not (model_folder / needed).is_file():
            raise ConfigError(f"{model_folder / needed} is missing",
                              "run contextd once so fastembed downloads its model, or set contextd_models_dir")
    return ModelLocation(name, model_folder, entry[1])
