"""The supervisor's inbox: messages from other threads, in order; answers that come back or time out."""

from __future__ import annotations

import signal
import threading

import pytest

from guardian.errors import SupervisorError
from guardian.runtime.supervisor.inbox import Inbox, Reply


def test_messages_come_out_in_order_including_the_one_a_wait_took():
    inbox = Inbox()
    inbox.put("signal", signal.SIGHUP)
    inbox.wait(5)                                   # takes the first one (returns at once)
    inbox.put("restart")
    inbox.put("child_exit", 42)
    assert inbox.take() == [("signal", signal.SIGHUP), ("restart", None), ("child_exit", 42)]
    assert inbox.take() == []
    inbox.wait(0.01)                                # nothing arrives: the wait just ends
    assert inbox.take() == []


def test_a_second_stop_signal_is_taken_out_and_the_rest_kept():
    inbox = Inbox()
    inbox.put("signal", signal.SIGHUP)
    assert inbox.take_stop_signals() is False
    inbox.put("signal", signal.SIGINT)
    inbox.put("restart")
    assert inbox.take_stop_signals() is True
    assert inbox.take() == [("signal", signal.SIGHUP), ("restart", None)]


def test_ask_waits_for_the_loop_threads_answer():
    inbox = Inbox()

    def loop():
        inbox.wait(60)
        for kind, reply in inbox.take():
            Inbox.answer(reply, {"asked": kind})

    worker = threading.Thread(target=loop)
    worker.start()
    assert inbox.ask("pause", 60) == {"asked": "pause"}
    worker.join(30)


def test_an_unanswered_ask_is_one_clear_error():
    with pytest.raises(SupervisorError) as exc:
        Inbox().ask("resume", 0.01)
    assert "did not resume the child" in exc.value.message and exc.value.hint
    Inbox.answer(None, {"ignored": True})           # a message without a reply: nothing to answer
    reply = Reply()
    Inbox.answer(reply, {"x": 1})
    assert reply.done.is_set() and reply.value == {"x": 1}
