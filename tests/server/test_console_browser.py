"""The console in a real browser (Debian's chromium, driven by selenium through chromium-driver),
against a real sidecar (`guardian run`) on a store the real chromem wrote.

One browser and one sidecar for the module. Each page is screenshotted at 1280x800 into the folder
printed at the start (``GUARDIAN_TEST_SCREENSHOTS`` chooses it; else a folder of pytest's own);
every page is checked for console errors.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from guardian.format.layout import collection_dir_name, document_stem
from tests.conftest import chromem_load, run_cli
from tests.waiting import wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WEBAPP = "webapp_memories"


def vector(rng: random.Random) -> list[float]:
    values = [rng.random() + 0.01 for _ in range(8)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


def memory(rng, doc_id: str, title: str, content: str, outcome: str) -> dict:
    return {"id": doc_id, "content": content, "embedding": vector(rng),
            "metadata": {"title": title, "outcome": outcome, "tags": "auth,api", "type": "memory"}}


def gen(chromemh: Path, store: Path, spec: list[dict]) -> None:
    spec_file = store.parent / "spec.json"
    spec_file.write_text(json.dumps(spec))
    done = subprocess.run([str(chromemh), "gen", str(spec_file), str(store), "0"],
                          capture_output=True, timeout=120, check=True)
    assert json.loads(done.stdout.splitlines()[-1])["ok"], done.stdout


class Site:
    """The sidecar under test: its store, env, base URL, and the console's opening link."""

    def __init__(self, chromemh: Path, root: Path) -> None:
        self.chromemh, self.root = chromemh, root
        self.store = root / "store"
        (root / "disk").mkdir()
        self.env = {"GUARDIAN_STATE_DIR": str(root / "state"), "GUARDIAN_CONFIG": str(root / "none.toml"),
                    "GUARDIAN_DEBOUNCE_SECONDS": "0.1", "GUARDIAN_REPLICAS": f"file://{root / 'disk' / 'guardian'}",
                    "XDG_CONFIG_HOME": str(root / "config")}
        self.proc: subprocess.Popen | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, "--store", str(self.store), env=self.env)

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json").stdout_text)

    def start(self) -> None:
        log = open(self.root / "sidecar.log", "wb")
        # a supervised child standing in for contextd: it names the store on its command line, so a restore
        # counts it among the store's users (the sidecar stops it around the restore and starts it again)
        child = [sys.executable, "-c", "import sys, time; time.sleep(3600)", str(self.store)]
        self.proc = subprocess.Popen([sys.executable, "-m", "guardian", "run", "--store", str(self.store),
                                      "--port", "0", "--", *child], env={**os.environ, **self.env},
                                     stdout=subprocess.DEVNULL, stderr=log)
        status = wait_for(lambda: (s := self.status())["sidecar"]["running"] and s["snapshots"]["count"] >= 1
                          and s["sidecar"].get("http") and (s["sidecar"]["child"] or {}).get("state") == "running"
                          and s["replicas"] and s["replicas"][0]["pushed"] and s,
                          timeout=90, what="the sidecar, its child, its first snapshot and push")
        self.base = f"http://127.0.0.1:{status['sidecar']['http']['port']}"
        self.link = json.loads(self.cli("console", "--json").stdout_text)["url"]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)

    def file(self, collection: str, doc_id: str) -> Path:
        return self.store / collection_dir_name(collection) / f"{document_stem(doc_id)}.gob"

    def request(self, method: str, path: str, headers: dict | None = None, body: bytes = b"") -> tuple[int, dict, str]:
        parts = urlsplit(self.base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request(method, path, body=body or None, headers={"Host": parts.netloc, **(headers or {})})
        answer = conn.getresponse()
        data = answer.read().decode("utf-8", "replace")
        conn.close()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("GUARDIAN_TEST_SCREENSHOTS") or tmp_path_factory.mktemp("console-shots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {folder}", file=sys.stderr)
    return folder


@pytest.fixture(scope="module")
def site(chromemh, tmp_path_factory):
    root = tmp_path_factory.mktemp("console")
    rng = random.Random(7)
    gen(chromemh, root / "store", [
        {"name": WEBAPP, "metadata": {},
         "docs": [memory(rng, "m-jwt", "JWT refresh tokens", "Refresh tokens rotate on every use.\nKeep them 7 days.",
                         "success")]
         + [memory(rng, f"m-{i}", f"note {i}", f"plain note number {i}", "failure" if i % 3 else "success")
            for i in range(12)]},
        {"name": "checkpoints", "metadata": {},
         "docs": [memory(rng, f"c-{i}", f"checkpoint {i}", f"state at step {i}", "success") for i in range(4)]}])
    site = Site(chromemh, root)
    site.start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def browser(site, shots):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not here (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = site.root / "chromium-profile"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1280,800"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")   # selenium never downloads a driver or a browser
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(1280, 800)
    driver.set_page_load_timeout(60)
    try:
        yield Browser(driver, site, shots)
    finally:
        driver.quit()


def stale(element) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return not element.tag_name
    except StaleElementReferenceException:
        return True
    return False


class Browser:
    def __init__(self, driver, site: Site, shots: Path) -> None:
        self.driver, self.site, self.shots = driver, site, shots

    def open(self, path: str, shot: str | None = None):
        self.driver.get(self.site.base + path)
        return self.settled(shot)

    def click(self, element, shot: str | None = None):
        """Click what leads to another page, and wait for that page."""
        old = self.css("html")
        element.click()
        wait_for(lambda: stale(old), what="the next page")
        return self.settled(shot)

    def settled(self, shot: str | None = None):
        wait_for(lambda: self.driver.execute_script("return document.readyState") == "complete", what="the page")
        if shot:
            self.driver.save_screenshot(str(self.shots / f"{shot}.png"))
        errors = [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
        return self.driver

    def css(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self, selector: str) -> str:
        """An element's text, read in the page (the glance's refresh replaces its elements at any time)."""
        found = self.driver.execute_script("const e = document.querySelector(arguments[0]);"
                                           "return e === null ? null : e.textContent;", selector)
        assert found is not None, f"nothing on the page matches {selector}"
        return " ".join(found.split())


def test_signing_in_then_the_glance_shows_what_status_and_the_loader_say(browser, site):
    assert site.cli("status").stdout_text.rstrip().endswith(f"console: {site.link}")   # status prints the link
    browser.open("/console/")
    assert browser.all("#verdict"), "reading needs no sign-in on loopback without http_token"
    browser.driver.get(site.link)   # the opening link: a cookie, then the console without the key
    browser.settled()
    assert browser.driver.current_url == site.base + "/console/"
    assert any(c["name"].startswith("guardian_") and c["httpOnly"] for c in browser.driver.get_cookies())

    status = site.status()
    loaded = chromem_load(site.chromemh, site.store)
    assert loaded["ok"] is True
    loaded = {name: c["count"] for name, c in loaded["collections"].items()}
    browser.open("/console/", "glance")
    assert int(browser.text("[data-k=documents]")) == status["store"]["documents"] == sum(loaded.values())
    assert int(browser.text("[data-k=collections]")) == status["store"]["collections"]["total"] == len(loaded)
    shown = {row.get_attribute("data-collection"): int(row.find_element("css selector", "[data-k=count]").text)
             for row in browser.all("tr[data-collection]")}
    assert shown == loaded
    assert browser.text("[data-k=health]") == status["health"]
    assert int(browser.text("[data-k=snapshots]")) == status["snapshots"]["count"]
    assert "contextd would start" in browser.text("[data-k=loadable]")
    assert browser.text("[data-k=child]").startswith(f"{status['sidecar']['child']['state']} restarts 0")
    replica = status["replicas"][0]
    row = browser.css("tr[data-replica]")
    assert row.get_attribute("data-replica") == replica["replica"] and "ok" in row.text
    assert browser.text("[data-k=last-success]") != "never"

    # it keeps itself current without a reload: chromem adds a memory, the count on the page follows
    rng = random.Random(3)
    gen(site.chromemh, site.store, [{"name": "checkpoints", "metadata": {},
                                     "docs": [memory(rng, "c-new", "checkpoint new", "a new state", "success")]}])
    handle = browser.driver.current_window_handle
    wait_for(lambda: browser.text("[data-k=documents]") == str(sum(loaded.values()) + 1),
             timeout=60, what="the glance to refresh itself")
    assert browser.driver.current_window_handle == handle and browser.css("#glance").get_attribute("data-refreshed")
    browser.settled()


def history(site: Site, memory_id: str) -> list[dict]:
    return json.loads(site.cli("history", memory_id, "--json").stdout_text)


def change_once(site: Site) -> None:
    """m-jwt rewritten by chromem (once for the module), and the snapshot holding the change taken."""
    if len(history(site, "m-jwt")) > 1:
        return
    gen(site.chromemh, site.store, [{"name": WEBAPP, "metadata": {},
                                     "docs": [memory(random.Random(11), "m-jwt", "JWT refresh tokens",
                                                     "Refresh tokens now last 1 day.", "success")]}])
    wait_for(lambda: len(history(site, "m-jwt")) > 1, timeout=60, what="the change's snapshot")


def test_timeline_memories_and_a_diff_between_two_points(browser, site):
    change_once(site)
    ids = json.loads(site.cli("snapshots", "--json").stdout_text)
    ids = [s["id"] for s in (ids if isinstance(ids, list) else ids["snapshots"])]

    browser.open("/console/timeline", "timeline")
    assert len(browser.all("svg.chart circle.dot")) == len(ids)
    assert len(browser.all("svg.chart polyline.series")) == 2
    # two points picked on the chart: the first snapshot, then the newest
    browser.click(browser.all("svg.chart a")[0])
    browser.click(browser.all("svg.chart a")[-1])
    browser.click(browser.css("#pick button"), "diff")
    changed = [row.get_attribute("data-id") for row in browser.all("tr.change")]
    assert "m-jwt" in changed, changed

    browser.open(f"/console/memories?collection={WEBAPP}&q=refresh+TOKENS", "memories")
    assert [row.get_attribute("data-id") for row in browser.all("tr[data-id]")] == ["m-jwt"]
    browser.open(f"/console/memories?collection={WEBAPP}&where=outcome%3Dsuccess")
    found = {row.get_attribute("data-id") for row in browser.all("tr[data-id]")}
    assert found == {"m-jwt", "m-0", "m-3", "m-6", "m-9"}

    browser.open(f"/console/memory?collection={WEBAPP}&id=m-jwt", "memory")
    assert browser.text("#content") == "Refresh tokens now last 1 day."
    versions = browser.all("tr.version")
    assert len(versions) == 2 and "content" in versions[0].text


def test_a_restore_clicked_in_the_page_is_byte_exact_and_can_be_put_back(browser, site):
    change_once(site)
    path = site.file(WEBAPP, "m-jwt")
    first = next(v for v in history(site, "m-jwt") if v["change"] == "added")
    now = path.read_bytes()

    browser.open("/console/memory?collection=webapp_memories&id=m-jwt")
    row = next(r for r in browser.all("tr.version") if r.get_attribute("data-snapshot") == first["snapshot"])
    browser.click(row.find_element("css selector", "a.button"), "restore-preview")
    assert browser.text("[data-k=replace]") == "1" and browser.text("[data-k=write]") == "0"
    child = site.status()["sidecar"]["child"]
    assert f"pid {child['pid']}" in browser.text("#users") and "started again after it by the sidecar" in \
        browser.text("#users"), browser.text("#users")
    assert path.read_bytes() == now, "a preview changes nothing"
    browser.click(browser.css("#do-restore"), "restored")
    assert "chromem will load the store" in browser.text("[data-k=loadable]")
    assert "the supervised child was stopped and started again" in browser.text("#restored")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first["sha256"]
    assert chromem_load(site.chromemh, site.store)["ok"] is True

    # putting the replaced version back over a file written seconds ago is refused (it may be a write in
    # progress): the restore's own file must be quiet first
    wait_for(lambda: time.time() - path.stat().st_mtime > 2.5, what="the restored file to settle")
    browser.open("/console/quarantine", "quarantine")
    entry = next(r for r in browser.all("tr[data-entry]") if path.name in r.text and "quarantined" in r.text)
    entry.find_element("css selector", "input[name=replace]").click()
    browser.click(entry.find_element("css selector", "button"))
    assert browser.all("#done")
    assert path.read_bytes() == now


def test_refused_without_the_secret_from_another_host_or_another_site(browser, site):
    # a reader who is not signed in (any local user, on loopback without http_token) gets no form token
    page = site.request("GET", f"/console/memory?collection={WEBAPP}&id=m-jwt")[2]
    assert "m-jwt" in page and 'name="token"' not in page
    # a state-changing request without the console's cookie
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, _ = site.request("POST", "/console/quarantine", form, b"entry=x&token=y")
    assert status == 403
    # DNS rebinding: the right address, another name
    assert site.request("GET", "/console/", {"Host": f"evil.example:{urlsplit(site.base).port}"})[0] == 421
    assert site.request("GET", "/v1/status", {"Host": "evil.example"})[0] == 421
    # another site's script may not read a page or the API, nor post a form
    cross = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Origin": "http://evil.example"}
    assert site.request("GET", f"/console/memory?collection={WEBAPP}&id=m-jwt", cross)[0] == 403
    assert site.request("GET", "/v1/find?text=JWT", {**cross, "Sec-Fetch-Mode": "no-cors"})[0] == 403
    status, headers, _ = site.request("GET", "/console/")
    assert "access-control-allow-origin" not in headers and headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]

    # a hostile page in the user's own (signed-in) browser: its script reads nothing, its form restores nothing
    before = site.file(WEBAPP, "m-jwt").read_bytes()
    first = history(site, "m-jwt")[0]["snapshot"]
    hostile = HostilePage(site.base, first)
    try:
        browser.driver.get(site.link)
        browser.settled()
        browser.driver.get(hostile.url)
        wait_for(lambda: browser.driver.title.startswith("done"), what="the hostile page's attempts")
        assert browser.driver.title == "done: read failed", browser.driver.title
        browser.driver.get(hostile.url + "form")
        wait_for(lambda: browser.driver.current_url.startswith(site.base), what="the cross-site form post")
        assert "Refused" in browser.driver.page_source
        browser.driver.get_log("browser")   # the refusals the hostile page provoked are its own errors
    finally:
        hostile.close()
    assert site.file(WEBAPP, "m-jwt").read_bytes() == before


class HostilePage:
    """Another site (another port of 127.0.0.1: as near as a page can be) trying the console."""

    def __init__(self, target: str, snapshot: str) -> None:
        pages = {
            "/": f"""<!doctype html><title>trying</title><script>
                fetch("{target}/console/memory?collection={WEBAPP}&id=m-jwt", {{credentials: "include"}})
                  .then(r => r.text()).then(t => document.title = "done: read " + t.length)
                  .catch(() => document.title = "done: read failed");</script>""",
            "/form": f"""<!doctype html><title>posting</title>
                <form id=f method=post action="{target}/console/restore">
                <input name=at value="{snapshot}"><input name=collection value="{WEBAPP}">
                <input name=id value="m-jwt"><input name=token value="guess"></form>
                <script>document.getElementById("f").submit();</script>""",
        }

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = pages.get(self.path, "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
