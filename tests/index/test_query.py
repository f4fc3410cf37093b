"""Pure query semantics against chromem-go v0.7.0's own answers (queries.json)."""

from __future__ import annotations

import numpy as np
import pytest

from guardian.errors import QueryError
from guardian.index import query as q


@pytest.fixture(autouse=True, params=["accelerated", "python"])
def query_path(request, monkeypatch):
    """Every test here runs with the C accelerator (guardian/index/_queryfast.c) and without it."""
    if request.param == "python":
        monkeypatch.setattr(q, "_accelerated", None)
    elif q._accelerated is None:
        pytest.skip("the C accelerator is not built")
    return request.param


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


def python_top_scores(scores: np.ndarray, k: int, monkeypatch) -> tuple[list[int], list[float]]:
    with monkeypatch.context() as patch:
        patch.setattr(q, "_accelerated", None)
        return q.top_scores(scores, k)


def test_the_c_top_k_gives_the_python_answer(query_path, monkeypatch):
    """Random scores with many ties, signed zeros and infinities, k from 1 to past n."""
    if query_path == "python":
        pytest.skip("compares the accelerator with the Python path")
    rng = np.random.default_rng(20261203)
    for _ in range(300):
        n = int(rng.integers(1, 400))
        scores = (rng.integers(-3, 4, size=n) / 4).astype(np.float32)
        scores[rng.random(n) < 0.05] = -0.0
        scores[rng.random(n) < 0.02] = np.inf
        scores[rng.random(n) < 0.02] = -np.inf
        k = min(int(rng.integers(1, n + 3)), 256)  # the accelerator's TOP_K_MAX
        expected = python_top_scores(scores, k, monkeypatch)
        assert q._accelerated.top_k(scores, k) == expected == q.top_scores(scores, k)
        assert expected[0] == full_sort_top(scores, k)


def test_the_c_top_k_leaves_nan_big_k_and_other_arrays_to_python(query_path):
    if query_path == "python":
        pytest.skip("about the accelerator")
    scores = np.linspace(0, 1, 40).astype(np.float32)
    assert q._accelerated.top_k(scores, 3) == ([39, 38, 37], [1.0, float(scores[38]), float(scores[37])])
    with_nan = scores.copy()
    with_nan[5] = np.nan
    for array, k in ((with_nan, 3), (scores, 10_000), (scores.astype(np.float64), 3), (scores[::2], 3),
                     (scores, 0), ([0.5, 0.25], 1), (scores.reshape(4, 10), 3), (scores.astype(">f4"), 3)):
        assert q._accelerated.top_k(array, k) is None
    assert q.top_scores(with_nan, 2)[0] == [39, 5]  # the Python path: NaN after every number


def test_c_vectors_are_the_python_vectors(query_path):
    """float32_bytes/float32_rows: what the Python path makes of floats, None for all it refuses."""
    if query_path == "python":
        pytest.skip("about the accelerator")
    accelerated = q._accelerated
    rng = np.random.default_rng(9)
    values = (rng.normal(size=64) * 10.0 ** rng.integers(-40, 38, size=64)).tolist() + [q.FLOAT32_MAX, -0.0, 5e-324]
    assert accelerated.float32_bytes(values) == np.array(values).astype(np.float32).tobytes()
    rows = [values[:8], values[8:16]]
    assert accelerated.float32_rows(rows) == np.array(rows).astype(np.float32).tobytes()
    for refused in ([], [1.0, 2], [True, 1.0], [1.0, None], [1e39], [3.4028235e38], [float("nan")], [float("inf")],
                    (0.5,), [np.float64(0.5)]):  # 3.4028235e38 > FLT_MAX: the general path rounds it
        assert accelerated.float32_bytes(refused) is None
    for refused in ([], [[]], [[1.0], [1.0, 2.0]], [[1.0], (2.0,)], [[1.0], [1]], [(1.0,)]):
        assert accelerated.float32_rows(refused) is None


def test_a_batch_of_floats_gives_the_general_paths_matrix():
    rng = np.random.default_rng(11)
    rows = rng.normal(size=(5, 16)).tolist()
    request = q.parse_request({"vectors": rows, "k": 2})
    matrix = q.query_matrix(request.vectors if request.vector32 is None else request.vector32, 16)
    assert matrix.tobytes() == q.query_matrix(rows, 16).tobytes()
    assert request.batch and request.vectors is rows
