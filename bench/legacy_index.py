"""The legacy's entity index and its batch selection (spec §4 and §7.4), for the benchmarks.

Grain: one row per entity code with at least one fact row up to the as-of date (POSTED, ACTUAL
or PRIORITY with minutes: the rows the legacy's clean fact tables held), with the index's counts.
Computed in one DuckDB query over the Bambam home's `fct_wait_times`, the same rows
`bench.legacy_base` writes as the legacy's clean files (the legacy kept this index up to date as
its ETL wrote; building it here is setup, not timed). Quirk not copied: the legacy's counts were
undercounts (rows of older dates never added to them).

Who the legacy ran:
- training (`train_batch_entities.py`, the index query): only entities with
  `actual_count >= 500 OR priority_count >= 500` (`min_target_count`, default 500): an entity
  under 500 targets is never selected, so never trained (no mean model either); the list is then
  filtered to codes present in dimentity and sorted as the batch did since e4c3304 (MK, EP, HS,
  AK first, then the others; ties by actual_count + priority_count, descending). The daily run
  takes those that have new rows (`latest_observed_at > last_modeled_at`); the quirk of its
  `--min-age-hours 24` (which excluded every entity observed in the last 24 h, i.e. every
  active ride) is not copied: the benchmark retrains the entities with new rows;
- forecast (`generate_forecast.py`): EVERY code of the index, whatever its counts.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from bambam_assets.lib.core import warehouse
from bambam_assets.lib.core.schema import ACTUAL, POSTED, PRIORITY

MIN_TARGET_COUNT = 500  # train_batch_entities.py --min-observations default (the index query)
_PARK_ORDER = {"MK": 0, "EP": 1, "HS": 2, "AK": 3}  # e4c3304: WDW parks first, others 99


def entity_index(home: Path, as_of: date) -> pd.DataFrame:
    """The legacy index as of `as_of`: entity_code, park_code, row/actual/posted/priority counts,
    latest_park_date, in_dimentity; sorted by entity_code."""
    with warehouse.reader(home) as conn:
        return conn.execute(f"""
            SELECT f.entity_code, any_value(f.park_code) AS park_code, count(*) AS row_count,
                   count(*) FILTER (WHERE f.wait_time_type = '{ACTUAL}') AS actual_count,
                   count(*) FILTER (WHERE f.wait_time_type = '{POSTED}') AS posted_count,
                   count(*) FILTER (WHERE f.wait_time_type = '{PRIORITY}') AS priority_count,
                   max(f.park_date) AS latest_park_date,
                   bool_or(d.entity_code IS NOT NULL) AS in_dimentity
            FROM fct_wait_times f LEFT JOIN dim_entity d USING (entity_code)
            WHERE f.park_date <= $as_of AND f.wait_time_minutes IS NOT NULL
              AND f.wait_time_type IN ('{POSTED}', '{ACTUAL}', '{PRIORITY}')
            GROUP BY f.entity_code ORDER BY f.entity_code""", {"as_of": as_of}).df()


def selected_for_training(index: pd.DataFrame, min_target_count: int = MIN_TARGET_COUNT
                          ) -> list[str]:
    """The batch's index query: >= min_target_count ACTUAL or PRIORITY rows, in dimentity,
    in the batch's order."""
    ok = index[((index["actual_count"] >= min_target_count)
                | (index["priority_count"] >= min_target_count)) & index["in_dimentity"]]
    order = ok.assign(
        _park=ok["park_code"].map(_PARK_ORDER).fillna(99),
        _targets=-(ok["actual_count"] + ok["priority_count"]))
    return order.sort_values(["_park", "_targets", "entity_code"])["entity_code"].tolist()
