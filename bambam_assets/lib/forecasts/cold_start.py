"""Cold start: a young entity's ACTUAL forecast borrows from the global model (pure: no dagster).

A ride that opened days ago knows only its opening weeks; its own model turns that hype into a
two-year level. So its forecast is `w * own + (1 - w) * global` (the global model:
lib/models/global_model.py, which sees the ride's park and attributes, not its identity), with

    w = min(w_days, w_rows),  w_days = min(1, s(d, K_DAYS) / s(MATURE_DAYS, K_DAYS)),
                              w_rows = min(1, s(n, K_ROWS) / s(MATURE_ROWS, K_ROWS)),
    s(x, k) = x / (x + k)

d = days from the entity's first target observation to the weights' day, n = its target rows up
to that day: the shrinkage weight n/(n+k), rescaled to reach exactly 1 at maturity. The weights'
day is the forecast week's inputs day (lib.core.forecast_week.inputs_as_of, the day the POSTED
statistics are taken at), not the as-of date: a weight that moved every day made every young
entity's forecast, and so its park's WTI and published files, change every day (148 entities of
the daily run's 632 forecasts at full scale); now it moves once a week, or with the entity's
model. A ride whose first target is after that day has w = 0 (the global model alone) until the
next week. An entity with at least
MATURE_DAYS of history and MATURE_ROWS target rows has w = 1: its forecast is its own model's,
bit for bit (and its forecast fingerprint is unchanged). Constants chosen by the real-data
backtest (bench/README.md, issue 14).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bambam_assets.lib.core.schema import POSTED
from bambam_assets.lib.models import global_model, registry
from bambam_assets.lib.models.features import TARGETS_SQL, target_params

MATURE_DAYS = global_model.EXCLUDE_YOUNGER_THAN_DAYS  # 180: a ride's first half year is young
K_DAYS = 60.0
MATURE_ROWS = 500  # = training.MIN_TARGETS_FOR_XGB: below it the own model is an hourly mean
K_ROWS = 250.0


def _shrink(x: float, k: float, mature: float) -> float:
    if x >= mature:
        return 1.0
    return max(0.0, min(1.0, (x / (x + k)) / (mature / (mature + k))))


def blend_weight(days: float, rows: float) -> float:
    """The own model's weight w in [0, 1] (1 = mature: the own model alone)."""
    return min(_shrink(max(days, 0.0), K_DAYS, MATURE_DAYS),
               _shrink(max(rows, 0.0), K_ROWS, MATURE_ROWS))


# Each entity's target rows (the training's own rule: features.TARGETS_SQL): count and first day.
# Counted up to as_of (every entity with targets is in it) and up to the weights' day ($anchor).
_HISTORY_SQL = f"""
WITH {TARGETS_SQL}
SELECT entity_code, count(*) FILTER (WHERE park_date <= $anchor) AS n, min(park_date) AS first_day
FROM targets GROUP BY entity_code
"""


@dataclass(frozen=True)
class ColdStart:
    """What the forecast workers need to blend (picklable): the global model's bytes and
    encodings, and per young entity its weight and attribute row."""

    version: int
    models: dict[str, bytes]
    encodings: dict
    weights: dict[str, float] = field(default_factory=dict)
    attributes: dict[str, dict] = field(default_factory=dict)

    def salt(self, entity: str) -> int:
        """A number folded into the entity's forecast fingerprint (0 for mature entities)."""
        w = self.weights.get(entity)
        return 0 if w is None else hash((self.version, round(w, 4))) & 0x7FFFFFFF

    def blend(self, entity: str, distinct: pd.DataFrame, own: np.ndarray,
              nthread: int | None = None,
              prepared: global_model.GlobalRows | None = None) -> np.ndarray:
        """`own` (one prediction per row of `distinct`) blended toward the global model.
        `prepared`: `self.prepare(distinct)`, shared by the entities of a chunk."""
        w = self.weights.get(entity)
        if w is None or len(distinct) == 0:
            return own
        if prepared is None:
            prepared = self.prepare(distinct, nthread)
        glob = prepared.predict(self.attributes[entity])
        return w * np.asarray(own, dtype=np.float64) + (1.0 - w) * glob

    def prepare(self, distinct: pd.DataFrame, nthread: int | None = None
                ) -> global_model.GlobalRows:
        """The global model parsed and `distinct` encoded once, for every entity of a chunk."""
        return global_model.GlobalRows(self, distinct, nthread)


def plan(conn: duckdb.DuckDBPyConnection, home: Path, entities: Sequence[str],
         as_of: date, weights_day: date | None = None) -> ColdStart | None:
    """The blend plan of `entities` as of `as_of`, their weights computed at `weights_day`
    (default as_of; the forecast passes its week's inputs day); None without a current global
    model or when no entity is young (then the forecast is exactly the per-entity one)."""
    root = global_model.global_root(home)
    if registry.current_version(root, global_model.GLOBAL_KEY) is None or not entities:
        return None
    day = as_of if weights_day is None else min(weights_day, as_of)
    params = target_params(entities, as_of) | {"anchor": day}
    del params["park_codes"], params["park_tzs"]  # the parks lookup is not in TARGETS_SQL
    hist = conn.execute(_HISTORY_SQL, params).df()
    weights = {}
    for code, n, first in zip(hist["entity_code"], hist["n"], hist["first_day"], strict=True):
        w = blend_weight((day - pd.Timestamp(first).date()).days, float(n))
        if w < 1.0:
            weights[str(code)] = w
    if not weights:
        return None
    attrs = conn.execute(f"""
        WITH {global_model.LEVELS_CTE.strip()}
        SELECT e.entity_code, any_value(e.park_code) AS park_code,
               any_value(e.queue_type) AS queue_type, any_value(lv.posted_level) AS posted_level,
               {", ".join(f"any_value(CAST(e.{c} AS DOUBLE)) AS {c}"
                          for c in global_model.ATTRIBUTE_NUMERIC if c != "posted_level")}
        FROM dim_entity e JOIN levels lv USING (entity_code)
        WHERE e.entity_code IN (SELECT unnest($codes::VARCHAR[]))
        GROUP BY e.entity_code
    """, {"codes": list(weights), "as_of": as_of, "posted": POSTED,
          "level_days": global_model.LEVEL_DAYS}).df()
    attributes = {str(r.pop("entity_code")): r for r in attrs.to_dict("records")}
    # no POSTED level (or not in dim_entity): the global model cannot scale it, keep the own model
    weights = {c: w for c, w in weights.items() if c in attributes}
    if not weights:
        return None
    loaded = registry.load_model(root, global_model.GLOBAL_KEY)
    return ColdStart(loaded.version, loaded.models, loaded.encodings, weights, attributes)
