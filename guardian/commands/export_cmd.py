"""`guardian export`: every document as JSON Lines {collection, id, content, metadata, embedding}."""

from __future__ import annotations

import json
import os
import sys

from guardian.commands.output import require_store, write_user_file
from guardian.errors import ExitCode, UsageError
from guardian.format import chromem
from guardian.store.scan import scan_store
from guardian.words import count

HELP = "write every document as JSON Lines (collection, id, content, metadata, embedding)"


def add_arguments(parser) -> None:
    parser.add_argument("--collection", help="only this collection (by name)")
    parser.add_argument("--output", "-o",
                        help="write to this file (atomically; an existing device or FIFO is written into) "
                             "instead of stdout")


def run(args, ctx) -> int:
    require_store(ctx, "export")
    scan = scan_store(ctx.config.store_path, ctx.config.compress_flag)
    collections = [c for c in scan.collections if c.name and not c.skipped]
    if args.collection:
        collections = [c for c in collections if c.name == args.collection]
        if not collections:
            known = ", ".join(sorted(c.name for c in scan.collections if c.name)) or "none"
            raise UsageError(f"no collection named {args.collection!r} in {scan.root}",
                             f"known collections: {known}")
    lines = export_lines(collections, scan.compress)
    if args.output:
        body = "".join(lines).encode("utf-8", "surrogateescape")
        write_user_file(args.output, body)
        print(f"wrote {count(len(lines), 'document')} to {args.output}", file=sys.stderr)
    else:
        for line in lines:
            sys.stdout.write(line)
    skipped = sum(1 for p in scan.problems if p.kind.startswith("document_"))
    if skipped:
        print(f"warning: skipped {count(skipped, 'unreadable document file')} (see `guardian check`)",
              file=sys.stderr)
    return ExitCode.OK


def export_lines(collections, compress: bool) -> list[str]:
    ext = chromem.extension(compress)
    lines = []
    for coll in collections:
        names = sorted(n for n in os.listdir(coll.path)
                       if n.endswith(ext) and n != chromem.METADATA_STEM + ext
                       and os.path.isfile(os.path.join(coll.path, n)))
        batch = chromem.read_documents([os.path.join(coll.path, n) for n in names])
        vectors = {p: v for p, v in batch.ragged.items()}
        for i, doc_id in enumerate(batch.ids):
            record = {"collection": coll.name, "id": doc_id, "content": batch.contents[i],
                      "metadata": batch.metadatas[i], "embedding": batch.embeddings[i].tolist()}
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        for path, vector in vectors.items():
            doc = chromem.read_document(path)
            lines.append(json.dumps({"collection": coll.name, "id": doc.id, "content": doc.content,
                                     "metadata": doc.metadata, "embedding": vector.tolist()},
                                    ensure_ascii=False) + "\n")
    return lines
