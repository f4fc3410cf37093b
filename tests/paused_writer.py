"""A writer that updates a store file as chromem does - open with O_TRUNC (``os.Create``), write, close -
and pauses between its truncate and its write for as long as the test says: a stopped, swapped or
debugged contextd. A real process with a real descriptor, so the operating system sees it hold the file."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
print("truncated", flush=True)
command = sys.stdin.readline().split()          # the pause: until the test says what to do
if command and command[0] in ("write", "die-mid-write"):
    with open(command[1], "rb") as source:
        data = source.read()
    if command[0] == "die-mid-write":
        os.write(fd, data[: len(data) // 2])
        os._exit(9)                              # killed mid-write: the kernel closes the file
    for start in range(0, len(data), 4096):      # a large document goes in several writes
        os.write(fd, data[start:start + 4096])
os.close(fd)
print("closed", flush=True)
"""


class PausedWriter:
    """Truncates ``path`` at once (the file is then 0 bytes and held); :meth:`write` ends the pause."""

    def __init__(self, path: Path, scratch: Path) -> None:
        self.path, self.scratch = Path(path), Path(scratch)
        self.proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "truncated"

    def _say(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def write(self, data: bytes) -> None:
        """Write ``data`` through the descriptor it truncated, close, exit."""
        source = self.scratch / f"update-{self.proc.pid}"
        source.write_bytes(data)
        self._say(f"write {source}")
        assert self.proc.stdout.readline().strip() == "closed"
        assert self.proc.wait(timeout=60) == 0

    def die_mid_write(self, data: bytes) -> None:
        source = self.scratch / f"update-{self.proc.pid}"
        source.write_bytes(data)
        self._say(f"die-mid-write {source}")
        self.proc.wait(timeout=60)

    def close_without_writing(self) -> None:
        self._say("close")
        assert self.proc.wait(timeout=60) == 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def updated_document(data: bytes, content: str, compress: bool = False) -> bytes:
    """A new version of the document ``data`` (same id and embedding, new content), encoded as chromem
    encodes it."""
    from guardian.format import chromem

    doc = chromem.decode_document(data)
    return chromem.encode_document(dataclasses.replace(doc, content=content), compress)


def chromem_contents(chromemh: Path, store: Path, compress: bool = False) -> dict[str, str]:
    """document id -> content, as the real chromem loads the store ({} when it refuses it)."""
    proc = subprocess.run([str(chromemh), "dump", str(store), "1" if compress else "0"], capture_output=True,
                          timeout=300, check=True)
    loaded = json.loads(proc.stdout)
    return {doc["id"]: doc["content"] for coll in loaded.get("collections") or [] for doc in coll["documents"]}
