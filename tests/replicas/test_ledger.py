"""The ledger: what a push last knew good of each object, kept in the state dir (losing it costs reads)."""

from __future__ import annotations

from guardian.replicas.ledger import Ledger, ledger_file


def test_the_ledger_round_trips_forgets_and_survives_damage(tmp_path):
    path = ledger_file(tmp_path, "file:///mnt/backup/guardian")
    ledger = Ledger.load(path)
    assert ledger.objects == {}
    ledger.note("data/a", 10, "t1", 5.0)
    ledger.note("data/b", 20, "t2", 6.0)
    ledger.keep_only({"data/b", "data/c"})
    ledger.save()
    assert Ledger.load(path).objects == {"data/b": (20, "t2", 6.0)}
    path.write_text('{"objects": {"data/b": [20]}}')                   # damaged: every object is read back once
    assert Ledger.load(path).objects == {}
    path.write_text("not json")
    assert Ledger.load(path).objects == {}
