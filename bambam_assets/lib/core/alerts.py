"""Alerts an operator sees: one JSON line per alert in $BAMBAM_HOME/status/alerts.jsonl, read
by the dashboard's status page, and a POST to a webhook when BAMBAM_ALERT_WEBHOOK is set.

Why a file and not a warehouse table: alerts fire from sensors, and while a run writes the
warehouse no other process can open it (DuckDB's single writer); an alert about a stuck or
failed run must never wait for that. Lines are appended under a file lock (sensors run in
threads of the daemon), so the file is the full history, oldest first.

Grain of alerts.jsonl: one line per alert: at (UTC ISO-8601), kind (`run_failure`,
`freshness`), subject (a run id or an asset key), message (one line), details (JSON object),
webhook (`sent`, `failed: <error>` or `not configured`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from filelock import FileLock
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from bambam_assets.lib.core.paths import HomePaths

RUN_FAILURE, FRESHNESS = "run_failure", "freshness"
WEBHOOK_TIMEOUT_S = 10.0
LOCK_TIMEOUT_S = 30.0
COLUMNS = ["at", "kind", "subject", "message", "webhook"]


@dataclass
class Alert:
    kind: str
    subject: str
    message: str
    details: dict = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    webhook: str = "not configured"

    def payload(self) -> dict:
        """The webhook's JSON body: `text` (what chat webhooks such as Slack's show) and the
        alert's fields."""
        return {"text": f"[bambam] {self.kind}: {self.message}", "alert": asdict(self)}


# A refused connection or a timeout may pass; a 4xx answer will not (raise_for_status raises
# HTTPStatusError, retried only for 5xx below).
class _Retryable(Exception):
    pass


@retry(retry=retry_if_exception_type(_Retryable), stop=stop_after_attempt(3),
       wait=wait_exponential(multiplier=0.5, max=4), reraise=True)
def _post(url: str, body: dict) -> None:
    try:
        response = httpx.post(url, json=body, timeout=WEBHOOK_TIMEOUT_S)
    except httpx.TransportError as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code >= 500:
        raise _Retryable(f"HTTP {response.status_code}")
    response.raise_for_status()


def post_webhook(url: str, alert: Alert) -> str:
    """POST the alert to `url` (3 tries on network errors and 5xx); returns what to record:
    `sent` or `failed: <reason>`. Never raises: a webhook down must not hide the alert."""
    try:
        _post(url, alert.payload())
    except (_Retryable, httpx.HTTPError) as exc:
        return f"failed: {exc}"
    return "sent"


def record_alert(home: Path, alert: Alert) -> None:
    """Append the alert as one line of alerts.jsonl."""
    path = HomePaths(home).alerts
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S), path.open("a") as fh:
        fh.write(json.dumps(asdict(alert), default=str) + "\n")


def raise_alert(home: Path, alert: Alert, webhook_url: str | None) -> Alert:
    """Post the alert to the webhook (when given), then record it with the webhook's outcome."""
    if webhook_url:
        alert.webhook = post_webhook(webhook_url, alert)
    record_alert(home, alert)
    return alert


def read_alerts(home: Path, limit: int = 50) -> list[dict]:
    """The newest `limit` alerts, newest first (a line that cannot be parsed is skipped: a
    reader may meet the last line half written)."""
    path = HomePaths(home).alerts
    if not path.exists():
        return []
    with path.open() as fh:
        lines = fh.readlines()[-limit:]  # alerts are rare: the file stays small
    out = []
    for line in reversed(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
