"""Versioned per-entity model registry: files on disk are the truth, a DuckDB table mirrors them
(lib.models.registry_table, which imports this module; this module never imports it).

Layout under `models_root` (= `BAMBAM_HOME/models`)::

    {entity}/v0007/without_posted.ubj   booster raw UBJSON (with_posted.ubj when trained)
    {entity}/v0007/meta.json            kind, queue_type, encodings, fallback, metrics, holdout_mae,
                                        trained_at (UTC ISO), code_version, params_hash, decision...
    {entity}/CURRENT                    "v0007": the one version loaders use

Crash safety: a version is written into `{entity}/.tmp-*`, fsynced and `os.rename`d into place,
and CURRENT is switched by `os.replace` of `CURRENT.tmp`; so a crash at any point leaves the
previous CURRENT version whole and loadable, and the next save removes the leftover temp dir. A
version's files never change after the rename, and a loader reads only what CURRENT names (the
legacy quirk of a stale booster file overriding a newer mean model cannot happen).

Promotion rule: each version's `holdout_mae` is its MAE on its own newest held-out park days (the
chronological test split, so a challenger is judged on the latest data). The challenger becomes
current when there is no current model, or when `challenger <= current * (1 + tolerance)`. When the
caller scored the current model on the challenger's own held-out days it passes that value as
`incumbent_mae`, and the comparison uses it (same days for both: the fairer test). A rejected
challenger is still kept as a version, visible and reachable by rollback.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import xgboost as xgb
from filelock import FileLock

CURRENT_FILE = "CURRENT"
META_FILE = "meta.json"
MODEL_SUFFIX = ".ubj"
_VERSION_DIR = re.compile(r"^v(\d{4,})$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")  # entity codes and model keys become path parts


class RegistryError(Exception):
    """A registry request that cannot be served (no model, version not kept, bad name)."""


class TrainedLike(Protocol):
    """What the trainer hands over for one entity (training.TrainedEntity satisfies it)."""

    entity_code: str
    queue_type: str
    kind: str  # "xgboost" | "hourly_fallback"
    models: dict[str, bytes]  # booster raw UBJSON keyed "without_posted" / "with_posted"
    encodings: dict
    fallback: dict | None
    metrics: dict  # flat, or per model name ("without_posted" gives the registry's headline)
    holdout_mae: float | None  # MAE of the without-POSTED model on the newest held-out days


@dataclass(frozen=True)
class SaveOutcome:
    entity_code: str
    version: int
    promoted: bool
    decision: str
    previous_version: int | None  # the current version before this save


class LazyBoosters(Mapping):
    """A version's boosters by model key, each parsed from its raw UBJSON on first use.

    Why: parsing a booster costs about as much as predicting a chunk with it, and most loads
    use one or two of a version's three models (the backfill only the with-POSTED one, the
    forecast the without-POSTED and POSTED ones, which it then parsed a second time): the
    parse of all three on load was 15 of the 33 CPU seconds a daily run at 1,694 entities
    spent in Booster.load_model (py-spy over the process tree)."""

    def __init__(self, raw: Mapping[str, bytes]) -> None:
        self._raw = dict(raw)
        self._parsed: dict[str, xgb.Booster] = {}

    def __getitem__(self, key: str) -> xgb.Booster:
        booster = self._parsed.get(key)
        if booster is None:
            booster = xgb.Booster()
            booster.load_model(bytearray(self._raw[key]))
            booster = self._parsed.setdefault(key, booster)  # two threads: one copy kept
        return booster

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


@dataclass
class LoadedModel:
    entity_code: str
    version: int
    kind: str
    queue_type: str
    boosters: Mapping[str, xgb.Booster]  # LazyBoosters: parsed when first used
    encodings: dict
    fallback: dict | None
    meta: dict
    path: Path
    # the raw UBJSON bytes too, so a LoadedModel has the TrainedEntity fields predict() reads
    models: dict[str, bytes]
    metrics: dict


def entity_dir(models_root: Path, entity: str) -> Path:
    if not _SAFE_NAME.match(entity):
        raise RegistryError(f"unsafe entity code {entity!r}")
    return Path(models_root) / entity


def version_dir(models_root: Path, entity: str, version: int) -> Path:
    return entity_dir(models_root, entity) / f"v{version:04d}"


def kept_versions(models_root: Path, entity: str) -> list[int]:
    """Versions present on disk for an entity, ascending (temp and deleted dirs excluded)."""
    d = entity_dir(models_root, entity)
    if not d.is_dir():
        return []
    found = (_VERSION_DIR.match(p.name) for p in d.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def current_version(models_root: Path, entity: str) -> int | None:
    """The version CURRENT names, or None when there is none or it names no complete version."""
    path = entity_dir(models_root, entity) / CURRENT_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    m = _VERSION_DIR.match(text)
    if not m:
        return None
    version = int(m.group(1))
    return version if (version_dir(models_root, entity, version) / META_FILE).is_file() else None


def read_meta(models_root: Path, entity: str, version: int) -> dict:
    path = version_dir(models_root, entity, version) / META_FILE
    if not path.is_file():
        raise RegistryError(f"{entity} has no version {version} (kept: "
                            f"{kept_versions(models_root, entity)})")
    return json.loads(path.read_text())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    """Write and fsync one file (the data is on disk before the rename that publishes it)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _set_current(d: Path, version: int) -> None:
    tmp = d / (CURRENT_FILE + ".tmp")
    _write_file(tmp, f"v{version:04d}\n".encode())
    os.replace(tmp, d / CURRENT_FILE)  # atomic: readers see the old or the new name, never half
    _fsync_dir(d)


