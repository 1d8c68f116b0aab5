"""Incremental update vs full retrain: speed and forecast quality on days neither model has seen.

    python -m bench.incremental_quality --home /tmp/dw/bambam_home_daily_1 --days 7 --repeat 3
    python -m bench.incremental_quality            # no --home: generates a small workload first

Method (one training frame, `features.build_training_frame`, read once from the warehouse):
for each entity, a FULL base model is trained on the rows with park_date < S_1 - 1, where the
simulated days S_1..S_k are the k calendar days D-k+1..D (D = --as-of). Then, for each s in S in
order, both paths see the history H_s = rows with park_date < s (recency weights recomputed as of
s - 1, as the production run on day s would) and are scored on the next day T_s = rows with
park_date == s, which neither has seen: the FULL path is `training.train_entity(H_s)`; the
INCREMENTAL path is a chain, as production runs it: `incremental.continue_training(H_s, base)`
from the chain's current model, kept only if the registry's promotion guard accepts it (else the
previous model scores the day and stays the base); `None` (no update window) falls back to the
full model. The base model, never retrained, is the "no retrain" baseline. Scores use the
without-POSTED model (the forecast's); MAE is pooled over every test row (sum |err| / n). Times
are in-process `perf_counter` around the two training calls only, nthread=1 for both.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import statistics
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.models import features, incremental, registry, training

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"
# the guard's tolerance as production applies it (save_version's default; train_batch passes none)
TOLERANCE = inspect.signature(registry.save_version).parameters["tolerance"].default


def _build_home(workdir: Path) -> Path:
    """Step 0 (no --home): a small generated workload ingested and trained by a real run."""
    from bench.bambam_side import run_bambam
    from bench.workloads import Workload, generate_workload

    raw, home = workdir / "raw", workdir / "home"
    if HomePaths(home).warehouse.exists():
        return home
    w = Workload(("MK", "EP", "HS", "AK"), 6, date(2024, 1, 1), date(2025, 12, 31))
    if not raw.exists():
        generate_workload(raw, w)
    run_bambam(raw, home, w.end)
    return home


def _weighted(rows: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    # the frame's weights are as of D; a run on day s computes them as of s - 1 (same formula)
    days = (as_of - rows["park_date"]).dt.days.to_numpy(dtype=float)
    return rows.assign(weight=np.power(0.5, days / features.RECENCY_HALF_LIFE_DAYS))


def _as_base(trained: training.TrainedEntity, data_end: str) -> incremental.BaseModel:
    # only models, encodings and data_end matter to continue_training; the rest is bookkeeping
    return incremental.BaseModel(
        version=0, models=dict(trained.models), encodings=trained.encodings, data_end=data_end,
        test_end=None, last_full_retrain_at=datetime(2000, 1, 1).isoformat())


def _abs_err(model: training.TrainedEntity, test: pd.DataFrame) -> np.ndarray:
    pred = training.predict(model, test, with_posted=False, nthread=1)
    return np.abs(pred - test["y"].to_numpy(dtype=float))


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def simulate(rows: pd.DataFrame, queue_type: str, base: training.TrainedEntity, base_end: str,
             sim_days: list[pd.Timestamp]) -> list[dict]:
    """One entity's k simulated days: both paths trained, timed and scored per day."""
    chain, chain_end = base, base_end
    out = []
    for s in sim_days:
        hist = _weighted(rows[rows["park_date"] < s], s - timedelta(days=1))
        test = rows[rows["park_date"] == s]
        t0 = time.perf_counter()
        full = training.train_entity(hist, queue_type, nthread=1)
        t_full = time.perf_counter() - t0
        t0 = time.perf_counter()
        upd = incremental.continue_training(hist, _as_base(chain, chain_end), queue_type, nthread=1)
        t_incr = time.perf_counter() - t0
        rec = {"day": s.date().isoformat(), "history_rows": len(hist), "test_rows": len(test),
               "seconds_full": t_full, "seconds_incremental": t_incr, "fallback": upd is None}
        if upd is None:  # production would retrain in full: the chain pays and adopts that model
            rec["seconds_incremental"] += t_full
            rec["decision"] = "fallback: full retrain"
            chain, chain_end = full, pd.Timestamp(hist["observed_at"].max()).isoformat()
        else:
            promoted, rec["decision"] = registry.promotion_decision(
                _finite(upd.holdout_mae), _finite(upd.metrics.get("incumbent_mae")), True,
                TOLERANCE)
            rec.update(promoted=promoted, new_rows=upd.metrics["new_rows"],
                       window_rows=upd.metrics["rows"])
            if promoted:
                chain, chain_end = upd, upd.metrics["data_end"]
        for name, model in (("full", full), ("incremental", chain), ("no_retrain", base)):
            err = _abs_err(model, test)
            rec[f"abs_err_sum_{name}"] = float(err.sum())
            rec[f"mae_{name}"] = float(err.mean()) if len(err) else None
        out.append(rec)
    return out


