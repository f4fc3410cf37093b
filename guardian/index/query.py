"""Pure query semantics, identical to chromem-go v0.7.0 ``Collection.QueryEmbedding``.

What chromem does, and what this module reproduces (no I/O here):

* ``nResults`` must be >= 1 and <= the number of documents in the collection, counted
  *before* filtering; when the filters leave fewer documents, fewer results come back.
* ``where``: every key must equal the document's metadata value exactly; a key the document
  does not have counts as ``""``.
* ``where_document``: ``$contains`` / ``$not_contains`` substring tests on the content; every
  given operator must hold; any other operator is an error.
* The query vector is converted to float32; when its length is not 1 within 1e-6 (computed in
  float64, as chromem does) it is normalized in float32.
* Similarity is the float32 dot product with the (already unit-length) stored embeddings;
  results come best first. Ties (which chromem orders arbitrarily) are broken by row order.

Everything a caller can get wrong raises :class:`QueryError` with a 4xx status and a hint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from guardian.errors import QueryError

try:  # optional C accelerator (guardian/index/_queryfast.c): the same answers, without numpy's per-call cost
    from guardian.index import _queryfast as _accelerated
except ImportError:  # pragma: no cover - depends on the build
    _accelerated = None

NORMALIZED_TOLERANCE = 1e-6  # chromem's isNormalizedPrecisionTolerance
DOCUMENT_OPERATORS = ("$contains", "$not_contains")
DEFAULT_K = 10
MAX_BATCH = 1024
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Filters:
    """Validated ``where`` and ``where_document`` filters."""

    where: Mapping[str, str] = field(default_factory=dict)
    where_document: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.where and not self.where_document


NO_FILTERS = Filters()


def parse_filters(where: Any = None, where_document: Any = None) -> Filters:
    """Check the filters' shapes: string keys to string values, known document operators."""
    if where is None and where_document is None:
        return NO_FILTERS   # the common query: one shared (frozen, never changed) empty filter
    where = _string_map(where, "where")
    where_document = _string_map(where_document, "where_document")
    for operator in where_document:
        if operator not in DOCUMENT_OPERATORS:
            raise QueryError(f"unsupported where_document operator {operator!r}",
                             f"use {' or '.join(DOCUMENT_OPERATORS)}")
    return Filters(where=where, where_document=where_document)


