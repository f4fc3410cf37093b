"""Pure query semantics against chromem-go v0.7.0's own answers (queries.json)."""

from __future__ import annotations

import numpy as np
import pytest

from guardian.errors import QueryError
from guardian.index import query as q


def collection_arrays(contents, name):
    collection = next(c for c in contents["collections"] if c["name"] == name)
    docs = collection["documents"]
    matrix = np.array([d["embedding"] for d in docs], dtype=np.float32)
    return docs, matrix


def all_cases(queries):
    return [(name, i) for name, cases in queries.items() for i in range(len(cases))]


@pytest.mark.parametrize("k_key", [(1, "top1"), (5, "top5")])
def test_every_fixture_case_matches_chromem(contents, queries, k_key):
    k, key = k_key
    for name, cases in queries.items():
        docs, matrix = collection_arrays(contents, name)
        for case in cases:
            body = case["query"]
            filters = q.parse_filters(body.get("where"), body.get("where_document"))
            rows = q.matching_rows([d.get("metadata") for d in docs], [d["content"] for d in docs], filters)
            queries_matrix = q.query_matrix(body["vector"], matrix.shape[1])
            (best, sims), = q.rank(matrix, queries_matrix, q.check_k(k, len(docs)), rows)
            assert [docs[i]["id"] for i in best] == [r["id"] for r in case[key]]
            assert np.allclose(sims, [r["similarity"] for r in case[key]], atol=1e-5, rtol=0)


def test_where_missing_key_counts_as_empty_string():
    filters = q.parse_filters({"tenant": ""})
    assert q.document_matches({}, "x", filters)
    assert q.document_matches(None, "x", filters)
    assert not q.document_matches({"tenant": "a"}, "x", filters)


def test_where_document_needs_every_operator():
    filters = q.parse_filters(None, {"$contains": "lesson", "$not_contains": "auth"})
    assert q.document_matches({}, "a lesson", filters)
    assert not q.document_matches({}, "auth lesson", filters)
    assert not q.document_matches({}, "nothing", filters)


def test_unknown_operator_and_bad_shapes_are_400():
    with pytest.raises(QueryError) as err:
        q.parse_filters(None, {"$regex": "x"})
    assert err.value.status == 400 and "$regex" in err.value.message
    with pytest.raises(QueryError):
        q.parse_filters({"n": 1})
    with pytest.raises(QueryError):
        q.parse_filters(["a"])


def test_k_rules_follow_chromem():
    assert q.check_k(None, 3) == 3
    assert q.check_k(None, 40) == 10
    assert q.check_k(None, 0) == 0
    assert q.check_k(4, 4) == 4
    for bad in (0, -1, 5, 2.5, "3", True):
        with pytest.raises(QueryError) as err:
            q.check_k(bad, 4)
        assert 400 <= err.value.status < 500


@pytest.mark.parametrize("vector, reason", [
    ([], "empty"), ([0.0, 0.0, 0.0], "zero length"), ([1.0, float("nan"), 0.0], "NaN"),
    ([1.0, float("inf"), 0.0], "NaN or infinity"), ([1.0, 2.0], "dimensions"), ([1e39, 1.0, 1.0], "float32"),
    ([[1.0, 2.0, 3.0], [1.0]], "same length"),
])
def test_bad_vectors_are_400_with_reason(vector, reason):
    with pytest.raises(QueryError) as err:
        q.query_matrix(vector, 3)
    assert reason in err.value.message
    assert err.value.status == 400


def test_normalization_leaves_unit_vectors_and_scales_others():
    unit = np.array([0.6, 0.8, 0.0], dtype=np.float32)
    assert q.normalize_query(unit) is unit
    scaled = q.normalize_query(np.array([3.0, 4.0, 0.0], dtype=np.float32))
    assert scaled.dtype == np.float32
    assert np.allclose(scaled, [0.6, 0.8, 0.0])


def test_top_rows_best_first_ties_by_position():
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.9], dtype=np.float32)
    assert list(q.top_rows(scores, 3)) == [1, 4, 0]
    assert list(q.top_rows(scores, 5)) == [1, 4, 0, 2, 3]
    assert list(q.top_rows(scores[:0], 3)) == []


def test_rank_batch_equals_single_queries():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(50, 8)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    queries = q.query_matrix(rng.normal(size=(4, 8)).tolist(), 8)
    batch = q.rank(matrix, queries, 5)
    for row, (best, sims) in zip(queries, batch):
        (one_best, one_sims), = q.rank(matrix, row[None, :], 5)
        assert list(best) == list(one_best)
        assert np.allclose(sims, one_sims, atol=1e-6)


def test_rank_with_filter_rows_maps_back_to_matrix_rows():
    matrix = np.eye(4, dtype=np.float32)
    query = q.query_matrix([0.0, 0.0, 1.0, 0.0], 4)
    for rows in (np.array([1, 2]), np.array([0, 1, 2, 3])):
        (best, sims), = q.rank(matrix, query, 2, rows)
        assert best[0] == 2 and sims[0] == pytest.approx(1.0)
    (best, _), = q.rank(matrix, query, 2, np.array([], dtype=np.intp))
    assert len(best) == 0