def _pick_entities(frame: pd.DataFrame, cut: pd.Timestamp, wanted: list[str] | None,
                   cap: int) -> tuple[list[str], dict[str, str]]:
    # the base must be an XGBoost model (an hourly fallback cannot be continued)
    base_rows = frame[frame["park_date"] < cut].groupby("entity_code").size()
    ok = base_rows[base_rows >= training.MIN_TARGETS_FOR_XGB]
    if wanted:
        skipped = {e: f"fewer than {training.MIN_TARGETS_FOR_XGB} base rows"
                   for e in wanted if e not in ok.index}
        return [e for e in wanted if e in ok.index], skipped
    # spread the cap evenly over entity size, so small and busy entities are both represented
    ordered = ok.reset_index(name="n").sort_values(["n", "entity_code"])["entity_code"].tolist()
    if len(ordered) <= cap:
        return ordered, {}
    return [ordered[int(i * len(ordered) / cap)] for i in range(cap)], {}


def _summary(records: dict[str, list[dict]], rep_totals: list[dict]) -> dict:
    days = [d for recs in records.values() for d in recs]
    n = sum(d["test_rows"] for d in days)
    out: dict = {"entities": len(records), "entity_days": len(days), "test_rows": n}
    for name in ("full", "incremental", "no_retrain"):
        out[f"pooled_mae_{name}"] = sum(d[f"abs_err_sum_{name}"] for d in days) / n if n else None
        maes = [d[f"mae_{name}"] for d in days if d[f"mae_{name}"] is not None]
        out[f"mean_day_mae_{name}"] = statistics.fmean(maes) if maes else None
    for path in ("full", "incremental"):
        out[f"median_seconds_{path}"] = statistics.median(r[f"median_{path}"] for r in rep_totals)
        out[f"total_seconds_{path}"] = statistics.median(r[f"total_{path}"] for r in rep_totals)
        out[f"total_seconds_{path}_per_rep"] = [r[f"total_{path}"] for r in rep_totals]
    out["ratio_full_over_incremental"] = (out["total_seconds_full"]
                                          / out["total_seconds_incremental"])
    out["promoted"] = sum(1 for d in days if d.get("promoted") is True)
    out["rejected"] = sum(1 for d in days if d.get("promoted") is False)
    out["fallbacks"] = sum(1 for d in days if d["fallback"])
    return out


