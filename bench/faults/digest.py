"""What a home holds, as row counts and content hashes, to compare a faulted home with a clean one.

Every warehouse table is hashed row by row (an order-free sum of DuckDB `hash` of each row, over
the columns that do not record *when* something was done: run times, ages, run ids), every
forecast and backfill file the same way, and each entity's current model by its version number.
Two homes built from the same raw files with the same as-of date must give equal digests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

# Columns that record when or by which run something happened: they differ between two runs
# that hold the same facts, so they stay out of the hash (the row counts still see every row).
VOLATILE = {
    "built_at", "rejected_at", "ingested_at", "updated_at", "last_modeled_at", "trained_at",
    "evaluated_at", "failed_at", "quarantined_at", "released_at", "last_attempt", "last_success",
    "first_seen", "last_seen", "age_hours", "action", "summary", "run_id", "reasons",
    "valid_from", "valid_until", "source", "seconds", "path",
}
# Floating-point sums come out in the order DuckDB's threads finish: compare doubles to 6 digits.
DIGITS = 6
# Tables whose rows describe runs and fetches rather than facts or their products.
RUN_LOG_TABLES = {"model_failures", "fetch_status", "queue_times_unmapped"}


@dataclass(frozen=True)
class Part:
    rows: int
    hash: int


def _packed(conn: duckdb.DuckDBPyConnection, source: str) -> str:
    """struct_pack arguments for every kept column, doubles rounded to DIGITS."""
    out = []
    for name, dtype, *_ in conn.execute(f"DESCRIBE SELECT * FROM {source}").fetchall():
        if name in VOLATILE:
            continue
        value = f'round("{name}", {DIGITS})' if dtype in ("DOUBLE", "FLOAT") else f'"{name}"'
        out.append(f'"{name}" := {value}')
    return ", ".join(out) or "x := 1"


def _struct_cols(conn: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    return [r[0] for r in conn.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]


def warehouse_digest(home: Path) -> dict[str, Part]:
    """One Part per warehouse table (run-log tables left out)."""
    path = Path(home) / "warehouse.duckdb"
    out: dict[str, Part] = {}
    if not path.exists():
        return out
    conn = duckdb.connect(str(path), read_only=True)
    try:
        tables = [t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
        for t in tables:
            if t in RUN_LOG_TABLES:
                continue
            # struct_pack needs named fields: name them after the columns
            packed = _packed(conn, f'"{t}"')
            rows, h = conn.execute(
                f'SELECT count(*), coalesce(sum(hash(struct_pack({packed}))::HUGEINT), 0) '
                f'FROM "{t}"').fetchone()
            out[f"table {t}"] = Part(int(rows), int(h))
    finally:
        conn.close()
    return out


def curve_digest(home: Path) -> dict[str, Part]:
    """One Part per forecast and backfill Parquet file (hidden temp files are not curves)."""
    out: dict[str, Part] = {}
    conn = duckdb.connect()
    try:
        for kind in ("forecasts", "backfill"):
            for f in sorted((Path(home) / kind).glob("entity_code=*/*.parquet")):
                src = f"read_parquet('{f}')"
                packed = _packed(conn, src)
                rows, h = conn.execute(
                    f"SELECT count(*), coalesce(sum(hash(struct_pack({packed}))::HUGEINT), 0) "
                    f"FROM {src}").fetchone()
                out[f"{kind} {f.parent.name.split('=')[1]}"] = Part(int(rows), int(h))
    finally:
        conn.close()
    return out


def model_digest(home: Path) -> dict[str, Part]:
    """Each entity's current model version (rows = the version number, hash = 0)."""
    out: dict[str, Part] = {}
    for current in sorted((Path(home) / "models").glob("*/CURRENT")):
        text = current.read_text().strip()
        out[f"model {current.parent.name}"] = Part(int(text.lstrip("v") or 0), 0)
    return out


def home_digest(home: Path, models: bool = True) -> dict[str, Part]:
    digest = {**warehouse_digest(home), **curve_digest(home)}
    if models:
        digest.update(model_digest(home))
    return digest


def differences(clean: dict[str, Part], other: dict[str, Part]) -> list[str]:
    """What differs, one line per table or file (empty: the same facts and products)."""
    out = []
    for name in sorted(set(clean) | set(other)):
        a, b = clean.get(name), other.get(name)
        if a != b:
            out.append(f"{name}: clean {a.rows if a else 'missing'} rows, "
                       f"faulted {b.rows if b else 'missing'} rows"
                       + ("" if a is None or b is None or a.rows != b.rows else ", other content"))
    return out


def lost_and_extra(clean_home: Path, home: Path, table: str = "fct_wait_times") -> tuple[int, int]:
    """Rows of `table` the clean home has and `home` lacks (lost), and the reverse (duplicates
    or strays), as multisets over every column but the volatile ones."""
    conn = duckdb.connect()
    try:
        conn.execute(f"ATTACH '{Path(clean_home) / 'warehouse.duckdb'}' AS c (READ_ONLY)")
        conn.execute(f"ATTACH '{Path(home) / 'warehouse.duckdb'}' AS f (READ_ONLY)")
        cols = [c for c in _struct_cols(conn, f"c.{table}") if c not in VOLATILE]
        sel = ", ".join(f'"{c}"' for c in cols)
        lost = conn.execute(f"SELECT count(*) FROM (SELECT {sel} FROM c.{table} "
                            f"EXCEPT ALL SELECT {sel} FROM f.{table})").fetchone()[0]
        extra = conn.execute(f"SELECT count(*) FROM (SELECT {sel} FROM f.{table} "
                             f"EXCEPT ALL SELECT {sel} FROM c.{table})").fetchone()[0]
    finally:
        conn.close()
    return int(lost), int(extra)
