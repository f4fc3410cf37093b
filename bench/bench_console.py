"""The console's pages on a 100k store while the real chromem writes to it.

Run:  .venv/bin/python bench/bench_console.py [--docs 100000] [--rate 20] [--requests 30] [--browsers 3]
      [--work DIR]

`guardian run` guards a store of ``--docs`` documents in 5 collections; once it is ready (index
built, first snapshot committed) the real chromem's writer (tests/chromem, as a running contextd
writes) adds documents at ``--rate`` per second, and meanwhile:

- the first GET of each page (``/console/``, the timeline, a collection's memories, one memory,
  a keyword search) after the sidecar got ready: server time to the last byte, cold;
- ``--requests`` GETs of ``/console/`` one after another: p50 / p99;
- the same-run baselines on the same server: ``/healthz`` (an HTTP round trip, nothing to gather)
  and ``/v1/status`` (the status JSON alone), p50 of as many requests; the page's ratio to each;
- with Debian's chromium here: ``/console/`` as the first page of a fresh browser, from navigation
  start to the first contentful paint (the goal: under 300 ms) and to the load event; beside the
  same layout with nothing to gather (the 404 page), in as many fresh browsers.

The machine is shared: read the ratios beside the milliseconds. The load average is printed.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_live import http_port, wait_started  # noqa: E402
from bench.common import make_store, work_folder  # noqa: E402
from guardian.local.paths import StatePaths  # noqa: E402

COLLECTIONS = [f"bench_{i}" for i in range(5)]
GOAL_MS = 300.0


def get(port: int, path: str) -> tuple[float, int, bytes]:
    """(seconds to the last byte, status, body) of one GET on a new connection (as a browser's first)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path)
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    return time.perf_counter() - started, answer.status, body


def chromem_writer(store: Path, collection: str, count: int, rate: float) -> subprocess.Popen | None:
    try:
        from tests import gotool

        binary = gotool.build(ROOT / "tests" / "chromem", "chromem", needs_modules=True)
    except Exception as exc:   # no Go here: the pages are measured without a writer (said so)
        print(f"no real chromem writer ({exc}): measuring without writes")
        return None
    return subprocess.Popen([str(binary), "writer", str(store), "0", collection, str(count),
                             str(int(1000 / rate)), "7"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def browser_first_page(url: str, profile: Path) -> tuple[float, float] | None:
    """(first contentful paint, load event) of ``url`` in a fresh headless chromium (its first page
    after about:blank), ms from navigation start (None: no chromium)."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get("about:blank")   # the browser's own start is not the page's
        driver.get(url)
        return tuple(driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "const p = performance.getEntriesByName('first-contentful-paint')[0];"
            "return [p ? p.startTime : -1, n.loadEventEnd - n.startTime];"))
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=20.0, help="chromem writes per second meanwhile")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--browsers", type=int, default=3, help="fresh chromiums per browser figure")
    parser.add_argument("--work", help="work folder (kept); default a temporary one")
    args = parser.parse_args()
    with work_folder(args.work, "guardian-bench-console-") as work:
        store, state, log = work / "store", work / "state", work / "run.log"
        shutil.rmtree(state, ignore_errors=True)
        began = time.monotonic()
        written = work / f"store-{args.docs}.written"   # a kept --work folder's store is used again
        if not written.exists():
            shutil.rmtree(store, ignore_errors=True)
            make_store(store.with_name("store.new"), args.docs, collections=COLLECTIONS)
            store.with_name("store.new").rename(store)
            written.touch()
        print(f"store: {args.docs} documents in {len(COLLECTIONS)} collections ({time.monotonic() - began:.0f} s "
              "to write)")
        env = {**os.environ, "GUARDIAN_STATE_DIR": str(state), "GUARDIAN_CONFIG": "/nonexistent.toml"}
        guardian = subprocess.Popen([sys.executable, "-m", "guardian", "run", "--store", str(store), "--port", "0"],
                                    env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), cwd=ROOT)
        writer = None
        try:
            began = time.monotonic()
            wait_started(StatePaths.for_store(store, state), log)
            port = http_port(log)
            print(f"guardian run ready in {time.monotonic() - began:.0f} s; load average "
                  f"{os.getloadavg()[0]:.2f} (2 cores shared with other work)")
            writer = chromem_writer(store, COLLECTIONS[1], 100_000, args.rate)
            time.sleep(2)   # the writes under way
            pages = {"glance": "/console/", "timeline": "/console/timeline",
                     "memories": "/console/memories?collection=bench_1",
                     "search": "/console/memories?collection=bench_1&q=lesson+memory",
                     "where": "/console/memories?collection=bench_1&where=usage_count%3D3"}
            for name, path in pages.items():
                seconds, status, body = get(port, path)
                again = statistics.median(get(port, path)[0] for _ in range(10))
                print(f"{name:9s} first {seconds * 1000:7.1f} ms, then p50 {again * 1000:6.1f} ms  "
                      f"(HTTP {status}, {len(body) / 1024:.0f} KiB)")
            page = [get(port, "/console/")[0] for _ in range(args.requests)]
            health = [get(port, "/healthz")[0] for _ in range(args.requests)]
            status_json = [get(port, "/v1/status")[0] for _ in range(args.requests)]
            p50 = statistics.median(page)
            p99 = sorted(page)[min(len(page) - 1, int(len(page) * 0.99))]
            print(f"/console/ x{args.requests} while chromem writes {args.rate:g}/s: p50 {p50 * 1000:.1f} ms, "
                  f"p99 {p99 * 1000:.1f} ms")
            print(f"baselines, same server, same run: /healthz p50 {statistics.median(health) * 1000:.1f} ms "
                  f"(page x{p50 / statistics.median(health):.1f}), /v1/status p50 "
                  f"{statistics.median(status_json) * 1000:.1f} ms (page x{p50 / statistics.median(status_json):.1f})")
            # baseline: a page of the same layout, stylesheet and script with nothing to gather (the 404
            # page); each the median of --browsers fresh browsers, taken in turns
            runs: dict[str, list] = {"floor": [], "page": []}
            for n in range(args.browsers):
                for name, path in (("floor", "/console/no-such-page"), ("page", "/console/")):
                    found = browser_first_page(f"http://127.0.0.1:{port}{path}", work / f"chromium-{name}-{n}")
                    if found is not None:
                        runs[name].append(found)
            if not runs["page"]:
                print("no chromium here: the browser's figure is skipped")
            else:
                paint, load = (statistics.median(r[i] for r in runs["page"]) for i in (0, 1))
                floor_paint, floor_load = (statistics.median(r[i] for r in runs["floor"]) for i in (0, 1))
                verdict = "under" if paint < GOAL_MS else "OVER"
                print(f"/console/ in a fresh chromium (median of {len(runs['page'])}): first contentful paint "
                      f"{paint:.0f} ms ({verdict} the {GOAL_MS:.0f} ms goal), load event {load:.0f} ms; the same "
                      f"layout with nothing to gather (404 page): {floor_paint:.0f} ms / {floor_load:.0f} ms "
                      f"(x{paint / floor_paint:.2f} / x{load / floor_load:.2f})")
            print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        finally:
            if writer is not None:
                writer.terminate()
                writer.wait(timeout=30)
            guardian.terminate()
            guardian.wait(timeout=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