def _string_map(value: Any, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise QueryError(f"{name} must be an object of string keys and string values",
                         f'e.g. "{name}": {{"key": "value"}}')
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise QueryError(f"{name} must map strings to strings; got {key!r}: {item!r}",
                             "chromem compares metadata as strings; quote numbers")
    return dict(value)


def document_matches(metadata: Mapping[str, str] | None, content: str, filters: Filters) -> bool:
    """chromem's documentMatchesFilters for one document."""
    metadata = metadata or {}
    for key, wanted in filters.where.items():
        if metadata.get(key, "") != wanted:
            return False
    contains = filters.where_document.get("$contains")
    if contains is not None and contains not in content:
        return False
    not_contains = filters.where_document.get("$not_contains")
    if not_contains is not None and not_contains in content:
        return False
    return True


def matching_rows(metadatas: Sequence[Mapping[str, str] | None], contents: Sequence[str],
                  filters: Filters) -> np.ndarray | None:
    """Row numbers that pass the filters (ascending), or None when there are no filters."""
    if filters.empty:
        return None
    rows = [i for i, (meta, text) in enumerate(zip(metadatas, contents))
            if document_matches(meta, text, filters)]
    return np.asarray(rows, dtype=np.intp)


def check_k(k: Any, document_count: int) -> int:
    """nResults as chromem checks it: an integer, >= 1, <= the collection's document count.

    ``k`` None means "up to 10": min(10, count); on an empty collection that is 0 (no results).
    """
    if k is None:
        return min(DEFAULT_K, document_count)
    if isinstance(k, bool) or not isinstance(k, int):
        raise QueryError(f"k must be an integer, got {k!r}", "pass k as a whole number >= 1")
    if k < 1:
        raise QueryError(f"k must be >= 1, got {k}", "ask for at least one result")
    if k > document_count:
        raise QueryError(f"k={k} is larger than the collection's {document_count} documents",
                         f"pass k <= {document_count} (chromem counts documents before filtering)")
    return k


def query_matrix(vectors: Any, dimension: int | None) -> np.ndarray:
    """Validate one or more query vectors; returns an (m, d) float32 matrix, rows normalized.

    One float32 vector (what :func:`float32_vector` makes of a request's floats) takes a short path:
    a float32 value is exact in float64, so the general path's float64 checks and its cast back could
    not change it. Anything else takes the general path, which words every error.
    """
    if isinstance(vectors, np.ndarray) and vectors.dtype == np.float32 and vectors.ndim == 1 and vectors.size:
        if dimension is not None and vectors.shape[0] != dimension:
            raise QueryError(f"the query vector has {vectors.shape[0]} dimensions, the collection {dimension}",
                             "embed the query with the same model as the collection")
        square_sum = squared_magnitude(vectors)
        if math.isfinite(square_sum):  # every value is finite: a float32's square cannot overflow a float64
            return normalize_query(vectors, square_sum)[np.newaxis, :]
    try:
        matrix = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError):
        raise QueryError("query vectors must be lists of numbers of the same length",
                         'e.g. "vector": [0.1, -0.2, ...]') from None
    if matrix.ndim == 1:
        matrix = matrix[np.newaxis, :]
    if matrix.ndim != 2 or matrix.dtype == object:
        raise QueryError("query vectors must be lists of numbers of the same length",
                         'e.g. "vectors": [[0.1, ...], [0.3, ...]]')
    if matrix.shape[0] == 0:
        raise QueryError("no query vector given", 'pass "vector" or a non-empty "vectors"')
    if matrix.shape[0] > MAX_BATCH:
        raise QueryError(f"a batch holds at most {MAX_BATCH} vectors, got {matrix.shape[0]}",
                         "split the batch")
    if matrix.shape[1] == 0:
        raise QueryError("the query vector is empty", "pass the embedding of your query text")
    if dimension is not None and matrix.shape[1] != dimension:
        raise QueryError(f"the query vector has {matrix.shape[1]} dimensions, the collection {dimension}",
                         "embed the query with the same model as the collection")
    if not np.all(np.isfinite(matrix)):
        raise QueryError("the query vector holds NaN or infinity", "pass finite numbers only")
    with np.errstate(over="ignore"):
        single = matrix.astype(np.float32)
    if not np.all(np.isfinite(single)):
        raise QueryError("the query vector holds numbers too large for float32", "pass smaller numbers")
    if single.shape[0] == 1:
        return normalize_query(single[0])[np.newaxis, :]
    return normalize_rows(single)


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """normalize_query for every row at once (same tolerance, float32 division)."""
    as64 = matrix.astype(np.float64)
    magnitudes = np.sqrt(np.einsum("ij,ij->i", as64, as64))
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix)).astype(np.float32)
    if np.any(norms == 0):
        raise QueryError("a query vector has zero length", "a vector of zeros has no direction; "
                         "pass a real embedding")
    keep = np.abs(magnitudes - 1.0) < NORMALIZED_TOLERANCE
    scaled = (matrix / norms[:, np.newaxis]).astype(np.float32)
    return np.where(keep[:, np.newaxis], matrix, scaled)


def squared_magnitude(vector: np.ndarray) -> float:
    """The sum of squares in float64 (chromem's isNormalized), NaN or infinite when a value is."""
    as64 = vector.astype(np.float64)
    return float(np.dot(as64, as64))


def normalize_query(vector: np.ndarray, square_sum: float | None = None) -> np.ndarray:
    """chromem: leave a vector whose length is 1 within 1e-6; else divide by its float32 norm.

    ``square_sum``: :func:`squared_magnitude` of ``vector`` when the caller has it already."""
    magnitude = math.sqrt(squared_magnitude(vector) if square_sum is None else square_sum)
    if abs(magnitude - 1.0) < NORMALIZED_TOLERANCE:
        return vector
    norm = np.float32(math.sqrt(float(np.dot(vector, vector))))
    if norm == 0 or not np.isfinite(norm):
        raise QueryError("the query vector has zero length", "a vector of zeros has no direction; "
                         "pass a real embedding")
    return (vector / norm).astype(np.float32)


