"""Daily vs weekly anchor of the forecast's POSTED statistics, scored against what was observed.

    python -m bench.anchor_backtest                        # copy of /tmp/prof/home, D = Nov 2025
    python -m bench.anchor_backtest --home H --first 2025-11-03 --last 2025-11-30 --days 30
    python -m bench.anchor_backtest --band                 # + p10-p90 coverage on the Sundays

Issue 13: the forecast's POSTED statistics (`posted_aggregates`: recency-weighted POSTED medians,
w = 1 / (1 + days_ago / 365) as of the build day) are built as of `forecast_week.inputs_as_of(D)`
= the Sunday before the Monday of D's week (the WEEKLY anchor, stable all week). The DAILY
anchor is what the same rule gives with a one-day window: the window starts on D (today), its
inputs are read up to the day before, D - 1 (on a Monday both anchors are the same day; on a
Sunday the weekly one is 6 days older). Also scored: SAME_DAY, inputs as of D itself, what
the forecast did before the weekly anchor (commit 93aa45a's parent built the table as of D).

Method, on a COPY of an existing home's warehouse (the source home is only read, by the copy):
1. Observations: every POSTED (minutes not null) of park dates first+1 .. last+days, matched to
   its forecast slot as `backtest.SCORED_SQL` does (epoch rounded to 5 minutes; the slot must
   exist in `dim_park_hours`' slots, `slots.slots_cte_sql`, else the observation has no slot
   and is not scored), keyed as the forecast keys that slot: ISO weekday of the slot's park
   date, local hour of the slot start in the park's zone.
2. For every anchor day A that some D uses, `posted_aggregates.build_posted_aggregates(conn, A)`
   (one writer connection at a time, `warehouse.writer`), then the forecast's own lookup
   (`posted_aggregates.lookup_cte_sql`, PRIORITY entities never falling back to their park, as
   `forecast.posted_values`) answers posted_predicted for every distinct observation key; the
   answers are kept per A. A build serves every D that uses it (the weekly anchor is the same
   day for a whole week, the daily anchor of D is the same-day anchor of D - 1).
3. For every as-of day D in first..last, the observations of park dates D+1 .. D+days of the
   entities with facts up to D (those the forecast writes a file for) are scored: absolute
   error of posted_predicted (rounded to 5 minutes, as in the forecast file) per anchor, on the
   observations where every anchor and the naive baseline answer (the same rows for all). The
   naive baseline is `backtest.py`'s: median POSTED by entity, ISO day of week and half hour of
   the park-day clock over park_date <= D, falling back to the entity's median.
MAE is pooled over (D, observation) pairs; the per-D, per-week, per-weekday (age of the weekly
anchor) and per-lead-day MAEs are beside it, and the share of scored observations where the
daily and weekly posted_predicted differ (how many forecast values a daily anchor would change).

The band (--band; the models themselves do not depend on the anchor, they are trained as of D):
on the --band-days (default: the Sundays of first..last, where the two anchors are furthest
apart) every STANDBY entity with targets up to D is trained as of D (`training.train_entity`,
nthread 1), its band fitted (`band.fit_band`) on its training rows up to each anchor day (the
rows of `build_training_frame` as of D with park_date <= A: what fit_band reads of them, y,
observed_at and the without-POSTED features, does not depend on the frame's as-of date), and
the p10-p90 coverage of every observed ACTUAL of D+1 .. D+days matched to its slot is compared
(`forecast.forecast_frame`'s rounding: actual_predicted, p10, p90 to 0.1 minute).

Output: a table on stdout and bench/out/anchor_backtest_{stamp}.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bambam_assets.lib.core import warehouse
from bambam_assets.lib.core.forecast_week import inputs_as_of, week_start
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.core.schema import ACTUAL, POSTED
from bambam_assets.lib.forecasts.backtest import _LOCAL_HALF_HOUR
from bambam_assets.lib.forecasts.band import apply_band, fit_band
from bambam_assets.lib.forecasts.posted_aggregates import (
    LOOKUP_LEVELS,
    build_posted_aggregates,
    lookup_cte_sql,
)
from bambam_assets.lib.forecasts.slots import SLOT_SECONDS, slots_cte_sql
from bambam_assets.lib.models import training
from bambam_assets.lib.models.features import (
    FEATURES_WITHOUT_POSTED,
    build_training_frame,
    feature_ctes_sql,
    park_params,
)
from bench.report import OUT_DIR

DEFAULT_HOME = Path("/tmp/prof/home")
DEFAULT_FIRST, DEFAULT_LAST, DEFAULT_DAYS = date(2025, 11, 3), date(2025, 11, 30), 30

# anchor name -> the day its POSTED statistics are built as of, for an as-of day D
ANCHORS: dict[str, Callable[[date], date]] = {
    "daily": lambda d: d - timedelta(days=1),
    "weekly": inputs_as_of,
    "same_day": lambda d: d,
}
ANCHOR_DOC = {
    "daily": "D - 1 (the forecast_week rule with a one-day window starting on D)",
    "weekly": "forecast_week.inputs_as_of(D): the Sunday before the Monday of D's week",
    "same_day": "D (the forecast before the weekly anchor)",
}
LEAD_BUCKETS = ((1, 7), (8, 14), (15, 30))

_PARKS = """(SELECT unnest($park_codes::VARCHAR[]) AS park_code,
                    unnest($park_tzs::VARCHAR[]) AS tz)"""

# observations of one kind matched to their forecast slot (NULL hour: no slot, not scored)
_OBS_SQL = f"""
CREATE OR REPLACE TABLE {{table}} AS
WITH parks AS {_PARKS},
hours AS (SELECT * FROM dim_park_hours WHERE park_date BETWEEN $lo - 1 AND $hi + 1),
{slots_cte_sql("hours")},
obs AS (
    SELECT o.entity_code, o.park_code, o.park_date, o.observed_at, p.tz,
           CAST(o.wait_time_minutes AS DOUBLE) AS y, isodow(o.park_date) AS dow,
           {_LOCAL_HALF_HOUR} AS half_hour,
           to_timestamp(round(epoch(o.observed_at) / {SLOT_SECONDS}) * {SLOT_SECONDS})
               AS slot_start
    FROM fct_wait_times o JOIN parks p USING (park_code)
    WHERE o.wait_time_type = $kind AND o.wait_time_minutes IS NOT NULL
      AND o.park_date BETWEEN $lo AND $hi {{extra}}
)
SELECT o.* EXCLUDE (tz), s.park_date AS slot_park_date, c.date_group_id,
       isodow(s.park_date) AS day_of_week,
       CASE WHEN s.slot_start IS NOT NULL THEN hour(timezone(o.tz, o.slot_start)) END AS hour
