"""Gathering a request before a worker sees it (pure: bytes in, verdicts out, no socket)."""

from __future__ import annotations

import pytest

from guardian.server.intake import HAND_OVER, READY, WAIT, Intake

HEAD = b"POST /v1/collections/c/query HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
BODY = b'{"k": 3333}'
MAX_HEAD, MAX_BODY = 64 * 1024, 16 * 1024 * 1024


def judge(intake: Intake, wants_body=lambda head: True) -> str:
    return intake.judge(wants_body, MAX_HEAD, MAX_BODY)


def test_a_request_is_ready_only_when_whole_and_is_served_exactly():
    intake = Intake()
    request = HEAD + BODY
    verdicts = []
    for byte in request:  # the worst trickle: one byte at a time
        intake.feed(bytes([byte]))
        verdicts.append(judge(intake))
    assert verdicts == [WAIT] * (len(request) - 1) + [READY]
    head = intake.head
    assert (head.method, head.target, head.content_length, head.size) == ("POST", "/v1/collections/c/query", 11,
                                                                           len(HEAD))
    assert head.headers["Host"] == "x" and intake.started is not None

    intake.feed(b"GET /healthz HTTP/1.1\r\n\r\n")  # pipelined: the next request
    served = bytearray(4096)
    count = intake.read_into(served)
    assert bytes(served[:count]) == request and intake.complete
    assert intake.read_into(served) == 0  # never past the request's end
    intake.next_request()
    assert judge(intake) == READY and intake.head.target == "/healthz" and intake.head.content_length is None


@pytest.mark.parametrize("raw", [
    HEAD,                                                         # body wanted, not here yet
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n",                      # head not finished
    b"\r",
])
def test_waits_for_more(raw):
    intake = Intake()
    intake.feed(raw)
    assert judge(intake) == WAIT


@pytest.mark.parametrize("raw, verdict", [
    (b"GET /healthz HTTP/1.1\r\n\r\n", READY),
    (b"\r\nGET /healthz HTTP/1.1\r\n\r\n", READY),               # one empty line first: cheroot skips it
    (b"GET / HTTP/1.1\n\n", HAND_OVER),                           # bare LF: cheroot refuses it from here
    (b"GET / HTTP/1.1\r\nHost: x\nmore", HAND_OVER),
    (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", HAND_OVER),
    (b"hello\r\n\r\n", HAND_OVER),
    (b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n", HAND_OVER),
    (b"POST /q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n", HAND_OVER),
    (b"POST /q HTTP/1.1\r\nContent-Length: 16777217\r\n\r\n{", HAND_OVER),  # over the limit: 413 at once
    (b"GET /" + b"a" * (MAX_HEAD + 10), HAND_OVER),              # too long: cheroot answers 414/413
])
def test_verdicts_from_the_head(raw, verdict):
    intake = Intake()
    intake.feed(raw)
    assert judge(intake) == verdict


def test_a_body_that_will_not_be_read_is_not_waited_for():
    intake = Intake()
    intake.feed(HEAD + b"{")
    assert judge(intake, wants_body=lambda head: False) == HAND_OVER  # e.g. a wrong token: 401 from the head
    intake = Intake()
    intake.feed(b"PUT /v1/status HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n")
    assert judge(intake, wants_body=lambda head: False) == HAND_OVER


def test_bytes_read_ahead_go_back_in_front():
    intake = Intake()
    intake.feed(BODY)
    intake.put_back(HEAD)
    assert judge(intake) == READY and intake.held == len(HEAD + BODY)