def float32_vector(values: list) -> np.ndarray | None:
    """One query vector of Python floats as float32, or None when some value is not a finite float32
    (NaN, infinity, too large: the general path says which). The same float64 -> float32 cast as the
    general path, with one range check instead of its checks before and after the cast."""
    vector = np.array(values, dtype=np.float64)
    if vector.ndim != 1 or not vector.size or not np.abs(vector).max() <= FLOAT32_MAX:
        return None
    return vector.astype(np.float32)


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, best first; ties by position (ascending)."""
    return np.array(top_scores(scores, k)[0], dtype=np.intp)


def top_scores(scores: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """The k highest scores and their positions, best first; ties by position (ascending).

    One partition around the (k+1)-th best score: when it is lower than the k-th best, the k above it
    are the answer and no tie crosses the cut (no further pass over the scores); when the two are
    equal, tied scores straddle the k-th place and the earliest positions among them are taken.
    The k winners are ordered as Python numbers (a float32 is exact as a float): a handful of numpy
    calls per query instead of a dozen, which is what a query costs beyond its matrix product.
    From 32k scores on only the candidates a sample leaves are partitioned (:func:`_candidates`).
    With the C accelerator a float32 array without NaN takes one pass of C instead (the same answer).
    """
    n = scores.shape[0]
    if k <= 0 or n == 0:
        return [], []
    if _accelerated is not None:
        found = _accelerated.top_k(scores, k)  # one C pass; None for what it leaves to this path
        if found is not None:
            return found
    candidates = _candidates(scores, k)
    if candidates is not None:
        positions, values = _top_of_all(scores[candidates], k)
        return candidates[positions].tolist(), values
    return _top_of_all(scores, k)


def _top_of_all(scores: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """:func:`top_scores` by one partition of every score (k >= 1, at least one score)."""
    n = scores.shape[0]
    if k < n:
        cut = n - k - 1
        parted = np.argpartition(scores, cut)[cut:]   # the (k+1)-th best, then the k best
        below, *values = scores[parted].tolist()
        positions = parted[1:].tolist()
        if _has_nan(values):
            return _nan_last(positions, values)
        if below == min(values):
            chosen = _ties_by_position(scores, below, k)
            positions, values = chosen.tolist(), scores[chosen].tolist()
    else:
        positions, values = list(range(n)), scores.tolist()
        if _has_nan(values):
            return _nan_last(positions, values)
    ranked = sorted(zip([-value for value in values], positions))  # best first; equal scores by position
    return [position for _, position in ranked], [-negated for negated, _ in ranked]


SAMPLE_EVERY = 32      # one score in 32 is sampled ...
SAMPLED_FROM = 32768   # ... from this many scores on (fewer: one partition of them all is as quick)


def _candidates(scores: np.ndarray, k: int) -> np.ndarray | None:
    """Positions (ascending) that hold every score at or above the (k+1)-th best, or None.

    The (k+1)-th best of every 32nd score is at most the (k+1)-th best of all (the sample alone
    holds k+1 scores that high), so no score below it can be among the k best or tie with the
    (k+1)-th: partitioning the ~32(k+1) scores at or above it gives what partitioning all would,
    ties included, in half the time at 100k scores (below ~30k the extra numpy calls cost more than
    they save). NaN counts as above (``not <``), as numpy's partition sorts it last."""
    n = scores.shape[0]
    if n < SAMPLED_FROM or (k + 1) * SAMPLE_EVERY * 8 > n:
        return None
    sample = scores[::SAMPLE_EVERY]
    at = sample.size - k - 1
    threshold = np.partition(sample, at)[at]
    return np.flatnonzero(~(scores < threshold))


def _has_nan(values: list[float]) -> bool:
    total = sum(values)  # NaN when a value is NaN (or +inf and -inf are both there): then look closer
    return total != total and any(value != value for value in values)


