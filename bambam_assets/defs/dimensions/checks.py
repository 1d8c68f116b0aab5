"""Asset checks on the dimensions: keys, coverage, continuity."""


import dagster as dg

from bambam_assets.defs.resources import WarehouseResource

# Table -> its key columns (constants, never user data).
DIM_KEYS = {
    "dim_entity": ("entity_code",),
    "dim_calendar": ("park_date",),
    "dim_season": ("park_date",),
    "dim_park_hours": ("park_code", "park_date"),
}


def _key_check(table: str, keys: tuple[str, ...]) -> dg.AssetChecksDefinition:
    cols = ", ".join(keys)
    not_null = " OR ".join(f"{k} IS NULL" for k in keys)

    @dg.asset_check(asset=table, name=f"{table}_keys_unique_not_null",
                    description=f"({cols}) unique and never null")
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.reader() as conn:
            dupes = conn.execute(
                f"SELECT count(*) FROM (SELECT {cols} FROM {table} GROUP BY {cols} "
                "HAVING count(*) > 1)"
            ).fetchall()[0][0]
            nulls = conn.execute(f"SELECT count(*) FROM {table} WHERE {not_null}").fetchall()[0][0]
        return dg.AssetCheckResult(passed=dupes == 0 and nulls == 0,
                                   metadata={"duplicate_keys": dupes, "null_keys": nulls})

    return _check


@dg.asset_check(asset="dim_park_hours", description="every park day in the facts has hours")
def fact_days_have_hours(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as conn:
        missing = conn.execute(
            """
            SELECT f.park_code, f.park_date FROM (
                SELECT DISTINCT park_code, park_date FROM fct_wait_times
                WHERE wait_time_type <> 'CLOSED') f
            ANTI JOIN dim_park_hours h USING (park_code, park_date)
            ORDER BY 1, 2
            """
        ).fetchall()
    return dg.AssetCheckResult(
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"days_without_hours": len(missing),
                  "examples": dg.MetadataValue.json([f"{p} {d}" for p, d in missing[:10]])},
    )


@dg.asset_check(asset="dim_calendar", description="one row for every day, no gaps")
def calendar_continuous(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as conn:
        n, lo, hi = conn.execute(
            "SELECT count(*), min(park_date), max(park_date) FROM dim_calendar"
        ).fetchall()[0]
    expected = (hi - lo).days + 1 if n else 0
    return dg.AssetCheckResult(passed=n > 0 and n == expected,
                               metadata={"rows": n, "expected": expected})


@dg.asset_check(asset="dim_season", description="no blank season")
def season_not_blank(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as conn:
        blank = conn.execute(
            "SELECT count(*) FROM dim_season WHERE coalesce(season, '') = ''"
        ).fetchall()[0][0]
    return dg.AssetCheckResult(passed=blank == 0, metadata={"blank_seasons": blank})


dimension_checks = [
    *[_key_check(t, k) for t, k in DIM_KEYS.items()],
    fact_days_have_hours, calendar_continuous, season_not_blank,
]
