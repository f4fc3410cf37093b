"""`guardian snapshots`: thousands of continuous snapshots stay readable (grouped by hour)."""

from guardian.commands.snapshots_cmd import group_rows


def row(i: int, hour: int, minute: int) -> dict:
    return {"id": f"20261201T{hour:02d}{minute:02d}00.000000Z-{i:04x}",
            "time_utc": f"2026-12-01T{hour:02d}:{minute:02d}:00Z",
            "time_local": "", "collections": ["a"], "documents": 1, "total_bytes": 10, "new_bytes": 2}


def test_older_snapshots_of_one_hour_fold_into_one_row_and_the_newest_stay_one_by_one():
    rows = [row(i, 10, i % 60) for i in range(50)] + [row(100 + i, 11, i) for i in range(30)]
    shown = group_rows(rows, one_by_one=10)
    assert len(shown) == 2 + 10
    assert shown[0]["id"].startswith("50 snapshots") and shown[0]["new_bytes"] == 100
    assert shown[1]["id"].startswith("20 snapshots")
    assert [r["id"] for r in shown[2:]] == [r["id"] for r in rows[-10:]]


def test_a_damaged_manifest_is_never_hidden_in_a_group():
    rows = [row(1, 10, 1), {"id": "20261201T100200.000000Z-0002", "damaged": "truncated"}, row(3, 10, 3)]
    assert len(group_rows(rows, one_by_one=0)) == 3
