"""Packed columns and logical rows (guardian/index/rows.py): exact values, byte searches, updates."""

from __future__ import annotations

import marshal

import numpy as np
import pytest

from guardian.index.rows import PackedMetadata, PackedStrings, Rows, Segment


def segment(ids: list[str], dim: int = 4, seed: int = 0) -> Segment:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((len(ids), dim)).astype(np.float32)
    return Segment.of_rows([f"{i}.gob" for i in ids], ids, [f"content of {i}" for i in ids],
                           [{"id": i, "even": str(n % 2 == 0)} for n, i in enumerate(ids)], matrix)


def test_packed_strings_hold_any_go_string():
    texts = ["", "plain", "€uro", "bad \udcff byte", "x" * 1000]
    packed = PackedStrings.of_strings(texts)
    assert list(packed) == texts
    assert [packed[i] for i in range(len(texts))] == texts and packed[-1] == texts[-1]
    assert packed[1:3] == texts[1:3]
    assert packed.raw(3) == b"bad \xff byte"  # the file's own bytes, as chromem compares them
    with pytest.raises(IndexError):
        packed[len(texts)]
    joined = PackedStrings.joined([packed, PackedStrings.of_strings(["tail"])])
    assert list(joined) == texts + ["tail"]
    assert list(packed.take([4, 0])) == [texts[4], texts[0]]


def test_containing_matches_a_substring_test_per_row():
    rng = np.random.default_rng(20261202)
    texts = ["".join(rng.choice(list("ab€"), size=int(rng.integers(0, 6)))) for _ in range(400)]
    packed = PackedStrings.of_strings(texts)
    for needle in ["", "a", "ab", "ba", "€", "a€b", "bbb", "€€", "abab€"]:
        assert packed.containing(needle.encode()).tolist() == [needle in t for t in texts], needle


def test_packed_metadata_round_trip_and_damage_reads_as_empty():
    maps = [{"a": "1", "b": ""}, None, {}, {"k\udcff": "v€"}]
    packed = PackedMetadata.of_maps(maps)
    assert list(packed) == [{"a": "1", "b": ""}, {}, {}, {"k\udcff": "v€"}]
    broken = PackedMetadata(b"\xff\x00garbage", np.array([0, 9], dtype=np.int64))
    assert broken[0] == {}


def test_updates_keep_the_logical_order_and_never_copy_the_base():
    base = segment(["a", "b", "c", "d", "e"])
    rows = Rows(base)
    fewer = rows.without([1, 3])
    assert list(fewer.ids) == ["a", "c", "e"] and fewer.base is base
    more = fewer.plus(segment(["x", "y"], seed=1))
    assert list(more.ids) == ["a", "c", "e", "x", "y"]
    again = more.without([3]).plus(segment(["z"], seed=2))
    assert list(again.ids) == ["a", "c", "e", "y", "z"] and again.base is base and not again.compact
    assert list(again.files) == [f"{i}.gob" for i in "aceyz"]
    assert [again.row_of("ids", i) for i in ("a", "b", "e", "y", "z", "nope")] == [0, None, 2, 3, 4, None]
    assert again.row_of("files", "c.gob") == 1
    expected = np.stack([base.matrix[0], base.matrix[2], base.matrix[4],
                         segment(["x", "y"], seed=1).matrix[1], segment(["z"], seed=2).matrix[0]])
    assert np.array_equal(again.matrix, expected)
    assert np.array_equal(again.vector(3), expected[3])
    queries = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    assert np.allclose(again.scores(queries[:1]), expected @ queries[0])
    assert np.allclose(again.scores(queries), queries @ expected.T)
    subset = np.array([0, 3, 4])
    assert np.allclose(again.subset_scores(queries, subset), queries @ expected[subset].T)
    assert again.where_mask("even", "True").tolist() == [True, True, True, False, True]
    assert again.where_mask("missing", "").tolist() == [True] * 5  # a missing key reads as ""
    assert again.contains_mask(b"of y").tolist() == [False, False, False, True, False]
    parts, offsets = again.column_data("contents")
    assert b"".join(parts).decode() == "".join(f"content of {i}" for i in "aceyz")
    assert offsets.tolist()[-1] == len(b"".join(parts))


def test_warm_columns_build_what_where_mask_reads_in_one_pass():
    rows = Rows(segment(["a", "b", "c"])).plus(segment(["x", "y"], seed=1))
    fresh = Rows(segment(["a", "b", "c"])).plus(segment(["x", "y"], seed=1))
    rows.warm_columns(["even", "id", "missing"])
    assert {name for name in rows.base._lookups} == {"meta:even", "meta:id", "meta:missing"}
    for key, wanted in (("even", "True"), ("id", "b"), ("id", "y"), ("missing", ""), ("even", "nope")):
        assert rows.where_mask(key, wanted).tolist() == fresh.where_mask(key, wanted).tolist()
    before = rows.base._lookups["meta:even"]
    rows.warm_columns(["even"])
    assert rows.base._lookups["meta:even"] is before  # built once


def test_matrix_chunks_cover_the_logical_rows():
    rows = Rows(segment([str(i) for i in range(10)])).without([2, 7]).plus(segment(["n"], seed=4))
    assert np.array_equal(np.concatenate(list(rows.matrix_chunks(rows_per_chunk=3))), rows.matrix)


def test_shown_reads_the_given_logical_rows_in_their_order():
    """Base rows (some dropped), extra rows, repeats, any order: what per-row reads give."""
    rows = Rows(segment([f"d{i}" for i in range(8)])).without([1, 4]).plus(segment(["x", "y\udcff"], seed=1))
    assert list(rows.ids) == ["d0", "d2", "d3", "d5", "d6", "d7", "x", "y\udcff"]
    for wanted in ([7, 0, 6, 3], [2, 2, 7], [0], [6, 7], np.array([5, 1, 6], dtype=np.intp), []):
        ids, contents, metadatas = rows.shown(wanted)
        wanted = list(wanted)
        assert ids == [rows.ids[i] for i in wanted]
        assert contents == [rows.contents[i] for i in wanted]
        assert metadatas == [rows.metadatas[i] for i in wanted]
    compact = Rows(segment(["a", "b", "c"]))
    assert compact.shown([2, 0]) == (["c", "a"], ["content of c", "content of a"],
                                     [{"id": "c", "even": "True"}, {"id": "a", "even": "True"}])
    for bad in ([8], [-1], [0, 9]):
        with pytest.raises(IndexError):
            rows.shown(bad)


def test_picked_metadata_reads_damage_as_empty():
    good = PackedMetadata.of_maps([{"a": "1"}]).data()
    not_a_map = marshal.dumps(["a", "list"])
    packed = PackedMetadata(good + b"\xff\x00garbage" + not_a_map,
                            np.array([0, len(good), len(good) + 9, len(good) + 9 + len(not_a_map)], dtype=np.int64))
    assert packed.pick([0, 1, 2, 0]) == [{"a": "1"}, {}, {}, {"a": "1"}]
    assert packed.pick([2, 0]) == [{}, {"a": "1"}]  # no damaged row among them but a non-map one
