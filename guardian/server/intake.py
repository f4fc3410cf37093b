"""A request's bytes gathered before a worker thread sees it: pure bookkeeping, no socket here.

Why: cheroot reads a request in a worker thread with blocking reads. A client that sends headers
and one byte of a promised body, then stalls, kept a worker for a whole read timeout; eight such
clients held every worker, health checks included, for 10 s, and 200 of them for 250 s. So the
server's selector thread gathers each request here (without ever blocking) until it is whole —
its head, and the body when the request will read one — and only then hands the connection to a
worker, which reads it from memory. A stalled client costs a socket and the bytes it sent.

:meth:`Intake.judge` decides when that is. It finds the end of the head as cheroot reads it
(lines ending in CRLF, one empty line before the request line skipped) and parses the headers with
cheroot's own header reader, so the two agree on what the head is. Whenever the head is not one
cheroot would accept (a bare LF, no colon, a bad Content-Length, too long), or the body will not be
read (a refused request — wrong token or route —, no body wanted, over the size limit, chunked),
the connection is handed over as it is: cheroot and the API answer from what is buffered, with
the same error they always gave.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Callable

from cheroot.server import HTTPRequest

WAIT, READY, HAND_OVER = "wait", "ready", "hand over"
CRLF = b"\r\n"


@dataclass(frozen=True)
class Head:
    method: str
    target: str
    headers: dict[str, str]  # cheroot's names (Title-Case), latin-1 text
    size: int                # bytes from the request line through the empty line
    content_length: int | None
    chunked: bool


class Intake:
    """One connection's bytes not yet read by cheroot, and what is known of the request they start."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.pos = 0                      # bytes before this were read by cheroot
        self.head: Head | None = None
        self.request_end: int | None = None  # the request's last byte + 1 when known (serve no further)
        self.started: float | None = None    # monotonic time of the request's first byte
        self.expired = False                 # handed over past its deadline: answer 408 at once
        self.refusal = ""                    # handed over to be refused (503) with this reason, body unread
        self.continued = False               # "100 Continue" was sent for this request
        self._scanned = 0                    # where the search for the head's end resumes

    # ------------------------------------------------------------------ bytes in and out

    @property
    def held(self) -> int:
        return len(self.buffer) - self.pos

    def feed(self, data: bytes) -> None:
        if data and self.started is None:
            self.started = time.monotonic()
        self.buffer += data

    def put_back(self, data: bytes) -> None:
        """Bytes cheroot's reader had read ahead: they come before what is buffered here."""
        if data:
            self.buffer[:self.pos] = b""
            self.pos = 0
            self.buffer[:0] = data
            self._scanned = 0
            if self.started is None:
                self.started = time.monotonic()

    def read_into(self, target) -> int:
        """Serve cheroot's reader from the buffer (never past the request's end); 0 when empty."""
        end = len(self.buffer) if self.request_end is None else min(self.request_end, len(self.buffer))
        count = min(len(target), end - self.pos)
        if count <= 0:
            return 0
        target[:count] = self.buffer[self.pos:self.pos + count]
        self.pos += count
        return count

    @property
    def complete(self) -> bool:
        """The request's every byte was read: what follows belongs to the next one."""
        return self.request_end is not None and self.pos >= self.request_end

    def next_request(self) -> None:
        """The request was answered: what is left (a pipelined request) starts the next one."""
        del self.buffer[:self.pos]
        self.pos = 0
        self.head = None
        self.request_end = None
        self.started = time.monotonic() if self.buffer else None
        self.expired = False
        self.refusal = ""
        self.continued = False
        self._scanned = 0

    # ------------------------------------------------------------------ the request's shape

    def judge(self, wants_body: Callable[[Head], bool], max_head: int, max_body: int) -> str:
        """WAIT for more bytes, READY (the request is whole here), or HAND_OVER as it is."""
        if self.head is None:
            found = self._find_head(max_head)
            if found in (WAIT, HAND_OVER):
                return found
            self.head = found
            body = 0
            if (found.content_length is not None and not found.chunked and 0 < found.content_length <= max_body
                    and wants_body(found)):
                body = found.content_length
            elif found.chunked or (found.content_length or 0) > 0:
                return HAND_OVER  # a body that will not be read: answered (refused) from the head alone
            self.request_end = self.pos + found.size + body
        if self.request_end is None:
            return HAND_OVER
        return READY if len(self.buffer) >= self.request_end else WAIT

    def _find_head(self, max_head: int) -> Head | str:
        start = self.pos
        if self.buffer[start:start + 2] == CRLF:
            start += 2  # cheroot skips one empty line before a request line
        elif self.buffer[start:start + 1] == b"\r" and len(self.buffer) == start + 1:
            return WAIT
        search = max(start, self._scanned)
        while True:
            newline = self.buffer.find(b"\n", search)
            if newline < 0:
                self._scanned = len(self.buffer)
                return HAND_OVER if len(self.buffer) - start > max_head else WAIT
            if newline == start or self.buffer[newline - 1:newline] != b"\r":
                return HAND_OVER  # a bare LF: cheroot refuses it at this line
            if newline - start > max_head:
                return HAND_OVER
            if self.buffer[newline - 3:newline + 1] == b"\r\n\r\n" and newline - 3 >= start:
                return self._parse(start, newline + 1)
            search = newline + 1
            self._scanned = search

    def _parse(self, start: int, end: int) -> Head | str:
        block = bytes(self.buffer[start:end])
        request_line, _, rest = block.partition(CRLF)
        parts = request_line.split(b" ", 2)
        if len(parts) != 3:
            return HAND_OVER
        try:
            headers = HTTPRequest.header_reader(io.BytesIO(rest))
        except Exception:  # cheroot's reader fails on some heads (a continuation line first): cheroot answers them
            return HAND_OVER
        length = headers.get(b"Content-Length")
        try:
            content_length = int(length) if length is not None else None
        except ValueError:
            return HAND_OVER
        return Head(method=parts[0].decode("latin-1"), target=parts[1].decode("latin-1"),
                    headers={k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()},
                    size=end - self.pos, content_length=content_length,
                    chunked=b"Transfer-Encoding" in headers)
