"""Soak: `guardian run` under real writers and everything that happens around a live store, for N
minutes; every write accounted for, guardian's memory sampled.

    .venv/bin/python bench/soak_live.py --minutes 30 --work /tmp/soak-live

Setup: a tmpfs of ``--disk-mb`` (so that the disk can be filled for real; needs root, else the
full-disk phase is skipped) holds the store and guardian's state dir - one filesystem, as under a
home folder; a store of ``--docs`` documents in 5 base collections; `guardian run` on it, alerts
appended to a file.

During the run:

- real writers: ``--writers`` ``chromemh writer`` processes, each adding documents to its own
  collection every ``--interval-ms`` ms (a writer that fails - the disk full, or chromem refusing a
  store another writer is writing at that instant - is started again with a new seed);
- damage every ``--damage-every`` s in the base collections, cycling through a document emptied,
  cut, garbage, replaced by a FIFO, a metadata file deleted or emptied, a stray folder;
- ``kill -9`` of guardian every ``--kill-every`` s during the first half, each followed by a restart
  3 s later; the second half is one long incarnation (the RSS trend);
- a paused writer: a base document truncated as chromem does and held ``--pause`` s, then its update
  written (a kill -9 of guardian falls inside the pause with the defaults);
- a full disk: the filesystem filled by a file outside the store and the state dir for
  ``--full-seconds`` s, at 40 % of the run, then freed;
- the real loader (``chromemh load``: a contextd starting) every 20 s;
- guardian's RSS (VmRSS) every 5 s.

At the end (writers done, guardian given up to ``--settle-minutes`` to catch up) every acknowledged
write is checked: its file on disk decodes to its id, the real loader holds that id, and the newest
snapshot's row for the file has exactly its bytes (not flagged). Every damage is checked repaired,
the paused writer's update at its path, loaded, and in the newest snapshot. Printed: the counts, the
alerts, the loader's probes, guardian's log events of interest, and RSS per incarnation (first
sample, +1 min, +5 min, max, last; MB per minute over the long incarnation's second half, and per
1000 writes), beside the baseline: a guardian started afresh on the final store, sampled for two
minutes once ready (the store grew by every write: a leak is what the long-lived one holds beyond
that). The samples are kept in ``WORK/rss.json``.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_live import CHROMEMH, COLLECTIONS, start_guardian, stop_guardian, wait_started  # noqa: E402
from bench.common import make_store  # noqa: E402
from guardian.format import chromem  # noqa: E402
from guardian.local.holders import written_among  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402
from guardian.snapshots.manifest import NO_CONTENT_FLAGS  # noqa: E402
from guardian.snapshots.repository import Repository  # noqa: E402
from guardian.store.scan import scan_store  # noqa: E402
from tests.paused_writer import PausedWriter, updated_document  # noqa: E402

DAMAGES = ["empty", "cut", "garbage", "fifo", "metadata_deleted", "metadata_empty", "stray_folder"]
ALERT_SINK = "import sys\nwith open(sys.argv[1], 'a') as out:\n    out.write(sys.stdin.read().strip() + '\\n')\n"
LOG_EVENTS = ["live_repaired", "live_repair_impossible", "store_unloadable_meanwhile", "held_file_replaced",
              "held_write_put_back", "replaced_file_quarantined", "writer_bytes_quarantined", "capture_failed",
              "snapshot_captured", "live_repair_failed", "store_repaired", "health_check_failed", "watch_worker_failed",
              "store_unloadable_after_repair"]


def now() -> float:
    return time.monotonic()


class Soak:
    def __init__(self, args) -> None:
        self.args = args
        self.work = Path(args.work)
        self.fs = self.work / "fs"
        self.store, self.state = self.fs / "store", self.fs / "state"
        self.paths: StatePaths | None = None
        self.alerts_file = self.work / "alerts.jsonl"
        self.began = now()
        self.end_writes = self.began + args.minutes * 60
        self.lock = threading.Lock()
        self.acked: list[tuple[str, str, str]] = []         # (collection, document id, store-relative path)
        self.writer_failures: Counter = Counter()
        self.writer_procs: dict[int, subprocess.Popen] = {}
        self.damages: list[tuple[str, str, Path, bytes | None]] = []   # (kind, when, path, good bytes)
        self.incarnations: list[dict] = []                  # {"proc", "log", "began", "rss": [(t, mb)]}
        self.probes: list[tuple[float, bool, str]] = []
        self.paused: dict = {}
        self.full: dict = {}
        self.stop = threading.Event()
        self.mounted = False

    # ---- setup ------------------------------------------------------------------------------
    def prepare(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.fs.mkdir(parents=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.args.disk_mb}m", "tmpfs", str(self.fs)],
                              capture_output=True)
        self.mounted = done.returncode == 0
        if not self.mounted:
            print(f"(no tmpfs: {done.stderr.decode().strip()}; the full-disk phase is skipped)")
        make_store(self.store, self.args.docs, collections=COLLECTIONS)
        (self.work / "alert_sink.py").write_text(ALERT_SINK)
        self.paths = StatePaths.for_store(self.store, self.state)

    def start_guardian(self) -> None:
        n = len(self.incarnations)
        log = self.work / f"run-{n}.log"
        alert = f"{sys.executable} {self.work / 'alert_sink.py'} {self.alerts_file}"
        proc = start_guardian(self.store, self.state, log, {"GUARDIAN_ALERT_COMMAND": alert})
        self.incarnations.append({"proc": proc, "log": log, "began": now(), "rss": [], "killed": False,
                                  "fresh": False})

    @property
    def guardian(self) -> subprocess.Popen:
        return self.incarnations[-1]["proc"]

    # ---- the actors -------------------------------------------------------------------------
    def writer(self, n: int) -> None:
        name, seed = f"soak_writer_{n}", 1000 * (n + 1)
        folder = chromem.collection_dir_name(name)
        while not self.stop.is_set() and now() < self.end_writes - 1:
            count = max(1, int((self.end_writes - now()) * 1000 / self.args.interval_ms))
            proc = subprocess.Popen([str(CHROMEMH), "writer", str(self.store), "0", name, str(count),
                                     str(self.args.interval_ms), str(seed)], stdout=subprocess.PIPE)
            self.writer_procs[n] = proc
            failure = None
            for line in proc.stdout:
                data = json.loads(line)
                if "file" in data:
                    with self.lock:
                        self.acked.append((name, data["id"], f"{folder}/{data['file']}.gob"))
                elif data.get("ok") is False:
                    failure = str(data.get("error"))
            proc.wait()
            seed += 1
            if failure is not None:
                self.writer_failures[failure.split(":")[0][:80]] += 1
                time.sleep(1.0)

    def damage(self, number: int) -> None:
        kind = DAMAGES[number % len(DAMAGES)]
        folder = self.store / chromem.collection_dir_name(COLLECTIONS[1 + number % (len(COLLECTIONS) - 1)])
        docs = sorted(p for p in folder.glob("*.gob") if not p.name.startswith("00000000"))
        doc = docs[(number * 7) % len(docs)]
        meta = folder / "00000000.gob"
        stamp = f"{(now() - self.began) / 60:.1f} min"
        if kind in ("empty", "cut", "garbage"):
            good = doc.read_bytes()
            doc.write_bytes({"empty": b"", "cut": good[: len(good) // 3], "garbage": os.urandom(len(good))}[kind])
            self.damages.append((kind, stamp, doc, good))
        elif kind == "fifo":
            good = doc.read_bytes()
            doc.unlink()
            os.mkfifo(doc)
            self.damages.append((kind, stamp, doc, good))
        elif kind.startswith("metadata"):
            good = meta.read_bytes()
            meta.unlink() if kind == "metadata_deleted" else meta.write_bytes(b"")
            self.damages.append((kind, stamp, meta, good))
        else:
            stray = self.store / f".backup-{number}"
            stray.mkdir()
            shutil.copy(doc, stray / doc.name)
            self.damages.append((kind, stamp, stray, None))

    def kill_and_restart(self) -> None:
        self.incarnations[-1]["killed"] = True
        self.guardian.kill()
        self.guardian.wait()
        time.sleep(3.0)   # writes land unwatched meanwhile
        self.start_guardian()

    def start_pause(self) -> None:
        folder = self.store / chromem.collection_dir_name(COLLECTIONS[0])
        doc = sorted(p for p in folder.glob("*.gob") if not p.name.startswith("00000000"))[0]
        good = doc.read_bytes()
        update = updated_document(good, "written by a writer paused mid-write")
        self.paused = {"doc": doc, "good": good, "update": update, "writer": PausedWriter(doc, self.work),
                       "began": now(), "loadable_after": None}

    def end_pause(self) -> None:
        self.paused["writer"].write(self.paused["update"])
        self.paused["closed"] = now()

    def fill_disk(self) -> None:
        """Fill the filesystem to the last byte, keep it full ``--full-seconds``, free it."""
        if not self.mounted:
            return
        filler = self.fs / "filler"
        written = 0
        with open(filler, "wb", buffering=0) as out:
            for chunk in (1 << 20, 4096, 1):    # then smaller writes: not even a small document fits
                try:
                    while True:
                        written += out.write(b"\0" * chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        self.full = {"began": now(), "bytes": written}
        time.sleep(self.args.full_seconds)
        filler.unlink()
        self.full["ended"] = now()

    def probe(self) -> None:
        proc = subprocess.run([str(CHROMEMH), "load", str(self.store), "0"], capture_output=True, timeout=300)
        data = json.loads(proc.stdout or b"{}")
        error = str(data.get("error") or "")
        if not data.get("ok"):
            error = f"{self.refusal_cause()}: {error}"
        self.probes.append((now() - self.began, bool(data.get("ok")), error))
        if self.paused and self.paused["loadable_after"] is None and data.get("ok") and "closed" not in self.paused:
            self.paused["loadable_after"] = now() - self.paused["began"]

    def refusal_cause(self) -> str:
        """Why the loader just refused the store, as guardian's scan sees it right after: the file
        chromem stops at, and whether a process holds it open for writing (a write in progress:
        chromem's truncate-then-write, which no one outside the writer can make atomic) or not
        (damage guardian has not repaired yet). Looked at after the load: it may be gone by then."""
        scan = scan_store(self.store)
        if scan.loadable:
            return "gone when looked at"
        held = written_among(self.store, [scan.cause]) if scan.cause else set()
        base_dirs = {chromem.collection_dir_name(name) for name in COLLECTIONS}
        where = "in a base collection" if scan.cause.split("/")[0] in base_dirs else "in a writer's collection"
        return f"{'held for writing' if held else 'NOT held'} ({scan.cause} {where})"

    def sample_rss(self) -> None:
        inc = self.incarnations[-1]
        try:
            with open(f"/proc/{inc['proc'].pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        inc["rss"].append((now() - inc["began"], int(line.split()[1]) / 1024, len(self.acked)))
        except OSError:
            pass

    # ---- the run ----------------------------------------------------------------------------
    def run(self) -> None:
        args = self.args
        self.prepare()
        self.start_guardian()
        time.sleep(5)
        threads = [threading.Thread(target=self.writer, args=(n,), daemon=True) for n in range(args.writers)]
        for thread in threads:
            thread.start()
        total = args.minutes * 60
        schedule = [(t, self.kill_and_restart) for t in range(args.kill_every, int(total / 2), args.kill_every)]
        schedule += [(t, lambda n=n: self.damage(n)) for n, t in enumerate(range(args.damage_every, int(total) - 30,
                                                                                  args.damage_every))]
        schedule += [(args.pause_at, self.start_pause), (args.pause_at + args.pause, self.end_pause)]
        schedule += [(int(total * 0.4), self.fill_disk)]
        schedule += [(t, self.probe) for t in range(10, int(total), 20)]
        schedule += [(t, self.sample_rss) for t in range(1, int(total) + 1, 5)]
        schedule.sort(key=lambda item: item[0])
        for at, action in schedule:
            time.sleep(max(0.0, self.began + at - now()))
            try:
                action()
            except Exception as exc:   # a soak reports, it does not stop
                print(f"[{at} s] {getattr(action, '__name__', 'action')} failed: {type(exc).__name__}: {exc}")
        time.sleep(max(0.0, self.end_writes - now()))
        self.stop.set()
        for proc in list(self.writer_procs.values()):   # a writer still at it is stopped (maybe mid-write:
            if proc.poll() is None:                      # that unacknowledged file is damage like any other)
                proc.kill()
        for thread in threads:
            thread.join(60)
        self.catch_up()

    def catch_up(self) -> None:
        """Wait (sampling RSS) until every write is in the newest snapshot and every damage repaired."""
        deadline = now() + self.args.settle_minutes * 60
        while now() < deadline:
            self.sample_rss()
            if not self.missing_from_snapshot() and not self.unrepaired() and not self.kept():
                return
            time.sleep(5)

    # ---- accounting -------------------------------------------------------------------------
    def newest_rows(self) -> dict:
        repo = Repository(self.paths.snapshots)
        return {e.path: e for e in repo.read_manifest(repo.list_ids()[-1]).files}

    def missing_from_snapshot(self) -> list[str]:
        rows = self.newest_rows()
        wanted = [rel for _, _, rel in self.acked]
        if self.paused:
            wanted.append(f"{self.paused['doc'].parent.name}/{self.paused['doc'].name}")
        missing = []
        for rel in wanted:
            row = rows.get(rel)
            try:
                data = (self.store / rel).read_bytes()
            except OSError:
                missing.append(rel)
                continue
            if row is None or row.flags & NO_CONTENT_FLAGS or row.hash != hashlib.sha256(data).hexdigest():
                missing.append(rel)
        return missing

    def unrepaired(self) -> list[str]:
        bad = []
        for kind, _, path, good in self.damages:
            if good is None:
                if os.path.lexists(path):
                    bad.append(f"{kind} {path.name}")
            elif not (path.is_file() and not path.is_symlink() and path.read_bytes() == good):
                bad.append(f"{kind} {path.parent.name}/{path.name}")
        return bad

    def kept(self) -> list[str]:
        held = self.state / "stores"
        return [str(p) for p in held.glob("*/held/*")] if held.exists() else []

    def fresh_baseline(self) -> None:
        """The same store read by a guardian started now: what the long-lived one's memory should be
        compared with (the store grew by every write; a leak is what the long-lived one holds beyond)."""
        stop_guardian(self.guardian)
        self.start_guardian()
        self.incarnations[-1]["fresh"] = True
        wait_started(self.paths, self.incarnations[-1]["log"])
        for _ in range(24):   # two minutes, once every part has settled
            time.sleep(5)
            self.sample_rss()
        (self.work / "rss.json").write_text(json.dumps(
            [{"incarnation": n, "killed": i["killed"], "fresh": i["fresh"], "samples": i["rss"]}
             for n, i in enumerate(self.incarnations)]))

    def report(self) -> None:
        args = self.args
        print(f"\n# soak: {args.minutes:g} min, {args.writers} writers every {args.interval_ms} ms, "
              f"{len(self.incarnations)} guardian incarnations ({sum(i['killed'] for i in self.incarnations)} "
              f"kill -9), {len(self.damages)} damages, a {args.pause} s pause, a {args.full_seconds} s full disk; "
              f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        on_disk = loaded = 0
        dump = subprocess.run([str(CHROMEMH), "dump", str(self.store), "0"], capture_output=True, timeout=900)
        state = json.loads(dump.stdout)
        ids = {d["id"] for c in state.get("collections") or [] for d in c["documents"]}
        contents = {d["content"] for c in state.get("collections") or [] for d in c["documents"]}
        for _, doc_id, rel in self.acked:
            try:
                on_disk += chromem.read_document(self.store / rel).id == doc_id
            except Exception:
                pass
            loaded += doc_id in ids
        missing = self.missing_from_snapshot()
        print(f"writes acknowledged by the writers: {len(self.acked)}; on disk and decoding to their id: {on_disk}; "
              f"held by the real loader: {loaded} (store loads: {state.get('ok')}, {state.get('error')}); "
              f"in the newest snapshot with their exact bytes: {len(self.acked) - len(missing)}"
              + (f"; NOT: {missing[:5]}" if missing else ""))
        print(f"writer restarts after a failure: {dict(self.writer_failures) or 'none'}")
        unrepaired = self.unrepaired()
        print(f"damages: {Counter(k for k, *_ in self.damages)}; not repaired at the end: {unrepaired or 'none'}")
        if self.paused:
            p = self.paused
            at_path = p["doc"].read_bytes() == p["update"]
            when = "no probe fell in the pause" if p["loadable_after"] is None else f"{p['loadable_after']:.0f} s"
            print(f"paused writer ({args.pause} s): store loadable for the loader {when} into the pause (probes "
                  f"every 20 s); its update at the path: {at_path}; loaded: "
                  f"{'written by a writer paused mid-write' in contents}")
        if self.full:
            print(f"full disk: {self.full['bytes'] / 2**20:.0f} MiB filler for "
                  f"{self.full.get('ended', now()) - self.full['began']:.0f} s")
        refused = [(round(t), e[:150]) for t, ok, e in self.probes if not ok]
        print(f"loader probes: {len(self.probes) - len(refused)} of {len(self.probes)} loaded"
              + (f"; refused: {Counter(e.split(' (')[0] for _t, e in refused)}" if refused else ""))
        for at, error in refused[:12]:
            print(f"  refused at {at} s: {error}")
        alerts = Counter()
        if self.alerts_file.exists():
            alerts = Counter(json.loads(line)["event"] for line in self.alerts_file.read_text().splitlines() if line)
        print(f"alerts: {dict(alerts)}")
        events = Counter()
        for inc in self.incarnations:
            for line in inc["log"].read_text(errors="replace").splitlines():
                for name in LOG_EVENTS:
                    if f'"event": "{name}"' in line:
                        events[name] += 1
        print(f"guardian log events: {dict(events)}")
        print(f"kept files left for writers: {self.kept() or 'none'}")
        print("RSS (MB) per incarnation: lived min | first | +1 min | +5 min | max | last | writes acknowledged "
              "meanwhile")
        for n, inc in enumerate(self.incarnations):
            rss = inc["rss"]
            if not rss:
                continue

            def at(minutes: float) -> str:
                later = [mb for t, mb, _ in rss if t >= minutes * 60]
                return f"{later[0]:.0f}" if later else "-"

            what = " (started on the final store, no writes: the baseline)" if inc["fresh"] else ""
            print(f"  {n}: {rss[-1][0] / 60:5.1f} | {rss[0][1]:.0f} | {at(1)} | {at(5)} | "
                  f"{max(mb for _, mb, _ in rss):.0f} | {rss[-1][1]:.0f} | {rss[-1][2] - rss[0][2]}{what}")
        lived = [inc for inc in self.incarnations if not inc["fresh"] and inc["rss"]]
        longest = max(lived, key=lambda inc: inc["rss"][-1][0])
        half = [(t, mb) for t, mb, _ in longest["rss"] if t >= longest["rss"][-1][0] / 2]
        if len(half) >= 3:
            mean_t = sum(t for t, _ in half) / len(half)
            mean_m = sum(mb for _, mb in half) / len(half)
            slope = (sum((t - mean_t) * (mb - mean_m) for t, mb in half)
                     / max(1e-9, sum((t - mean_t) ** 2 for t, _ in half)))
            print(f"longest incarnation's second half ({half[0][0] / 60:.1f}-{half[-1][0] / 60:.1f} min): "
                  f"{slope * 60:+.2f} MB/min (RSS {half[0][1]:.0f} -> {half[-1][1]:.0f} MB)")
        one = [(mb, acked) for t, mb, acked in longest["rss"] if t >= 60]
        if len(one) >= 2 and one[-1][1] > one[0][1]:
            per_write = (one[-1][0] - one[0][0]) / (one[-1][1] - one[0][1])
            print(f"longest incarnation from +1 min on: {1000 * per_write:.1f} MB per 1000 writes acknowledged "
                  f"meanwhile")

    def close(self) -> None:
        self.stop.set()
        for proc in self.writer_procs.values():
            if proc.poll() is None:
                proc.kill()
        if self.paused:
            self.paused["writer"].stop()
        if self.incarnations and self.guardian.poll() is None:
            stop_guardian(self.guardian)
        if self.mounted and not self.args.keep:
            subprocess.run(["umount", "-l", str(self.fs)], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--interval-ms", type=int, default=300)
    parser.add_argument("--damage-every", type=int, default=60)
    parser.add_argument("--kill-every", type=int, default=180)
    parser.add_argument("--pause-at", type=int, default=150)
    parser.add_argument("--pause", type=int, default=180)
    parser.add_argument("--full-seconds", type=int, default=20)
    parser.add_argument("--disk-mb", type=int, default=768)
    parser.add_argument("--settle-minutes", type=float, default=5.0)
    parser.add_argument("--keep", action="store_true", help="leave the tmpfs mounted (to look at it)")
    parser.add_argument("--work", default="/tmp/soak-live")
    args = parser.parse_args()
    if not CHROMEMH.exists():
        raise SystemExit(f"needs the real chromem harness at {CHROMEMH}")
    soak = Soak(args)
    try:
        soak.run()
        soak.fresh_baseline()
        soak.report()
    finally:
        soak.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
