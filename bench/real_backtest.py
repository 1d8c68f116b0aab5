"""Real-data backtest (issue 14): Bambam's forecast against the naive baseline on TouringPlans'
Animal Kingdom data, 2015-2021. Data credit: TouringPlans.com.

    python -m bench.real_backtest                              # all seven as-of dates
    python -m bench.real_backtest --as-of 2017-06-30,2019-06-30
    python -m bench.real_backtest --reuse                      # rescore the kept scratch homes

For each as-of date D, `cli.backtest.run_backtest` runs the whole pipeline ONCE as of D in a
scratch home (`--work`/D/home, outside the repository) on the raw source (`--raw`, default the
shared dev set, read in place, never copied): ingest of every raw row, but each step sees only
park dates <= D; a 60-day forecast; a 30-day backfill (so the WTI has the days before D). Then
`backtest.scored_observations` matches every observed ACTUAL (STANDBY entities) and POSTED of park
dates D+1 .. D+60 to its forecast slot and to the naive baseline (median by entity, ISO weekday
and half hour over park_date <= D, else the entity's median), and `backtest_detail` scores the
next 28 and 60 days:

- observations above --cap minutes (default 300) are dropped from scoring and counted (the ingest
  already rejects values outside 0..1000 minutes, e.g. the 4,338 and 47,897 minute actuals: they
  are in `fct_rejected_rows`, never in the facts; a posted -999 is stored as CLOSED, not a wait);
- per entity and pooled, ACTUAL and POSTED: the filled MAE (headline: an observation without a
  forecast value is scored with the naive value), the naive MAE, gain % = 1 - bambam/naive, bias
  (mean prediction - observation), coverage (share of observations with a forecast value), and
  the same MAE, naive MAE and bias on the covered observations only;
- where the uncovered observations fall: local hour, and the park day's hours read from the raw
  export (official hours, EMH only, outside both, no hours);
- p10-p90 band coverage (ACTUAL; the forecast has no POSTED band);
- the WTI seam: daily mean observed ACTUAL (the rides observed on both sides) over the 14 park
  days up to D and the 14 after, against the daily WTI the pipeline wrote (`park_wti_daily`:
  backfilled before D, forecast after), and the held-out backfill's WTI after D (the backfill's
  imputation with the models as of D on the next days' POSTED: bench/held_out_backfill.py), the
  seam's reference;
- the backfill held out: that imputation at every observed ACTUAL of the next 60 days, against
  the observation, beside the forecast and the naive (`bd.imputation_summary`);
- entities with >= 50 scored observations whose filled MAE is more than 10 % above the naive's;
- cold start: entities first observed less than 90 days before D (AK85 and AK86 as of
  2017-06-30), shown separately.

Output: a Markdown report on stdout and everything in bench/out/real_backtest_{stamp}.json
(gitignored), with the wall time of each date (the pipeline run and the scoring).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.core.schema import ACTUAL, POSTED
from bambam_assets.lib.forecasts import backtest
from bambam_assets.lib.forecasts import backtest_detail as bd
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.forecasts import wti as wti_lib
from bench import held_out_backfill as hob
from bench.report import OUT_DIR

CREDIT = "Data credit: TouringPlans.com"
DEFAULT_RAW = Path("/work/shared/data/touringplans_ak/raw")
DEFAULT_WORK = Path("/tmp/bambam_real_backtest")
# the suggested as-of dates: 2017-2018 to tune on, 2019 and the 2021 reopening to report
AS_OF_ROLES: dict[date, str] = {
    date(2017, 6, 30): "tune", date(2017, 12, 15): "tune", date(2018, 6, 30): "tune",
    date(2018, 12, 31): "tune", date(2019, 6, 30): "report", date(2019, 9, 30): "report",
    date(2021, 6, 30): "report",
}
FORECAST_DAYS, BACKFILL_DAYS = 60, 30
HORIZONS = (28, 60)
CAP_MINUTES = 300.0
SEAM_DAYS = 14
COLD_START_DAYS = 90
WORSE_MIN_N, WORSE_MARGIN = 50, 0.10
KINDS = (ACTUAL, POSTED)

_SEAM_OBS_SQL = """
SELECT o.entity_code, o.park_code, o.park_date, CAST(o.wait_time_minutes AS DOUBLE) AS y
FROM fct_wait_times o JOIN dim_entity e USING (entity_code)
WHERE o.wait_time_type = $actual AND e.queue_type = 'STANDBY'
  AND o.wait_time_minutes IS NOT NULL AND o.wait_time_minutes <= $cap
  AND o.park_date BETWEEN $lo AND $hi
  AND o.entity_code IN (SELECT DISTINCT entity_code
                        FROM read_parquet($forecast_glob, hive_partitioning = true))
