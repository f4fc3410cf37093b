"""The client's end of `guardian mcp`: stdin and stdout as the event loop can use them, read line by line.

An MCP client starts guardian with pipes, but a user may hand it a file (`< requests.jsonl`,
`> answers.jsonl`, `</dev/null`): the event loop cannot poll those (epoll refuses regular files
and some devices with EPERM), so they are read in a thread and written with blocking writes. A
line longer than the reader's limit is skipped to its end, never a reason to stop reading.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import threading

from guardian.logs import get_logger

log = get_logger("guardian.mcp")


def feed_from_file(fd: int, reader: asyncio.StreamReader, loop) -> None:
    """Read a file the event loop cannot poll in a thread and hand its bytes to the loop's reader;
    a read error (stdin a folder, opened write-only, a device failing) ends the input like EOF."""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError as exc:
            log.warning("mcp_client_input_unreadable", error=exc.strerror or str(exc))
            chunk = b""
        if not chunk:
            loop.call_soon_threadsafe(reader.feed_eof)
            return
        loop.call_soon_threadsafe(reader.feed_data, chunk)


def pollable(fd: int, events: int) -> bool:
    """Can the event loop watch ``fd``? Pipes, sockets and terminals yes; regular files and devices
    such as /dev/null no (epoll refuses them with EPERM, asynchronously, as a traceback and a hang)."""
    selector = selectors.DefaultSelector()
    try:
        selector.register(fd, events)
    except (OSError, ValueError):
        return False
    finally:
        selector.close()
    return True


class FileWriter:
    """StreamWriter's write/drain for a regular file (blocking writes; a file never blocks long)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    async def drain(self) -> None:
        return None


async def read_lines(reader: asyncio.StreamReader):
    """Each line of a stream with its newline (the last one may have none); a line longer than the
    reader's limit is skipped to its end and given as None. Nothing a peer writes ends the stream
    early: only its end does."""
    while True:
        try:
            yield await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # the end, maybe after a line with no newline
            if exc.partial:
                yield exc.partial
            return
        except asyncio.LimitOverrunError as exc:
            if not await skip_line(reader, exc.consumed):
                yield None
                return
            yield None


async def skip_line(reader: asyncio.StreamReader, buffered: int) -> bool:
    """Drop the rest of an overlong line; False when the stream ended inside it."""
    while True:
        await reader.readexactly(buffered)
        try:
            await reader.readuntil(b"\n")
            return True
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError as exc:
            buffered = exc.consumed


async def open_reader(fd: int, loop, limit: int) -> asyncio.StreamReader:
    """A stream reader over the client's input: a pipe polled by the loop, anything else fed by a thread."""
    reader = asyncio.StreamReader(limit=limit)
    if not pollable(fd, selectors.EVENT_READ):  # `< requests.jsonl`, `</dev/null`
        threading.Thread(target=feed_from_file, args=(fd, reader, loop), daemon=True).start()
        return reader
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                 os.fdopen(fd, "rb", buffering=0, closefd=False))
    return reader


async def open_writer(fd: int, loop):
    """A writer (``write`` + ``drain``) over the client's output: the loop's pipe writer, or
    blocking writes to a file (a file never blocks long)."""
    if not pollable(fd, selectors.EVENT_WRITE):  # `> answers.jsonl`, `>/dev/null`
        return FileWriter(fd)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(fd, "wb", buffering=0, closefd=False))
    return asyncio.StreamWriter(transport, protocol, None, loop)
