"""A fault-injecting HTTP proxy in front of a real S3 server (moto's standalone server).

boto3 in the pipeline talks HTTP to the proxy as it would to MinIO; the proxy forwards every
request to the server and, for object reads (GET of a key), injects what `Faults` asks for:
HTTP 500 answers, a delay before the answer, a connection reset (RST after half the body), and
the deletion of an object right after a listing answered (so it is gone between list and get).
"""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "host"}


@dataclass
class Faults:
    errors_per_key: int = 0        # first N reads of every object answer HTTP 500
    error_keys: set[str] = field(default_factory=set)  # these keys answer 500 on every read
    delay_s: float = 0.0           # each object read waits this long first
    resets_per_key: int = 0        # first N reads of every object are cut off with a RST
    delete_after_list: str | None = None  # key deleted on the server once a listing answered
    counts: dict[str, int] = field(default_factory=dict)  # what was injected, by kind
    reads: dict[str, int] = field(default_factory=dict)   # object reads seen, by key

    def count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


class FaultProxy:
    """Start with `FaultProxy(backend_url, faults)`; `url` is what the pipeline uses."""

    def __init__(self, backend: str, faults: Faults, s3_client: Any = None) -> None:
        self.backend = urlsplit(backend)
        self.faults = faults
        self.s3 = s3_client  # deletes objects for `delete_after_list`
        self.deleted: list[tuple[str, str, bytes]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def restore_deleted(self) -> None:
        """Put the deleted objects back (same bytes, so the same ETag)."""
        for bucket, key, body in self.deleted:
            self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        self.deleted.clear()

    # -- the proxying --------------------------------------------------------------------------

    def _object_key(self, path: str) -> str | None:
        """`/bucket/key...` (path style, no query) -> key; None for listings and buckets."""
        parts = urlsplit(path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        return key or None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        f = self.faults
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        key = self._object_key(h.path) if h.command == "GET" else None
        action = None
        if key is not None:
            with self._lock:
                n = f.reads[key] = f.reads.get(key, 0) + 1
                if key in f.error_keys or n <= f.errors_per_key:
                    action = "http_500"
                elif n <= f.errors_per_key + f.resets_per_key:
                    action = "reset"
            if f.delay_s:
                f.count("delay")
                time.sleep(f.delay_s)
        if action == "http_500":
            f.count("http_500")
            payload = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError"
                       b"</Code><Message>injected</Message></Error>")
            h.send_response(500)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        status, headers, payload = self._forward(h.command, h.path, h.headers, body)
        if action == "reset" and status == 200 and len(payload) > 1:
            f.count("reset")
            h.send_response(status)
            for name, value in headers:
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(payload[: len(payload) // 2])
            h.wfile.flush()
            # SO_LINGER 0: close() sends a TCP RST instead of a FIN
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            h.connection.close()
            return
        h.send_response(status)
        for name, value in headers:
            h.send_header(name, value)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(payload)
        if (h.command == "GET" and key is None and "list-type=2" in h.path
                and f.delete_after_list and status == 200):
            self._delete_now(urlsplit(h.path).path.strip("/"), f.delete_after_list)

    def _delete_now(self, bucket: str, key: str) -> None:
        with self._lock:
            if self.faults.delete_after_list != key:
                return
            self.faults.delete_after_list = None  # once
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        self.s3.delete_object(Bucket=bucket, Key=key)
        self.deleted.append((bucket, key, body))
        self.faults.count("deleted_after_list")

    def _forward(self, method: str, path: str, headers: Any, body: bytes
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.backend.hostname, self.backend.port, timeout=60)
        try:
            out = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
            out["Host"] = self.backend.netloc
            conn.request(method, path, body=body or None, headers=out)
            resp = conn.getresponse()
            payload = resp.read()
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_HEADERS
                    and k.lower() != "content-length"]
            kept.append(("Content-Length", str(len(payload))))
            return resp.status, kept, payload
        finally:
            conn.close()


def start_moto() -> str:
    """A moto S3 server on a free localhost port (stops at interpreter exit); its URL."""
    import atexit

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    atexit.register(server.stop)
    return f"http://{host}:{port}"


def s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing", config=Config(s3={"addressing_style": "path"}))


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true",
          "AWS_CONFIG_FILE": "/nonexistent/bambam-faults/aws-config",
          "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/bambam-faults/aws-credentials"}
