"""The raw source: a local folder or an S3 prefix, listed, read and written the same way.

`list_files` returns one `RawFile` per file (local) or object (S3) under the root, recursively,
sorted by key; hidden files (any path part starting with ".") and `*.tmp` are not listed, so
half-written files of a writer never reach the ingest. Keys are posix paths relative to the root.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
)

from bambam_assets.lib.core import settings

S3_SCHEME = "s3://"
FETCH_ATTEMPTS = 3  # each file read gets 3 tries, 2**attempt s apart (as the legacy ETL)
_CHUNK = 1 << 20


class RawSourceError(OSError):
    """A raw-source operation failed for a reason that is neither 'missing' nor 'denied'."""


@dataclass(frozen=True)
class RawFile:
    """One version of one raw file."""

    key: str  # posix path relative to the raw root
    size: int
    modified_at: datetime  # tz-aware UTC
    etag: str | None = None  # S3 ETag without quotes; None for local files

    @property
    def identity(self) -> str:
        """Stable id of this version: key + size + etag (S3) or mtime (local)."""
        # ETag first on S3: re-uploading identical bytes changes LastModified but not the data.
        version = self.etag or self.modified_at.astimezone(UTC).isoformat()
        return f"{self.key}|{self.size}|{version}"


def is_hidden_or_tmp(key: str) -> bool:
    """True for keys that are never listed: a hidden part (".x") or a `*.tmp` name."""
    parts = PurePosixPath(key).parts
    return any(p.startswith(".") for p in parts) or key.lower().endswith(".tmp")


def _clean_key(key: str) -> str:
    """The key as a relative posix path; refuses keys that would escape the root."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or "\\" in key or any(p in ("..", ".") for p in path.parts):
        raise ValueError(f"raw key must be a relative posix path inside the root, got {key!r}")
    return path.as_posix()


def _atomic_write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Hidden + .tmp in the same folder: never listed, and os.replace stays on one file system.
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RawSource(ABC):
    """Where raw files live. Implementations are cheap to build and picklable."""

    uri: str

    @abstractmethod
    def list_files(self) -> list[RawFile]:
        """One RawFile per file under the root (recursive), sorted by key."""

    @abstractmethod
    def read_head(self, key: str, n: int = 4096) -> bytes:
        """The first `n` bytes of a file (fewer when it is shorter)."""

    @abstractmethod
    def fetch(self, f: RawFile, cache_dir: Path) -> Path:
        """A local path holding this version's bytes."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace a file; readers see the old or the new bytes, never a mix."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalRawSource(RawSource):
    """A folder on the local file system."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()
        self.uri = str(self.root)

    def _require_root(self) -> None:
        if not self.root.exists():
            raise FileNotFoundError(
                f"raw source folder {self.root} does not exist "
                "(BAMBAM_RAW must be an existing folder or s3://bucket/prefix)"
            )
        if not self.root.is_dir():
            raise NotADirectoryError(f"raw source {self.root} is not a folder")

    def _path(self, key: str) -> Path:
        return self.root / _clean_key(key)

    def list_files(self) -> list[RawFile]:
        self._require_root()
        files: list[RawFile] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # prune hidden folders
            for name in filenames:
                if name.startswith(".") or name.lower().endswith(".tmp"):
                    continue
                path = Path(dirpath, name)
                try:
                    st = path.stat()
                except FileNotFoundError:  # replaced or removed by a writer since the walk
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                # From integer ns so the value survives a round trip through a TIMESTAMPTZ (µs).
                seconds, ns = divmod(st.st_mtime_ns, 1_000_000_000)
                modified = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=ns // 1000)
                key = path.relative_to(self.root).as_posix()
                files.append(RawFile(key=key, size=st.st_size, modified_at=modified, etag=None))
        return sorted(files, key=lambda f: f.key)

    def read_head(self, key: str, n: int = 4096) -> bytes:
        with open(self._path(key), "rb") as fh:
            return fh.read(max(n, 0))

    def fetch(self, f: RawFile, cache_dir: Path) -> Path:
        path = self._path(f.key)
        if not path.is_file():
            raise FileNotFoundError(f"raw file {f.key!r} is no longer in {self.root}")
        return path

    def write_bytes(self, key: str, data: bytes) -> None:
        _atomic_write(self._path(key), data)