def _nan_last(positions: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    """NaN scores (a product that overflowed float32) as numpy orders them: after every number."""
    order = np.lexsort((positions, -np.array(values))).tolist()
    return [positions[i] for i in order], [values[i] for i in order]


def _ties_by_position(scores: np.ndarray, threshold, k: int) -> np.ndarray:
    """Keep every score above the threshold, then the earliest positions among the tied ones."""
    above = np.flatnonzero(scores > threshold)
    tied = np.flatnonzero(scores == threshold)[: k - above.size]
    return np.concatenate([above, tied])


def rank(matrix: np.ndarray, queries: np.ndarray, k: int,
         rows: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query row: (row numbers into ``matrix``, float32 similarities), best first.

    ``rows`` restricts the candidates (the filter's survivors); None means all rows.
    """
    if rows is not None and rows.size == 0:
        return [(np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)) for _ in queries]
    if rows is None:
        scores = queries @ matrix.T if len(queries) > 1 else (matrix @ queries[0])[np.newaxis, :]
    elif rows.size * 4 < matrix.shape[0]:
        scores = queries @ matrix[rows].T
    else:
        scores = (queries @ matrix.T)[:, rows]
    return pick(scores, k, rows)


def pick(scores: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The best k of each row of an (m, n) score matrix, as ``rank`` returns them (``rows``: the
    candidates the n columns stand for, None: all rows in order)."""
    return [(np.array(best, dtype=np.intp), np.array(similarities, dtype=np.float32))
            for best, similarities in pick_lists(scores, k, rows)]


def pick_lists(scores: np.ndarray, k: int, rows: np.ndarray | None = None) -> list[tuple[list[int], list[float]]]:
    """:func:`pick` as Python lists (row numbers, similarities), what a query's results are made of."""
    answers = []
    for column in range(scores.shape[0]):
        positions, values = top_scores(scores[column], k)
        answers.append((positions if rows is None else rows[positions].tolist(), values))
    return answers


class QueryRequest(NamedTuple):
    """A parsed query: exactly one of vectors / like / texts, plus k and the filters.

    A named tuple rather than a frozen dataclass: as immutable, and made in a quarter of the time
    (one is made per query)."""

    vectors: list | None = None
    like: str | None = None
    vector32: np.ndarray | None = None   # ``vectors`` as float32 (a vector, or a batch's rows) when only floats
    texts: list[str] | None = None
    k: Any = None
    filters: Filters = NO_FILTERS
    batch: bool = False


def _packed_floats(value: Any, batch: bool) -> np.ndarray | None:
    """A vector (or a batch's equal-length rows) of floats within float32's range as float32, made by
    the C accelerator (guardian/index/_queryfast.c) in one pass; None without it or for anything else
    (ints, other types, NaN, ragged rows...), which then takes the Python checks and their errors.
    The same array the Python path makes of floats: the same cast, the same range test."""
    if _accelerated is None:
        return None
    packed = (_accelerated.float32_rows if batch else _accelerated.float32_bytes)(value)
    if packed is None:
        return None
    floats = np.frombuffer(packed, dtype=np.float32)
    return floats.reshape(len(value), -1) if batch else floats


NUMBER_TYPES = {int, float}
FLOAT_ONLY = {float}
QUERY_KEYS = ("vector", "vectors", "like", "text", "texts")
ALLOWED_KEYS = set(QUERY_KEYS) | {"k", "n_results", "where", "where_document"}


def parse_request(body: Any) -> QueryRequest:
    """Validate a query request body (JSON object) into a :class:`QueryRequest`."""
    if not isinstance(body, Mapping):
        raise QueryError("the request body must be a JSON object", 'e.g. {"vector": [...], "k": 5}')
    if not ALLOWED_KEYS.issuperset(body):
        unknown = sorted(set(body) - ALLOWED_KEYS)
        raise QueryError(f"unknown field(s) {', '.join(unknown)}", f"known: {', '.join(sorted(ALLOWED_KEYS))}")
    given = [key for key in QUERY_KEYS if body.get(key) is not None]
    if len(given) != 1:
        raise QueryError("pass exactly one of vector, vectors, like, text, texts"
                         + (f" (got {', '.join(given)})" if given else ""),
                         'e.g. {"vector": [0.1, ...]} or {"like": "<document id>"}')
    key = given[0]
    value = body[key]
    k = body.get("k", body.get("n_results"))
    filters = parse_filters(body.get("where"), body.get("where_document"))
    if key in ("vector", "vectors"):
        packed = _packed_floats(value, batch=key == "vectors")
        if packed is not None:
            return QueryRequest(vectors=value, k=k, filters=filters, batch=key == "vectors", vector32=packed)
        if not isinstance(value, list):
            raise QueryError(f"{key} must be a list", 'e.g. "vector": [0.1, -0.2, ...]')
        if key == "vectors" and not all(isinstance(v, list) for v in value):
            raise QueryError("vectors must be a list of lists of numbers", 'e.g. "vectors": [[0.1, ...]]')
        rows = value if key == "vectors" else [value]
        for row in rows:
            types = set(map(type, row))
            if not types <= NUMBER_TYPES:
                if key == "vector" and list in types:
                    raise QueryError("vector must be a flat list of numbers", 'use "vectors" for a batch')
                raise QueryError(f"{key} must hold numbers only", "remove strings, booleans and nulls")
        vector32 = float32_vector(value) if key == "vector" and types == FLOAT_ONLY else None
        return QueryRequest(vectors=value, k=k, filters=filters, batch=key == "vectors", vector32=vector32)
    if key == "like":
        if not isinstance(value, str):
            raise QueryError("like must be a document id (a string)", 'e.g. "like": "doc-1"')
        return QueryRequest(like=value, k=k, filters=filters)
    texts = [value] if key == "text" else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise QueryError(f"{key} must be a non-empty string" + ("" if key == "text" else " list"),
                         'e.g. "text": "how do we rotate tokens?"')
    return QueryRequest(texts=texts, k=k, filters=filters, batch=key == "texts")
