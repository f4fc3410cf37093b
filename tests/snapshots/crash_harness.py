"""Crash harness: SIGKILL real `guardian snapshot` / `guardian restore` processes mid-work.

Kill points come from the work's own progress, not the clock: each process runs under
``crash_child.py``, which SIGKILLs it just before its Nth durable file operation (write, fsync,
rename, unlink). N is drawn (seeded) from the step count of the last complete run of the same
command, measured by that run itself, so every kill lands inside the work on a fast or a loaded
machine alike; about one run in five is left to finish (it commits snapshots and re-measures).

After every kill it checks: every blob in the repository matches its hash (no partial blob), every
manifest reads and verifies, and (after a killed restore) every store file holds either its old or
its new bytes, never anything else. At the end every snapshot is materialised and compared with the
store as it was when that snapshot was taken, and a final restore leaves no staged temp files.

Run alone:  .venv/bin/python tests/snapshots/crash_harness.py --kills 200 --seed 7
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from guardian.errors import ExitCode  # noqa: E402
from guardian.format.chromem import Document, encode_document  # noqa: E402
from guardian.local.fsutil import TEMP_PREFIX  # noqa: E402
from guardian.snapshots.repository import Repository  # noqa: E402
from guardian.restoring.pipeline import InProcess, Restore  # noqa: E402
from guardian.restoring.request import RestoreRequest  # noqa: E402
from guardian.snapshots.verify import materialize, verify_repository  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "chromem-go-v0.7.0" / "store-plain"
CHILD = Path(__file__).resolve().with_name("crash_child.py")
# a run that finished: the mutated stores hold random bytes, so a restore may leave them unloadable (3)
FINISHED = (ExitCode.OK, ExitCode.WARNINGS, ExitCode.UNLOADABLE)
FINISH_SHARE = 0.2          # runs left to complete: they commit snapshots and re-measure the steps
DEFAULT_SEED = 20261201     # fixed: the same kill points on every run of the test


def tree(root: Path) -> dict[str, bytes]:
    """Every file chromem could see (guardian's temp files and staging folders are not)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(TEMP_PREFIX)]
        for name in files:
            if name.startswith(TEMP_PREFIX):
                continue
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = Path(path).read_bytes()
    return found


@dataclass
class Stats:
    kills: int = 0
    completed: int = 0
    rounds: int = 0
    snapshots: int = 0
    failures: list[str] = field(default_factory=list)


class Worker:
    def __init__(self, workdir: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.store = workdir / "store"
        shutil.copytree(FIXTURE, self.store)
        self.state = workdir / "state"
        self.paths = StatePaths.for_store(self.store, self.state)
        self.repo = Repository(self.paths.snapshots)
        self.expected: dict[str, dict[str, bytes]] = {}
        self.stats = Stats()
        self.steps: dict[str, int] = {}      # command -> steps its last complete run took
        self.counts = workdir / "steps.txt"
        self.env = dict(os.environ, GUARDIAN_STATE_DIR=str(self.state),
                        GUARDIAN_CONFIG=str(workdir / "none.toml"), PYTHONPATH=str(ROOT))

    def kill_point(self, command: str) -> int | None:
        """Which step to die at (None: let it finish), drawn from the last measured run."""
        measured = self.steps.get(command)
        if measured is None or self.rng.random() < FINISH_SHARE:
            return None
        return self.rng.randint(1, max(1, measured))

    def launch(self, *args: str, kill: bool = True) -> bool:
        """Run guardian; it SIGKILLs itself at a progress-chosen step. True if it was killed."""
        kill_at = self.kill_point(args[0]) if kill else None
        env = dict(self.env, GUARDIAN_TEST_COUNT_STEPS=str(self.counts))
        if kill_at is not None:
            env["GUARDIAN_TEST_KILL_AT_STEP"] = str(kill_at)
        with contextlib.suppress(FileNotFoundError):
            self.counts.unlink()
        proc = subprocess.run([sys.executable, str(CHILD), *args, "--store", str(self.store)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              timeout=600)
        killed = proc.returncode == -signal.SIGKILL
        if killed:
            self.stats.kills += 1
            return True
        self.stats.completed += 1
        if proc.returncode not in FINISHED:
            self.stats.failures.append(f"guardian {' '.join(args)} exited {proc.returncode}: "
                                       f"{proc.stderr.decode(errors='replace')[-300:]}")
        if self.counts.exists():
            self.steps[args[0]] = int(self.counts.read_text() or 0)
        return False

    def random_document(self) -> bytes:
        """A valid chromem document with random content (damaged bytes are never stored as a version)."""
        text = self.rng.randbytes(self.rng.randint(20, 2000)).hex()
        doc = Document(id=f"d{self.rng.randrange(10**9)}", metadata={"k": text[:8]},
                       embedding=np.frombuffer(self.rng.randbytes(16), dtype=np.float32).copy(), content=text)
        return encode_document(doc)

    def mutate(self) -> None:
        files = sorted(p for p in self.store.glob("*/*") if p.is_file() and not p.name.startswith(TEMP_PREFIX)
                       and not p.name.startswith("00000000"))
        if not files:
            return
        for path in self.rng.sample(files, k=min(3, len(files))):
            path.write_bytes(self.random_document())
        if self.rng.random() < 0.3:
            (files[0].parent / f"n{self.rng.randrange(10**6):06d}.gob").write_bytes(self.random_document())

    def snapshot_round(self) -> None:
        self.mutate()
        state = tree(self.store)
        before = set(self.repo.list_ids())
        self.launch("snapshot")
        for new in set(self.repo.list_ids()) - before:
            self.expected[new] = state
            self.stats.snapshots += 1

    def restore_round(self) -> None:
        ids = self.repo.list_ids()
        if not ids:
            return
        self.mutate()
        if self.rng.random() < 0.3:  # a whole collection lost: restored as a folder staged whole
            folders = sorted(p for p in self.store.iterdir() if p.is_dir() and not p.name.startswith(TEMP_PREFIX))
            if len(folders) >= 3:  # (a killed restore may not bring it back: keep the store from emptying)
                shutil.rmtree(self.rng.choice(folders))
        before = tree(self.store)
        target = self.expected[ids[-1]]
        self.launch("restore", "--at", "latest", "--force")
        after = tree(self.store)
        for path in set(before) | set(target) | set(after):
            if after.get(path) not in (before.get(path), target.get(path)):
                self.stats.failures.append(f"restore left {path} neither old nor new")

    def check_repository(self) -> None:
        for digest in self.repo.list_blobs():
            try:
                self.repo.read_blob(digest)
            except Exception as exc:  # noqa: BLE001 - report every kind of damage
                self.stats.failures.append(f"partial/damaged blob {digest[:12]}: {exc}")
        report = verify_repository(self.repo)
        if not report.ok:
            self.stats.failures.append(f"verify failed: {report.problems[:2]}")

    def final_checks(self) -> None:
        verify = subprocess.run([sys.executable, "-m", "guardian", "verify", "--store", str(self.store)],
                                env=self.env, capture_output=True)
        if verify.returncode != 0:
            self.stats.failures.append(f"guardian verify failed: {verify.stdout.decode()[-300:]}")
        for snapshot_id, expected in self.expected.items():
            scratch = Path(tempfile.mkdtemp(dir=self.state))
            materialize(self.repo, self.repo.read_manifest(snapshot_id), scratch)
            if tree(scratch) != expected:
                self.stats.failures.append(f"snapshot {snapshot_id} does not restore what was taken")
            shutil.rmtree(scratch)
        if self.expected:
            first = min(self.expected)
            Restore.of_store(self.paths, RestoreRequest(at=snapshot_time(first))).run(InProcess(check_load=False))
            if tree(self.store) != self.expected[first]:
                self.stats.failures.append("restoring the earliest snapshot is not byte-identical")
            leftovers = [p for p in self.store.rglob(f"{TEMP_PREFIX}*")]  # files and staging folders
            if leftovers:
                self.stats.failures.append(f"staged temp files left after a restore: {leftovers[:3]}")

    def run(self, kills: int, max_rounds: int) -> Stats:
        self.launch("snapshot", kill=False)  # a first snapshot, complete: it measures the steps too
        self.expected.update({i: tree(self.store) for i in self.repo.list_ids()})
        while self.stats.kills < kills and self.stats.rounds < max_rounds:
            self.stats.rounds += 1
            if self.rng.random() < 0.5:
                self.snapshot_round()
            else:
                self.restore_round()
            self.check_repository()
        self.final_checks()
        return self.stats


def snapshot_time(snapshot_id: str):
    from guardian.snapshots.restore import id_time

    return id_time(snapshot_id)


def run_harness(workdir: Path, kills: int = 100, workers: int = 2, seed: int = DEFAULT_SEED) -> Stats:
    per_worker = -(-kills // workers)
    folders = [workdir / f"w{i}" for i in range(workers)]
    for folder in folders:
        folder.mkdir(parents=True)
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda i: Worker(folders[i], seed * 1000 + i).run(per_worker, per_worker * 4),
                                range(workers)))
    total = Stats()
    for stats in results:
        total.kills += stats.kills
        total.completed += stats.completed
        total.rounds += stats.rounds
        total.snapshots += stats.snapshots
        total.failures += stats.failures
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        started = time.monotonic()
        stats = run_harness(Path(workdir), args.kills, args.workers, args.seed)
    print(f"seed {args.seed}: {stats.kills} kills, {stats.completed} completed runs, {stats.snapshots} snapshots "
          f"committed, {stats.rounds} rounds, {time.monotonic() - started:.1f} s, failures: {len(stats.failures)}")
    for failure in stats.failures[:20]:
        print("  FAIL", failure)
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