FROM obs o
LEFT JOIN slots s ON s.park_code = o.park_code AND s.slot_start = o.slot_start
LEFT JOIN dim_calendar c ON c.park_date = s.park_date
"""

_LOOKUP_TABLE = "_anchor_lookup"
_KEYS_TABLE = "_anchor_keys"
_POSTED_OBS = "_anchor_posted_obs"
_ACTUAL_OBS = "_anchor_actual_obs"


def _lookup_sql() -> str:
    return f"""
    INSERT INTO {_LOOKUP_TABLE}
    WITH {lookup_cte_sql(_KEYS_TABLE)}
    SELECT $anchor::DATE, entity_code, park_code, day_of_week, hour, posted_predicted,
           posted_level
    FROM posted_lookup
    """


def _score_sql(anchors: list[str]) -> str:
    joins = "\n".join(
        f"LEFT JOIN {_LOOKUP_TABLE} l_{a} ON l_{a}.anchor = ${a} "
        f"AND l_{a}.entity_code = o.entity_code "
        f"AND l_{a}.day_of_week = o.day_of_week AND l_{a}.hour = o.hour"
        for a in anchors)
    preds = ", ".join(f"l_{a}.posted_predicted AS p_{a}" for a in anchors)
    levels = ", ".join(f"l_{a}.posted_level AS lv_{a}" for a in anchors)
    sums = ", ".join(f"sum(abs(y - p_{a})) FILTER (WHERE ok) AS abs_{a}, "
                     f"sum(p_{a} - y) FILTER (WHERE ok) AS bias_{a}" for a in anchors)
    answered = " AND ".join(f"p_{a} IS NOT NULL" for a in anchors)
    return f"""
    WITH parks AS {_PARKS},
    hist AS (
        SELECT o.entity_code, isodow(o.park_date) AS dow, {_LOCAL_HALF_HOUR} AS half_hour,
               CAST(o.wait_time_minutes AS DOUBLE) AS y
        FROM fct_wait_times o JOIN parks p USING (park_code)
        WHERE o.wait_time_type = $posted AND o.wait_time_minutes IS NOT NULL
          AND o.park_date <= $d
    ),
    naive AS (SELECT entity_code, dow, half_hour, median(y) AS naive FROM hist GROUP BY ALL),
    naive_entity AS (SELECT entity_code, median(y) AS naive FROM hist GROUP BY ALL),
    ents AS (SELECT DISTINCT entity_code FROM fct_wait_times WHERE park_date <= $d),
    obs AS (
        SELECT o.*, date_diff('day', $d::DATE, o.park_date) AS lead, {preds}, {levels},
               coalesce(n.naive, ne.naive) AS naive,
               ({answered} AND coalesce(n.naive, ne.naive) IS NOT NULL) AS ok
        FROM {_POSTED_OBS} o
        JOIN ents USING (entity_code)
        {joins}
        LEFT JOIN naive n ON n.entity_code = o.entity_code AND n.dow = o.dow
            AND n.half_hour = o.half_hour
        LEFT JOIN naive_entity ne ON ne.entity_code = o.entity_code
        WHERE o.park_date > $d AND o.park_date <= $last
    )
    SELECT lead, count(*) AS observed,
           count(*) FILTER (WHERE hour IS NOT NULL) AS with_slot,
           count(*) FILTER (WHERE ok) AS n,
           {sums}, sum(abs(y - naive)) FILTER (WHERE ok) AS abs_naive,
           sum(y) FILTER (WHERE ok) AS sum_y,
           count(*) FILTER (WHERE ok AND p_daily <> p_weekly) AS changed,
           count(*) FILTER (WHERE ok AND lv_daily = '{LOOKUP_LEVELS[0]}') AS top_level_daily,
           count(*) FILTER (WHERE ok AND lv_weekly = '{LOOKUP_LEVELS[0]}') AS top_level_weekly,
           count(*) FILTER (WHERE ok AND lv_daily IS DISTINCT FROM lv_weekly) AS level_differs,
           coalesce(sum(abs(y - p_weekly) - abs(y - p_daily))
                    FILTER (WHERE ok AND lv_daily IS DISTINCT FROM lv_weekly), 0)
               AS gap_level_differs
    FROM obs
    GROUP BY lead ORDER BY lead
    """


def copy_home(source: Path, workdir: Path) -> Path:
    """A fresh home under `workdir` holding a copy of `source`'s warehouse (nothing else is
    read: models are trained here when needed, curves are not used)."""
    src = HomePaths(source).warehouse
    if not src.exists():
        raise SystemExit(f"no warehouse at {src}")
    home = workdir / "home"
    home.mkdir(parents=True)
    shutil.copy2(src, HomePaths(home).warehouse)
    return home


def prepare(home: Path, first: date, last: date, days: int) -> dict:
    """Observation tables (POSTED and ACTUAL of first+1 .. last+days) and the distinct keys."""
    lo, hi = first + timedelta(days=1), last + timedelta(days=days)
    with warehouse.writer(home) as conn:
        params = {**park_params(), "lo": lo, "hi": hi}
        conn.execute(_OBS_SQL.format(table=_POSTED_OBS, extra=""), {**params, "kind": POSTED})
        conn.execute(_OBS_SQL.format(
            table=_ACTUAL_OBS,
            extra="AND o.entity_code IN (SELECT entity_code FROM dim_entity "
                  "WHERE queue_type = 'STANDBY')"), {**params, "kind": ACTUAL})
        conn.execute(f"""CREATE OR REPLACE TABLE {_KEYS_TABLE} AS
            SELECT DISTINCT entity_code, park_code, day_of_week, hour
            FROM {_POSTED_OBS} WHERE hour IS NOT NULL""")
        conn.execute(f"""CREATE OR REPLACE TABLE {_LOOKUP_TABLE} (anchor DATE,
            entity_code VARCHAR, park_code VARCHAR, day_of_week BIGINT, hour BIGINT,
            posted_predicted DOUBLE, posted_level VARCHAR)""")
        facts_end = conn.execute("SELECT max(park_date) FROM fct_wait_times").fetchone()[0]
        counts = conn.execute(f"""SELECT
            (SELECT count(*) FROM {_POSTED_OBS}), (SELECT count(*) FROM {_KEYS_TABLE}),
            (SELECT count(*) FROM {_ACTUAL_OBS})""").fetchone()
    return {"observations_from": str(lo), "observations_to": str(hi),
            "facts_end": str(facts_end), "posted_observations": counts[0],
            "distinct_keys": counts[1], "actual_observations": counts[2]}


def build_anchor(home: Path, anchor: date) -> dict:
    """posted_aggregates as of `anchor`, then posted_predicted for every key, kept per anchor."""
    with warehouse.writer(home) as conn:
        started = time.perf_counter()
        levels = build_posted_aggregates(conn, anchor)
        built = time.perf_counter()
        priority = [r[0] for r in conn.execute(
            "SELECT entity_code FROM dim_entity WHERE queue_type = 'PRIORITY'").fetchall()]
        conn.execute(_lookup_sql(), {"anchor": anchor, "no_park_level": priority})
        done = time.perf_counter()
    return {"anchor": str(anchor), "rows": sum(levels.values()),
            "build_s": round(built - started, 2), "lookup_s": round(done - built, 2)}


def score_day(conn, d: date, days: int, anchors: list[str]) -> pd.DataFrame:
    """Per lead day (1..days) of as-of day D: observation counts and error sums per anchor."""
    params = {**park_params(), "d": d, "last": d + timedelta(days=days), "posted": POSTED,
              **{a: ANCHORS[a](d) for a in anchors}}
    frame = conn.execute(_score_sql(anchors), params).df()
    return frame.assign(d=d)


def _mae(rows: pd.DataFrame, name: str) -> float | None:
    n = rows["n"].sum()
    return round(float(rows[f"abs_{name}"].sum() / n), 4) if n else None


def summarize(per_lead: pd.DataFrame, anchors: list[str]) -> dict:
    """Pooled, per-D, per-week, per-weekday and per-lead MAEs from the per-(D, lead) sums."""
    names = [*anchors, "naive"]

    def block(rows: pd.DataFrame) -> dict:
        n = int(rows["n"].sum())
        out = {"n": n, **{f"mae_{a}": _mae(rows, a) for a in names}}
        out["weekly_vs_daily_pct"] = (round((out["mae_weekly"] / out["mae_daily"] - 1) * 100, 3)
                                      if n else None)
        out["changed_share"] = round(float(rows["changed"].sum() / n), 4) if n else None
        out["weekly_minus_daily"] = (round(out["mae_weekly"] - out["mae_daily"], 4) if n
                                     else None)
        # the part of it from observations whose lookup answered at another fallback level
        # (typically: a date group first seen between the weekly and the daily anchor)
        out["level_differs_share"] = (round(float(rows["level_differs"].sum() / n), 5) if n
                                      else None)
        out["weekly_minus_daily_from_level_change"] = (
            round(float(rows["gap_level_differs"].sum() / n), 4) if n else None)
        for a in anchors:
            out[f"bias_{a}"] = round(float(rows[f"bias_{a}"].sum() / n), 4) if n else None
        return out

    pooled = block(per_lead)
    pooled.update({
        "observed": int(per_lead["observed"].sum()),
        "with_slot": int(per_lead["with_slot"].sum()),
        "mean_observed_posted": round(float(per_lead["sum_y"].sum() / per_lead["n"].sum()), 3),
        "top_level_share_daily": round(float(per_lead["top_level_daily"].sum()
                                             / per_lead["n"].sum()), 4),
        "top_level_share_weekly": round(float(per_lead["top_level_weekly"].sum()
                                              / per_lead["n"].sum()), 4),
    })
    per_day = []
    for d, rows in per_lead.groupby("d", sort=True):
        per_day.append({"d": str(d), "weekday": d.strftime("%a"),
                        "weekly_anchor": str(inputs_as_of(d)),
                        "weekly_age_days": (d - inputs_as_of(d)).days, **block(rows)})
    per_week = [{"week_of": str(w), **block(rows)}
                for w, rows in per_lead.groupby(per_lead["d"].map(week_start), sort=True)]
    per_age = [{"weekly_age_days": int(age), **block(rows)}
               for age, rows in per_lead.groupby(
                   per_lead["d"].map(lambda d: (d - inputs_as_of(d)).days), sort=True)]
    per_lead_bucket = [{"lead_days": f"{lo}-{hi}",
                        **block(per_lead[(per_lead["lead"] >= lo) & (per_lead["lead"] <= hi)])}
                       for lo, hi in LEAD_BUCKETS]
    diffs = [r["mae_weekly"] - r["mae_daily"] for r in per_day if r["n"]]
    spread = {
        "per_day_weekly_minus_daily_mean": round(statistics.mean(diffs), 4),
        "per_day_weekly_minus_daily_sd": round(statistics.stdev(diffs), 4) if len(diffs) > 1
        else None,
        "per_day_weekly_minus_daily_min": round(min(diffs), 4),
        "per_day_weekly_minus_daily_max": round(max(diffs), 4),
        "days_daily_better": sum(x > 0 for x in diffs),
        "days_weekly_better": sum(x < 0 for x in diffs),
        "days_equal": sum(x == 0 for x in diffs),
    }
    return {"pooled": pooled, "spread": spread, "per_day": per_day, "per_week": per_week,
            "per_weekly_age": per_age, "per_lead": per_lead_bucket}


# ---- the band (--band) ---------------------------------------------------------------------

_ACTUAL_FEATURES_SQL = f"""
WITH base AS (
    SELECT entity_code, park_code, slot_park_date AS park_date, slot_start AS observed_at,
           park_date AS obs_park_date, y
    FROM {_ACTUAL_OBS} WHERE hour IS NOT NULL
),
{feature_ctes_sql("base")}
SELECT entity_code, obs_park_date, y, observed_at,
       {", ".join(FEATURES_WITHOUT_POSTED)}
