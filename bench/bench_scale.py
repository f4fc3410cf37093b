"""Snapshots, restores and check at scale, each beside a baseline measured in the same run.

| figure | baseline (same run) |
| --- | --- |
| first snapshot (fresh repository) | the real chromem-go v0.7.0 loading the same store (`chromemh bench`) |
| whole-store restore into an empty folder (files durable; then with the loadability check) | same |
| whole-store restore, again | the filesystem's floor: a bare loop writing the same files, one syncfs |
| no-change snapshot | a bare stat walk of the store (scandir + lstat of every entry) |
| `guardian check` CLI on an unchanged store (warm cache) | a new interpreter doing the bare stat walk |
| index cold build, warm restart, `guardian run` memory, idle memory | see ``bench/index_figures.py`` |

Every figure is measured ``--repeat`` times, alternating with its baseline, and the medians and their
ratio are printed (the machine is shared: read the ratios). Nothing written is removed until the end:
on an ext4 without a journal (this VM's root), every create scans past the inodes deleted in the last
60 s (360 s while their inode-table block is dirty; ``recently_deleted`` in ``find_inode_bit``, 60% of
a create's time in ``perf record``), so removing a restored tree made the next 100k creates cost
35-190 us each instead of 12-21. The work folder needs room for every tree (checked first). CPU
times of the first snapshot are the machine's (every process: the capture's worker processes are not
our children, so getrusage would not see them).
Stores: ``--store PATH`` (any existing store, never written to; ``--compress 0|1`` if it cannot be
detected), else stores of ``--docs`` documents x 384 written by the real chromem (`chromemh synth`), plain and gz.

    .venv/bin/python bench/bench_scale.py --docs 100000
    .venv/bin/python bench/bench_scale.py --store ~/.config/contextd/vectorstore --repeat 3
    .venv/bin/python bench/bench_scale.py --store /tmp/pf/big/plain --figures index --repeat 3

    .venv/bin/python bench/bench_scale.py --store /tmp/pf/big/plain --figures check --repeat 10

``--figures snapshots,index,check`` picks the groups (default: snapshots,index; snapshots ends with the
check figures, ``check`` alone measures only them). The CLI runs as installed code runs: from this
checkout (``cwd`` is the repository, so ``-m guardian`` is this code), with byte-code caches written and
used (PYTHONDONTWRITEBYTECODE is dropped for it: without them every run would compile guardian first).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import stat_walk  # noqa: E402
from guardian.local.fsutil import sync_filesystem  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402
from guardian.restoring.pipeline import Restore  # noqa: E402
from guardian.snapshots.take import detect_compress, list_store, take_snapshot  # noqa: E402

CHROMEMH = ROOT.parent / "shared" / "chromem-harness" / "chromemh"
# the same floor in a fresh interpreter, as the check CLI pays it
WALK = f"import os, sys\n{inspect.getsource(stat_walk)}\nstat_walk(sys.argv[1])\n"


CPU: dict[str, list[float]] = {}   # figure -> CPU seconds (user + system) of each run


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_seconds() -> float:
    """CPU seconds every process on the machine has used (user + nice + system + irq + softirq)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:8]
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields)
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def timed(fn, cpu_key: str | None = None, machine: bool = False) -> float:
    clock = machine_cpu_seconds if machine else lambda: cpu_seconds(resource.RUSAGE_SELF)
    cpu = clock()
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    if cpu_key:
        CPU.setdefault(cpu_key, []).append(clock() - cpu)
    return elapsed


