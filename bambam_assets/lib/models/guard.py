"""The promotion guard's evidence: challenger and incumbent scored on the SAME rows.

A challenger's own holdout MAE says little against the incumbent's stored one: the two come from
different days (a full retrain's test days are the newest ones, the incumbent's were older and
may have been calmer), and an update's window reaches back into rows the incumbent was trained
on. So the guard scores both on the challenger's held-out rows that lie strictly after the
incumbent's data end (its newest observed_at; its test_end park date for versions that did not
record one): rows neither model was fitted on.

When fewer than `GUARD_MIN_ROWS` such rows exist (a retrain the day after the last one; ACTUAL
targets are sparse) the comparison would be noise, and the rule decides instead (`too_few_rows`):
- an incremental update is promoted: it adds a few small trees (10 at eta 0.03) fitted on rows
  after the incumbent's data end, and the weekly full retrain bounds how far updates drift;
- a full retrain is promoted when the training code or parameters changed, when the model kind
  changes (an hourly fallback growing into an XGBoost model), or when the incumbent's last full
  retrain is at least `FORCE_AGE` old (the weekly full retrain always lands); otherwise the
  two stored holdout MAEs decide, as before the guard (an operator's retrain of a recent model).
An incumbent that cannot be scored (a damaged file) never blocks its replacement.
The decision and its reason are recorded in the version's meta (`metrics.guard`, `decision`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bambam_assets.lib.models import registry, training

GUARD_MIN_ROWS = 50  # rows after the incumbent's data end needed to compare the two
# just under the weekly full-retrain cadence, so a schedule firing a little early still lands
FORCE_AGE = timedelta(days=6)


@dataclass(frozen=True)
class Incumbent:
    """The current version the challenger must beat (picklable: bytes and dicts only)."""

    version: int
    kind: str
    models: dict[str, bytes]
    encodings: dict
    fallback: dict | None
    data_end: str | None  # newest observed_at it was fitted on (ISO), if recorded
    test_end: str | None  # its newest park_date (when data_end was not recorded)
    last_full_retrain_at: str | None
    code_version: str | None
    params_hash: str | None


def read_incumbent(models_root: Path, entity: str) -> Incumbent | None:
    """The entity's CURRENT version as an Incumbent, or None. Reads bytes and meta only (no
    booster is parsed here: the worker that scores it does that)."""
    version = registry.current_version(models_root, entity)
    if version is None:
        return None
    meta = registry.read_meta(models_root, entity, version)
    vdir = registry.version_dir(models_root, entity, version)
    models = {key: (vdir / f"{key}{registry.MODEL_SUFFIX}").read_bytes()
              for key in meta.get("models", [])}
    metrics = meta.get("metrics") or {}
    last_full = (metrics.get("last_full_retrain_at") if metrics.get("training_mode") ==
                 "incremental" else metrics.get("last_full_retrain_at") or meta.get("trained_at"))
    return Incumbent(
        version=int(version), kind=str(meta.get("kind")), models=models,
        encodings=meta.get("encodings") or {}, fallback=meta.get("fallback"),
        data_end=metrics.get("data_end"), test_end=(metrics.get("split") or {}).get("test_end"),
        last_full_retrain_at=last_full, code_version=meta.get("code_version"),
        params_hash=meta.get("params_hash"),
    )


def after_incumbent(rows: pd.DataFrame, incumbent: Incumbent) -> np.ndarray:
    """Mask of `rows` strictly after the incumbent's data end (all False when unknown)."""
    if incumbent.data_end:
        return (rows["observed_at"] > pd.Timestamp(incumbent.data_end)).to_numpy()
    if incumbent.test_end:
        return (pd.to_datetime(rows["park_date"]) > pd.Timestamp(incumbent.test_end)).to_numpy()
    return np.zeros(len(rows), dtype=bool)


