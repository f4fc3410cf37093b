from guardian.runtime.capture import CaptureQueue


def test_a_burst_makes_one_batch_after_the_quiet_time():
    queue = CaptureQueue(quiet=1.0, max_wait=3.0)
    assert queue.due_in(0.0) is None
    for i in range(10):
        queue.add({f"c/{i}.gob"}, i * 0.05)
    assert queue.due_in(0.9) > 0
    assert queue.due_in(0.45 + 1.0) == 0
    assert queue.take() == {f"c/{i}.gob" for i in range(10)}
    assert queue.due_in(5.0) is None


def test_a_steady_stream_is_captured_every_max_wait():
    queue = CaptureQueue(quiet=1.0, max_wait=3.0)
    t = 0.0
    while t < 3.0:
        queue.add({"c/a.gob"}, t)
        assert queue.due_in(t) > 0
        t += 0.1
    assert queue.due_in(3.0) == 0
    assert queue.oldest_age(3.0) == 3.0


def test_a_failed_capture_puts_its_paths_back():
    queue = CaptureQueue(quiet=1.0, max_wait=3.0)
    queue.add({"c/a.gob"}, 0.0)
    taken = queue.take()
    queue.add({"c/b.gob"}, 1.5)
    queue.put_back(taken, 2.0)
    assert queue.take() == {"c/a.gob", "c/b.gob"}