def test_parse_request_shapes():
    req = q.parse_request({"vector": [1, 2], "k": 3, "where": {"a": "b"}})
    assert req.vectors == [1, 2] and req.k == 3 and req.filters.where == {"a": "b"} and not req.batch
    assert q.parse_request({"vectors": [[1.0]]}).batch
    assert q.parse_request({"like": "doc"}).like == "doc"
    assert q.parse_request({"text": "hi"}).texts == ["hi"]
    for bad in ([], {}, {"vector": [1], "like": "x"}, {"vector": "abc"}, {"vector": [[1]]},
                {"vectors": [1, 2]}, {"vector": [True]}, {"like": 3}, {"text": ""}, {"vector": [1], "x": 1}):
        with pytest.raises(QueryError):
            q.parse_request(bad)


def test_top_rows_equals_a_full_sort_with_many_ties():
    """Against the plain definition (score descending, then position) on scores full of ties."""
    rng = np.random.default_rng(20261202)
    for _ in range(400):
        n = int(rng.integers(1, 60))
        scores = rng.integers(0, 4, size=n).astype(np.float32) / 4
        k = int(rng.integers(1, n + 1))
        expected = sorted(range(n), key=lambda i: (-scores[i], i))[:k]
        assert list(q.top_rows(scores, k)) == expected


def test_one_float_vector_takes_the_short_path_with_the_same_answer():
    """parse_request's float32 copy of a vector of floats gives bit for bit the general path's matrix."""
    rng = np.random.default_rng(7)
    cases = [rng.normal(size=16).tolist(), (rng.normal(size=16) * 1e15).tolist(),
             [1e-45, 3e-39, 0.5, -2.0], [0.6, 0.8, 0.0, 0.0], (rng.normal(size=16) / 4).tolist()]
    for values in cases:
        request = q.parse_request({"vector": values})
        assert request.vector32 is not None and request.vector32.dtype == np.float32
        short = q.query_matrix(request.vector32, len(values))
        general = q.query_matrix(values, len(values))
        assert short.dtype == general.dtype == np.float32
        assert short.tobytes() == general.tobytes()


@pytest.mark.parametrize("values, reason", [
    ([1e39, 1.0, 1.0], "float32"), ([float("nan"), 1.0, 1.0], "NaN"), ([float("inf"), 1.0, 1.0], "NaN or infinity"),
])
def test_vectors_the_short_path_refuses_still_get_the_general_errors(values, reason):
    request = q.parse_request({"vector": values})
    assert request.vector32 is None
    with pytest.raises(QueryError) as err:
        q.query_matrix(request.vectors, 3)
    assert reason in err.value.message


def test_short_path_checks_dimension_and_zero_length():
    with pytest.raises(QueryError) as err:
        q.query_matrix(q.parse_request({"vector": [0.5, 0.5]}).vector32, 3)
    assert "dimensions" in err.value.message
    with pytest.raises(QueryError) as err:
        q.query_matrix(q.parse_request({"vector": [0.0, 0.0, 0.0]}).vector32, 3)
    assert "zero length" in err.value.message


def full_sort_top(scores: np.ndarray, k: int) -> list[int]:
    """The plain definition: score descending, then position."""
    return sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))[:k]


@pytest.mark.parametrize("n", [q.SAMPLED_FROM, 3 * q.SAMPLED_FROM + 17])
def test_top_scores_from_a_sample_equals_a_full_sort(n):
    """Enough scores for the sampled candidates: the same rows and scores as a full sort, ties included."""
    rng = np.random.default_rng(20261202)
    assert q._candidates(rng.normal(size=n).astype(np.float32), 10) is not None  # the sampled path runs
    for distinct in (3, 40, None):  # few distinct scores (ties straddle the cut), some, all different
        scores = (rng.normal(size=n) if distinct is None else rng.integers(0, distinct, size=n) / distinct)
        scores = scores.astype(np.float32)
        for k in (1, 10, 50):
            positions, values = q.top_scores(scores, k)
            expected = full_sort_top(scores, k)
            assert positions == expected, (distinct, k)
            assert values == [float(scores[i]) for i in expected]
    ties = np.zeros(n, dtype=np.float32)
    ties[[5, n - 1, n // 2]] = 1.0  # all but three tie: the earliest positions among the ties
    assert q.top_scores(ties, 6)[0] == [5, n // 2, n - 1, 0, 1, 2]


@pytest.mark.parametrize("n", [50, q.SAMPLED_FROM + 5])
def test_nan_scores_come_last_and_infinities_keep_ties_by_position(n):
    """An overflowing product (NaN, +-inf): NaN after every number (numpy's order), by position;
    infinities are numbers, ties among them by position."""
    scores = np.linspace(-1, 1, n).astype(np.float32)
    scores[[3, 7]] = np.nan
    positions, values = q.top_scores(scores, 4)
    assert positions == [n - 1, n - 2, 3, 7]
    assert values[:2] == [1.0, float(scores[n - 2])] and all(v != v for v in values[2:])
    scores = np.full(n, -np.inf, dtype=np.float32)
    scores[[9, 2]] = np.inf
    assert q.top_scores(scores, 4) == ([2, 9, 0, 1], [np.inf, np.inf, -np.inf, -np.inf])


def test_query_request_is_immutable():
    request = q.parse_request({"vector": [0.5, 0.5], "k": 1})
    with pytest.raises(AttributeError):
        request.k = 2
    assert request.filters is q.NO_FILTERS and not request.batch


def test_short_path_sends_a_non_finite_float32_vector_to_the_general_errors():
    for values, reason in (([np.inf, 1.0], "NaN or infinity"), ([np.nan, 1.0], "NaN or infinity")):
        with pytest.raises(QueryError) as err:
            q.query_matrix(np.array(values, dtype=np.float32), 2)
        assert reason in err.value.message
