"""`guardian key export -o FILE`: the replica key in a file only its owner can read, never over
another file; the printed form stays for pipes."""

from __future__ import annotations

import os
import stat

from guardian.errors import ExitCode


def key_env(tmp_path) -> dict:
    return {"XDG_CONFIG_HOME": str(tmp_path / "config-home"), "GUARDIAN_REPLICA_PASSPHRASE": ""}


def test_export_to_a_file_is_0600_under_a_permissive_umask_and_matches_the_printed_key(cli, tmp_path):
    env = key_env(tmp_path)
    printed = cli("key", "export", env=env, check=True).stdout_text
    out = tmp_path / "guardian-replica.key"
    old = os.umask(0o022)   # the usual umask: `> file` would make it 0644
    try:
        proc = cli("key", "export", "-o", str(out), env=env)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr_text
    assert proc.stdout_text == "" and f"wrote the replica key to {out} (mode 0600)" in proc.stderr_text
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600 and out.read_text() == printed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".guardian-tmp")] == []


def test_an_existing_file_is_never_overwritten_without_force(cli, tmp_path):
    env = key_env(tmp_path)
    out = tmp_path / "notes.txt"
    out.write_text("my notes\n")
    refused = cli("key", "export", "-o", str(out), env=env)
    assert refused.returncode == ExitCode.USAGE and "already exists" in refused.stderr_text
    assert "--force" in refused.stderr_text and out.read_text() == "my notes\n"
    forced = cli("key", "export", "-o", str(out), "--force", env=env)
    assert forced.returncode == 0 and out.read_text().startswith("guardian-replica-key")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_a_missing_folder_is_a_usage_error_in_one_line(cli, tmp_path):
    proc = cli("key", "export", "-o", str(tmp_path / "nowhere" / "k.key"), env=key_env(tmp_path))
    assert proc.returncode == ExitCode.USAGE and "internal error" not in proc.stderr_text
    assert proc.stderr_text.startswith(f"error: cannot write -o {tmp_path / 'nowhere' / 'k.key'}: No such file")
