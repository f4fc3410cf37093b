"""Listing one big folder: storefs.list_folder_stats with the C accelerator (1 and 2 lstat threads)
and without it, beside the bare scandir + lstat walk of the same folder, measured alternately in
the same run (medians; the machine is shared: read the ratios).

    .venv/bin/python bench/bench_listing.py /tmp/pf/big/plain/4a8f7b86 --repeat 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guardian.local import storefs  # noqa: E402


def scandir_lstat(folder: str) -> None:
    for entry in os.scandir(folder):
        entry.stat(follow_symlinks=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--fields", default="smiM")
    args = parser.parse_args()
    fd = os.open(args.folder, storefs.DIR_FLAGS)
    c = storefs._accelerated
    ways = {"scandir + lstat (baseline)": lambda: scandir_lstat(args.folder),
            "python path": lambda: storefs.list_folder_stats_python(fd, args.fields)}
    if c is not None:
        ways["C, 1 thread"] = lambda: c.list_folder(fd, args.fields, 1)
        ways["C, 2 threads"] = lambda: c.list_folder(fd, args.fields, 2)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeat):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times["scandir + lstat (baseline)"])
    print(f"{len(os.listdir(fd))} entries, load {os.getloadavg()[0]:.2f}")
    for name, values in times.items():
        value = statistics.median(values)
        print(f"  {name:<28} {value * 1000:8.1f} ms   ratio to baseline {value / base:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
