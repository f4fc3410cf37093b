"""The push planner and replica bookkeeping, as pure functions (no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from guardian.errors import ReplicaError
from guardian.replicas.layout import Entry, Record, check_rel, decode_list, decode_record, encode_list, encode_record
from guardian.replicas.plan import (Retention, choose_snapshots, list_delta, objects_to_delete, plan_checks,
                                    replica_lag,
                                    reuse_base)

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


def sid(hours: float, tag: str = "0000") -> str:
    return (T0 + timedelta(hours=hours)).strftime("%Y%m%dT%H%M%S.%fZ") + f"-{tag}"


def test_uploads_only_what_the_replica_lacks_oldest_first():
    local = [sid(0), sid(1), sid(2)]
    choice = choose_snapshots(local, [sid(0)], Retention(keep_last=24))
    assert choice.upload == [sid(1), sid(2)]
    assert choice.forget == []


def test_retention_applies_to_the_union_so_a_forgotten_snapshot_is_never_uploaded_again():
    local = [sid(h) for h in range(5)]            # the replica was down for a while
    choice = choose_snapshots(local, [], Retention(keep_last=2))
    assert choice.upload == [sid(3), sid(4)]       # not the three that retention drops
    after = choose_snapshots(local, choice.upload, Retention(keep_last=2))
    assert after.nothing_to_do


def test_remote_snapshots_beyond_retention_are_forgotten_and_the_newest_always_kept():
    remote = [sid(h) for h in range(4)]
    choice = choose_snapshots([sid(4)], remote, Retention(keep_last=2))
    assert choice.upload == [sid(4)]
    assert choice.forget == [sid(0), sid(1), sid(2)]
    assert choice.keep == [sid(3), sid(4)]


def test_delete_only_objects_no_kept_record_needs():
    assert objects_to_delete({"data/a", "data/b", "lists/x"}, {"data/a", "lists/x"}) == ["data/b"]


def test_list_delta_and_base_reuse():
    base = [Entry(f"blobs/{i:02x}/f", "s" * 64, i) for i in range(100)]
    changed = base[:50] + [Entry("blobs/ff/new", "t" * 64, 7)] + base[51:]
    added, removed = list_delta(changed, base)
    assert [e.rel for e in added] == ["blobs/ff/new"]
    assert removed == [base[50].rel]
    assert reuse_base(len(base), len(added), len(removed))
    assert not reuse_base(len(base), 20, 10)
    assert not reuse_base(0, 0, 0)
    record = Record(sid(1), T0, 1, [], "manifests/x.manifest", "m" * 64, b"", "lists/b", added, removed)
    assert record.entries(base) == sorted(changed, key=lambda e: e.rel)


def test_lag_is_zero_when_current_and_counts_from_the_oldest_unreplicated_snapshot():
    now = T0 + timedelta(hours=3)
    assert replica_lag([sid(0), sid(1)], [sid(0), sid(1)], now) == 0
    assert replica_lag([sid(0), sid(1), sid(2)], [sid(0)], now) == pytest.approx(2 * 3600)
    assert replica_lag([sid(0)], [], now) == pytest.approx(3 * 3600)


def test_records_and_lists_round_trip_and_reject_tampering():
    entries = [Entry("blobs/ab/" + "a" * 64 + ".zst", "b" * 64, 10)]
    record = Record(sid(0), T0, 3, ["webapp"], f"manifests/{sid(0)}.manifest", "c" * 64, b"MANIFEST",
                    "lists/x", entries, ["blobs/cd/old.zst"])
    back = decode_record(encode_record(record), sid(0))
    assert back.entries([]) == entries and back.manifest == b"MANIFEST" and back.removed == ["blobs/cd/old.zst"]
    assert decode_list(encode_list(entries)) == entries
    with pytest.raises(ReplicaError, match="claims to be"):
        decode_record(encode_record(record), sid(1))
    with pytest.raises(ReplicaError, match="damaged"):
        decode_record(b"garbage", sid(0))


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../b", "a//b", "", "a/./b", ".guardian-tmp-x"])
def test_paths_from_a_replica_must_stay_inside_the_repository(rel):
    with pytest.raises(ReplicaError):
        check_rel(rel)


def test_checks_read_back_what_changed_or_is_due_and_push_what_is_missing():
    day = 86400.0
    now = 100 * day
    listing = {"a": (10, "t1"), "b": (10, "t2-rewritten"), "c": (10, "t3"), "d": (10, "t4"), "e": (10, "t5")}
    known = {"a": (10, "t1", now - 1), "b": (10, "t2", now - 1), "c": (10, "t3", now - 8 * day),
             "d": (10, "t4", now - 9 * day), "gone": (10, "t9", now)}
    plan = plan_checks(["a", "b", "c", "d", "e", "gone"], listing, known, now, 7 * day, None)
    assert plan.missing == ["gone"]
    assert plan.changed == ["b"]                        # its listing is not what guardian last knew good
    assert plan.due == ["e", "d", "c"]                  # never read back first, then the oldest
    budgeted = plan_checks(["a", "b", "c", "d", "e", "gone"], listing, known, now, 7 * day, 25)
    assert budgeted.due == ["e", "d"] and budgeted.changed == ["b"]     # the budget limits due reads only
    big = plan_checks(["e"], {"e": (10 ** 9, "t")}, {}, now, 7 * day, 25)
    assert big.due == ["e"]                              # one object larger than the budget is still reached
    assert plan_checks(["a"], listing, known, now, 0.0, None).due == ["a"]    # --check: everything
