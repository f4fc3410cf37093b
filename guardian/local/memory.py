"""Give freed heap memory back to the system after a burst of allocations.

A cold index build or a first snapshot of a large store allocates and frees hundreds of MB of small
objects. glibc keeps freed heap pages for reuse, so a long-running sidecar would go on holding them
as private memory; ``malloc_trim(0)`` returns them. Elsewhere (macOS, musl) there is nothing to do.
"""

from __future__ import annotations

import ctypes

_trim = None
try:
    _trim = ctypes.CDLL("libc.so.6").malloc_trim
    _trim.argtypes, _trim.restype = [ctypes.c_size_t], ctypes.c_int
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _trim = None


def release_free_memory() -> bool | None:
    """Return free heap memory to the system: True if some was returned, None where unsupported."""
    if _trim is None:  # pragma: no cover - not glibc
        return None
    return bool(_trim(0))