def bare_write_seconds(contents: dict[str, bytes], target: Path) -> float:
    """The filesystem's floor for a restore: every file created (O_EXCL), written and closed through
    its folder's fd, folders made as needed, then one syncfs (guardian's restore adds the decompression,
    the checks, the mode and mtime, staging and the renames)."""
    started = time.perf_counter()
    folders: dict[str, int] = {"": os.open(target, os.O_RDONLY | os.O_DIRECTORY)}
    try:
        for rel, data in contents.items():
            parent, _, name = rel.rpartition("/")
            fd = folders.get(parent)
            if fd is None:
                (target / parent).mkdir(parents=True, exist_ok=True)
                fd = folders[parent] = os.open(target / parent, os.O_RDONLY | os.O_DIRECTORY)
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644, dir_fd=fd)
            os.write(out, data)
            os.close(out)
        sync_filesystem(folders[""])
    finally:
        for fd in folders.values():
            os.close(fd)
    return time.perf_counter() - started


def timing_check(seconds: list[float], fn):
    """Run ``fn`` (a restore, with its loadability check) noting how long the check took: the restore
    figure is the restore without it, the next one the whole command as a user runs it (the check
    trusts the documents the restore judged as it wrote them)."""
    import guardian.restoring.destinations as restore_module

    check = restore_module.check_loadable

    def timed_check(*args, **kwargs):
        started = time.perf_counter()
        try:
            return check(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    restore_module.check_loadable = timed_check
    try:
        result = fn()
    finally:
        restore_module.check_loadable = check
    assert result.loadable, f"the restored store is not loadable: {result.load_error}"
    return result


def rest() -> None:
    """Let the disk finish what was written before the next measurement (nothing is removed: see the
    module's docstring)."""
    os.sync()
    time.sleep(SETTLE[0])


SETTLE = [5.0]


def journal_note(work: Path) -> str:
    """A warning when ``work`` is on an ext4 without a journal: there, creates just after removals are
    several-fold slower (see the module's docstring), so rest the disk a few minutes first."""
    dev = os.stat(work).st_dev
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            sep = fields.index("-")
            major, minor = map(int, fields[2].split(":"))
            if os.makedev(major, minor) == dev and fields[sep + 1] == "ext4":
                name = os.path.basename(fields[sep + 2])
                journaled = os.path.isdir("/proc/fs/jbd2") and any(
                    entry.startswith(name + "-") for entry in os.listdir("/proc/fs/jbd2"))
                if not journaled:
                    return (f"note: {work} is on ext4 without a journal ({name}): creates within ~6 min of "
                            "removing many files cost several times more; rest the disk before running")
    return ""


def check_room(work: Path, store: Path, repeat: int) -> None:
    """Refuse to start without room for every restored and floor tree and snapshot repository (kept
    until the end)."""
    used = sum(os.lstat(os.path.join(folder, name)).st_blocks * 512
               for folder, _, names in os.walk(store) for name in names)
    need = used * 3 * repeat + (1 << 30)
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(f"{work} has {free >> 20} MB free and the benchmark keeps ~{need >> 20} MB of trees: "
                         "pass a --dir on a disk with more room, or a smaller --repeat")


def chromem_load_seconds(store: Path, compress: bool) -> float:
    """Wall seconds of chromem's NewPersistentDB (its own figure); the CPU time of the whole chromemh
    process (load plus one query) is noted too."""
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    out = subprocess.run([str(CHROMEMH), "bench", str(store), "1" if compress else "0", "-", "1", "1"],
                         capture_output=True, text=True, check=True).stdout
    CPU.setdefault("chromem", []).append(cpu_seconds(resource.RUSAGE_CHILDREN) - cpu)
    return float(json.loads(out)["load_s"])


CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_cli(*args: str, cpu_key: str | None = None) -> float:
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd=ROOT, env=CLI_ENV)
    elapsed = time.perf_counter() - started
    if cpu_key:
        CPU.setdefault(cpu_key, []).append(cpu_seconds(resource.RUSAGE_CHILDREN) - cpu)
    return elapsed


