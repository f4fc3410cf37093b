"""What a person recognises a memory by, and what changed between two versions (pure)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from guardian.format.chromem import Document
from guardian.memories.versions import DocumentFile, changed_fields, changed_keys, document_file, title_of, when


def test_document_files_are_collection_folder_and_stem():
    assert document_file("4a8f7b86/01e48869.gob") == DocumentFile("4a8f7b86", "01e48869")
    assert document_file("4a8f7b86/01e48869.gob.gz") == DocumentFile("4a8f7b86", "01e48869")
    for other in ("4a8f7b86/00000000.gob", "top.gob", "a/b/c.gob", "a/notes.txt", "a/.gob"):
        assert document_file(other) is None


def test_title_is_contextd_title_then_name_then_description_then_first_line():
    assert title_of({"title": " JWT  rotation ", "name": "x"}, "body") == "JWT rotation"
    assert title_of({"name": "ckpt-3", "description": "d"}, "body") == "ckpt-3"     # a checkpoint
    assert title_of({"description": "what went wrong"}, "body") == "what went wrong"
    assert title_of({"title": ""}, "\n\n  first line  \nsecond") == "first line"
    assert title_of({}, "") == ""
    assert len(title_of({"title": "t" * 500}, "")) == 200


def test_changed_fields_compare_bit_for_bit():
    vector = np.array([0.5, -0.0], dtype=np.float32)
    old = Document("m", {"a": "1", "b": "2"}, vector, "text")
    assert changed_fields(old, Document("m", {"a": "1", "b": "2"}, vector.copy(), "text")) == []
    assert changed_fields(old, Document("m", {"a": "1", "b": "2"}, np.array([0.5, 0.0], np.float32), "text")) == \
        ["embedding"]   # -0.0 and 0.0 are other bits: chromem's bytes changed
    assert changed_fields(old, Document("m", {"a": "1"}, vector, "text!")) == ["content", "metadata"]
    assert changed_keys({"a": "1", "b": "2"}, {"a": "3", "c": "4"}) == ["a", "b", "c"]


def test_when_reads_unix_seconds_and_iso_times():
    moment = datetime(2026, 1, 2, 11, 17, tzinfo=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")
    assert when("1767352620") == moment
    assert when("2026-01-02T11:17:00Z") == moment
    assert when("soon") == "soon"
