from types import SimpleNamespace

from guardian.restart.policy import (
    FailureHistory, RestartPolicy, after_failure, describe_exit, failures_in_window, ran_stably,
)

POLICY = RestartPolicy(max_failures=3, failure_window=100.0, stable_seconds=60.0)


def fail_at(times, started_for=1.0, policy=POLICY):
    history = FailureHistory()
    verdicts = []
    for t in times:
        verdict = after_failure(history, t - started_for, t, policy)
        history = verdict.history
        verdicts.append(verdict)
    return verdicts


def test_max_failures_within_the_window_is_fatal():
    verdicts = fail_at([10.0, 20.0, 30.0])
    assert [v.fatal for v in verdicts] == [False, False, True]


def test_failures_spread_wider_than_the_window_are_not_fatal():
    verdicts = fail_at([0.0, 60.0, 120.0, 180.0, 240.0])
    assert not any(v.fatal for v in verdicts)
    assert len(verdicts[-1].history.times) == 2  # 180 and 240 are within 100 s of 240


def test_attempt_grows_with_quick_failures_and_restarts_after_a_stable_run():
    history = FailureHistory()
    attempts = []
    for started, ended in [(0, 1), (2, 3), (4, 5), (10, 200)]:  # the last run lasted 190 s
        verdict = after_failure(history, started, ended, RestartPolicy(max_failures=99))
        history = verdict.history
        attempts.append(verdict.attempt)
    assert attempts == [1, 2, 3, 1]


def test_a_start_that_never_happened_counts_as_a_quick_failure():
    verdict = after_failure(FailureHistory(times=(5.0,), attempt=4), None, 6.0, POLICY)
    assert verdict.attempt == 5 and verdict.history.times == (5.0, 6.0)
    assert not ran_stably(None, 1e9, POLICY)


def test_failures_in_window_keeps_only_recent_times():
    assert failures_in_window((1.0, 50.0, 99.0), 150.0, 100.0) == (50.0, 99.0)


def test_policy_from_config_reads_the_supervisor_fields():
    config = SimpleNamespace(backoff_initial=2.0, backoff_max=20.0, stable_seconds=5.0,
                             max_failures=7, failure_window=70.0)
    policy = RestartPolicy.from_config(config)
    assert (policy.backoff_initial, policy.backoff_max, policy.max_failures) == (2.0, 20.0, 7)
    assert policy.failure_window == 70.0 and policy.stable_seconds == 5.0


def test_describe_exit_names_signals():
    assert describe_exit(3) == {"exit_code": 3, "signal": None}
    assert describe_exit(-9) == {"exit_code": None, "signal": "SIGKILL"}
    assert describe_exit(None) == {"exit_code": None, "signal": None}


def test_policy_reads_the_jitter_from_the_real_config(tmp_path, monkeypatch):
    import pytest
    from guardian.config import load_config
    from guardian.errors import ConfigError

    monkeypatch.setenv("GUARDIAN_CONFIG", str(tmp_path / "absent.toml"))
    config = load_config(environ={"GUARDIAN_BACKOFF_JITTER": "0.3"})
    assert RestartPolicy.from_config(config).jitter_fraction == 0.3
    with pytest.raises(ConfigError, match="backoff_jitter"):
        load_config(environ={"GUARDIAN_BACKOFF_JITTER": "2"})
