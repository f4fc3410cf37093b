"""Replica ownership (guardian.replicas.owner): the decision, without any replica."""

from __future__ import annotations

import pytest

from guardian.replicas.owner import ReplicaOwnedElsewhere, local_owner_id, needs_claim, owner_record

ME, OTHER = "a" * 32, "b" * 32


def test_the_claim_decision():
    assert needs_claim({}, ME, False, "r") is True                            # made before owners: claim it
    assert needs_claim({"owner": "junk"}, ME, False, "r") is True
    assert needs_claim({"owner": owner_record(ME)}, ME, False, "r") is False
    assert needs_claim({"owner": owner_record(ME)}, ME, True, "r") is False   # taking over what is ours: no write
    assert needs_claim({"owner": owner_record(OTHER)}, ME, True, "r") is True
    with pytest.raises(ReplicaOwnedElsewhere) as refused:
        needs_claim({"owner": owner_record(OTHER)}, ME, False, "s3://b/p")
    assert "bbbbbbbb" in refused.value.message and "--take-over --to s3://b/p" in refused.value.hint


def test_the_local_owner_id_is_made_once_and_a_damaged_one_replaced(tmp_path):
    first = local_owner_id(tmp_path)
    assert len(first) == 32 and local_owner_id(tmp_path) == first
    (tmp_path / "replica-owner").write_bytes(b"\xff garbage")
    second = local_owner_id(tmp_path)
    assert second != first and local_owner_id(tmp_path) == second
