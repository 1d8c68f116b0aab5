"""The warehouse mirror of the model registry: tables `model_registry` and `model_failures`.

The files under models/ are the source of truth (lib.models.registry); these tables mirror them
for queries and the dashboard. Their DDL (and grain) is in lib.core.schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from bambam_assets.lib.core.schema import ensure_tables
from bambam_assets.lib.core.warehouse import staged
from bambam_assets.lib.models.registry import (
    RegistryError,
    SaveOutcome,
    current_version,
    entity_dir,
    kept_versions,
    read_meta,
    version_dir,
)

REGISTRY_COLUMNS = (
    "entity_code", "version", "kind", "queue_type", "trained_at", "promoted", "is_current",
    "holdout_mae", "mae", "rmse", "mape", "r2", "naive_mae", "best_iteration", "rows", "seconds",
    "target_count", "code_version", "params_hash", "path", "decision", "error",
)
FAILURE_COLUMNS = ("entity_code", "failed_at", "error", "run_id")
_METRIC_ALIASES = {  # column -> metric keys accepted from the trainer, first found wins
    "mae": ("mae",), "rmse": ("rmse",), "mape": ("mape",), "r2": ("r2",),
    "naive_mae": ("naive_mae",), "best_iteration": ("best_iteration",),
    "rows": ("rows", "n_rows", "train_rows"), "seconds": ("seconds", "train_seconds"),
}


def _headline_metrics(metrics: dict) -> dict:
    """The forecast model's metrics: flat, or under "without_posted" (top level fills gaps)."""
    nested = metrics.get("without_posted")
    return {**metrics, **nested} if isinstance(nested, dict) else metrics


def registry_rows(models_root: Path, outcomes: Iterable[SaveOutcome]) -> pd.DataFrame:
    """Rows for `model_registry`, read back from each saved version's meta.json.

    Grain: one row per (entity_code, version) in `outcomes`. `is_current` reflects CURRENT now.
    """
    records = []
    for o in outcomes:  # one meta.json per entity trained in this batch
        meta = read_meta(models_root, o.entity_code, o.version)
        head = _headline_metrics(meta.get("metrics") or {})
        row = {col: next((head[k] for k in keys if head.get(k) is not None), None)
               for col, keys in _METRIC_ALIASES.items()}
        row.update(
            entity_code=o.entity_code, version=o.version, kind=meta["kind"],
            queue_type=meta["queue_type"], trained_at=meta["trained_at"],
            promoted=bool(meta.get("promoted")),
            is_current=current_version(models_root, o.entity_code) == o.version,
            holdout_mae=meta.get("holdout_mae"), target_count=meta.get("target_count"),
            code_version=meta.get("code_version"), params_hash=meta.get("params_hash"),
            path=str(version_dir(models_root, o.entity_code, o.version)),
            decision=meta.get("decision"), error=meta.get("error"),
        )
        records.append(row)
    df = pd.DataFrame.from_records(records, columns=list(REGISTRY_COLUMNS))
    # ISO 8601 per value: isoformat() drops the fraction of a time saved on a whole second, so
    # a format inferred from the first value can reject the others
    df["trained_at"] = pd.to_datetime(df["trained_at"], utc=True, format="ISO8601")
    for col in ("version", "best_iteration", "rows", "target_count"):
        df[col] = df[col].astype("Int64")
    for col in ("holdout_mae", "mae", "rmse", "mape", "r2", "naive_mae", "seconds"):
        df[col] = df[col].astype("float64")
    return df.astype({"promoted": bool, "is_current": bool})


def failure_rows(
    failures: Mapping[str, BaseException | str], run_id: str | None, now: datetime | None = None
) -> pd.DataFrame:
    """Rows for `model_failures`. Grain: one row per failed entity of this run."""
    failed_at = (now or datetime.now(UTC)).astimezone(UTC)
    return pd.DataFrame({
        "entity_code": pd.Series(list(failures), dtype="string"),
        "failed_at": pd.Series([failed_at] * len(failures), dtype="datetime64[ns, UTC]"),
        "error": pd.Series([e if isinstance(e, str) else f"{type(e).__name__}: {e}"
                            for e in failures.values()], dtype="string"),
        "run_id": pd.Series([run_id] * len(failures), dtype="string"),
    })


