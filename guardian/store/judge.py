"""Would chromem accept these bytes as this file? One file at a time (snapshots, restore, live repair).

``damage_of(rel, data)`` judges a store-relative path's content as chromem's loader would: a file in
a collection folder ending ``.gob``/``.gob.gz`` must decode as a document (or, for ``00000000``, as
the collection's metadata). Anything else guardian does not judge (chromem does not read it).
"""

from __future__ import annotations

from guardian.format.layout import GOB_EXT, GZ_EXT, METADATA_STEM

METADATA_NAMES = (METADATA_STEM + GOB_EXT, METADATA_STEM + GZ_EXT)


def role_of(rel: str) -> str | None:
    """"metadata", "document", or None for a path chromem's loader never decodes."""
    folder, slash, name = rel.partition("/")
    if not slash or "/" in name or not folder:
        return None
    if name in METADATA_NAMES:
        return "metadata"
    if name.endswith(GOB_EXT) or name.endswith(GZ_EXT):
        return "document"
    return None


def damage_of(rel: str, data: bytes) -> str | None:
    """Why chromem would refuse ``data`` as the file ``rel`` (e.g. "empty", the gob error), else None."""
    role = role_of(rel)
    if role is None:
        return None
    if not data:
        return "empty"
    from guardian.format import chromem
    from guardian.format.gob import GobError

    try:
        if role == "metadata":
            chromem.decode_collection(data)
        else:
            chromem.decode_document(data)
    except GobError as exc:
        return exc.reason or "does not decode"
    return None
