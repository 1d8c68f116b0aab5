"""Pipeline status from the Dagster instance and progress.json (no Dash, no warehouse).

Runs come from the home's instance's run storage (SQLite under BAMBAM_HOME/dagster, or PostgreSQL
with BAMBAM_DAGSTER_PG_URL: bambam_assets/instance.py), progress of
long steps from BAMBAM_HOME/status/progress.json; neither touches the warehouse, so this page
works whatever the pipeline is writing. ETAs: a running step's rate (elapsed / done) over what is
left, and a run's median past duration for the same asset selection.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from bambam_assets.lib.core.paths import HomePaths

RUNNING = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}
RUN_COLUMNS = ["run_id", "job", "status", "started_at", "ended_at", "duration_s", "assets",
               "selection", "failure_reason", "trigger"]


def open_instance(home: Path):  # -> dg.DagsterInstance | None (dagster imported lazily)
    """The local instance under `home`/dagster, or None before any run made it."""
    layout = HomePaths(home)
    if not layout.dagster_yaml.exists():
        return None
    import dagster as dg

    return dg.DagsterInstance.from_config(str(layout.dagster))


def asset_groups() -> dict[str, str]:
    """Asset key (user string) -> group name, from the table the asset definitions take their
    groups from (defs/groups.py: no Dagster, no code location loaded)."""
    from bambam_assets.defs.groups import ASSET_GROUPS

    return dict(ASSET_GROUPS)


def _ts(value: float | None) -> pd.Timestamp | None:
    return pd.Timestamp(value, unit="s", tz="UTC") if value else None


def recent_runs(instance, limit: int = 200, now: datetime | None = None) -> pd.DataFrame:
    """The newest runs. Grain: one row per run, newest first (RUN_COLUMNS); `assets` is the
    sorted list of selected asset keys, `selection` the same joined (compares runs);
    `duration_s` runs to `now` for a run still going."""
    now = now or datetime.now(UTC)
    rows = []
    for rec in instance.get_run_records(limit=limit):  # one record per run, newest first
        run = rec.dagster_run
        assets = sorted(k.to_user_string() for k in (run.asset_selection or ()))
        start, end = _ts(rec.start_time), _ts(rec.end_time)
        duration = ((end or pd.Timestamp(now)) - start).total_seconds() if start else None
        rows.append({
            "run_id": run.run_id, "job": run.job_name, "status": run.status.value,
            "started_at": start, "ended_at": end, "duration_s": duration, "assets": assets,
            "selection": ",".join(assets) or run.job_name,
            "failure_reason": run.tags.get("dagster/failure_reason"),
            "trigger": run.tags.get("bambam/trigger") or run.tags.get("dagster/sensor_name")
            or run.tags.get("dagster/schedule_name") or "",
        })
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    # a run created or queued but not started has no start time: NaT, never a bare None, so
    # the columns stay datetimes whatever the mix (the status page's .dt and strftime)
    for col in ("started_at", "ended_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def current_run(runs: pd.DataFrame) -> pd.Series | None:
    """The newest running run, else the newest run; None without runs."""
    if runs.empty:
        return None
    running = runs[runs["status"].isin(RUNNING)]
    return (running if not running.empty else runs).iloc[0]


def last_run_per_group(runs: pd.DataFrame, groups: Mapping[str, str]) -> pd.DataFrame:
    """The newest run that selected any asset of each group, with its outcome.
    Grain: one row per asset group: group, run_id, status, started_at, ended_at, duration_s."""
    cols = ["group", "run_id", "status", "started_at", "ended_at", "duration_s"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    exploded = runs.explode("assets").dropna(subset=["assets"])
    exploded["group"] = exploded["assets"].map(groups).fillna("default")
    # runs are newest first: the first row of each group is its last run
    first = exploded.drop_duplicates("group", keep="first")
    return first[cols].sort_values("group", ignore_index=True)


def run_step_errors(instance, run_ids: Sequence[str], limit: int = 5) -> pd.DataFrame:
    """Step failures of the given runs. Grain: one row per failed step: run_id, step, error."""
    from dagster import DagsterEventType

    rows = []
    for run_id in list(run_ids)[:limit]:  # a few failed runs, one event-log read each
        for rec in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
            ev = rec.dagster_event
            err = getattr(ev.event_specific_data, "error", None)
            rows.append({"run_id": run_id, "step": ev.step_key,
                         "error": (err.message.strip() if err else ev.message) or ""})
    return pd.DataFrame(rows, columns=["run_id", "step", "error"])


def eta_from_rate(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the step's rate so far; None before the first item is done."""
    if done <= 0 or total <= 0 or elapsed_s < 0:
        return None
    return max(total - done, 0) * elapsed_s / done


def eta_from_history(past_durations_s: Sequence[float], elapsed_s: float) -> float | None:
    """Seconds left if this run lasts as long as the median past run (never below 0)."""
    past = [d for d in past_durations_s if d is not None and d == d and d > 0]
    if not past:
        return None
    return max(statistics.median(past) - elapsed_s, 0.0)


def past_durations(runs: pd.DataFrame, selection: str, exclude_run: str) -> list[float]:
    """Durations of earlier successful runs with the same selection (the ETA's history)."""
    same = runs[(runs["selection"] == selection) & (runs["status"] == "SUCCESS")
                & (runs["run_id"] != exclude_run)]
    return same["duration_s"].dropna().tolist()


def progress_steps(doc: Mapping | None, now: datetime | None = None) -> pd.DataFrame:
    """The steps of progress.json. Grain: one row per step: step, state, done, total, entity,
    failed, elapsed_s, eta_s (rate-based, running steps only), label ("entity k of n")."""
    cols = ["step", "state", "done", "total", "entity", "failed", "elapsed_s", "eta_s", "label"]
    if not doc or not doc.get("steps"):
        return pd.DataFrame(columns=cols)
    now = now or datetime.now(UTC)
    rows = []
    for step, s in doc["steps"].items():  # a handful of steps
        started = datetime.fromisoformat(s["started_at"])
        until = now if s.get("state") == "running" else datetime.fromisoformat(s["updated_at"])
        elapsed = (until - started).total_seconds()
        done, total = int(s.get("done") or 0), int(s.get("total") or 0)
        eta = eta_from_rate(done, total, elapsed) if s.get("state") == "running" else None
        rows.append({"step": step, "state": s.get("state"), "done": done, "total": total,
                     "entity": s.get("entity"), "failed": int(s.get("failed") or 0),
                     "elapsed_s": elapsed, "eta_s": eta, "label": f"entity {done} of {total}"})
    return pd.DataFrame(rows, columns=cols)


def fmt_duration(seconds: float | None) -> str:
    """`1h 02m`, `3m 07s`, `12s`; an em dash for None."""
    if seconds is None or seconds != seconds:
        return "—"
    td = timedelta(seconds=round(seconds))
    h, rem = divmod(int(td.total_seconds()), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s:02d}s" if m else f"{s}s")
