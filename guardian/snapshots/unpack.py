"""The blobs a restore writes: read from their packs, checked against their hashes and judged as
chromem would, one run of adjacent frames at a time, in a worker process ahead of the writer.

A restore's time goes into creating files (measured 50-170 us a create in a 100k-entry folder on
this VM's ext4, more than all the rest together) and that cannot be shared: creates in one folder
wait on its lock. What can be shared is everything before the write (decompress, sha256, chromem's
verdict: ~15 us a blob), so a large restore has one worker process prepare runs a few ahead while
the restoring thread only creates files. A small restore, or one where processes cannot start,
prepares its runs in-process; the result is the same either way.
"""

from __future__ import annotations

import concurrent.futures
from collections import deque
from typing import Iterable, Iterator

from guardian.local.procpool import new_pool, usable_cpus
from guardian.snapshots.capture import parallel_sizes
from guardian.snapshots.repository import Repository
from guardian.store.judge import damage_of, prepare as prepare_judge

AHEAD = 4   # runs prepared ahead of the writer (each ~1024 blobs: a few MB held)

# A run: (pack id, [(digest, offset, frame length)]) adjacent frames of one pack, in offset order.
Run = tuple[str, list[tuple[str, int, int]]]
# A prepared blob: (digest, content, why chromem would refuse it as each of its paths; None: not judged).
Prepared = tuple[str, bytes, list]


def prepare_run(repo_root: str, run: Run, paths: dict[str, list[str]], judge: bool) -> list[Prepared]:
    """Read one run (each blob checked against its hash: SnapshotError if one is damaged or the pack
    is gone) and judge every blob as each path it is restored to."""
    pack_id, frames = run
    blobs = Repository(repo_root).read_run(pack_id, frames)
    return [(digest, data, verdicts(data, paths[digest], judge)) for digest, data in blobs]


def verdicts(data: bytes, paths: list[str], judge: bool) -> list | None:
    """Why chromem would refuse ``data`` as each of ``paths`` (None each: it would load it); None
    when the restore does not judge (``--allow-damaged``)."""
    return [damage_of(rel, data) for rel in paths] if judge else None


def prepared_runs(repo: Repository, runs: list[Run], paths: dict[str, list[str]], judge: bool,
                  files: int) -> Iterator[list[Prepared]]:
    """Every run prepared, in order: by a worker process when ``files`` is large, else here."""
    pool = None
    if files >= parallel_sizes().min_files and len(runs) >= 2 and usable_cpus() >= 2:
        try:
            pool = new_pool(1)
        except (OSError, ValueError):   # no processes here: prepared in-process
            pool = None
    yield from _ahead(pool, str(repo.root), runs, paths, judge)


def _ahead(pool, root: str, runs: Iterable[Run], paths: dict[str, list[str]], judge: bool) -> Iterator[list[Prepared]]:
    """Runs prepared by ``pool``'s worker, AHEAD at a time; here without a pool, or once it broke."""
    pending = iter(runs)
    ahead: deque = deque()

    def submit() -> None:
        nonlocal pool
        run = next(pending, None)
        if run is None:
            return
        future = None
        if pool is not None:
            try:
                future = pool.submit(prepare_run, root, run, _paths_of(run, paths), judge)
            except (concurrent.futures.BrokenExecutor, RuntimeError):
                pool = None
        ahead.append((run, future))

    try:
        prepare_judge()
        for _ in range(AHEAD):
            submit()
        while ahead:
            run, future = ahead.popleft()
            try:
                prepared = future.result() if future is not None else None
            except concurrent.futures.BrokenExecutor:   # the worker died: this run and the rest here
                prepared, pool = None, None
            if prepared is None:
                prepared = prepare_run(root, run, _paths_of(run, paths), judge)
            submit()
            yield prepared
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _paths_of(run: Run, paths: dict[str, list[str]]) -> dict[str, list[str]]:
    return {digest: paths[digest] for digest, _, _ in run[1]}
