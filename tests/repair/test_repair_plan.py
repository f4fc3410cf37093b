"""Repair planning is pure: scans and sources built in memory, no files."""

from __future__ import annotations

from guardian.repair.plan import OtherFormat, RepairSources, Version, plan_repair
from guardian.store.scan import CollectionScan, Problem, StoreScan

MEM = "40917930"  # sha256("webapp_memories")[:8]


def scan_with(*problems: Problem, name=None, documents=3, compress=False) -> StoreScan:
    coll = CollectionScan(dir=MEM, path=f"/s/{MEM}", name=name, documents=documents,
                          problems=[p for p in problems if p.collection_dir == MEM])
    return StoreScan(root="/s", compress=compress, collections=[coll], problems=list(problems))


def version(valid=True, snapshot="20260101T000000.000000Z-abcd", **extra) -> Version:
    return Version(snapshot_id=snapshot, time="2026-01-01T00:00:00Z", blob="b" * 64, valid=valid, **extra)


def test_metadata_restored_from_the_newest_valid_snapshot():
    scan = scan_with(Problem(f"{MEM}/00000000.gob", "metadata_truncated", "cut", MEM))
    sources = RepairSources(versions={f"{MEM}/00000000.gob": [version(False, "new"), version(True, "old",
                                                                                            name="webapp_memories")]})
    [action] = plan_repair(scan, sources, {}).actions
    assert (action.kind, action.snapshot_id, action.reported_as) == ("restore_metadata", "old", "restored_metadata")


def test_metadata_rebuilt_from_a_matching_name_else_folder_quarantined():
    scan = scan_with(Problem(f"{MEM}/00000000.gob", "metadata_missing", "gone", MEM))
    plan = plan_repair(scan, RepairSources(), {MEM: {"webapp_memories": "documents", "other": "catalog"}})
    [action] = plan.actions
    assert action.kind == "rebuild_metadata" and action.name == "webapp_memories" and action.metadata == {}
    assert plan.notes and "EMPTY" in plan.notes[0]

    kept = version(name="webapp_memories", metadata={"k": "v"})
    plan = plan_repair(scan, RepairSources(metadata_by_name={"webapp_memories": kept}), {MEM: {"webapp_memories": "x"}})
    assert plan.actions[0].metadata == {"k": "v"} and not plan.notes

    plan = plan_repair(scan, RepairSources(), {MEM: {"nothing_matches": "catalog"}})
    [action] = plan.actions
    assert action.kind == "quarantine" and action.path == MEM and action.is_folder
    assert plan.unresolved[0].kind == "name_unrecoverable"


def test_documents_restored_or_quarantined_with_the_known_id():
    bad = [Problem(f"{MEM}/aaaaaaaa.gob", "document_empty", "", MEM),
           Problem(f"{MEM}/bbbbbbbb.gob", "document_truncated", "", MEM)]
    sources = RepairSources(versions={f"{MEM}/aaaaaaaa.gob": [version()],
                                      f"{MEM}/bbbbbbbb.gob": [version(False, doc_id=None)]},
                            salvaged_ids={f"{MEM}/bbbbbbbb.gob": "doc-b"})
    plan = plan_repair(scan_with(*bad, name="webapp_memories"), sources, {})
    assert [(a.kind, a.path) for a in plan.actions] == [("quarantine", f"{MEM}/bbbbbbbb.gob"),
                                                        ("restore_document", f"{MEM}/aaaaaaaa.gob")]
    assert plan.lost_documents() == [{"path": f"{MEM}/bbbbbbbb.gob", "id": "doc-b"}]


def test_stray_folder_quarantined_and_its_problems_not_planned_twice():
    stray = Problem(".backup", "stray_folder", "1 document without a name", ".backup")
    scan = StoreScan(root="/s", compress=False, collections=[CollectionScan(".backup", "/s/.backup")],
                     problems=[stray, Problem(".backup/x.gob", "document_empty", "", ".backup")])
    plan = plan_repair(scan, RepairSources(), {})
    assert [(a.kind, a.path, a.is_folder) for a in plan.actions] == [("quarantine", ".backup", True)]


