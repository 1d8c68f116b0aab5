"""Raw source: local folder and S3 (a real moto server over HTTP on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ResponseStreamingError

from bambam_assets.lib.ingest import raw_source
from bambam_assets.lib.ingest.raw_source import (
    LocalRawSource,
    RawFile,
    RawSourceError,
    S3RawSource,
    open_raw_source,
)

# Fixtures s3_endpoint, s3_bucket, aws_test_env come from conftest.py (pytest_plugins).
from bambam_tests.s3_server import create_bucket, s3_client

T0 = datetime(2024, 3, 2, 14, 30, 15, 123456, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000 + 123456 * 1000


def _write(root: Path, key: str, data: bytes, mtime_ns: int = T0_NS) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def _get_counter(source: S3RawSource) -> list[str]:
    """Keys of every GetObject the source's client sends from now on."""
    calls: list[str] = []
    source.client.meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: calls.append(params["url_path"])
    )
    return calls


# ---------------------------------------------------------------- local


def test_local_listing_is_recursive_sorted_and_skips_hidden_and_tmp(tmp_path: Path) -> None:
    _write(tmp_path, "export/wait_times/wdw/wdw_wait_times_2024_01.csv", b"a" * 10)
    _write(tmp_path, "export/wait_times/dlr/dlr_2024.csv", b"b" * 3, T0_NS + 1_000_000_000)
    _write(tmp_path, "MK101.csv", b"")
    _write(tmp_path, "queue_times/MK/2024-03-02/MK_20240302T143000Z.json", b"{}")
    _write(tmp_path, ".hidden.csv", b"x")
    _write(tmp_path, ".git/objects/abc", b"x")
    _write(tmp_path, "export/.partial/a.csv", b"x")
    _write(tmp_path, "export/wait_times/wdw/part.csv.tmp", b"x")
    _write(tmp_path, "export/UPPER.TMP", b"x")
    (tmp_path / "empty_dir").mkdir()

    files = LocalRawSource(tmp_path).list_files()

    assert [(f.key, f.size) for f in files] == [
        ("MK101.csv", 0),
        ("export/wait_times/dlr/dlr_2024.csv", 3),
        ("export/wait_times/wdw/wdw_wait_times_2024_01.csv", 10),
        ("queue_times/MK/2024-03-02/MK_20240302T143000Z.json", 2),
    ]
    assert files[0].modified_at == T0
    assert files[1].modified_at == datetime(2024, 3, 2, 14, 30, 16, 123456, tzinfo=UTC)
    assert all(f.etag is None for f in files)
    assert files[0].identity == "MK101.csv|0|2024-03-02T14:30:15.123456+00:00"


def test_local_identity_changes_with_content_or_mtime_only(tmp_path: Path) -> None:
    source = LocalRawSource(tmp_path)
    _write(tmp_path, "a/x.csv", b"one")
    first = source.list_files()[0]
    assert source.list_files()[0].identity == first.identity  # stable while unchanged

    _write(tmp_path, "a/x.csv", b"one plus")  # same mtime, new size
    grown = source.list_files()[0]
    assert (grown.size, grown.modified_at) == (8, T0)
    assert grown.identity != first.identity

    _write(tmp_path, "a/x.csv", b"one plus", T0_NS + 1000)  # same size, mtime +1 µs
    touched = source.list_files()[0]
    assert touched.identity not in (first.identity, grown.identity)

    # A RawFile rebuilt from the manifest (TIMESTAMPTZ in another zone) keeps its identity.
    from zoneinfo import ZoneInfo

    tokyo = touched.modified_at.astimezone(ZoneInfo("Asia/Tokyo"))
    rebuilt = RawFile(touched.key, touched.size, tokyo)
    assert rebuilt.identity == touched.identity


def test_local_write_read_head_fetch_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    root.mkdir()
    source = LocalRawSource(root)
    payload = bytes(range(256)) * 40  # 10240 bytes

    source.write_bytes("queue_times/MK/2024-03-02/snap.json", payload)
    source.write_bytes("queue_times/MK/2024-03-02/snap.json", payload[:5000])  # replace

    assert source.read_head("queue_times/MK/2024-03-02/snap.json") == payload[:4096]
    assert source.read_head("queue_times/MK/2024-03-02/snap.json", 10) == payload[:10]
    assert source.read_head("queue_times/MK/2024-03-02/snap.json", 100_000) == payload[:5000]
    [f] = source.list_files()  # no temporary file left behind
    assert (f.key, f.size) == ("queue_times/MK/2024-03-02/snap.json", 5000)
    assert sorted(p.name for p in (root / "queue_times/MK/2024-03-02").iterdir()) == ["snap.json"]

    path = source.fetch(f, tmp_path / "cache")
    assert path == root / f.key and path.read_bytes() == payload[:5000]
    assert not (tmp_path / "cache").exists()  # local files are read in place

    for bad in ("../escape.csv", "/abs.csv", "a/../../b.csv", ""):
        with pytest.raises(ValueError, match="relative posix path"):
            source.write_bytes(bad, b"x")
    (root / f.key).unlink()
    with pytest.raises(FileNotFoundError, match="no longer in"):
        source.fetch(f, tmp_path / "cache")


