"""Helpers shared by the format tests (fixture paths and iteration)."""

from __future__ import annotations

from pathlib import Path

from guardian.format import chromem

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chromem-go-v0.7.0"


def store_file(root: Path, folder: str, stem: str, compress: bool) -> Path:
    return root / folder / f"{stem}{chromem.extension(compress)}"


def fixture_documents(contents: dict):
    for coll in contents["collections"]:
        for doc in coll["documents"]:
            yield coll, doc