def _f(x, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def _print(s: dict, head: str) -> None:
    print(head)
    print(f"{'':22}{'pooled MAE':>12}{'mean day MAE':>14}")
    for name, label in (("full", "full retrain"), ("incremental", "incremental chain"),
                        ("no_retrain", "no retrain (base)")):
        print(f"{label:22}{_f(s[f'pooled_mae_{name}'], '12.3f')}"
              f"{_f(s[f'mean_day_mae_{name}'], '14.3f')}")
    rel = (s["pooled_mae_incremental"] / s["pooled_mae_full"] - 1) if s["test_rows"] else None
    print(f"incremental vs full pooled MAE: {_f(rel, '+.2%')}   ({s['test_rows']} test rows, "
          f"{s['entity_days']} entity-days, {s['entities']} entities)")
    print(f"{'':22}{'median s':>12}{'total s':>14}")
    for path in ("full", "incremental"):
        print(f"{path:22}{s[f'median_seconds_{path}']:12.3f}{s[f'total_seconds_{path}']:14.2f}")
    print(f"ratio full/incremental (total time): {s['ratio_full_over_incremental']:.2f}x")
    print(f"updates: promoted {s['promoted']}, rejected {s['rejected']}, "
          f"fallbacks {s['fallbacks']} (of {s['entity_days']})")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", type=Path, help="existing Bambam home (warehouse.duckdb)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/iq_work/generated"),
                   help="where step 0 builds a home when --home is not given")
    p.add_argument("--as-of", type=date.fromisoformat, help="D, the last simulated day")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--entities", help="comma list (default: XGBoost-sized entities)")
    p.add_argument("--max-entities", type=int, default=24)
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)

    home = args.home or _build_home(args.workdir)
    wanted = [e.strip().upper() for e in args.entities.split(",")] if args.entities else None
    conn = duckdb.connect(str(HomePaths(home).warehouse), read_only=True)
    try:
        as_of = args.as_of or conn.execute(
            "SELECT max(park_date) FROM fct_wait_times").fetchall()[0][0]
        frame = features.build_training_frame(conn, wanted, as_of)  # None: every entity
    finally:
        conn.close()
    d_last = pd.Timestamp(args.as_of) if args.as_of else frame["park_date"].max()
    sim_days = [d_last - timedelta(days=i) for i in range(args.days - 1, -1, -1)]
    base_cut = sim_days[0] - timedelta(days=1)  # base data ends 2 days before S_1
    entities, skipped = _pick_entities(frame, base_cut, wanted, args.max_entities)
    groups = {e: g for e, g in frame.groupby("entity_code", sort=False) if e in entities}
    print(f"home {home}, D {d_last.date()}, days {sim_days[0].date()}..{d_last.date()}, "
          f"{len(entities)} entities, repeat {args.repeat}, guard tolerance {TOLERANCE}")
    for e, why in skipped.items():
        print(f"  skipped {e}: {why}")

    bases, records, rep_totals = {}, {}, []
    for rep in range(args.repeat):
        secs = {"full": [], "incremental": []}
        for e in entities:
            rows, qt = groups[e], str(groups[e]["queue_type"].iloc[0])
            if e not in bases:  # deterministic (seed, nthread=1): trained once, not timed
                b = _weighted(rows[rows["park_date"] < base_cut], base_cut - timedelta(days=1))
                bases[e] = (training.train_entity(b, qt, nthread=1),
                            pd.Timestamp(b["observed_at"].max()).isoformat(), len(b))
            recs = simulate(rows, qt, bases[e][0], bases[e][1], sim_days)
            if rep == 0:  # quality is identical across repetitions; only timings vary
                records[e] = recs
            for d in recs:
                secs["full"].append(d["seconds_full"])
                secs["incremental"].append(d["seconds_incremental"])
            print(f"  rep {rep + 1} {e} ({qt}, {len(rows)} rows): full "
                  f"{sum(d['seconds_full'] for d in recs):.1f}s, incremental "
                  f"{sum(d['seconds_incremental'] for d in recs):.1f}s", flush=True)
        rep_totals.append({f"{k}_{path}": f(v) for path, v in secs.items()
                           for k, f in (("total", sum), ("median", statistics.median))})

    summary = _summary(records, rep_totals)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    out = OUT_DIR / f"incremental_quality_{stamp}.json"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    result = {"home": str(home), "as_of": str(as_of), "sim_days": [d.date().isoformat()
              for d in sim_days], "base_cut": base_cut.date().isoformat(),
              "tolerance": TOLERANCE, "policy": vars(incremental.IncrementalPolicy()),
              "repeat": args.repeat, "skipped": skipped, "summary": summary,
              "repetitions": rep_totals,
              "entities": {e: {"queue_type": str(groups[e]["queue_type"].iloc[0]),
                               "rows": len(groups[e]), "base_rows": bases[e][2],
                               "base_data_end": bases[e][1],
                               "base_holdout_mae": bases[e][0].holdout_mae,
                               "days": records[e]} for e in entities}}
    out.write_text(json.dumps(result, indent=1, default=str))
    _print(summary, f"\nsummary (timings: median of {args.repeat} repetition(s)); {out}")
    return result


if __name__ == "__main__":
    main()