def _clean_leftovers(d: Path) -> None:
    """Remove temp/half-deleted dirs of killed saves (callers hold the entity lock)."""
    for p in d.iterdir():
        if p.is_dir() and (p.name.startswith(".tmp-") or p.name.startswith(".del-")):
            shutil.rmtree(p, ignore_errors=True)


def _lock(d: Path) -> FileLock:
    d.mkdir(parents=True, exist_ok=True)
    return FileLock(str(d / ".lock"), timeout=300)


def promotion_decision(
    challenger_mae: float | None, incumbent_mae: float | None, has_current: bool, tolerance: float
) -> tuple[bool, str]:
    """The guard: (promote?, human-readable reason)."""
    if not has_current:
        return True, "promoted: first model"
    if incumbent_mae is None:
        return True, "promoted: current model has no holdout MAE"
    if challenger_mae is None:
        return False, "rejected: challenger has no holdout MAE"
    limit = incumbent_mae * (1 + tolerance)
    if challenger_mae <= limit:
        return True, f"promoted: mae {challenger_mae:.3f} <= {incumbent_mae:.3f}*{1 + tolerance:g}"
    return False, f"rejected: mae {challenger_mae:.3f} > {incumbent_mae:.3f}*{1 + tolerance:g}"


def save_version(
    models_root: Path,
    trained: TrainedLike,
    *,
    code_version: str,
    params_hash: str,
    target_count: int,
    tolerance: float = 0.05,
    keep: int = 5,
    now: datetime | None = None,
    incumbent_mae: float | None = None,
    guard: dict | None = None,
) -> SaveOutcome:
    """Store `trained` as the entity's next version; make it current if it passes the guard.

    Args:
        incumbent_mae: the current model's MAE on the challenger's held-out days, when the caller
            computed it; otherwise the current version's stored holdout_mae is used.
        guard: lib/models/guard.py's evidence against the version that is still current: both
            MAEs on the same rows after the incumbent's data end, the rule's decision
            ("promote", "decision") when those rows were too few, or basis "stored" (then the
            stored holdout MAEs decide, as without a guard). Ignored when the current
            version changed since (another run promoted one): the stored MAE decides then.
        keep: versions kept (the newest `keep`, plus the current one whatever its age).
    """
    if keep < 1:
        raise ValueError("keep must be >= 1")
    entity = trained.entity_code
    d = entity_dir(models_root, entity)
    with _lock(d):
        _clean_leftovers(d)
        previous = current_version(models_root, entity)
        versions = kept_versions(models_root, entity)
        version = (versions[-1] if versions else 0) + 1
        if incumbent_mae is None and previous is not None:
            incumbent_mae = read_meta(models_root, entity, previous).get("holdout_mae")
        challenger = _finite(trained.holdout_mae)
        if guard is not None and previous is not None and \
                guard.get("incumbent_version") == previous:
            if "promote" in guard:
                promoted, decision = bool(guard["promote"]), str(guard["decision"])
            elif guard.get("basis") == "stored":
                promoted, decision = promotion_decision(
                    challenger, _finite(read_meta(models_root, entity, previous)
                                        .get("holdout_mae")), True, tolerance)
                decision += f" ({guard['note']})"
            else:
                promoted, decision = promotion_decision(
                    _finite(guard.get("challenger_mae")), _finite(guard.get("incumbent_mae")),
                    True, tolerance)
                decision += f" on the same {guard['rows']} rows after the incumbent's data end"
        else:
            promoted, decision = promotion_decision(
                challenger, _finite(incumbent_mae), previous is not None, tolerance
            )
        trained_at = now or datetime.now(UTC)
        # a naive `now` is taken as UTC (not the machine's local zone)
        trained_at = (trained_at.replace(tzinfo=UTC) if trained_at.tzinfo is None
                      else trained_at.astimezone(UTC))
        for key in trained.models:
            if not _SAFE_NAME.match(key):
                raise RegistryError(f"unsafe model key {key!r}")
        meta = {
            "entity_code": entity, "version": version, "kind": trained.kind,
            "queue_type": trained.queue_type, "models": sorted(trained.models),
            "encodings": trained.encodings, "fallback": trained.fallback,
            "metrics": trained.metrics, "holdout_mae": challenger,
            "trained_at": trained_at.isoformat(), "code_version": code_version,
            "params_hash": params_hash, "target_count": int(target_count),
            "feature_names": getattr(trained, "feature_names", None),
            "error": getattr(trained, "error", None),
            "promoted": promoted, "decision": decision, "previous_version": previous,
        }
        tmp = d / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            for key, raw in trained.models.items():
                _write_file(tmp / f"{key}{MODEL_SUFFIX}", bytes(raw))
            _write_file(tmp / META_FILE, json.dumps(meta, default=_json_default, indent=1).encode())
            _fsync_dir(tmp)
            os.rename(tmp, version_dir(models_root, entity, version))
            _fsync_dir(d)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if promoted:
            _set_current(d, version)
        _prune(models_root, entity, keep)
    return SaveOutcome(entity, version, promoted, decision, previous)