def test_other_format_copy_converted_then_quarantined_or_left_as_hazard():
    problem = Problem(f"{MEM}/cccccccc.gob.gz", "other_format_file", "", MEM)
    target = f"{MEM}/cccccccc.gob"
    facts = {problem.path: OtherFormat(problem.path, target, "doc-c", "absent")}
    plan = plan_repair(scan_with(problem, name="webapp_memories"), RepairSources(other_format=facts), {})
    assert [(a.kind, a.path) for a in plan.actions] == [("convert_document", target),
                                                        ("quarantine", problem.path)]
    facts = {problem.path: OtherFormat(problem.path, target, "doc-c", "different")}
    plan = plan_repair(scan_with(problem, name="webapp_memories"), RepairSources(other_format=facts), {})
    assert plan.actions == [] and plan.hazards[0].kind == "other_format_file"


def test_hazards_carry_hints_and_loud_warnings():
    dup = Problem(MEM, "duplicate_name", "also in 1dup1dup", MEM)
    plan = plan_repair(scan_with(dup, name="webapp_memories"), RepairSources(), {})
    assert plan.actions == [] and plan.hazards[0].loud.startswith("DATA HIDDEN") and plan.hazards[0].hint


def hidden_plan(state="absent", own=None, versions=None, candidates=None, whole=False, path=f".quarantine/{MEM}"):
    from guardian.repair.plan import HiddenCollection

    problem = Problem(path, "hidden_documents", "40 document file(s)", ".quarantine", documents=40)
    problems = [problem]
    if whole:   # the target folder's name cannot be recovered: it goes to quarantine whole
        problems.append(Problem(f"{MEM}/00000000.gob", "metadata_missing", "gone", MEM))
    scan = scan_with(*problems)
    facts = HiddenCollection(path, 40, MEM, state, own)
    sources = RepairSources(versions=versions or {}, hidden={path: facts} if path.startswith(".quarantine/") else {})
    return plan_repair(scan, sources, {path: candidates or {}})


def test_a_collection_contextd_moved_aside_comes_back_with_the_best_metadata_there_is():
    own = version(name="webapp_memories", metadata={"a": "b"})
    [action] = hidden_plan(own=own, versions={f"{MEM}/00000000.gob": [version(name="webapp_memories")]}).actions
    assert (action.kind, action.path, action.from_path, action.metadata_from) == (
        "restore_hidden", MEM, f".quarantine/{MEM}", "hidden")
    [action] = hidden_plan(versions={f"{MEM}/00000000.gob": [version(False, "new"), version(True, "old")]}).actions
    assert (action.metadata_from, action.snapshot_id) == ("snapshot", "old")
    plan = hidden_plan(candidates={"webapp_memories": "documents", "other": "catalog"})
    assert (plan.actions[0].metadata_from, plan.actions[0].name) == ("rebuilt", "webapp_memories")
    assert plan.actions[0].reported_as == "restored_hidden_collection" and "EMPTY" in plan.notes[-1]
    assert "restart contextd" in plan.notes[0]
    plan = hidden_plan(candidates={"nothing_matches": "catalog"})
    assert plan.actions == [] and plan.hazards[0].kind == "hidden_documents" and "--name" in plan.hazards[0].hint


def test_into_a_folder_there_it_is_merged_and_into_anything_else_not_at_all():
    for state in ("named", "unnamed"):
        [action] = hidden_plan(state).actions
        assert action.kind == "restore_hidden" and action.metadata_from == "" and "merged" in action.source
    plan = hidden_plan("blocked")
    assert plan.actions == [] and "not a folder it can go back into" in plan.hazards[0].detail
    plan = hidden_plan("unnamed", whole=True)     # the target goes to quarantine: nothing goes back into it
    assert [a.kind for a in plan.actions] == ["quarantine"] and plan.hazards[0].kind == "hidden_documents"
    plan = hidden_plan(path=f"backup/{MEM}")      # not contextd's: a copy, a backup - reported only
    assert plan.actions == [] and "not brought back by itself" in plan.hazards[0].detail