def test_local_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"raw source folder .*nope does not exist"):
        LocalRawSource(tmp_path / "nope").list_files()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        LocalRawSource(tmp_path / "file").list_files()


def test_open_raw_source_dispatch() -> None:
    local = open_raw_source("/data/raw")
    assert isinstance(local, LocalRawSource) and local.root == Path("/data/raw")
    s3 = open_raw_source("s3://touringplans_stats/export/", endpoint_url="http://x:9000")
    assert isinstance(s3, S3RawSource)
    assert (s3.bucket, s3.prefix) == ("touringplans_stats", "export")
    assert s3.endpoint_url == "http://x:9000"
    assert s3.uri == "s3://touringplans_stats/export"
    bare = open_raw_source("s3://bucket")
    assert (bare.bucket, bare.prefix, bare.uri) == ("bucket", "", "s3://bucket")
    for bad in ("s3://", "s3:///prefix", "S3://"):
        with pytest.raises(ValueError, match="names no bucket"):
            open_raw_source(bad)
    with pytest.raises(ValueError, match="empty"):
        open_raw_source("")


def test_s3_source_is_lazy_picklable_and_configured(aws_test_env: None) -> None:
    source = S3RawSource("bkt", "/a/b/", endpoint_url="http://127.0.0.1:1")
    assert source._client_obj is None  # nothing built until first use
    client = source.client
    # botocore stores retries={"max_attempts": 5} as 5 retries after the first try.
    assert client.meta.config.retries == {"total_max_attempts": 6, "mode": "adaptive"}
    assert (client.meta.config.read_timeout, client.meta.config.connect_timeout) == (300, 60)
    clone = pickle.loads(pickle.dumps(source))
    assert (clone.bucket, clone.prefix, clone.uri) == ("bkt", "a/b", "s3://bkt/a/b")
    assert clone._client_obj is None and clone.client is not client


# ---------------------------------------------------------------- S3 (moto server)


@pytest.fixture(scope="module")
def big_bucket(s3_endpoint: str) -> str:
    """1100 objects under raw/many/ (more than one 1000-key page) plus decoys."""
    bucket = create_bucket(s3_endpoint)
    client = s3_client(s3_endpoint)
    keys = [f"raw/many/{i % 7}/f{i:05d}.csv" for i in range(1100)]
    keys += ["rawx/not_mine.csv", "top.csv", "raw/.hidden", "raw/many/.tmpdir/x.csv",
             "raw/many/upload.csv.tmp", "raw/folder/"]

    def put(key: str) -> None:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(put, keys))
    return bucket


@pytest.mark.integration
def test_s3_listing_paginates_and_keys_are_relative(s3_endpoint: str, big_bucket: str) -> None:
    source = S3RawSource(big_bucket, "raw", endpoint_url=s3_endpoint)
    pages: list[int] = []
    source.client.meta.events.register(
        "after-call.s3.ListObjectsV2", lambda parsed, **_: pages.append(parsed.get("KeyCount"))
    )
    files = source.list_files()

    expected = sorted(f"many/{i % 7}/f{i:05d}.csv" for i in range(1100))
    assert [f.key for f in files] == expected
    assert pages == [1000, 104]  # 1100 + hidden/tmp/folder decoys under raw/
    f = files[0]
    body = f"raw/{f.key}".encode()
    assert f.size == len(body)
    assert f.etag == hashlib.md5(body).hexdigest()  # quotes stripped
    assert f.modified_at.tzinfo == UTC
    assert f.identity == f"{f.key}|{f.size}|{f.etag}"

    small_pages = S3RawSource(big_bucket, "raw/many/3", endpoint_url=s3_endpoint, page_size=50)
    assert len(small_pages.list_files()) == len(range(3, 1100, 7)) == 157


