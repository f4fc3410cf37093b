"""Repairs keep a replaced file until nobody writes it; a writer's later update is put back (real
files, a real writer process holding the file, the real chromem loader)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from guardian.config import Config
from guardian.local.paths import StatePaths
from guardian.local.quarantine import Quarantine
from guardian.repair.held import PUT_BACK, QUARANTINED, HeldWrites
from guardian.repair.live import repair_judged
from guardian.repair.preflight import preflight
from guardian.snapshots.take import take_snapshot
from guardian.store.judge import judge_path
from tests.conftest import chromem_load
from tests.paused_writer import PausedWriter, chromem_contents, updated_document


@pytest.fixture
def setup(plain_store, state_dir, tmp_path):
    config = Config(store=str(plain_store))
    paths = StatePaths.for_store(plain_store, state_dir)
    take_snapshot(paths)
    writers: list[PausedWriter] = []

    def writer(doc):
        writers.append(PausedWriter(doc, tmp_path))
        return writers[-1]

    yield config, paths, plain_store, writer
    for w in writers:
        w.stop()


def a_document(store):
    doc = sorted(p for p in store.glob("*/*.gob") if not p.name.startswith("00000000"))[0]
    return doc, f"{doc.parent.name}/{doc.name}", doc.read_bytes()


def held_damage(store, rel):
    damage = judge_path(store, rel)
    assert damage is not None and damage.reason == "empty"
    return dataclasses.replace(damage, held=True)


def quarantined(paths, rel):
    return [e for e in Quarantine(paths).list() if e.original_path == rel]


def test_a_held_file_is_made_loadable_and_its_writers_update_is_put_back_when_it_closes(setup, chromemh):
    config, paths, store, writer = setup
    doc, rel, good = a_document(store)
    update = updated_document(good, "written after a long pause")
    paused = writer(doc)                               # truncated and holding it: chromem refuses the store
    assert not chromem_load(chromemh, store)["ok"]
    result = repair_judged(config, paths, [held_damage(store, rel)])
    assert [a.action.path for a in result.repaired] == [rel] and result.loadable
    assert doc.read_bytes() == good and chromem_load(chromemh, store)["ok"]   # a contextd starting now loads
    keeper = HeldWrites(paths)
    [record] = keeper.records()
    assert record.rel == rel and record.writers and str(paused.proc.pid) in record.writers[0]
    assert keeper.settle_all() == []                   # still held: nothing decided, nothing quarantined
    paused.write(update)
    assert doc.read_bytes() == good                    # its bytes went to the old file, kept by guardian
    [outcome] = keeper.settle_all()
    assert outcome.what == PUT_BACK and doc.read_bytes() == update
    assert keeper.records() == [] and quarantined(paths, rel) == []
    assert "written after a long pause" in chromem_contents(chromemh, store).values()


@pytest.mark.parametrize("how", ["close_without_writing", "die_mid_write"])
def test_what_the_writer_leaves_unloadable_goes_to_the_quarantine_complete(setup, how):
    config, paths, store, writer = setup
    doc, rel, good = a_document(store)
    update = updated_document(good, "cut short")
    paused = writer(doc)
    repair_judged(config, paths, [held_damage(store, rel)])
    if how == "die_mid_write":
        paused.die_mid_write(update)
    else:
        paused.close_without_writing()
    [outcome] = HeldWrites(paths).settle_all()
    assert outcome.what == QUARANTINED and doc.read_bytes() == good
    [entry] = quarantined(paths, rel)
    expected = update[: len(update) // 2] if how == "die_mid_write" else b""
    assert entry.payload_path.read_bytes() == expected and entry.state == "quarantined"


def test_a_later_write_at_the_path_wins_and_the_paused_version_is_kept_in_the_quarantine(setup):
    config, paths, store, writer = setup
    doc, rel, good = a_document(store)
    paused = writer(doc)
    repair_judged(config, paths, [held_damage(store, rel)])
    later = updated_document(good, "a later write by another contextd")
    doc.write_bytes(later)                             # (opened anew: guardian's copy, truncated and written)
    older = updated_document(good, "the paused writer's version")
    paused.write(older)
    [outcome] = HeldWrites(paths).settle_all()
    assert outcome.what == QUARANTINED and doc.read_bytes() == later
    [entry] = quarantined(paths, rel)
    assert entry.payload_path.read_bytes() == older


def test_nobody_holding_it_the_damaged_original_is_quarantined_at_once(setup):
    config, paths, store, _ = setup
    doc, rel, good = a_document(store)
    doc.write_bytes(good[:40])
    result = repair_judged(config, paths, [judge_path(store, rel)])
    [applied] = result.repaired
    assert doc.read_bytes() == good and applied.quarantine_id
    assert Quarantine(paths).get(applied.quarantine_id).payload_path.read_bytes() == good[:40]
    assert HeldWrites(paths).records() == []


KILLED_BEFORE_THE_RENAME = """
import os, sys
from guardian.local import storefs
from guardian.local.paths import StatePaths
from guardian.repair.held import HeldWrites
storefs.replace_at = lambda *args, **kwargs: os._exit(9)   # guardian is killed right before its rename
store, state, rel = sys.argv[1:4]
folder_fd = os.open(os.path.join(store, rel.split("/")[0]), os.O_RDONLY | os.O_DIRECTORY)
HeldWrites(StatePaths.for_store(store, state)).replace(folder_fd, rel.split("/")[1], rel, b"good copy")
"""


def test_a_guardian_killed_between_keeping_and_replacing_leaves_nothing_behind(setup, state_dir):
    config, paths, store, writer = setup
    doc, rel, good = a_document(store)
    paused = writer(doc)
    proc = subprocess.run([sys.executable, "-c", KILLED_BEFORE_THE_RENAME, str(store), str(state_dir), rel])
    assert proc.returncode == 9
    keeper = HeldWrites(paths)
    assert [r.rel for r in keeper.records()] == [rel]  # the record survived the kill
    paused.write(good)
    [outcome] = keeper.settle_all()                    # the file never left the store: only the link goes
    assert outcome.what == "dropped" and doc.read_bytes() == good and os.stat(doc).st_nlink == 1
    assert keeper.records() == [] and quarantined(paths, rel) == []


def test_a_one_shot_repair_leaves_a_held_file_alone_and_a_sidecars_preflight_keeps_it(setup):
    config, paths, store, writer = setup
    doc, rel, good = a_document(store)
    paused = writer(doc)
    result = preflight(config, paths)                  # `check --repair`, `exec`: nobody would put it back
    assert doc.read_bytes() == b"" and not result.loadable_after
    assert any(a["path"] == rel and a["detail"].startswith("skipped") for a in result.failed)
    result = preflight(config, paths, keep_held=True)  # `guardian run`: made loadable, the old file kept
    assert result.loadable_after and doc.read_bytes() == good
    update = updated_document(good, "after a guardian restart")
    paused.write(update)
    preflight(config, paths)                           # the next look settles what a writer left
    assert doc.read_bytes() == update and HeldWrites(paths).records() == []


def test_with_the_state_dir_on_another_filesystem_a_held_file_is_left_alone(plain_store, tmp_path, tmpfs):
    state = tmpfs("state", "16m")
    config = Config(store=str(plain_store))
    paths = StatePaths.for_store(plain_store, state)
    take_snapshot(paths)
    doc, rel, good = a_document(plain_store)
    paused = PausedWriter(doc, tmp_path)
    try:
        result = repair_judged(config, paths, [held_damage(plain_store, rel)])
        assert result.changed_meanwhile == [rel] and doc.read_bytes() == b""   # nothing to keep it by
        paused.write(good[:-1] + good[-1:])
        assert doc.read_bytes() == good
    finally:
        paused.stop()


def test_a_one_shot_repair_waits_a_moment_for_a_write_in_progress_and_alerts_nothing(setup):
    """`exec` starting while another contextd is mid-write: the pre-flight does not replace the file
    (that write would be lost), gives the writer a moment, and a writer still paused is reported as
    being written - no repair_impossible, which would be an alarm about nothing."""
    from guardian.repair.preflight import alert_events

    config, paths, store, writer = setup
    doc, rel, good = a_document(store)
    paused = writer(doc)
    result = preflight(config, paths)
    assert result.held == [rel] and result.only_held and not result.loadable_after
    assert alert_events(result) == []
    assert result.to_dict()["held"] == [rel]
    paused.write(good)
    result = preflight(config, paths)
    assert result.loadable_after and result.held == [] and doc.read_bytes() == good


def test_a_write_in_progress_during_a_preflight_is_waited_for_not_replaced(setup):
    """A contextd mid-write while `guardian run` starts: its pre-flight gives the writer a moment, and
    the write that completes meanwhile is what stays - nothing replaced, kept or quarantined."""
    import threading

    config, paths, store, writer = setup
    doc, rel, good = a_document(store)
    update = updated_document(good, "finished while the pre-flight waited")
    paused = writer(doc)
    finish = threading.Timer(0.5, paused.write, args=(update,))
    finish.start()
    try:
        result = preflight(config, paths, keep_held=True)
    finally:
        finish.join()
    assert result.loadable_after and doc.read_bytes() == update
    assert result.applied == [] and HeldWrites(paths).records() == [] and quarantined(paths, rel) == []