FROM featured
"""


def band_day(home: Path, d: date, days: int, anchors: list[str], obs: pd.DataFrame,
             log=print) -> dict:
    """Train every STANDBY entity as of D, fit its band on the rows up to each anchor day and
    score the p10-p90 coverage of the observed ACTUAL of D+1 .. D+days."""
    started = time.perf_counter()
    with warehouse.reader(home, heavy=True) as conn:
        codes = [r[0] for r in conn.execute("""
            SELECT DISTINCT f.entity_code FROM fct_wait_times f JOIN dim_entity e
                USING (entity_code)
            WHERE e.queue_type = 'STANDBY' AND f.wait_time_type = $actual
              AND f.park_date <= $d""", {"actual": ACTUAL, "d": d}).fetchall()]
        frame = build_training_frame(conn, codes, d)
    read_s = time.perf_counter() - started
    window = obs[(obs["obs_park_date"] > pd.Timestamp(d))
                 & (obs["obs_park_date"] <= pd.Timestamp(d + timedelta(days=days)))]
    hits = {a: 0 for a in anchors}
    width = {a: 0.0 for a in anchors}
    n = 0
    train_s = 0.0
    by_entity = dict(tuple(frame.groupby("entity_code", sort=True)))
    for code, test in window.groupby("entity_code", sort=True):
        rows = by_entity.get(code)
        if rows is None or not len(rows):
            continue
        t0 = time.perf_counter()
        model = training.train_entity(rows, "STANDBY", nthread=1)
        train_s += time.perf_counter() - t0
        pred = np.round(training.predict(model, test, with_posted=False, nthread=1), 1)
        hours = test["local_hour"].to_numpy(float)
        y = test["y"].to_numpy(float)
        n += len(test)
        for a in anchors:
            fit_rows = rows[rows["park_date"] <= pd.Timestamp(ANCHORS[a](d))]
            band = fit_band(model, fit_rows)
            p10, p90 = apply_band(band, pred, hours)
            p10, p90 = np.round(p10, 1), np.round(p90, 1)
            hits[a] += int(((y >= p10) & (y <= p90)).sum())
            width[a] += float(np.nansum(p90 - p10))
    out = {"d": str(d), "entities": len(by_entity), "n": n,
           **{f"hits_{a}": hits[a] for a in anchors},
           **{f"coverage_{a}": round(hits[a] / n, 4) if n else None for a in anchors},
           **{f"mean_width_{a}": round(width[a] / n, 3) if n else None for a in anchors},
           "read_s": round(read_s, 1), "train_s": round(train_s, 1),
           "seconds": round(time.perf_counter() - started, 1)}
    log(f"  band D={d}: n={n} " + " ".join(f"{a}={out[f'coverage_{a}']}" for a in anchors)
        + f" ({out['seconds']}s)")
    return out


def pool_band(band: list[dict], anchors: list[str]) -> dict:
    """Coverage and mean width over every band day's ACTUAL."""
    n = sum(r["n"] for r in band)
    out: dict = {"d": "pooled", "n": n}
    for a in anchors:
        out[f"coverage_{a}"] = round(sum(r[f"hits_{a}"] for r in band) / n, 4) if n else None
        out[f"mean_width_{a}"] = (round(sum(r[f"mean_width_{a}"] * r["n"] for r in band) / n, 3)
                                  if n else None)
    return out


