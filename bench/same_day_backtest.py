"""Same-day re-forecast backtest (issue 17) on TouringPlans' Animal Kingdom data.
Data credit: TouringPlans.com.

    python -m bench.same_day_backtest --reuse      # score the scratch homes of bench.real_backtest
    python -m bench.same_day_backtest              # run the pipeline where a home is missing

For each as-of date D of bench.real_backtest (same scratch homes: `--work`/D/home, made by
`cli.backtest.run_backtest` when missing), the forecast written as of D is the morning's curve
of each park day D+1 .. D+60. For each such day and each cutoff (11:00, 13:00, 15:00 park
time), `lib.live.same_day` updates the curve from the POSTED readings observed that day before
the cutoff, and both curves score the ACTUAL observations of that day at or after the cutoff
(STANDBY rides, observations above --cap minutes dropped, only observations whose slot has a
forecast value: the update changes nothing else). MAE with and without the update per as-of date
and cutoff, and pooled.

The decay (window, half-life, weight) is chosen on the 2017-2018 ("tune") dates alone, by pooled
MAE over their cutoffs; the 2019 and 2021 ("report") dates are scored with that choice only.
Output: a Markdown report on stdout and bench/out/same_day_backtest_{stamp}.json (gitignored).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.core.parks import tz_of_park
from bambam_assets.lib.core.schema import ACTUAL, POSTED
from bambam_assets.lib.forecasts import curves as curve_files
from bambam_assets.lib.live import same_day
from bench.real_backtest import (
    AS_OF_ROLES,
    BACKFILL_DAYS,
    CAP_MINUTES,
    CREDIT,
    DEFAULT_RAW,
    DEFAULT_WORK,
    FORECAST_DAYS,
    _commit,
    _dates,
    source_label,
)
from bench.report import OUT_DIR

CUTOFFS = ("11:00", "13:00", "15:00")
WINDOWS = (30.0, 60.0, 120.0, 240.0, 480.0, 1440.0)  # 1440: every reading of the day so far
HALF_LIVES = (15.0, 30.0, 60.0, 120.0, 240.0, 480.0, 960.0, float("inf"))  # inf: no fading
WEIGHTS = (0.25, 0.5, 0.75, 1.0)

# days between the as-of date and the scored day: in production today's curve is at most a week
# old (the forecast is rewritten when its inputs change, the window anchored on the week)
AHEAD_BUCKETS = ((1, 7, "1-7 d"), (8, 28, "8-28 d"), (29, 60, "29-60 d"))

_FACTS_SQL = """
SELECT f.entity_code, f.park_code, f.park_date, f.observed_at, f.wait_time_type,
       CAST(f.wait_time_minutes AS DOUBLE) AS minutes
FROM fct_wait_times f JOIN dim_entity e USING (entity_code)
WHERE e.queue_type = 'STANDBY' AND f.wait_time_type IN ($posted, $actual)
  AND f.wait_time_minutes IS NOT NULL AND f.wait_time_minutes <= $cap
  AND f.park_date BETWEEN $lo AND $hi
