"""The restore pipeline's tests use the snapshot tests' fixtures (state paths over a copied store, a clock)."""

from tests.snapshots.conftest import clock, plain_paths, store_paths  # noqa: F401
