"""A line-level stand-in for an MCP server: records every byte it reads and writes.

Each request is answered with a line whose JSON is formatted oddly on purpose (spaces, key
order, escaped and raw non-ASCII, a literal "\\n" inside a string) so a test can tell whether the
relay passed bytes through untouched. A notification is sent before every answer, and noise goes
to stderr. Usage: python raw_child.py RECEIVED_FILE SENT_FILE [GATE_FILE]

With GATE_FILE, it reads nothing before that file exists: a contextd still loading its store.
A request whose method is ``test/never`` is never answered (a long job the client may cancel).
"""

import json
import os
import sys
import time

received_path, sent_path = sys.argv[1], sys.argv[2]
while len(sys.argv) > 3 and not os.path.exists(sys.argv[3]):
    time.sleep(0.02)
out = sys.stdout.buffer
with open(received_path, "ab") as received, open(sent_path, "ab") as sent:
    for line in sys.stdin.buffer:
        received.write(line)
        received.flush()
        message = json.loads(line)
        sys.stderr.write("raw child: noise on stderr\n")
        if "id" not in message or message.get("method") == "test/never":
            continue
        note = (b'{ "method":"notifications/message" ,"jsonrpc":"2.0",'
                b'"params":{"level":"info","data":"\\u00e9t\\u00e9"}}\n')
        answer = ('{"result" : {"echo": %s, "text":"caf\u00e9 \\n line",  "n": 1.50},"jsonrpc":"2.0",  "id":%s}\n'
                  % (json.dumps(message.get("method")), json.dumps(message["id"]))).encode("utf-8")
        for chunk in (note, answer):
            out.write(chunk)
            out.flush()
            sent.write(chunk)
            sent.flush()