def _prune(models_root: Path, entity: str, keep: int) -> None:
    d = entity_dir(models_root, entity)
    versions = kept_versions(models_root, entity)
    protected = set(versions[-keep:]) | {current_version(models_root, entity)}
    for v in versions:
        if v not in protected:
            # rename first (atomic), so a kill mid-delete never leaves a half version listed
            gone = d / f".del-{v:04d}-{uuid.uuid4().hex[:8]}"
            os.rename(version_dir(models_root, entity, v), gone)
            shutil.rmtree(gone, ignore_errors=True)


def load_model(models_root: Path, entity: str, version: int | None = None) -> LoadedModel:
    """The boosters, encodings, fallback and metadata of a version (the CURRENT one by default)."""
    if version is None:
        version = current_version(models_root, entity)
        if version is None:
            raise RegistryError(f"{entity} has no current model")
    meta = read_meta(models_root, entity, version)
    vdir = version_dir(models_root, entity, version)
    raw = {key: (vdir / f"{key}{MODEL_SUFFIX}").read_bytes() for key in meta.get("models", [])}
    return LoadedModel(entity, version, meta["kind"], meta["queue_type"], LazyBoosters(raw),
                       meta.get("encodings") or {}, meta.get("fallback"), meta, vdir, raw,
                       meta.get("metrics") or {})


def list_versions(models_root: Path, entity: str) -> list[dict]:
    """One dict per kept version, ascending: version, trained_at, kind, holdout_mae, mae,
    current, promoted, decision, code_version."""
    current = current_version(models_root, entity)
    out = []
    for v in kept_versions(models_root, entity):
        meta = read_meta(models_root, entity, v)
        metrics = meta.get("metrics") or {}
        head = metrics.get("without_posted") if isinstance(metrics.get("without_posted"), dict) \
            else metrics
        out.append({
            "version": v, "trained_at": meta.get("trained_at"), "kind": meta.get("kind"),
            "holdout_mae": meta.get("holdout_mae"), "mae": head.get("mae"),
            "current": v == current, "promoted": meta.get("promoted"),
            "decision": meta.get("decision"), "code_version": meta.get("code_version"),
        })
    return out


def rollback(models_root: Path, entity: str, version: int | None = None) -> int:
    """Make a kept version current: `version`, or the newest kept one older than the current.

    Returns the version now current. Raises RegistryError when that version is not kept.
    """
    d = entity_dir(models_root, entity)
    with _lock(d):
        kept = kept_versions(models_root, entity)
        current = current_version(models_root, entity)
        if version is None:
            older = [v for v in kept if current is None or v < current]
            if not older:
                raise RegistryError(
                    f"{entity}: no kept version older than current v{current} (kept: {kept})")
            version = older[-1]
        if version not in kept:
            raise RegistryError(
                f"{entity}: version {version} is not kept (deleted or never saved); kept: {kept}")
        read_meta(models_root, entity, version)  # a version without meta is not loadable
        if version != current:
            _set_current(d, version)
    return version