class S3RawSource(RawSource):
    """Objects under `s3://bucket/prefix` on AWS or any S3-compatible store.

    The boto3 client is built on first use, so the object is cheap to construct and pickles
    without it; the endpoint is `endpoint_url`, else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL as
    set at that moment (read through lib/core/settings.py).
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str | None = None, page_size: int = 1000) -> None:
        if not bucket:
            raise ValueError("S3 raw source needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.page_size = page_size
        self.uri = f"{S3_SCHEME}{bucket}/{self.prefix}" if self.prefix else f"{S3_SCHEME}{bucket}"
        self._client_obj: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client_obj"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def resolved_endpoint(self) -> str | None:
        """The endpoint the client uses (None = AWS): `endpoint_url`, else the AWS endpoint
        settings as they are now (lib/core/settings.aws_endpoint_url)."""
        return self.endpoint_url or settings.aws_endpoint_url()

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use, then shared by threads)."""
        with self._lock:
            if self._client_obj is None:
                import boto3
                from botocore.config import Config

                endpoint = self.resolved_endpoint()
                options: dict[str, Any] = {"retries": {"max_attempts": 5, "mode": "adaptive"},
                                           "read_timeout": 300, "connect_timeout": 60}
                if endpoint:
                    # S3-compatible stores (MinIO, Ceph, moto) rarely resolve bucket subdomains.
                    options["s3"] = {"addressing_style": "path"}
                # A session per client: boto3's default session is not thread-safe.
                self._client_obj = boto3.session.Session().client(
                    "s3", endpoint_url=endpoint, region_name=self.region, config=Config(**options)
                )
            return self._client_obj

    def _full_key(self, key: str) -> str:
        key = _clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, action: str, key: str | None = None) -> OSError:
        """The boto error as an OSError naming the bucket, prefix and key."""
        where = f"{self.uri} (key {key!r})" if key else self.uri
        endpoint = self.resolved_endpoint() or "AWS"
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            detail = f"S3 {action} failed on {where} at {endpoint}: {code}: {exc}"
            if code == "NoSuchBucket":
                return FileNotFoundError(f"S3 bucket {self.bucket!r} does not exist; {detail}")
            if code in ("NoSuchKey", "NotFound", "404"):
                return FileNotFoundError(detail)
            if code in ("AccessDenied", "Forbidden", "403", "InvalidAccessKeyId") or status == 403:
                return PermissionError(detail)
            if code in ("PreconditionFailed", "412"):
                return RawSourceError(f"{detail} (the object changed since it was listed)")
            return RawSourceError(detail)
        if isinstance(exc, NoCredentialsError):
            return PermissionError(f"S3 {action} on {where}: no AWS credentials found")
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
            return ConnectionError(f"S3 {action} on {where}: cannot reach {endpoint}: {exc}")
        return RawSourceError(f"S3 {action} failed on {where} at {endpoint}: {exc}")

    def list_files(self) -> list[RawFile]:
        root = f"{self.prefix}/" if self.prefix else ""  # "raw/" so that "raw2/..." is not listed
        files: list[RawFile] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=root, PaginationConfig={"PageSize": self.page_size}
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(root):]
                    if not key or key.endswith("/") or is_hidden_or_tmp(key):
                        continue  # folder markers, hidden and temporary objects
                    etag = str(obj.get("ETag") or "").strip('"') or None
                    modified = obj["LastModified"].astimezone(UTC)
                    files.append(RawFile(key, int(obj["Size"]), modified, etag))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "list") from exc
        return sorted(files, key=lambda f: f.key)

    def read_head(self, key: str, n: int = 4096) -> bytes:
        if n <= 0:
            return b""
        try:
            full = self._full_key(key)
            return self.client.get_object(
                Bucket=self.bucket, Key=full, Range=f"bytes=0-{n - 1}")["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and _code(exc) == "InvalidRange":
                return b""  # an empty object has no byte 0
            raise self._error(exc, "read", key) from exc

    def fetch(self, f: RawFile, cache_dir: Path) -> Path:
        """Download into `cache_dir/key`, reusing a cached copy of the same version.

        A hidden sidecar `.{name}.identity` records which version the cached bytes are; the
        download asks for exactly the listed ETag, so the cache never pairs old identity with
        new bytes (a changed object fails until it is listed again).
        """
        dest = Path(cache_dir) / _clean_key(f.key)
        marker = dest.with_name(f".{dest.name}.identity")
        try:
            if dest.stat().st_size == f.size and marker.read_text() == f.identity:
                return dest
        except FileNotFoundError:
            pass
        for attempt in range(FETCH_ATTEMPTS):
            try:
                self._download(f, dest)
                break
            except ClientError as exc:  # definitive answers (missing, denied, changed)
                raise self._error(exc, "download", f.key) from exc
            except (BotoCoreError, OSError) as exc:  # a broken stream: try again
                if attempt == FETCH_ATTEMPTS - 1:
                    raise self._error(exc, "download", f.key) from exc
                time.sleep(2**attempt)
        _atomic_write(marker, f.identity.encode())
        return dest

    def _download(self, f: RawFile, dest: Path) -> None:
        extra = {"IfMatch": f'"{f.etag}"'} if f.etag else {}
        resp = self.client.get_object(Bucket=self.bucket, Key=self._full_key(f.key), **extra)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in resp["Body"].iter_chunks(_CHUNK):
                    fh.write(chunk)
                written = fh.tell()
            if written != f.size:
                raise OSError(f"downloaded {written} bytes of {f.key!r}, listed size {f.size}")
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._full_key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "write", key) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def open_raw_source(uri: str, endpoint_url: str | None = None) -> RawSource:
    """`s3://bucket/prefix` -> S3RawSource; anything else is a local folder."""
    if not uri:
        raise ValueError("raw source URI is empty: give a folder or s3://bucket/prefix")
    if uri[: len(S3_SCHEME)].lower() == S3_SCHEME:
        bucket, _, prefix = uri[len(S3_SCHEME):].partition("/")
        if not bucket:
            raise ValueError(f"S3 raw source {uri!r} names no bucket: expected s3://bucket/prefix")
        return S3RawSource(bucket, prefix, endpoint_url=endpoint_url)
    return LocalRawSource(Path(uri))
