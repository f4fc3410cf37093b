"""A restore's outcome, pure: one row per collection (not one line per file), the same record
rebuilt from the sidecar's JSON, and the action list bounded on the control socket."""

from __future__ import annotations

from datetime import datetime, timezone

from guardian.restoring.outcome import RestoreOutcome
from guardian.snapshots.manifest import ManifestEntry
from guardian.snapshots.restore_plan import RestoreAction, RestorePlan

WHEN = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def entry(path: str, size: int = 10) -> ManifestEntry:
    return ManifestEntry(path, size, 0o644, 0, 1, "ab" * 32)


def big_plan(files: int) -> RestorePlan:
    plan = RestorePlan("S1", None)
    plan.actions += [RestoreAction("write", f"6c7f5464/{i:08x}.gob", entry(f"6c7f5464/{i:08x}.gob"))
                     for i in range(files)]
    plan.actions += [RestoreAction("keep", "40917930/a.gob", entry("40917930/a.gob")),
                     RestoreAction("replace", "40917930/b.gob", entry("40917930/b.gob", 5)),
                     RestoreAction("move_aside", "stray", is_dir=True, reason="folder not in the snapshot"),
                     RestoreAction("move_aside", "notes.txt", reason="not in the snapshot")]
    return plan


def outcome_of(plan: RestorePlan) -> RestoreOutcome:
    return RestoreOutcome("S1", WHEN, "store", False, plan=plan,
                          names={"6c7f5464": "checkpoints", "40917930": "webapp_memories"})


def test_a_plan_is_summarised_per_collection():
    rows = {row["folder"]: row for row in outcome_of(big_plan(1000)).per_collection()}
    assert set(rows) == {"6c7f5464", "40917930", "stray", ""}       # 1,004 actions, four rows
    assert rows["6c7f5464"]["name"] == "checkpoints" and rows["6c7f5464"]["write"] == 1000
    assert (rows["40917930"]["keep"], rows["40917930"]["replace"]) == (1, 1)
    assert rows["stray"]["move_aside"] == 1 and rows["stray"]["name"] is None   # a folder moved aside whole
    assert rows[""]["move_aside"] == 1                                            # a file at the store root


def test_the_sidecars_json_rebuilds_the_same_outcome():
    outcome = outcome_of(big_plan(3))
    outcome.quarantined, outcome.loadable = ["q1", "q2"], True
    wire = outcome.to_dict()
    again = RestoreOutcome.from_dict(wire)
    assert again.to_dict() == wire
    assert again.counts() == outcome.counts() and again.written() == (4, 35)
    assert again.per_collection() == outcome.per_collection()


def test_the_action_list_is_left_out_past_the_limit_and_the_summary_stays():
    outcome = outcome_of(big_plan(50))
    outcome.quarantined = [f"q{i}" for i in range(25)]
    short = outcome.to_dict(action_limit=10)
    assert len(short["quarantine_entries"]) == 10 and RestoreOutcome.from_dict(short).quarantined_total == 25
    assert short["actions"] is None and short["actions_omitted"] is True
    assert short["counts"]["write"] == 50 and short["per_collection"] == outcome.per_collection()
    assert RestoreOutcome.from_dict(short).actions() is None
    assert len(outcome.to_dict(action_limit=100)["actions"]) == 53   # every action but keep
