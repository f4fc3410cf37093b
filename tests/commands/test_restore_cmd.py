"""guardian restore's presentation: a plan summarised per collection, every file only with -v."""

from __future__ import annotations

import shutil


def test_a_plan_is_one_line_per_collection_and_every_file_only_with_v(cli, plain_store):
    cli("snapshot", "--store", str(plain_store), check=True)
    lost = sorted(p.name for p in (plain_store / "6c7f5464").iterdir())
    shutil.rmtree(plain_store / "6c7f5464")                      # checkpoints gone: 9 files
    (plain_store / "40917930" / "extra.gob").write_bytes(b"x")   # one file the snapshot lacks
    short = cli("restore", "--at", "latest", "--dry-run", "--store", str(plain_store), check=True).stdout_text
    lines = short.splitlines()
    assert "9 written" in lines[0] and "1 moved aside" in lines[0]
    [checkpoints] = [line for line in lines if "checkpoints" in line]
    [memories] = [line for line in lines if "webapp_memories" in line]
    assert checkpoints.split()[1:4] == ["6c7f5464", "9", "0"] and "40917930" in memories
    assert len(lines) == 5 and not any(name in short for name in lost)    # headline, table (3), the -v hint
    full = cli("restore", "--at", "latest", "--dry-run", "-v", "--store", str(plain_store), check=True).stdout_text
    assert all(f"6c7f5464/{name}" in full for name in lost) and "move_aside 40917930/extra.gob" in full