class Figures:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float, str, float]] = []
        self.store = ""

    def table(self) -> None:
        print("\n| figure | guardian | baseline (same run) | baseline | ratio |\n| --- | --- | --- | --- | --- |")
        for label, shown, value, base_label, base, *unit in self.rows:
            base_shown = f"{base:.0f} MB" if unit else f"{base:.3f} s"
            print(f"| {label} | {shown} | {base_label} | {base_shown} | {value / base:.2f}x |")

    def add_memory(self, label: str, mine: dict[str, float], base_label: str, base: float) -> None:
        """A memory figure: RSS / USS / PSS / anonymous MB, the ratio taken on anonymous memory."""
        shown = " / ".join(f"{mine[k]:.0f}" for k in ("rss", "uss", "pss", "anon")) + " MB"
        self.rows.append((f"{label} ({self.store}): RSS / USS / PSS / anon", shown, mine["anon"], base_label,
                          base, "MB"))
        print(f"  {label:<44} RSS {mine['rss']:.0f} USS {mine['uss']:.0f} PSS {mine['pss']:.0f} anon "
              f"{mine['anon']:.0f} MB   {base_label:<34} {base:8.0f} MB   anon ratio {mine['anon'] / base:5.2f}x   "
              f"RSS ratio {mine['rss'] / base:5.2f}x", flush=True)

    def add(self, label: str, values: list[float], base_label: str, bases: list[float]) -> None:
        value, base = statistics.median(values), statistics.median(bases)
        self.rows.append((f"{label} ({self.store})", f"{value:.3f} s", value, base_label, base))
        print(f"  {label:<44} {value:8.3f} s   {base_label:<34} {base:8.3f} s   ratio {value / base:5.2f}x   "
              f"(runs: {', '.join(f'{v:.2f}' for v in values)} / {', '.join(f'{b:.2f}' for b in bases)})",
              flush=True)


def bench_store(store: Path, compress: bool, work: Path, repeat: int, figures: Figures,
                groups: tuple[str, ...] = ("snapshots", "index"), idle: float = 30.0) -> None:
    files = len(list_store(store).files)
    print(f"store {store} ({'gz' if compress else 'plain'}, {files} files)", flush=True)
    figures.store = f"{'gz' if compress else 'plain'}, {files} files"
    if "snapshots" in groups:
        bench_snapshots(store, compress, work, repeat, figures)
    elif "check" in groups:
        bench_check(store, work / "state-check", repeat, figures)
    if "index" in groups:
        from bench.index_figures import bench_index

        bench_index(store, compress, work, repeat, figures, CHROMEMH if CHROMEMH.exists() else None, idle)


def bench_snapshots(store: Path, compress: bool, work: Path, repeat: int, figures: Figures) -> None:
    have_chromem = CHROMEMH.exists()
    firsts, restores, checked, loads, floors = [], [], [], [], []
    contents = {rel: (store / rel).read_bytes() for rel in list_store(store).files}
    check_room(work, store, repeat)
    if note := journal_note(work):
        print(note, flush=True)
    rest()
    for attempt in range(repeat):
        if have_chromem:
            loads.append(chromem_load_seconds(store, compress))
        state = work / f"state-{attempt}"
        paths = StatePaths.for_store(store, state)
        firsts.append(timed(lambda: take_snapshot(paths, compress), "first", machine=True))
        rest()
        target = work / f"restored-{attempt}"
        target.mkdir()
        restored = StatePaths(store=target, root=paths.root)
        check_seconds: list[float] = []
        whole = timed(lambda: timing_check(check_seconds, lambda: Restore.of_store(restored).run()), "restore")
        restores.append(whole - check_seconds[0])
        checked.append(whole)
        rest()
        floor = work / f"floor-{attempt}"
        floor.mkdir()
        floors.append(bare_write_seconds(contents, floor))
        rest()
    base_label = "chromem-go load (chromemh bench)"
    if not have_chromem:
        loads, base_label = [float("nan")], "chromemh missing"
    figures.add("first snapshot", firsts, base_label, loads)
    figures.add("restore into an empty folder", restores, base_label, loads)
    figures.add("restore into an empty folder", restores, "bare create+write+syncfs (floor)", floors)
    figures.add("restore + loadability check", checked, base_label, loads)
    if have_chromem:
        chromem_cpu = statistics.median(CPU.pop("chromem"))
        for key, who in (("first", "machine, all processes"), ("restore", "this process, restore + its check")):
            mine = statistics.median(CPU.pop(key))
            print(f"  CPU time (user+sys), {key} ({who}) {mine:8.3f} s   chromemh process (load + 1 query)  "
                  f"{chromem_cpu:8.3f} s   ratio {mine / chromem_cpu:5.2f}x", flush=True)
    same, walks = [], []
    for _ in range(repeat):
        walks.append(timed(lambda: stat_walk(str(store)), "walk"))
        same.append(timed(lambda: take_snapshot(paths, compress), "same"))
    figures.add("no-change snapshot", same, "bare stat walk", walks)
    print_cpu("no-change snapshot", "same", "bare stat walk", "walk")
    bench_check(store, state, repeat, figures)