def same_rows(test_rows: pd.DataFrame, challenger_pred: np.ndarray, incumbent: Incumbent,
              predict: Callable[[Incumbent, pd.DataFrame], np.ndarray] | None = None) -> dict:
    """{rows, challenger_mae, incumbent_mae, incumbent_version} on the challenger's held-out
    rows after the incumbent's data end; MAEs None when there is no such row. `predict` scores
    the incumbent (default: the per-entity models' training.predict)."""
    mask = after_incumbent(test_rows, incumbent)
    n = int(mask.sum())
    out: dict = {"rows": n, "challenger_mae": None, "incumbent_mae": None,
                 "incumbent_version": incumbent.version}
    if n == 0:
        return out
    rows = test_rows[mask]
    y = rows["y"].to_numpy(dtype=float)
    try:
        inc = (predict(incumbent, rows) if predict is not None
               else training.predict(incumbent, rows, with_posted=False))
    except Exception as exc:  # noqa: BLE001 - a damaged incumbent must not block its successor
        out["promote"] = True
        out["decision"] = (f"promoted: the incumbent v{incumbent.version:04d} cannot be scored "
                           f"({type(exc).__name__}: {str(exc)[:120]})")
        return out
    out["challenger_mae"] = float(np.abs(np.asarray(challenger_pred)[mask] - y).mean())
    out["incumbent_mae"] = float(np.abs(inc - y).mean())
    return out


def evidence(test_rows: pd.DataFrame, challenger_pred: np.ndarray, incumbent: Incumbent, *,
             challenger_kind: str, mode: str, now: datetime, code_version: str,
             params_hash: str,
             predict: Callable[[Incumbent, pd.DataFrame], np.ndarray] | None = None) -> dict:
    """What `registry.save_version(guard=...)` decides on: `same_rows`, plus the rule's
    ("promote", "decision") when those rows are too few."""
    out = same_rows(test_rows, challenger_pred, incumbent, predict)
    if "promote" in out:
        return out
    if out["rows"] >= GUARD_MIN_ROWS:
        out["basis"] = "same_rows"
        return out
    forced = too_few_rows(out, incumbent, challenger_kind=challenger_kind, mode=mode, now=now,
                          code_version=code_version, params_hash=params_hash)
    if forced is not None:
        out["promote"], out["decision"] = forced
    else:
        out["basis"] = "stored"
        out["note"] = (f"too few rows after the incumbent's data end to compare ({out['rows']} < "
                       f"{GUARD_MIN_ROWS}): the stored holdout MAEs decide")
    return out


def too_few_rows(evidence: dict, incumbent: Incumbent, *, challenger_kind: str, mode: str,
                 now: datetime, code_version: str, params_hash: str) -> tuple[bool, str] | None:
    """(promote?, why) when the same-rows evidence is too thin and a rule forces the answer;
    None when the rows suffice or no rule applies (the stored holdout MAEs decide then)."""
    n = evidence["rows"]
    if n >= GUARD_MIN_ROWS:
        return None
    few = f"too few rows after the incumbent's data end to compare ({n} < {GUARD_MIN_ROWS})"
    if mode == "incremental":
        return True, f"promoted: {few}; an update only adds small trees to the incumbent"
    if incumbent.code_version != code_version or incumbent.params_hash != params_hash:
        return True, f"promoted: {few}; the training code or parameters changed"
    if incumbent.kind != challenger_kind:
        return True, f"promoted: {few}; the model kind changes ({incumbent.kind} -> " \
                     f"{challenger_kind})"
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    if incumbent.last_full_retrain_at is None:
        return True, f"promoted: {few}; the incumbent's last full retrain is unknown"
    age = now - datetime.fromisoformat(incumbent.last_full_retrain_at)
    days = age.total_seconds() / 86400
    if age >= FORCE_AGE:
        return True, (f"promoted: {few}; the incumbent's last full retrain is {days:.1f} days "
                      f"old, its age forces a retrain (>= {FORCE_AGE.days} days)")
    return None
