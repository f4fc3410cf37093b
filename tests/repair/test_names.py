"""Candidate collection names (pure)."""

from __future__ import annotations

import hashlib

from guardian.format import chromem
from guardian.repair import names


def test_fixture_collections_are_recovered_from_their_documents(contents):
    for collection in contents["collections"]:
        metadatas = [d["metadata"] for d in collection["documents"]]
        if not metadatas:
            continue
        found = names.matching_names(collection["dir"], names.candidates_from_documents(metadatas))
        assert found == [collection["name"]]


def test_contextd_default_and_checkpoints_need_no_documents():
    assert names.matching_names(chromem.collection_dir_name("contextd_default"),
                                names.candidates_from_documents([])) == ["contextd_default"]
    assert "checkpoints" in names.candidates_from_documents([])


def test_the_incident_collection():
    assert names.dir_name("contextd_memories") == "e9f85bf6"
    found = names.candidates_from_documents([{"project_id": "contextd"}])
    assert names.matching_names("e9f85bf6", found) == ["contextd_memories"]


def test_sanitising_lowercases_replaces_collapses_and_trims():
    variants = names.sanitize_variants("My--Project!")
    assert {"my__project_", "my_project_", "my_project"} <= variants
    assert names.sanitize_variants("") == {"default"}
    assert "default" in names.sanitize_variants("!!!")


def test_team_and_path_remediation_collections():
    metadata = {"tenant_id": "Acme.io", "team_id": "Platform", "project_path": "/srv/Repos/api-server"}
    found = names.candidates_from_documents([metadata])
    assert "remediations_team_acme_io_platform" in found
    assert "remediations_project_acme_io_srv_repos_api_server" in found
    assert "acme_io_api_server_codebase" in found
    assert "acme_io_api_server_conversations" in found


def test_names_over_64_characters_are_cut_and_suffixed_with_their_hash():
    long_path = "/mnt/c/users/dusti/projects/fyrsmithlabs/contextd"
    full = "remediations_project_contextd_mnt_c_users_dusti_projects_fyrsmithlabs_contextd"
    assert len(full) > 64
    suffix = hashlib.sha256(full.encode()).hexdigest()[:8]
    expected = full[:55].rstrip("_") + "_" + suffix
    found = names.candidates_from_documents([{"tenant_id": "contextd", "project_path": long_path}])
    assert expected in found and len(expected) <= 64
    assert names.matching_names(names.dir_name(expected), found) == [expected]


def test_stronger_sources_win_and_matching_is_by_folder_hash():
    merged = names.merge_candidates(documents=["a", "b"], catalog=["b"], flag=["c"])
    assert merged == {"c": "flag", "b": "catalog", "a": "documents"}
    assert names.matching_names(names.dir_name("b"), merged) == ["b"]
    assert names.matching_names("00000000", merged) == []


def test_values_per_field_are_bounded():
    values = names.metadata_values({"project_id": f"p{i}"} for i in range(1000))
    assert len(values["project_id"]) == names.MAX_VALUES_PER_FIELD
