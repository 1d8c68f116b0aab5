"""Post-hoc forecast levers rescored on kept backtest homes (issue 14). Data credit:
TouringPlans.com.

    python -m bench.real_backtest --work W          # once: runs the pipeline, keeps the homes
    python -m bench.rescore_levers --work W         # then: each lever's pooled 60-day gain

Each lever changes only the values already in the forecast files of the homes `bench.real_backtest`
left under W (one per as-of date), so every lever is compared on the same models, with no
XGBoost seed noise and no pipeline run. Scored exactly as the backtest scores (its
`scored_observations`: observations of the next 60 days, above 300 minutes dropped, a missing
forecast counted as the naive value), the gain being 1 - MAE / naive MAE, pooled, per kind:

- `yoy` (alpha, days): each ride's forecast times factor ** alpha, with factor = (the POSTED mean
  of the 364-day-earlier window of the forecast's days x the ride's year-over-year POSTED growth
  over the last `days` days) / the forecast's POSTED mean on the same weekday-and-half-hour
  cells, clipped to 0.67..1.5; rides without 500 POSTED in each window keep factor 1. What it
  asks: does the last weeks' level shift carry into the next 60 days?
- `chain` (w): ACTUAL = w x the forecast + (1 - w) x the POSTED forecast at the slot x the
  ride's ACTUAL/POSTED ratio over the last 365 days (ACTUALs with a POSTED within 10 minutes).
- `naive` (w): w x the forecast + (1 - w) x the naive baseline itself, both kinds.

w = 1 and alpha = 0 are the forecast as it is (the backtest's own figures).
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import pandas as pd

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.core.schema import ACTUAL, POSTED
from bambam_assets.lib.forecasts import backtest
from bambam_assets.lib.forecasts import backtest_detail as bd
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.models.features import park_params

CAP = 300.0
DAYS = 60
MIN_ROWS = 500
YOY_CLIP = (0.67, 1.5)
YOY = [(a, d) for d in (28, 56, 91) for a in (0.3, 0.5, 1.0)]
WEIGHTS = (0.9, 0.8, 0.7)

_CELL = ("(((hour(timezone(p.tz, {t})) - 6) * 60 + minute(timezone(p.tz, {t})) + 1440) % 1440)"
         " // 30")
# Per ride: POSTED means of the last $nd days (now_m), of the same days a year (364 days, same
# weekdays) earlier (ago_m), and of the forecast window a year earlier against the forecast on
# the same (weekday, half hour) cells, weighted by the year-earlier counts (ahead_m, fc_m).
_YOY_SQL = f"""
WITH parks AS (SELECT unnest($park_codes::VARCHAR[]) AS park_code,
                      unnest($park_tzs::VARCHAR[]) AS tz),
o AS (SELECT o.entity_code, o.park_date, isodow(o.park_date) AS dow,
             {_CELL.format(t="o.observed_at")} AS hh, CAST(o.wait_time_minutes AS DOUBLE) AS y
      FROM fct_wait_times o JOIN parks p USING (park_code)
      WHERE o.wait_time_type = $posted AND o.wait_time_minutes <= $cap
        AND o.park_date <= $d),
now_ AS (SELECT entity_code, avg(y) AS now_m, count(*) AS now_n FROM o
         WHERE park_date > $d - $nd AND park_date <= $d GROUP BY 1),
ago AS (SELECT entity_code, avg(y) AS ago_m, count(*) AS ago_n FROM o
        WHERE park_date > $d - $nd - 364 AND park_date <= $d - 364 GROUP BY 1),
ahead AS (SELECT entity_code, dow, hh, avg(y) AS m, count(*) AS n FROM o
          WHERE park_date > $d - 364 AND park_date <= $d + $days - 364 GROUP BY ALL),
fc AS (SELECT f.entity_code, isodow(f.park_date) AS dow, {_CELL.format(t="f.slot_start")} AS hh,
              avg(f.posted_predicted) AS m
       FROM read_parquet($glob, hive_partitioning = true) f
       JOIN dim_entity e USING (entity_code) JOIN parks p ON p.park_code = e.park_code
       WHERE f.park_date > $d AND f.park_date <= $d + $days AND f.posted_predicted IS NOT NULL
       GROUP BY ALL),
lv AS (SELECT a.entity_code, sum(a.n * a.m) / sum(a.n) AS ahead_m,
              sum(a.n * f.m) / sum(a.n) AS fc_m, sum(a.n) AS ahead_n
       FROM ahead a JOIN fc f USING (entity_code, dow, hh) GROUP BY 1)
SELECT entity_code, ahead_m * now_m / ago_m / fc_m AS factor
FROM lv JOIN now_ USING (entity_code) JOIN ago USING (entity_code)
WHERE now_n >= $min_rows AND ago_n >= $min_rows AND ahead_n >= $min_rows AND fc_m > 0
  AND ago_m > 0
"""
# Per ride: sum of ACTUAL / sum of the mean POSTED within 10 minutes of it, last 365 days.
_RATIO_SQL = """
WITH a AS (SELECT entity_code, observed_at, CAST(wait_time_minutes AS DOUBLE) AS y
           FROM fct_wait_times WHERE wait_time_type = $actual AND wait_time_minutes <= $cap
             AND park_date > $d - 365 AND park_date <= $d),
