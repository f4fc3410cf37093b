"""Replica targets: where objects go. An S3-compatible bucket (boto3) or a folder on another disk.

A target stores opaque objects under keys such as ``data/…`` and ``snapshots/…``; it knows nothing
about snapshots. Every put is atomic (S3 PUT; temp file + fsync + rename for folders), so an
interrupted upload leaves whole objects or none. Every failure becomes a one-line
:class:`ReplicaError` with a hint.

A listing gives each object's size and a *tag* that changes whenever the object's bytes are
written again: S3's ETag (the MD5 of a simple PUT), a file's mtime, ctime and inode. ``put``
returns the tag of what it wrote, so a push can tell from one listing which objects changed since
guardian wrote or last read them (guardian.replicas.mend).

Replica URLs::

    s3://bucket/prefix?endpoint=http://127.0.0.1:8333&region=us-east-1&path_style=1&profile=NAME
    file:///mnt/backup/guardian          (or a plain absolute path)
    …&encrypt=0|1                        (default: on for s3, off for folders)

S3 credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or
``profile=``, ~/.aws/credentials and config); guardian never stores them.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from guardian.errors import ReplicaError
from guardian.local.fsutil import TEMP_PREFIX, atomic_write, ensure_dir

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
S3_OPTIONS = ("endpoint", "region", "path_style", "profile", "encrypt")


@dataclass(frozen=True)
class ReplicaSpec:
    """A parsed replica URL plus the S3 defaults from the config."""

    url: str
    kind: str                  # "s3" | "file"
    encrypt: bool
    bucket: str = ""
    prefix: str = ""
    folder: str = ""
    endpoint_url: str = ""
    region: str = ""
    path_style: bool = False
    profile: str = ""

    @property
    def display(self) -> str:
        """The URL without its query (what status and errors show)."""
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"file://{self.folder}"


def _flag(value: str, name: str, url: str) -> bool:
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise ReplicaError(f"replica URL {url}: {name}={value!r} is not true or false", "use 1 or 0")


def parse_replica(url: str, defaults: dict | None = None) -> ReplicaSpec:
    """Parse ``url``; ``defaults`` (s3_endpoint_url, s3_region, s3_path_style, s3_profile) fill gaps."""
    defaults = defaults or {}
    text = url.strip()
    if text.startswith("/"):
        text = "file://" + text
    parts = urlsplit(text)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - set(S3_OPTIONS))
    if unknown:
        raise ReplicaError(f"replica URL {url}: unknown option {unknown[0]!r}",
                           f"known options: {', '.join(S3_OPTIONS)}")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ReplicaError(f"replica URL {url} is not an absolute folder", "write it as file:///absolute/path")
        encrypt = _flag(query["encrypt"], "encrypt", url) if "encrypt" in query else False
        return ReplicaSpec(url=url, kind="file", encrypt=encrypt, folder=os.path.normpath(parts.path))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ReplicaError(f"replica URL {url} names no bucket", "write it as s3://bucket/prefix")
        path_style = query.get("path_style")
        return ReplicaSpec(
            url=url, kind="s3", bucket=parts.netloc, prefix=parts.path.strip("/"),
            encrypt=_flag(query["encrypt"], "encrypt", url) if "encrypt" in query else True,
            endpoint_url=query.get("endpoint") or defaults.get("s3_endpoint_url") or "",
            region=query.get("region") or defaults.get("s3_region") or "",
            path_style=_flag(path_style, "path_style", url) if path_style else bool(defaults.get("s3_path_style")),
            profile=query.get("profile") or defaults.get("s3_profile") or "")
    raise ReplicaError(f"replica URL {url} is neither s3:// nor file://",
                       "use s3://bucket/prefix or file:///folder/on/another/disk")


def open_target(spec: ReplicaSpec):
    return S3Target(spec) if spec.kind == "s3" else FolderTarget(spec)


# ---- folders ---------------------------------------------------------------------------------
class FolderTarget:
    """A folder on another disk; objects are files, written atomically and durably."""

    def __init__(self, spec: ReplicaSpec) -> None:
        self.spec = spec
        self.root = Path(spec.folder)
        self._made: set[Path] = set()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _fail(self, exc: OSError, doing: str) -> ReplicaError:
        where = self.spec.display
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return ReplicaError(f"replica {where} is full ({doing})", "free space on that disk or use a bigger one")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return ReplicaError(f"replica {where} is read-only or not writable ({doing}: {exc.strerror})",
                                "remount it read-write or fix the folder's permissions")
        return ReplicaError(f"replica {where}: {doing} failed: {exc.strerror or exc}",
                            "check that the disk is mounted and healthy")

    def check(self, writable: bool) -> None:
        if self.root.is_dir():
            return
        if not writable:
            raise ReplicaError(f"replica {self.spec.display} does not exist", "check the folder (is the disk mounted?)")
        if not self.root.parent.is_dir():
            raise ReplicaError(f"replica {self.spec.display}: the folder {self.root.parent} does not exist",
                               "mount the disk or create the parent folder")
        try:
            ensure_dir(self.root)
        except OSError as exc:
            raise self._fail(exc, "creating the folder") from None

    def list(self, prefix: str) -> dict[str, int]:
        return {key: size for key, (size, _) in self.listing(prefix).items()}

    @staticmethod
    def _tag(info: os.stat_result) -> str:
        return f"{info.st_mtime_ns}.{info.st_ctime_ns}.{info.st_ino}"

    def listing(self, prefix: str) -> dict[str, tuple[int, str]]:
        """key -> (size, tag) of every object under ``prefix``."""
        top = self._path(prefix)
        found: dict[str, tuple[int, str]] = {}
        pending = [(prefix.rstrip("/"), top)]
        while pending:
            key_prefix, folder = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._fail(exc, "listing") from None
            for entry in entries:
                if entry.name.startswith(TEMP_PREFIX):
                    continue
                key = f"{key_prefix}/{entry.name}" if key_prefix else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append((key, Path(entry.path)))
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    found[key] = (info.st_size, self._tag(info))
        return found

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._fail(exc, f"reading {key}") from None

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        try:
            if path.parent not in self._made:
                ensure_dir(path.parent)
                self._made.add(path.parent)
            atomic_write(path, data)
            return self._tag(os.lstat(path))
        except OSError as exc:
            raise self._fail(exc, f"writing {key}") from None

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            try:
                os.unlink(self._path(key))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise self._fail(exc, f"deleting {key}") from None

    def remove_temp_files(self) -> None:
        """Temp files of a killed writer (guardian's own, in the replica folder only)."""
        for folder, _, names in os.walk(self.root):
            for name in names:
                if name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(folder, name))