"""
_FIRST_SEEN_SQL = """
SELECT entity_code, min(park_date) AS first_park_date FROM fct_wait_times
WHERE park_date <= $as_of GROUP BY ALL
"""
_HOURS_SOURCES_SQL = """
SELECT source, count(*) AS days FROM dim_park_hours
WHERE park_date BETWEEN $lo AND $hi GROUP BY ALL ORDER BY ALL
"""


def raw_park_hours(raw: Path) -> pd.DataFrame:
    """The park hours of the raw export (the truth the uncovered observations are placed in):
    bd.HOURS_COLUMNS, one row per (park, date)."""
    frames = []
    for path in sorted((raw / "export" / "park_hours").glob("*_park_hours.csv")):
        f = pd.read_csv(path)
        frames.append(pd.DataFrame({
            "park_code": f["park"], "park_date": pd.to_datetime(f["date"]).dt.date,
            **{c: pd.to_datetime(f[c], utc=True) for c in
               ("opening_time", "closing_time", "opening_time_with_emh")},
            "closing_time_with_emh": pd.to_datetime(f["closing_time_with_emh_or_party"], utc=True),
        }))
    if not frames:
        return pd.DataFrame(columns=list(bd.HOURS_COLUMNS))
    return pd.concat(frames, ignore_index=True).drop_duplicates(["park_code", "park_date"])


def _records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready records (NaN -> None, numpy scalars -> Python)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def score_horizon(scored: pd.DataFrame, hours: pd.DataFrame, as_of: date, days: int,
                  cap: float | None, cold: list[str]) -> dict:
    """Everything measured on park dates as_of+1 .. as_of+days of `scored`."""
    last = as_of + timedelta(days=days)
    part, dropped = bd.drop_above_cap(
        scored[pd.to_datetime(scored["park_date"]).dt.date <= last], cap)
    filled = bd.with_fill(part)
    entities = bd.summary_table(filled, by_entity=True)
    return {
        "days": days,
        "dropped_above_cap": dropped,
        "pooled": _records(bd.summary_table(filled, by_entity=False)),
        "pooled_without_cold_start": _records(bd.summary_table(
            filled[~filled["entity_code"].isin(cold)], by_entity=False)),
        "entities": _records(entities),
        "band": bd.band_coverage(filled),
        "uncovered": bd.uncovered_where(filled, hours),
        "worse_than_naive": _records(bd.worse_than_naive(entities, WORSE_MIN_N, WORSE_MARGIN)),
    }


def run_date(as_of: date, raw: Path, work: Path, reuse: bool, cap: float | None,
             hours: pd.DataFrame) -> dict:
    """Run the pipeline as of `as_of` (unless --reuse finds its scratch home) and score it."""
    from bambam_assets.cli.backtest import run_backtest

    out_dir = work / as_of.isoformat()
    home = out_dir / "home"
    started = time.perf_counter()
    pipeline_seconds = None
    if not (reuse and (home / "warehouse.duckdb").exists()):
        result = run_backtest(as_of, FORECAST_DAYS, out_dir, raw=str(raw),
                              backfill_days=BACKFILL_DAYS, keep_scratch=True,
                              log=lambda m: print(m, file=sys.stderr, flush=True))
        pipeline_seconds = result.seconds
    scoring_started = time.perf_counter()
    glob = curve_files.glob_of(home, curve_files.FORECASTS_DIR)
    with wh.reader(home) as conn:
        scored = backtest.scored_observations(conn, home, as_of, FORECAST_DAYS)
        seam_obs = conn.execute(_SEAM_OBS_SQL, {
            "actual": ACTUAL, "cap": cap if cap is not None else float("inf"),
            "forecast_glob": glob, "lo": as_of - timedelta(days=SEAM_DAYS - 1),
            "hi": as_of + timedelta(days=SEAM_DAYS)}).df()
        wti_daily = conn.execute("SELECT park_code, park_date, wti FROM park_wti_daily").df()
        first_seen = conn.execute(_FIRST_SEEN_SQL, {"as_of": as_of}).df()
        hours_sources = conn.execute(_HOURS_SOURCES_SQL, {
            "lo": as_of + timedelta(days=1),
            "hi": as_of + timedelta(days=FORECAST_DAYS)}).fetchall()
        rejected = conn.execute("SELECT reason, count(*) FROM fct_rejected_rows "
                                "GROUP BY ALL ORDER BY ALL").fetchall()
        held = hob.held_out_values(conn, home, *hob.window(as_of, FORECAST_DAYS))
        held_rows = hob.scored_rows(conn, held, home, scored)
        official = wti_lib.official_hours(conn)
    first = dict(zip(first_seen["entity_code"],
                     pd.to_datetime(first_seen["first_park_date"]).dt.date, strict=True))
    cold = sorted(e for e in scored["entity_code"].unique()
                  if e not in first or first[e] > as_of - timedelta(days=COLD_START_DAYS))
    seam = {str(park): bd.wti_seam(part, wti_daily[wti_daily["park_code"] == park], as_of,
                                   SEAM_DAYS)
            for park, part in seam_obs.groupby("park_code")}
    # the reference for the seam: the WTI the backfill would show after D (held out)
    held_wti = hob.daily_wti(held[held["park_date"] <= as_of + timedelta(days=SEAM_DAYS)],
                             official, home) if len(held) else pd.DataFrame()
    for park, s in seam.items():
        part = held_wti[held_wti["park_code"] == park].dropna(subset=["wti"]) if len(
            held_wti) else held_wti
        s["after"]["held_out_wti"] = float(part["wti"].mean()) if len(part) else None
        s["after"]["held_out_wti_days"] = len(part)
    if cap is not None and len(held_rows):
        held_rows = held_rows[held_rows["y"] <= cap]
    held_out = {}
    # the seam's days too: which side of the seam is off at the observations after D
    for d in (SEAM_DAYS, *HORIZONS):
        rows = held_rows[held_rows["park_date"] <= as_of + timedelta(days=d)] if len(
            held_rows) else held_rows
        held_out[str(d)] = {
            "pooled": _records(bd.imputation_summary(rows, by_entity=False)),
            "entities": _records(bd.imputation_summary(rows, by_entity=True))}
    horizons = {str(d): score_horizon(scored, hours, as_of, d, cap, cold) for d in HORIZONS}
    return {
        "as_of": as_of.isoformat(), "role": AS_OF_ROLES.get(as_of, "adhoc"),
        "pipeline_seconds": pipeline_seconds,
        "scoring_seconds": time.perf_counter() - scoring_started,
        "wall_seconds": time.perf_counter() - started, "reused_scratch": pipeline_seconds is None,
        "scratch_home": str(home), "cap_minutes": cap,
        "ingest_rejected_rows": {str(r): int(n) for r, n in rejected},
        "cold_start": {e: (first[e].isoformat() if e in first else None) for e in cold},
        "hours_sources_in_forecast_window": {str(s): int(n) for s, n in hours_sources},
        "seam": seam,
        "backfill_held_out": held_out,
        "horizons": horizons,
    }


# ---- report ---------------------------------------------------------------------------------

def _f(value, digits: int = 2, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:+.1f} %" if pct else f"{value:.{digits}f}"


def _cov(value) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


_SUMMARY_HEAD = ("| as-of | role | kind | n | coverage | MAE (filled) | naive MAE | gain | bias "
                 "| MAE covered | naive covered | gain covered | p10-p90 |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def _summary_row(first: str, role: str, rec: dict, band: dict | None) -> str:
    b = _cov(band["coverage"]) if band and band.get("coverage") is not None else "n/a"
    return (f"| {first} | {role} | {rec['kind']} | {rec['n']} | {_cov(rec['coverage'])} "
            f"| {_f(rec['mae'])} | {_f(rec['naive_mae'])} | {_f(rec['gain_pct'], pct=True)} "
            f"| {_f(rec['bias'], 1)} | {_f(rec['mae_covered'])} "
            f"| {_f(rec['naive_mae_covered'])} | {_f(rec['gain_covered_pct'], pct=True)} "
            f"| {b} |")


def pooled_table(results: list[dict], days: int) -> list[str]:
    lines = [_SUMMARY_HEAD]
    for r in results:
        h = r["horizons"][str(days)]
        for rec in h["pooled"]:
            lines.append(_summary_row(r["as_of"], r["role"], rec, h["band"].get(rec["kind"])))
    return lines


def cold_start_table(results: list[dict]) -> list[str]:
    lines = ["| as-of | entity (first seen) | days | kind | n | coverage | MAE (filled) "
             "| naive MAE | gain | bias | MAE covered | naive covered |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for code, first in r["cold_start"].items():
            for days in HORIZONS:
                for rec in r["horizons"][str(days)]["entities"]:
                    if rec["entity_code"] != code:
                        continue
                    lines.append(
                        f"| {r['as_of']} | {code} ({first or 'never'}) | {days} | {rec['kind']} "
                        f"| {rec['n']} | {_cov(rec['coverage'])} | {_f(rec['mae'])} "
                        f"| {_f(rec['naive_mae'])} | {_f(rec['gain_pct'], pct=True)} "
                        f"| {_f(rec['bias'], 1)} | {_f(rec['mae_covered'])} "
                        f"| {_f(rec['naive_mae_covered'])} |")
    if len(lines) == 2:
        lines.append("| (none) |" + " |" * 11)
    lines += ["", "Pooled without the cold-start entities (dates that have some):", "",
              _SUMMARY_HEAD]
    for r in results:
        if not r["cold_start"]:
            continue
        for days in HORIZONS:
            h = r["horizons"][str(days)]
            for rec in h["pooled_without_cold_start"]:
                lines.append(_summary_row(f"{r['as_of']} ({days} d)", r["role"], rec, None))
    return lines


def _change(after, before) -> float | None:
    return (after / before - 1) * 100 if after and before else None


def seam_table(results: list[dict]) -> list[str]:
    lines = [f"| as-of | park | rides | observed ACTUAL before ({SEAM_DAYS} d) | after "
             "| per-ride mean before | after | change | WTI before (backfill) "
             "| WTI after (forecast) | WTI change | held-out backfill WTI after | its change "
             "| seam (WTI change - held-out change) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for park, s in r["seam"].items():
            b, a = s["before"], s["after"]
            change = _change(a["wti"], b["wti"])
            held = _change(a.get("held_out_wti"), b["wti"])
            seam = change - held if change is not None and held is not None else None
            lines.append(
                f"| {r['as_of']} | {park} | {','.join(s['entities'])} "
                f"| {_f(b['observed'], 1)} (n={b['observed_n']}, {b['observed_days']} d) "
                f"| {_f(a['observed'], 1)} (n={a['observed_n']}, {a['observed_days']} d) "
                f"| {_f(b['observed_ride_mean'], 1)} | {_f(a['observed_ride_mean'], 1)} "
                f"| {_f(_change(a['observed_ride_mean'], b['observed_ride_mean']), pct=True)} "
                f"| {_f(b['wti'], 1)} ({b['wti_days']} d) | {_f(a['wti'], 1)} ({a['wti_days']} d) "
                f"| {_f(change, pct=True)} | {_f(a.get('held_out_wti'), 1)} "
                f"({a.get('held_out_wti_days', 0)} d) | {_f(held, pct=True)} "
                f"| {'n/a' if seam is None else f'{seam:+.1f} pts'} |")
    return lines


def held_out_table(results: list[dict], days: int, pooled_only: bool = False) -> list[str]:
    lines = ["| as-of | entity | n | imputed MAE | bias | forecast MAE | bias | naive MAE "
             "| imputed gain | forecast gain | mean observed / imputed / forecast |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        h = r["backfill_held_out"].get(str(days))
        if h is None:  # a report written before this horizon was kept
            continue
        for rec in [*([] if pooled_only else h["entities"]), *h["pooled"]]:
            lines.append(
                f"| {r['as_of']} | {rec['entity_code']} | {rec['n']} | {_f(rec['imputed_mae'])} "
                f"| {_f(rec['imputed_bias'], 1)} | {_f(rec['forecast_mae'])} "
                f"| {_f(rec['forecast_bias'], 1)} | {_f(rec['naive_mae'])} "
                f"| {_f(rec['imputed_gain_pct'], pct=True)} "
                f"| {_f(rec['forecast_gain_pct'], pct=True)} "
                f"| {_f(rec['observed_mean'], 1)} / {_f(rec['imputed_mean'], 1)} / "
                f"{_f(rec['forecast_mean'], 1)} |")
    return lines


def uncovered_table(results: list[dict], days: int) -> list[str]:
    lines = ["| as-of | kind | uncovered | official hours | EMH only | outside | no hours "
             "| by local hour | by entity |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for kind, u in r["horizons"][str(days)]["uncovered"].items():
            c = u["by_hours_class"]
            hours = " ".join(f"{h:02d}h:{n}" for h, n in u["by_local_hour"].items())
            ents = " ".join(f"{e}:{n}" for e, n in u["by_entity"].items())
            lines.append(f"| {r['as_of']} | {kind} | {u['n']} | {c[bd.OFFICIAL]} | {c[bd.EMH]} "
                         f"| {c[bd.OUTSIDE]} | {c[bd.NO_HOURS]} | {hours} | {ents} |")
    return lines


def entity_table(results: list[dict], days: int) -> list[str]:
    lines = ["| as-of | entity | kind | n | coverage | MAE (filled) | naive MAE | gain | bias "
             "| MAE covered | naive covered |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for rec in r["horizons"][str(days)]["entities"]:
            lines.append(
                f"| {r['as_of']} | {rec['entity_code']} | {rec['kind']} | {rec['n']} "
                f"| {_cov(rec['coverage'])} | {_f(rec['mae'])} | {_f(rec['naive_mae'])} "
                f"| {_f(rec['gain_pct'], pct=True)} | {_f(rec['bias'], 1)} "
                f"| {_f(rec['mae_covered'])} | {_f(rec['naive_mae_covered'])} |")
    return lines


def worse_lines(results: list[dict]) -> list[str]:
    lines = []
    for r in results:
        for days in HORIZONS:
            for rec in r["horizons"][str(days)]["worse_than_naive"]:
                lines.append(f"- {r['as_of']}, {days} d: {rec['entity_code']} {rec['kind']} "
                             f"MAE {_f(rec['mae'])} vs naive {_f(rec['naive_mae'])} "
                             f"({_f(rec['gain_pct'], pct=True)}, n={rec['n_scored']}, "
                             f"coverage {_cov(rec['coverage'])})")
    return lines or ["- none"]


def source_label(raw: str | Path) -> str:
    """What the credit line names: the dev set by name, another raw source (a held-back set)
    by its path, never as Animal Kingdom."""
    return ("Animal Kingdom, 2015-2021" if Path(raw).resolve() == DEFAULT_RAW.resolve()
            else f"the raw source {raw}")


def report(results: list[dict], meta: dict) -> str:
    out = [
        "# Real-data backtest (issue 14)", "",
        f"**{CREDIT}** ({source_label(meta['raw'])}; license terms in the data folder).", "",
        f"raw: {meta['raw']} | code: {meta['commit']} | forecast {FORECAST_DAYS} d, backfill "
        f"{BACKFILL_DAYS} d | cap: observations above {meta['cap']} min dropped | {meta['stamp']}",
        "",
        "MAE (filled) = the headline: an observation without a forecast value counts as the "
        "naive value. gain = 1 - bambam/naive (positive: Bambam better). bias = mean "
        "(prediction - observation). coverage = share of observations with a forecast value.",
    ]
    for days in (HORIZONS[-1], *HORIZONS[:-1]):
        out += ["", f"## Pooled, next {days} days", "", *pooled_table(results, days)]
    out += ["", f"## Cold start (first observed < {COLD_START_DAYS} days before the as-of date)",
            "", *cold_start_table(results)]
    out += ["", f"## WTI seam ({SEAM_DAYS} park days before / after; observed = mean of daily "
            "means of observed ACTUAL of the rides observed on both sides)", "",
            *seam_table(results),
            "", "held-out backfill WTI: the daily WTI the backfill would show for the days "
            "after the as-of date once their POSTED arrive (ACTUAL imputed by the models as of "
            "the date, official hours), the reference for the seam: the observed ACTUALs are "
            "a few timings a ride a day, taken when guests choose.",
            "", f"The seam's two sides at the observations of the {SEAM_DAYS} days after the "
            "as-of date (pooled): the backfill's imputation (its bias is the backfill side's "
            "error) and the forecast (the forecast side's), on the same observations.", "",
            *held_out_table(results, SEAM_DAYS, pooled_only=True)]
    out += ["", f"## Backfill held out: ACTUAL imputed from POSTED, next {HORIZONS[-1]} days",
            "", "The models as of the date impute ACTUAL from the later days' POSTED at every "
            "slot where an ACTUAL was observed (the backfill's matching and model); scored "
            "against those observations, beside the forecast and the naive on the same rows.",
            "", *held_out_table(results, HORIZONS[-1])]
    out += ["", f"## Uncovered observations, next {HORIZONS[-1]} days (park hours of the raw "
            "export)", "", *uncovered_table(results, HORIZONS[-1])]
    out += ["", f"## Worse than naive by more than {WORSE_MARGIN:.0%} "
            f"(n >= {WORSE_MIN_N}, filled MAE)", "", *worse_lines(results)]
    out += ["", f"## Per entity, next {HORIZONS[-1]} days", "",
            *entity_table(results, HORIZONS[-1])]
    out += ["", "## Dropped and rejected values", ""]
    for r in results:
        dropped = {d: r["horizons"][str(d)]["dropped_above_cap"] for d in HORIZONS}
        out.append(f"- {r['as_of']}: above the cap {dropped}; rejected at ingest (all dates) "
                   f"{r['ingest_rejected_rows']}; hours in the forecast window "
                   f"{r['hours_sources_in_forecast_window']}")
    out += ["", "## Wall time", "", "| as-of | pipeline run s | scoring s | total s |",
            "|---|---|---|---|"]
    for r in results:
        out.append(f"| {r['as_of']} | {_f(r['pipeline_seconds'], 1)} "
                   f"| {_f(r['scoring_seconds'], 1)} | {_f(r['wall_seconds'], 1)} |")
    return "\n".join(out) + "\n"


# ---- main -----------------------------------------------------------------------------------

def _dates(text: str) -> list[date]:
    return [date.fromisoformat(t.strip()) for t in text.split(",") if t.strip()]


def _commit() -> str:
    """Short hash of the checked-out commit, "+dirty" when the working tree has changes."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=here,
                              check=True).stdout.strip()

    try:
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain")
                                                      else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.real_backtest",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--as-of", type=_dates, default=sorted(AS_OF_ROLES),
                        help="comma-separated as-of dates (default: the seven suggested)")
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW,
                        help="raw source folder (read in place)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="where the scratch homes go (one per as-of date), outside the repo")
    parser.add_argument("--cap", type=float, default=CAP_MINUTES,
                        help="drop observations above this many minutes from scoring (0: none)")
    parser.add_argument("--reuse", action="store_true",
                        help="score the scratch homes an earlier run kept instead of rerunning")
    args = parser.parse_args(argv)
    cap = args.cap or None
    hours = raw_park_hours(args.raw)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    results = []
    for as_of in args.as_of:
        print(f"[real_backtest] {as_of} ...", file=sys.stderr, flush=True)
        results.append(run_date(as_of, args.raw, args.work, args.reuse, cap, hours))
        print(f"[real_backtest] {as_of} done in {results[-1]['wall_seconds']:.0f} s",
              file=sys.stderr, flush=True)
    meta = {"raw": str(args.raw), "commit": _commit(), "cap": cap, "stamp": stamp,
            "credit": CREDIT, "forecast_days": FORECAST_DAYS, "backfill_days": BACKFILL_DAYS,
            "horizons": list(HORIZONS), "seam_days": SEAM_DAYS,
            "cold_start_days": COLD_START_DAYS}
    text = report(results, meta)
    print(text)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"real_backtest_{stamp}.json"
    path.write_text(json.dumps({"meta": meta, "dates": results}, indent=1, default=str))
    print(f"JSON: {path}")
    return {"meta": meta, "dates": results}


if __name__ == "__main__":
    main()
