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


def test_the_restore_hint_of_a_replica_pastes_into_a_shell_as_printed(cli, plain_store, tmp_path):
    """The URL keeps its query (an unquoted `&` would background the command) and the command is
    never wrapped, however long."""
    import shlex

    (tmp_path / "backup").mkdir()
    url = f"file://{tmp_path / 'backup'}/guardian?encrypt=0&path_style=1"
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config-home"), "GUARDIAN_REPLICA_PASSPHRASE": ""}
    cli("snapshot", "--store", str(plain_store), check=True)
    cli("replicate", "--store", str(plain_store), "--to", url, env=env, check=True)
    listed = cli("snapshots", "--from", url, "--store", str(plain_store), env=env)
    assert listed.returncode == 0, listed.stderr_text
    [line] = [line for line in listed.stdout_text.splitlines() if line.startswith("restore one: ")]
    command = line[len("restore one: "):].split("  (--all")[0]
    assert shlex.split(command) == ["guardian", "restore", "--from", url, "--at", "ID"]
    assert "(--all: one row each" in listed.stdout_text.split(line, 1)[1]   # the note, after the whole command
