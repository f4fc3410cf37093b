"""`guardian verify` says what it checked in words that read right, and that there is nothing to
verify before the first snapshot."""

from guardian.errors import ExitCode


def test_no_snapshots_is_nothing_to_verify(cli, plain_store):
    proc = cli("verify", "--store", str(plain_store))
    assert proc.returncode == ExitCode.OK, proc.stderr_text
    assert proc.stdout_text == ("nothing to verify: this store has no snapshots yet "
                                "(take one with `guardian snapshot`)\n")


def test_one_snapshot_is_counted_in_the_singular(cli, plain_store):
    cli("snapshot", "--store", str(plain_store), check=True)
    proc = cli("verify", "--store", str(plain_store))
    assert proc.returncode == ExitCode.OK and proc.stdout_text.startswith("1 snapshot, 95 blobs checked: OK")
