"""Memories, not files: what changed between two points in time, every version of one memory, one
memory in full at a moment, and every memory in any snapshot that matches a text or metadata.

A memory is one chromem document, known by its collection and its ID (the same ID in two
collections is two memories). chromem names a document's file from its ID (``sha256(id)[:8]``), so
the file a memory lives in is known without reading anything; a snapshot's manifest gives the
sha256 of every file, and a blob is stored once whatever the number of snapshots holding it. So
these answers compare hashes first and decode only the blobs that can matter, each at most once.

The answers are plain dataclasses with ``to_dict()``: ``guardian diff|history|show|find`` print them,
the HTTP API (``/v1/diff``, ``/v1/memories/...``, ``/v1/find``) serves the same dicts, through
:class:`guardian.memories.browser.MemoryBrowser`.
"""