# ---- S3 ---------------------------------------------------------------------------------------
CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                    "AuthorizationHeaderMalformed", "InvalidSecurity"}
FULL_CODES = {"QuotaExceeded", "EntityTooLarge", "InsufficientStorage", "XMinioStorageFull", "ServiceUnavailable"}


class S3Target:
    """A bucket and prefix on an S3-compatible service, through boto3 (imported here and in the
    methods: ~350 ms that only an s3:// replica pays, and an optional dependency)."""

    def __init__(self, spec: ReplicaSpec) -> None:
        try:
            import boto3
            from botocore.config import Config as BotoConfig
        except ImportError:
            raise ReplicaError("S3 replicas need boto3, which is not installed",
                               "pip install 'guardian[replica]' (or pip install boto3)") from None

        self.spec = spec
        self.bucket = spec.bucket
        self.base = f"{spec.prefix}/" if spec.prefix else ""
        try:
            session = boto3.session.Session(profile_name=spec.profile or None)
        except Exception as exc:  # botocore's ProfileNotFound and friends
            raise ReplicaError(f"replica {spec.display}: {exc}",
                               "check AWS_PROFILE / profile= and ~/.aws/config") from None
        config = BotoConfig(s3={"addressing_style": "path" if spec.path_style else "auto"},
                            connect_timeout=5, read_timeout=60, max_pool_connections=16,
                            retries={"max_attempts": 3, "mode": "standard"})
        self.client = session.client("s3", endpoint_url=spec.endpoint_url or None,
                                     region_name=spec.region or None, config=config)

    def _fail(self, exc: Exception, doing: str) -> ReplicaError:
        from botocore.exceptions import (ClientError, EndpointConnectionError, NoCredentialsError,
                                         PartialCredentialsError, ConnectionClosedError, ReadTimeoutError,
                                         ConnectTimeoutError)

        where = self.spec.display
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return ReplicaError(f"replica {where}: no S3 credentials found",
                                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or ~/.aws/credentials")
        if isinstance(exc, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError)):
            return ReplicaError(f"replica {where} cannot be reached ({doing}): {exc}",
                                "check the endpoint URL and the network; guardian retries with backoff")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                return ReplicaError(f"replica {where}: the bucket {self.bucket!r} does not exist",
                                    "create the bucket (e.g. `aws s3 mb s3://BUCKET`) or fix the URL")
            if code in CREDENTIAL_CODES:
                return ReplicaError(f"replica {where} refused the credentials ({code})",
                                    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile")
            if code in ("AccessDenied", "AllAccessDisabled"):
                return ReplicaError(f"replica {where} denied {doing} (AccessDenied: read-only credentials or policy?)",
                                    "give these credentials s3:PutObject, s3:GetObject, s3:ListBucket, s3:DeleteObject")
            if code in FULL_CODES:
                return ReplicaError(f"replica {where} is full or refuses more data ({code})",
                                    "free space or raise the bucket's quota")
            return ReplicaError(f"replica {where}: {doing} failed ({code or exc})", "check the bucket and endpoint")
        return ReplicaError(f"replica {where}: {doing} failed ({type(exc).__name__}: {exc})",
                            "check the endpoint URL and the network")

    def _call(self, doing: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, doing) from None

    def check(self, writable: bool) -> None:
        self._call("listing", self.client.list_objects_v2, Bucket=self.bucket, Prefix=self.base, MaxKeys=1)

    def list(self, prefix: str) -> dict[str, int]:
        return {key: size for key, (size, _) in self.listing(prefix).items()}

    def listing(self, prefix: str) -> dict[str, tuple[int, str]]:
        """key -> (size, ETag) of every object under ``prefix``."""
        from botocore.exceptions import BotoCoreError, ClientError

        found: dict[str, tuple[int, str]] = {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.base + prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    found[item["Key"][len(self.base):]] = (item["Size"], item.get("ETag", "").strip('"'))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, "listing") from None
        return found

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.base + key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._fail(exc, f"reading {key}") from None
        except BotoCoreError as exc:
            raise self._fail(exc, f"reading {key}") from None

    def put(self, key: str, data: bytes) -> str:
        answer = self._call(f"writing {key}", self.client.put_object, Bucket=self.bucket, Key=self.base + key,
                            Body=data)
        return str(answer.get("ETag", "")).strip('"')

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self.base + key} for key in keys[start:start + 1000]]
            answer = self._call("deleting", self.client.delete_objects, Bucket=self.bucket,
                                Delete={"Objects": batch, "Quiet": True})
            errors = answer.get("Errors") or []
            if errors:
                raise ReplicaError(f"replica {self.spec.display}: deleting {errors[0].get('Key')} failed "
                                   f"({errors[0].get('Code')})", "check the credentials' s3:DeleteObject right")

    def remove_temp_files(self) -> None:
        """S3 PUTs are atomic: nothing half-written can be left behind."""