ORDER BY ALL
"""


def ensure_home(as_of: date, raw: Path, work: Path, reuse: bool) -> Path:
    """The scratch home of `as_of` (bench.real_backtest's layout), run when missing."""
    from bambam_assets.cli.backtest import run_backtest

    out_dir = work / as_of.isoformat()
    home = out_dir / "home"
    if not (reuse and (home / "warehouse.duckdb").exists()):
        run_backtest(as_of, FORECAST_DAYS, out_dir, raw=str(raw), backfill_days=BACKFILL_DAYS,
                     keep_scratch=True, log=lambda m: print(m, file=sys.stderr, flush=True))
    return home


def read_home(home: Path, as_of: date, cap: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(forecast rows of D+1 .. D+60, POSTED and ACTUAL facts of those days)."""
    lo, hi = as_of + timedelta(days=1), as_of + timedelta(days=FORECAST_DAYS)
    with wh.reader(home) as conn:
        facts = conn.execute(_FACTS_SQL, {"posted": POSTED, "actual": ACTUAL, "cap": cap,
                                          "lo": lo, "hi": hi}).df()
        fc = conn.execute(
            "SELECT entity_code, park_date, slot_start, actual_predicted, posted_predicted "
            "FROM read_parquet(?, hive_partitioning = true) WHERE park_date BETWEEN ? AND ?",
            [curve_files.glob_of(home, curve_files.FORECASTS_DIR), lo, hi]).df()
    for frame, col in ((facts, "observed_at"), (fc, "slot_start")):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    facts["park_date"] = pd.to_datetime(facts["park_date"]).dt.date
    fc["park_date"] = pd.to_datetime(fc["park_date"]).dt.date
    return fc, facts


def cutoff_cases(fc: pd.DataFrame, facts: pd.DataFrame) -> pd.DataFrame:
    """One row per scored ACTUAL and cutoff: entity_code, park_date, cutoff, observed_at, y,
    morning (the forecast at its slot), minutes since the cutoff, and per window the ratio and
    latest reading of `same_day.posted_deviation` (readings before the cutoff only)."""
    curves = {k: g for k, g in fc.groupby(["entity_code", "park_date"])}
    rows = []
    for (entity, day), g in facts.groupby(["entity_code", "park_date"]):
        curve = curves.get((entity, day))
        if curve is None:
            continue
        tz = tz_of_park(str(g["park_code"].iloc[0]))
        posted = g[g["wait_time_type"] == POSTED].rename(columns={"minutes": "posted"})
        actual = g[g["wait_time_type"] == ACTUAL]
        slot_value = curve.set_index("slot_start")["actual_predicted"]
        for cutoff in CUTOFFS:
            at = pd.Timestamp(f"{day} {cutoff}").tz_localize(tz).tz_convert("UTC")
            after = actual[actual["observed_at"] >= at]
            if after.empty:
                continue
            morning = slot_value.reindex(same_day.slot_floor(after["observed_at"])).to_numpy()
            case = pd.DataFrame({"entity_code": entity, "park_date": day, "cutoff": cutoff,
                                 "observed_at": after["observed_at"].to_numpy(),
                                 "y": after["minutes"].to_numpy(), "morning": morning})
            before = posted[posted["observed_at"] < at]
            # a reading exactly at the cutoff is not known before it
            for w in WINDOWS:
                dev = same_day.posted_deviation(curve, before, at - pd.Timedelta(microseconds=1),
                                                window_min=w)
                case[f"ratio_{w:g}"] = np.nan if dev.ratio is None else dev.ratio
                case[f"last_{w:g}"] = dev.last_reading_at
            rows.append(case)
    out = pd.concat(rows, ignore_index=True)
    return out[out["morning"].notna()].reset_index(drop=True)


def updated(cases: pd.DataFrame, params: same_day.UpdateParams) -> np.ndarray:
    """The updated forecast of every case under `params` (lib.live.same_day's formula on the
    slot of each observation)."""
    w = f"{params.window_min:g}"
    last = pd.to_datetime(cases[f"last_{w}"], utc=True)
    slot = same_day.slot_floor(cases["observed_at"])
    ahead = ((slot - last).dt.total_seconds() / 60.0).to_numpy()
    return same_day.updated_actual(cases["morning"].to_numpy(), np.nan_to_num(ahead),
                                   cases[f"ratio_{w}"].to_numpy(), params)


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y))) if len(y) else float("nan")


def score(cases: pd.DataFrame, params: same_day.UpdateParams) -> pd.DataFrame:
    """MAE without / with the update per (as_of, role, cutoff), per as-of date and pooled."""
    c = cases.assign(upd=updated(cases, params),
                     has_reading=cases[f"ratio_{params.window_min:g}"].notna())
    days = (pd.to_datetime(c["park_date"]) - pd.to_datetime(c["as_of"])).dt.days
    c["ahead"] = ""
    for lo, hi, label in AHEAD_BUCKETS:
        c.loc[days.between(lo, hi), "ahead"] = label
    groups = [("as_of", "role", "cutoff"), ("as_of", "role"), ("role", "cutoff"), ("role", "ahead"),
              ("role",)]
    out = []
    for keys in groups:
        for k, g in c.groupby(list(keys)):
            k = k if isinstance(k, tuple) else (k,)
            rec = dict(zip(keys, k, strict=True))
            out.append({"as_of": rec.get("as_of", "pooled"), "role": rec["role"],
                        "cutoff": rec.get("cutoff", "all"), "ahead": rec.get("ahead", "all"),
                        "n": len(g),
                        "with_reading": float(g["has_reading"].mean()),
                        "mae_morning": mae(g["y"].to_numpy(), g["morning"].to_numpy()),
                        "mae_updated": mae(g["y"].to_numpy(), g["upd"].to_numpy()),
                        "bias_morning": float((g["morning"] - g["y"]).mean()),
                        "bias_updated": float((g["upd"] - g["y"]).mean())})
    frame = pd.DataFrame(out)
    frame["change_pct"] = (frame["mae_updated"] / frame["mae_morning"] - 1) * 100
    return frame


def tune(cases: pd.DataFrame) -> tuple[same_day.UpdateParams, pd.DataFrame]:
    """The grid's pooled MAE on the tune dates; the best params."""
    tune_cases = cases[cases["role"] == "tune"]
    rows = []
    for w, h, k in itertools.product(WINDOWS, HALF_LIVES, WEIGHTS):
        p = same_day.UpdateParams(half_life_min=h, weight=k, window_min=w)
        rows.append({"window_min": w, "half_life_min": h, "weight": k,
                     "mae_tune": mae(tune_cases["y"].to_numpy(), updated(tune_cases, p))})
    grid = pd.DataFrame(rows).sort_values("mae_tune", ignore_index=True)
    best = grid.iloc[0]
    return same_day.UpdateParams(half_life_min=float(best["half_life_min"]),
                                 weight=float(best["weight"]),
                                 window_min=float(best["window_min"])), grid


def table(frame: pd.DataFrame) -> list[str]:
    lines = ["| as-of | role | cutoff | days ahead | n | with a reading | MAE morning "
             "| MAE updated | change | bias morning | bias updated |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in frame.itertuples():
        lines.append(f"| {r.as_of} | {r.role} | {r.cutoff} | {r.ahead} | {r.n} "
                     f"| {r.with_reading:.0%} "
                     f"| {r.mae_morning:.2f} | {r.mae_updated:.2f} | {r.change_pct:+.1f} % "
                     f"| {r.bias_morning:+.1f} | {r.bias_updated:+.1f} |")
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.same_day_backtest",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--as-of", type=_dates, default=sorted(AS_OF_ROLES))
    parser.add_argument("--raw", type=Path, default=DEFAULT_RAW)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--cap", type=float, default=CAP_MINUTES)
    parser.add_argument("--reuse", action="store_true",
                        help="score the scratch homes an earlier run kept instead of rerunning")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    parts = []
    for as_of in args.as_of:
        home = ensure_home(as_of, args.raw, args.work, args.reuse)
        fc, facts = read_home(home, as_of, args.cap)
        cases = cutoff_cases(fc, facts)
        parts.append(cases.assign(as_of=as_of.isoformat(), role=AS_OF_ROLES.get(as_of, "adhoc")))
        print(f"[same_day] {as_of}: {len(cases)} scored observations", file=sys.stderr)
    cases = pd.concat(parts, ignore_index=True)
    best, grid = tune(cases)
    chosen = score(cases, best)
    default = score(cases, same_day.DEFAULT_PARAMS)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    tune_cases = cases[cases["role"] == "tune"]
    no_update = mae(tune_cases["y"].to_numpy(), tune_cases["morning"].to_numpy())
    text = "\n".join([
        "# Same-day re-forecast backtest (issue 17)", "",
        f"**{CREDIT}** ({source_label(args.raw)}).", "",
        f"code: {_commit()} | homes: {args.work} | cap {args.cap} min | cutoffs "
        f"{', '.join(CUTOFFS)} | {stamp}", "",
        f"Chosen on the tune dates: window {best.window_min:g} min, half-life "
        f"{best.half_life_min:g} min, weight {best.weight:g}.", "",
        "## Chosen decay", "", *table(chosen), "",
        f"## lib default ({same_day.DEFAULT_PARAMS})", "", *table(default), "",
        f"## Grid, pooled tune MAE (best 10 of {len(grid)}; no update: {no_update:.3f})",
        "", grid.head(10).to_markdown(index=False),
        "", f"wall {time.perf_counter() - started:.0f} s",
    ])
    print(text)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    result = {"meta": {"credit": CREDIT, "commit": _commit(), "stamp": stamp,
                       "cutoffs": CUTOFFS, "chosen": best.__dict__},
              "chosen": chosen.to_dict("records"), "default": default.to_dict("records"),
              "grid": grid.to_dict("records")}
    path = OUT_DIR / f"same_day_backtest_{stamp}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"JSON: {path}")
    return result


if __name__ == "__main__":
    main()