@pytest.mark.integration
def test_s3_fetch_caches_by_etag_and_refetches_changed_objects(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    source = S3RawSource(s3_bucket, "export", endpoint_url=s3_endpoint)
    source.write_bytes("wait_times/wdw/a.csv", b"entity_code,observed_at\nMK101,x\n")
    source.write_bytes("empty.csv", b"")
    gets = _get_counter(source)
    cache = tmp_path / "cache"

    [empty, f] = source.list_files()
    path = source.fetch(f, cache)
    assert path == cache / "wait_times/wdw/a.csv"
    assert path.read_bytes() == b"entity_code,observed_at\nMK101,x\n"
    assert source.fetch(empty, cache).read_bytes() == b""
    assert len(gets) == 2
    stamp = path.stat().st_mtime_ns

    assert source.fetch(f, cache) == path  # same version: served from the cache
    assert len(gets) == 2 and path.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in path.parent.iterdir()) == [".a.csv.identity", "a.csv"]

    # Overwrite: new etag -> new identity -> a new download.
    source.write_bytes("wait_times/wdw/a.csv", b"entity_code,observed_at\nMK102,y\n")
    [_, g] = source.list_files()
    assert g.size == f.size and g.etag != f.etag and g.identity != f.identity
    assert source.fetch(g, cache).read_bytes() == b"entity_code,observed_at\nMK102,y\n"
    assert len(gets) == 3

    # The stale listing no longer matches: refuse rather than cache new bytes as the old version.
    with pytest.raises(RawSourceError, match="changed since it was listed"):
        source.fetch(f, cache)
    assert source.fetch(g, cache).read_bytes().endswith(b"MK102,y\n")  # cache still valid


@pytest.mark.integration
def test_s3_read_head_and_write_bytes(s3_endpoint: str, s3_bucket: str) -> None:
    source = S3RawSource(s3_bucket, "", endpoint_url=s3_endpoint)
    payload = b"date,datetime,SPOSTMIN,SACTMIN\n" * 300  # 9300 bytes
    source.write_bytes("MK101.csv", payload)
    source.write_bytes("empty.json", b"")

    assert source.read_head("MK101.csv") == payload[:4096]
    assert source.read_head("MK101.csv", 31) == b"date,datetime,SPOSTMIN,SACTMIN\n"
    assert source.read_head("MK101.csv", 0) == b""
    assert source.read_head("empty.json") == b""
    head = s3_client(s3_endpoint).head_object(Bucket=s3_bucket, Key="MK101.csv")
    assert head["ContentLength"] == 9300
    with pytest.raises(FileNotFoundError, match=rf"s3://{s3_bucket} \(key 'nope.csv'\)"):
        source.read_head("nope.csv")


@pytest.mark.integration
def test_s3_honours_aws_endpoint_url_at_call_time(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="p/q/x.json", Body=b"{}")
    source = open_raw_source(f"s3://{s3_bucket}/p")  # built before the variable exists
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    assert [(f.key, f.size) for f in source.list_files()] == [("q/x.json", 2)]
    assert source.client.meta.endpoint_url == s3_endpoint


@pytest.mark.integration
def test_s3_missing_bucket_is_a_clear_error(s3_endpoint: str) -> None:
    source = S3RawSource("no-such-bucket-here", "export", endpoint_url=s3_endpoint)
    with pytest.raises(FileNotFoundError) as info:
        source.list_files()
    message = str(info.value)
    assert "S3 bucket 'no-such-bucket-here' does not exist" in message
    assert "s3://no-such-bucket-here/export" in message and s3_endpoint in message


def test_s3_errors_name_the_bucket_prefix_and_key() -> None:
    source = S3RawSource("stats", "export", endpoint_url="http://127.0.0.1:1")

    def client_error(code: str, status: int) -> ClientError:
        response = {"Error": {"Code": code, "Message": "m"},
                    "ResponseMetadata": {"HTTPStatusCode": status}}
        return ClientError(response, "GetObject")

    denied = source._error(client_error("AccessDenied", 403), "read", "a.csv")
    assert isinstance(denied, PermissionError)
    assert "S3 read failed on s3://stats/export (key 'a.csv')" in str(denied)
    assert isinstance(source._error(client_error("NoSuchKey", 404), "read", "a"), FileNotFoundError)
    other = source._error(client_error("SlowDown", 503), "list")
    assert type(other) is RawSourceError and "s3://stats/export" in str(other)


@pytest.mark.integration
def test_s3_fetch_retries_a_broken_stream(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = S3RawSource(s3_bucket, "", endpoint_url=s3_endpoint)
    source.write_bytes("a.csv", b"abc")
    [f] = source.list_files()
    sleeps: list[float] = []
    monkeypatch.setattr(raw_source.time, "sleep", sleeps.append)
    real_download, failures = source._download, [ResponseStreamingError(error="reset")]

    def flaky(f: RawFile, dest: Path) -> None:
        if failures:
            raise failures.pop()
        real_download(f, dest)

    monkeypatch.setattr(source, "_download", flaky)
    assert source.fetch(f, tmp_path).read_bytes() == b"abc"
    assert sleeps == [1]

    failures[:] = [ConnectionResetError("x")] * 3  # every try fails: give up after 3
    (tmp_path / ".a.csv.identity").unlink()
    with pytest.raises(RawSourceError, match=r"S3 download failed on s3://.* \(key 'a.csv'\)"):
        source.fetch(f, tmp_path)
    assert sleeps == [1, 1, 2]
