"""HTTP client of the queue-times.com API, with timeouts and retries.

Legacy: timeout 30 s, 3 tries, sleep 2×attempt s, proxy from the environment bypassed. Here the
retries back off exponentially (tenacity) and only on what a retry can fix (a timeout, a broken
connection, HTTP 5xx or 429); a 404 (unknown park id) or a body that is not a queue-times snapshot
fails at once, and the caller records the error and tries again on its next tick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

DEFAULT_BASE_URL = "https://queue-times.com"
# A sensor tick is bounded (Dagster cancels slow evaluations), so one attempt must stay short.
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 1.0  # waits 1 s, 2 s, ... between attempts (capped at 8 s)
USER_AGENT = "bambam-queue-times-poller/0.1"


class QueueTimesError(Exception):
    """A fetch that failed; `kind` is a short machine label, the message says what happened."""

    def __init__(self, kind: str, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.kind = kind  # http_404 | http_500 | timeout | connection | malformed_json | bad_shape
        self.attempts = attempts


class _Retryable(Exception):
    """Internal: a failure worth another attempt (wraps the QueueTimesError to report)."""

    def __init__(self, error: QueueTimesError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Snapshot:
    """One successful response: the raw bytes (written as-is) and the decoded object."""

    queue_times_id: int
    url: str
    body: bytes
    data: dict
    attempts: int
    elapsed_s: float


def validate_snapshot(body: bytes) -> dict:
    """The decoded snapshot; raises QueueTimesError when it is not JSON or not the API's shape."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise QueueTimesError("malformed_json", f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise QueueTimesError("bad_shape", "snapshot is not a JSON object")
    lands, rides = data.get("lands"), data.get("rides")
    if (lands is None and rides is None) or not isinstance(lands, list | None) \
            or not isinstance(rides, list | None):
        raise QueueTimesError("bad_shape", "snapshot has no lands/rides lists")
    return data


class QueueTimesClient:
    """`GET {base}/parks/{id}/queue_times.json` with a timeout per attempt and retries."""

    def __init__(self, base_url: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 attempts: int = DEFAULT_ATTEMPTS, backoff_s: float = DEFAULT_BACKOFF_S,
                 trust_env: bool = False, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        # trust_env False: the legacy bypassed the environment proxy (and localhost mirrors
        # must not be sent through one).
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s), trust_env=trust_env, transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=True)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> QueueTimesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url_for(self, queue_times_id: int) -> str:
        return f"{self.base_url}/parks/{int(queue_times_id)}/queue_times.json"

    def _once(self, url: str, attempt: int) -> httpx.Response:
        try:
            resp = self._client.get(url)
        except httpx.TimeoutException as exc:
            raise _Retryable(QueueTimesError("timeout", f"timeout after {attempt} attempt(s): "
                                             f"{type(exc).__name__} on {url}", attempt)) from exc
        except httpx.TransportError as exc:
            raise _Retryable(QueueTimesError("connection", f"{type(exc).__name__} on {url}: "
                                             f"{exc}", attempt)) from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise _Retryable(QueueTimesError(
                f"http_{resp.status_code}", f"HTTP {resp.status_code} from {url} "
                f"after {attempt} attempt(s)", attempt))
        if resp.status_code != 200:
            raise QueueTimesError(f"http_{resp.status_code}",
                                  f"HTTP {resp.status_code} from {url} (not retried)", attempt)
        return resp

    def fetch(self, queue_times_id: int) -> Snapshot:
        """The park's current snapshot; raises QueueTimesError after the last failed attempt."""
        url = self.url_for(queue_times_id)
        counter = {"n": 0}

        def attempt() -> httpx.Response:
            counter["n"] += 1
            return self._once(url, counter["n"])

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=8 * max(self.backoff_s, 0.001)),
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable)),
            reraise=True,
        )
        try:
            resp = retrying(attempt)
        except _Retryable as exc:
            raise exc.error from None
        try:
            data = validate_snapshot(resp.content)
        except QueueTimesError as exc:
            exc.attempts = counter["n"]
            raise
        return Snapshot(int(queue_times_id), url, resp.content, data, counter["n"],
                        resp.elapsed.total_seconds())