p AS (SELECT entity_code, observed_at, CAST(wait_time_minutes AS DOUBLE) AS y
      FROM fct_wait_times WHERE wait_time_type = $posted AND wait_time_minutes IS NOT NULL
        AND park_date > $d - 366 AND park_date <= $d),
pair AS (SELECT a.entity_code, a.y AS ya, avg(p.y) AS yp FROM a JOIN p
         ON p.entity_code = a.entity_code
         AND p.observed_at BETWEEN a.observed_at - INTERVAL 10 MINUTE
                               AND a.observed_at + INTERVAL 10 MINUTE
         GROUP BY a.entity_code, a.observed_at, a.y)
SELECT entity_code, sum(ya) / sum(yp) AS ratio FROM pair GROUP BY 1 HAVING sum(yp) > 0
"""


def _gains(scored: pd.DataFrame, pred: pd.Series) -> dict[str, float]:
    """Pooled filled-MAE gain per kind of `pred` in place of the forecast, scored by the
    backtest's own summary (backtest_detail.with_fill, summary_table)."""
    table = bd.summary_table(bd.with_fill(scored.assign(pred=pred)), by_entity=False)
    return dict(zip(table["kind"], table["gain_pct"], strict=True))


def rescore_home(home: Path, as_of: date) -> list[dict]:
    """Every lever's pooled gains on one kept home (rows: lever, setting, kind, gain)."""
    glob = curve_files.glob_of(home, curve_files.FORECASTS_DIR)
    with wh.reader(home) as conn:
        scored = backtest.scored_observations(conn, home, as_of, DAYS)
        base = {**park_params(), "d": as_of, "days": DAYS, "cap": CAP, "posted": POSTED,
                "min_rows": MIN_ROWS, "glob": glob}
        factors = {nd: conn.execute(_YOY_SQL, base | {"nd": nd}).df() for nd in {d for _, d in YOY}}
        ratio = conn.execute(_RATIO_SQL, {"d": as_of, "cap": CAP, "actual": ACTUAL,
                                          "posted": POSTED}).df()
        posted_fc = conn.execute(
            "SELECT entity_code, slot_start, posted_predicted FROM read_parquet($glob, "
            "hive_partitioning = true) WHERE park_date > $d AND park_date <= $d + $days",
            {"glob": glob, "d": as_of, "days": DAYS}).df()
    scored, _ = bd.drop_above_cap(scored, CAP)
    rows = [{"lever": "as is", "setting": "", **_gains(scored, scored["pred"])}]
    for alpha, nd in YOY:
        f = factors[nd]
        factor = scored["entity_code"].map(
            dict(zip(f["entity_code"], f["factor"].clip(*YOY_CLIP), strict=True))).fillna(1.0)
        rows.append({"lever": "yoy", "setting": f"alpha {alpha}, {nd} d",
                     **_gains(scored, scored["pred"] * factor ** alpha)})
    # the POSTED forecast at each observation's slot (the forecast's 5-minute grid)
    slot = pd.to_datetime(scored["observed_at"]).dt.round("5min")
    at = scored[["entity_code"]].assign(slot_start=slot).merge(
        posted_fc, on=["entity_code", "slot_start"], how="left")["posted_predicted"]
    chained = at * scored["entity_code"].map(
        dict(zip(ratio["entity_code"], ratio["ratio"], strict=True)))
    is_actual = scored["kind"] == ACTUAL
    for w in WEIGHTS:
        mixed = (w * scored["pred"] + (1 - w) * chained).fillna(scored["pred"])
        rows.append({"lever": "chain", "setting": f"w {w}",
                     **_gains(scored, scored["pred"].where(~is_actual, mixed))})
        rows.append({"lever": "naive", "setting": f"w {w}",
                     **_gains(scored, w * scored["pred"] + (1 - w) * scored["naive"])})
    return [r | {"as_of": as_of.isoformat()} for r in rows]


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True,
                        help="the --work of a bench.real_backtest run (its homes are kept)")
    args = parser.parse_args(argv)
    rows = []
    for out_dir in sorted(p for p in args.work.iterdir() if (p / "home").is_dir()):
        rows += rescore_home(out_dir / "home", date.fromisoformat(out_dir.name))
    table = pd.DataFrame(rows).melt(id_vars=["lever", "setting", "as_of"],
                                    value_vars=[ACTUAL, POSTED], var_name="kind",
                                    value_name="gain")
    # the chain lever changes ACTUAL only: its POSTED rows would repeat "as is"
    table = table[~((table["lever"] == "chain") & (table["kind"] == POSTED))]
    wide = table.pivot_table(index=["kind", "lever", "setting"], columns="as_of",
                             values="gain", sort=False).round(1)
    print(f"Pooled 60-day gain over the naive, % (kept homes under {args.work}). "
          "Data credit: TouringPlans.com\n")
    print(wide.to_markdown())
    return wide


if __name__ == "__main__":
    main()