# ---- main ----------------------------------------------------------------------------------

def _f(x, fmt=".3f") -> str:
    return "-" if x is None else format(x, fmt)


def print_report(rep: dict, anchors: list[str], echo=print) -> None:
    s = rep["summary"]
    p = s["pooled"]
    echo("")
    echo(f"POSTED MAE (minutes) by anchor of the POSTED statistics, as-of days "
         f"{rep['first']}..{rep['last']}, next {rep['days']} days each")
    cols = [f"mae_{a}" for a in [*anchors, "naive"]]
    head = ["rows", "n", *[c.removeprefix("mae_") for c in cols], "wk/dy %", "changed"]
    echo("  ".join(f"{h:>10}" for h in head))

    def line(label: str, r: dict) -> str:
        vals = [label, f"{r['n']:,}", *[_f(r[c]) for c in cols],
                _f(r["weekly_vs_daily_pct"], "+.2f"), _f(r["changed_share"], ".1%")]
        return "  ".join(f"{v:>10}" for v in vals)

    for r in s["per_day"]:
        echo(line(f"{r['d'][5:]} {r['weekday']}", r))
    for r in s["per_week"]:
        echo(line(f"wk {r['week_of'][5:]}", r))
    for r in s["per_weekly_age"]:
        echo(line(f"age {r['weekly_age_days']}d", r))
    for r in s["per_lead"]:
        echo(line(f"lead {r['lead_days']}", r))
    echo(line("POOLED", p))
    sp = s["spread"]
    echo(f"weekly - daily MAE {p['weekly_minus_daily']} min, of which "
         f"{p['weekly_minus_daily_from_level_change']} from the "
         f"{p['level_differs_share']:.2%} of observations answered at another fallback level; "
         f"answered at {LOOKUP_LEVELS[0]}: daily {p['top_level_share_daily']:.1%}, weekly "
         f"{p['top_level_share_weekly']:.1%}")
    echo(f"observations: {p['observed']:,} (D, obs) pairs, {p['with_slot']:,} with a slot, "
         f"{p['n']:,} scored (every anchor and the naive answer); mean observed POSTED "
         f"{p['mean_observed_posted']} min; bias daily {p['bias_daily']} weekly "
         f"{p['bias_weekly']}")
    echo(f"per-D weekly - daily MAE: mean {sp['per_day_weekly_minus_daily_mean']}, sd "
         f"{sp['per_day_weekly_minus_daily_sd']}, range [{sp['per_day_weekly_minus_daily_min']}, "
         f"{sp['per_day_weekly_minus_daily_max']}]; daily better on "
         f"{sp['days_daily_better']} days, weekly on {sp['days_weekly_better']}, equal on "
         f"{sp['days_equal']}")
    if rep.get("band"):
        for r in [*rep["band"], rep["band_pooled"]]:
            echo(f"band D={r['d']}: {r['n']:,} ACTUAL, p10-p90 coverage "
                 + ", ".join(f"{a} {_f(r[f'coverage_{a}'], '.4f')}" for a in anchors)
                 + "; mean width " + ", ".join(f"{a} {_f(r[f'mean_width_{a}'], '.2f')}"
                                               for a in anchors))
    echo(f"builds: {len(rep['builds'])} anchor days, "
         f"{sum(b['build_s'] for b in rep['builds']):.0f}s building, "
         f"{sum(b['lookup_s'] for b in rep['builds']):.0f}s looking up; scoring "
         f"{rep['timings']['score_s']}s; total {rep['timings']['total_s']}s")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=DEFAULT_HOME,
                    help="home whose warehouse is copied (never written)")
    ap.add_argument("--first", type=date.fromisoformat, default=DEFAULT_FIRST,
                    help="first as-of day D")
    ap.add_argument("--last", type=date.fromisoformat, default=DEFAULT_LAST,
                    help="last as-of day D")
    ap.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days scored after each D")
    ap.add_argument("--band", action="store_true",
                    help="also score the p10-p90 band's coverage (trains models as of D)")
    ap.add_argument("--band-days", default=None,
                    help="comma-separated as-of days for --band (default: the Sundays)")
    ap.add_argument("--workdir", type=Path, default=None, help="default: a temp folder")
    ap.add_argument("--keep", action="store_true", help="keep the copied home")
    args = ap.parse_args(argv)
    if args.last < args.first or args.days < 1:
        ap.error("need first <= last and days >= 1")
    anchors = list(ANCHORS)
    started = time.perf_counter()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="anchor_backtest_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        home = copy_home(args.home, workdir)
        days = [args.first + timedelta(days=i) for i in range((args.last - args.first).days + 1)]
        info = prepare(home, args.first, args.last, args.days)
        print(f"copied {args.home} -> {home}; {info}", flush=True)
        if date.fromisoformat(info["facts_end"]) < args.last + timedelta(days=args.days):
            print(f"WARNING: facts end {info['facts_end']}, before the last scored day "
                  f"{args.last + timedelta(days=args.days)}", flush=True)
        anchor_days = sorted({ANCHORS[a](d) for d in days for a in anchors})
        builds = []
        for a_day in anchor_days:
            builds.append(build_anchor(home, a_day))
            print(f"  built as of {a_day}: {builds[-1]}", flush=True)
        t0 = time.perf_counter()
        with warehouse.reader(home, heavy=True) as conn:
            per_lead = pd.concat([score_day(conn, d, args.days, anchors) for d in days],
                                 ignore_index=True)
        score_s = round(time.perf_counter() - t0, 1)
        band = band_pooled = None
        if args.band:
            band_days = ([date.fromisoformat(x) for x in args.band_days.split(",")]
                         if args.band_days else [d for d in days if d.weekday() == 6])
            with warehouse.reader(home) as conn:
                obs = conn.execute(_ACTUAL_FEATURES_SQL, park_params()).df()
            obs["obs_park_date"] = pd.to_datetime(obs["obs_park_date"])
            band = [band_day(home, d, args.days, anchors, obs) for d in band_days]
            band_pooled = pool_band(band, anchors)
        rep = {
            "source_home": str(args.home), "first": str(args.first), "last": str(args.last),
            "days": args.days, "anchors": ANCHOR_DOC,
            "prepare": info, "builds": builds, "summary": summarize(per_lead, anchors),
            "band": band, "band_pooled": band_pooled,
            "per_lead_rows": per_lead.assign(d=per_lead["d"].astype(str))
            .to_dict(orient="records"),
            "timings": {"score_s": score_s,
                        "total_s": round(time.perf_counter() - started, 1)},
        }
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print_report(rep, anchors)
    OUT_DIR.mkdir(exist_ok=True)
    out = OUT_DIR / f"anchor_backtest_{time.strftime('%Y%m%d_%H%M%S')}.json"
    out.write_text(json.dumps(rep, indent=1, default=str))
    print(f"report: {out}")
    return rep


if __name__ == "__main__":
    main()
