"""A real S3 server for tests: moto's standalone server over HTTP on 127.0.0.1.

Not a patched client and not `mock_aws`: boto3 talks HTTP to a socket, exactly as it would to
MinIO or AWS. Subprocesses started by a test (the CLI, a Dagster run) can reach it too: the
server listens on a real port and the dummy credentials are in `os.environ`, which they inherit.
The server runs in the pytest process and shares moto's in-memory state, so do not combine it
with `moto.mock_aws` in the same session (mock_aws resets that state and intercepts requests).

Register it once for all tests in `bambam_tests/conftest.py` (what the repo does):

    pytest_plugins = ["bambam_tests.s3_server"]

or import the fixtures into a single test module (all three, since they depend on each other):

    from bambam_tests.s3_server import aws_test_env, s3_bucket, s3_endpoint  # noqa: F401

Fixtures:
- `aws_test_env` (session): dummy credentials and region in the environment, no AWS config
  files, no instance-metadata lookups. Does NOT set AWS_ENDPOINT_URL (pass the endpoint, or
  `monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)` in the test that wants it).
- `s3_endpoint` (session): "http://127.0.0.1:<port>" of the running server.
- `s3_bucket` (function): the name of a new, empty bucket on that server.

Plain helpers for scripts: `start_s3_server()`, `s3_client(endpoint)`, `create_bucket(...)`.
One server per process: every import of the fixtures shares it; it stops at interpreter exit.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    # Keep a developer's ~/.aws out of the tests.
    "AWS_CONFIG_FILE": "/nonexistent/bambam-tests/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/bambam-tests/aws-credentials",
}
UNSET_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")

_lock = threading.Lock()
_server: Any = None
_endpoint: str | None = None
_bucket_counter = itertools.count(1)


def start_s3_server() -> str:
    """Start (once per process) a moto S3 server on a free 127.0.0.1 port; returns its URL."""
    global _server, _endpoint
    with _lock:
        if _endpoint is None:
            from moto.server import ThreadedMotoServer

            # One access-log line per request would drown the test output.
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()  # returns once the socket is bound and serving
            host, port = server.get_host_and_port()
            _server, _endpoint = server, f"http://{host}:{port}"
            atexit.register(stop_s3_server)
        return _endpoint


def stop_s3_server() -> None:
    """Stop the server started by start_s3_server (no-op when none runs)."""
    global _server, _endpoint
    with _lock:
        if _server is not None:
            _server.stop()
        _server, _endpoint = None, None


def s3_client(endpoint: str) -> Any:
    """A plain boto3 S3 client on the test server (dummy credentials, path-style)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )


def create_bucket(endpoint: str, name: str | None = None) -> str:
    """Create a bucket (a unique name when none is given) and return its name."""
    name = name or f"bambam-test-{next(_bucket_counter)}-{uuid.uuid4().hex[:8]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def aws_test_env() -> Iterator[None]:
    """Dummy AWS credentials and region for the whole session."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in DUMMY_ENV.items():
            mp.setenv(name, value)
        for name in UNSET_ENV:
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def s3_endpoint(aws_test_env: None) -> str:
    """URL of the running moto S3 server, e.g. "http://127.0.0.1:40123"."""
    return start_s3_server()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the test server (tests never share state through buckets)."""
    return create_bucket(s3_endpoint)
