"""A child that writes more than JSON-RPC on its stdout, for the relay's tests.

Before each answer it writes a burst of lines that are not messages (text, a bare number, a JSON
object that is not JSON-RPC, bytes that are not UTF-8, a batch, nesting 1,200 deep, a blank
line); the answer itself is formatted oddly (as raw_child.py's) so byte-exact passing shows.
Every message line it writes is appended to SENT_FILE. Requests by method:

- ``rogue/die_mid_line``: writes the start of its answer, no newline, and exits 3;
- ``rogue/bad_answer``: answers with an object that is not JSON-RPC (no ``jsonrpc``);
- ``rogue/codeless_error``: answers with an error that has no code;
- ``rogue/twice``: answers twice;
- anything else: answered with ``{"echo": method}``.

Usage: python rogue_child.py SENT_FILE
"""

import json
import os
import sys

NOISE = [b"contextd 1.2.3 starting (a log line on stdout)\n", b"12\n", b'{"level":"info","msg":"not json-rpc"}\n',
         b"\xff\xfe\xfa not utf-8\n", b'[{"jsonrpc":"2.0","method":"notifications/message"}]\n',
         b"[" * 1200 + b"]" * 1200 + b"\n", b"\n"]

sys.setrecursionlimit(10_000)  # the relay passes lines nested 1,000 deep; this child must read them
out = sys.stdout.buffer
with open(sys.argv[1], "ab") as sent:
    def write(chunk: bytes, message: bool = False) -> None:
        out.write(chunk)
        out.flush()
        if message:
            sent.write(chunk)
            sent.flush()

    for line in sys.stdin.buffer:
        request = json.loads(line)
        if "id" not in request or "method" not in request:
            continue
        method, request_id = request["method"], json.dumps(request["id"])
        for noise in NOISE:
            write(noise)
        if method == "rogue/die_mid_line":
            write(b'{"jsonrpc":"2.0","id":')
            os._exit(3)
        if method == "rogue/bad_answer":
            write(b'{"id":%s,"result":{}}\n' % request_id.encode())
            continue
        if method == "rogue/codeless_error":
            write(b'{"jsonrpc":"2.0","id":%s,"error":{"message":"no code"}}\n' % request_id.encode())
            continue
        answer = ('{"result" : {"echo": %s, "text":"caf\u00e9"},"jsonrpc":"2.0",  "id":%s}\n'
                  % (json.dumps(method), request_id)).encode("utf-8")
        write(answer, message=True)
        if method == "rogue/twice":
            write(answer)