def write_registry(
    conn: duckdb.DuckDBPyConnection, rows: pd.DataFrame, failures: pd.DataFrame
) -> None:
    """Upsert `rows` by (entity_code, version), append `failures`, in one transaction.

    For each entity whose row is current, every other version of it is marked not current.
    """
    ensure_tables(conn)
    cols = ", ".join(f'"{c}"' for c in REGISTRY_COLUMNS)  # constant names, no data in SQL text
    with staged(conn, _bambam_reg_rows=rows.loc[:, list(REGISTRY_COLUMNS)],
                _bambam_reg_fail=failures.loc[:, list(FAILURE_COLUMNS)]):
        conn.execute("""
            DELETE FROM model_registry USING _bambam_reg_rows r
            WHERE model_registry.entity_code = r.entity_code AND model_registry.version = r.version
        """)
        conn.execute(f"INSERT INTO model_registry ({cols}) SELECT {cols} FROM _bambam_reg_rows")
        conn.execute("""
            UPDATE model_registry SET is_current = (model_registry.version = c.version)
            FROM (SELECT entity_code, max(version) AS version FROM _bambam_reg_rows
                  WHERE is_current GROUP BY entity_code) c
            WHERE model_registry.entity_code = c.entity_code
        """)
        conn.execute("""
            INSERT INTO model_failures (entity_code, failed_at, error, run_id)
            SELECT entity_code, failed_at, error, run_id FROM _bambam_reg_fail
        """)


def sync_current_flags(
    conn: duckdb.DuckDBPyConnection, models_root: Path, entities: Iterable[str]
) -> None:
    """Set `is_current` of the entities' rows from their CURRENT files (after a rollback)."""
    ensure_tables(conn)
    entities = list(entities)
    current = pd.DataFrame({
        "entity_code": pd.Series(entities, dtype="string"),
        "version": pd.Series([current_version(models_root, e) for e in entities], dtype="Int64"),
    })
    conn.register("_bambam_cur", current)
    try:
        conn.execute("""
            UPDATE model_registry
            SET is_current = coalesce(model_registry.version = c.version, false)
            FROM _bambam_cur c WHERE model_registry.entity_code = c.entity_code
        """)
    finally:
        conn.unregister("_bambam_cur")


def reconcile(conn: duckdb.DuckDBPyConnection, models_root: Path) -> pd.DataFrame:
    """Make the tables agree with the files before anything reads them to decide.

    Models land on disk (CURRENT switched) entity by entity while the step trains, and the
    mirror is written once at the end of the step: a crash in between (kill -9, a lock timeout)
    leaves versions on disk that `model_registry` does not know, and the staleness rule would
    then call those entities model-less and train them again. This adds a row for every kept
    version on disk that the table lacks, sets `is_current` from every CURRENT file, and records
    in `entity_index` the newest added version as the entity's last model (its training time
    and target count, as the step would have). Idempotent; cheap when nothing is missing (one
    directory listing and one CURRENT read per entity).

    Returns the rows added (grain: one per (entity_code, version) added).
    """
    ensure_tables(conn)
    root = Path(models_root)
    entities = sorted(p.name for p in root.iterdir()
                      if p.is_dir() and _is_entity_dir(p)) if root.is_dir() else []
    known = set(conn.execute("SELECT entity_code, version FROM model_registry").fetchall())
    missing = [SaveOutcome(e, v, False, "", None) for e in entities
               for v in kept_versions(root, e) if (e, v) not in known]
    rows = registry_rows(root, missing)
    if len(rows):
        write_registry(conn, rows, failure_rows({}, None))
    sync_current_flags(conn, root, entities)
    newest = rows.sort_values("version").groupby("entity_code").tail(1)
    if len(newest) and _has_table(conn, "entity_index"):
        with staged(conn, _bambam_reconciled=newest.loc[:, ["entity_code", "trained_at",
                                                            "target_count"]]):
            # only when the added version is newer than the last model entity_index records
            conn.execute("""
                UPDATE entity_index SET last_modeled_at = r.trained_at,
                    target_count_at_last_model = r.target_count
                FROM _bambam_reconciled r
                WHERE entity_index.entity_code = r.entity_code
                  AND (entity_index.last_modeled_at IS NULL
                       OR entity_index.last_modeled_at < r.trained_at)
            """)
    return rows


def _is_entity_dir(path: Path) -> bool:
    try:
        entity_dir(path.parent, path.name)
    except RegistryError:
        return False
    return True


def _has_table(conn: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                             [name]).fetchall()[0][0])