def bench_check(store: Path, state: Path, repeat: int, figures: Figures) -> None:
    """`guardian check` of an unchanged store against a new interpreter doing the bare stat walk,
    alternated; the verified cache is filled first. (`guardian exec`'s pre-flight is the same scan;
    it is not run here: on a damaged store it would repair, and ``--store`` is only read.)"""
    cli = [sys.executable, "-m", "guardian", "check", "--store", str(store), "--state-dir", str(state)]
    run_cli(*cli)  # fills the verified cache (and writes guardian's byte-code caches)
    run_cli(*cli)
    checks, bare = [], []
    for _ in range(repeat):
        bare.append(run_cli(sys.executable, "-c", WALK, str(store), cpu_key="bare"))
        checks.append(run_cli(*cli, cpu_key="check"))
    figures.add("check CLI, unchanged store", checks, "interpreter + bare stat walk", bare)
    print_cpu("check CLI", "check", "interpreter + bare stat walk", "bare")


def print_cpu(label: str, key: str, base_label: str, base_key: str) -> None:
    """The same comparison in CPU time (user + system): steadier than wall time on a loaded machine."""
    mine, base = statistics.median(CPU.pop(key)), statistics.median(CPU.pop(base_key))
    print(f"  CPU time (user+sys), {label:<23} {mine:8.3f} s   {base_label:<34} {base:8.3f} s   "
          f"ratio {mine / base:5.2f}x", flush=True)


def synth(work: Path, docs: int, compress: bool) -> Path:
    store = work / f"store-{'gz' if compress else 'plain'}"
    subprocess.run([str(CHROMEMH), "synth", str(store), str(docs), "384", "1" if compress else "0"],
                   stdout=subprocess.DEVNULL, check=True)
    return store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="an existing store (only read)")
    parser.add_argument("--compress", choices=("0", "1"), help="for --store: how chromem runs it (default: detect)")
    parser.add_argument("--docs", type=int, default=10_000, help="documents per synthetic store (no --store)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", help="work folder (default: a temp folder, removed after)")
    parser.add_argument("--figures", default="snapshots,index", help="groups to measure: snapshots, index, check")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds the idle sidecar idles before measuring")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds the disk rests after each write-heavy step")
    args = parser.parse_args()
    SETTLE[0] = args.settle
    groups = tuple(g.strip() for g in args.figures.split(",") if g.strip())
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    figures = Figures()
    try:
        if args.store:
            store = Path(args.store).expanduser().resolve()
            compress = bool(int(args.compress)) if args.compress else detect_compress(list_store(store).files, None)
            bench_store(store, compress, work, args.repeat, figures, groups, args.idle)
        else:
            if not CHROMEMH.exists():
                print(f"{CHROMEMH} is missing: pass --store", file=sys.stderr)
                return 2
            for compress in (False, True):
                folder = work / ("gz" if compress else "plain")
                folder.mkdir()
                bench_store(synth(work, args.docs, compress), compress, folder, args.repeat, figures, groups, args.idle)
        figures.table()
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
