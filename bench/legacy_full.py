"""The legacy side of the full-scale benchmark (issue 13): its daily run and its weekly full
retrain as of day D, timed on a sample of entities and extrapolated; ratios against Bambam's
`daily` and `full` phases (bench.full_bench `--legacy-sample N`).

What the legacy's daily run did (spec §12.1) and what is counted here:
- counted: training (`train_batch_entities.py`) of the entities the index query selects
  (>= 500 ACTUAL or PRIORITY rows, bench.legacy_index) that have new rows on day D (the
  `latest_observed_at > last_modeled_at` rule; "new rows" as bench.daily_bench: raw lines dated D
  or later), and the forecast (`generate_forecast.py`) of EVERY entity of the index;
- not counted (a lower bound of its cost): its ETL, dimension fetches, posted aggregates and
  report steps (bench.legacy_base writes their output untimed); its WTI step (it exited 1 on its
  file-name parser, spec §10); its backfill (never scheduled).
The weekly full retrain: the legacy had none (it retrained from scratch every time); its
counterpart is the training of every selected entity.

Sampling (one fresh process per entity, as the legacy batch):
1. training of `sample` entities spread over the due list, extrapolated by the mean entity wall;
2. the full retrain: `sample` entities spread over the selected list; entities already timed in
   step 1 are reused (same data, same day, same work), the others run now;
3. the forecast, stratified because the two kinds cost very differently: entities with a model
   (the selected ones: in the steady state each was trained on some earlier day) sampled from
   those trained in steps 1-2, and entities without one (under 500 targets, never trained:
   POSTED lookups only); `sample` entities split between the strata in proportion (at least one
   each), each bounded to `max_slots` slots and extrapolated by bench.legacy_forecast; each
   stratum's mean entity x its size.
"""

from __future__ import annotations

import statistics
from datetime import date
from pathlib import Path

from bench.legacy_forecast import MAX_SLOTS
from bench.legacy_side import prepare_legacy, run_legacy, run_legacy_forecast
from bench.workloads import sample_entities


def _mean_wall(records: dict[str, dict], key: str = "wall") -> float | None:
    walls = [r[key] for r in records.values()]
    return statistics.fmean(walls) if walls else None


def _times(mean: float | None, n: int) -> float | None:
    return None if mean is None else mean * n


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _strata(n: int, model: int, no_model: int) -> dict[str, int]:
    """`n` draws split between the two strata in proportion to their sizes, at least one per
    non-empty stratum, never more than its size."""
    n_model = min(model, max(1, round(n * model / (model + no_model)))) if model else 0
    n_none = min(no_model, max(1, n - n_model)) if no_model else 0
    return {"model": n_model, "no_model": n_none}


def legacy_comparison(home: Path, base: Path, day: date, new_rows: dict[str, int], sample: int,
                      bambam_walls: dict[str, dict], max_slots: int = MAX_SLOTS,
                      log=print) -> dict:
    """The legacy daily run and full retrain as of `day` on the home's observations; returns the
    report section (figures, per-entity records, ratios against `bambam_walls`: phase name ->
    {"wall", "steps"} of Bambam's `daily` and `full` phases)."""
    setup = prepare_legacy(home, base, day, log=log)
    selected = setup.selected
    due = [e for e in selected if new_rows.get(e, 0) > 0]
    index = setup.index["entity_code"].tolist()
    log(f"legacy daily run: {len(due)} of {len(selected)} selected entities have new rows; "
        f"forecast of all {len(index)} index entities")

    daily = run_legacy(base, sample_entities(due, sample), day, entities_total=len(due), log=log)
    full_sample = sample_entities(selected, sample)
    extra = run_legacy(base, [e for e in full_sample if e not in daily.records], day, log=log)
    trained = daily.records | extra.records
    full_records = {e: trained[e] for e in full_sample if e in trained}

    with_model = set(selected)
    sizes = {"model": len(with_model), "no_model": len(index) - len(with_model)}
    draws = _strata(sample, sizes["model"], sizes["no_model"])
    fc_model = sample_entities([e for e in index if e in trained], draws["model"])
    fc_none = sample_entities([e for e in index if e not in with_model], draws["no_model"])
    forecast = run_legacy_forecast(base, fc_model + fc_none, day, max_slots=max_slots, log=log)
    by_stratum = {"model": fc_model, "no_model": fc_none}
    fc: dict = {"strata": {}}
    for name, codes in by_stratum.items():
        recs = {e: forecast.records[e] for e in codes if e in forecast.records}
        fc["strata"][name] = {
            "entities": sizes[name], "sampled": len(codes), "run": len(recs),
            "kinds": sorted({r["kind"] for r in recs.values()}),
            "mean_entity_wall_estimated": _mean_wall(recs, "wall_estimated"),
            "mean_entity_wall_estimated_full_horizon": _mean_wall(recs,
                                                                  "wall_estimated_full_horizon"),
            "wall_estimated": _times(_mean_wall(recs, "wall_estimated"), sizes[name]),
            "wall_estimated_full_horizon": _times(_mean_wall(recs, "wall_estimated_full_horizon"),
                                                  sizes[name]),
        }
    strata = fc["strata"].values()
    fc["wall_estimated"] = sum(s["wall_estimated"] or 0 for s in strata)
    fc["wall_estimated_full_horizon"] = sum(s["wall_estimated_full_horizon"] or 0 for s in strata)
    fc["wall_sample"] = forecast.wall
    fc["max_slots"] = max_slots
    fc["failures"] = forecast.failures
    fc["records"] = forecast.records

    train_daily = daily.wall_estimated
    train_full = _times(_mean_wall(full_records), len(selected)) or 0.0
    out = {
        "setup": setup.summary() | {"due_today": len(due), "entities_in_index": len(index)},
        "sample": sample,
        "daily_training": {"entities": len(due), "run": len(daily.records),
                           "wall_sample": daily.wall, "wall_estimated": train_daily,
                           "failures": daily.failures, "records": daily.records},
        "forecast": fc,
        "full_retrain_training": {
            "entities": len(selected), "run": len(full_records),
            "reused_from_daily": sum(1 for e in full_records if e in daily.records),
            "wall_estimated": train_full, "failures": extra.failures,
            "records": {e: r for e, r in full_records.items() if e not in daily.records}},
        "daily_wall_estimated": train_daily + fc["wall_estimated"],
        "daily_wall_estimated_full_horizon": train_daily + fc["wall_estimated_full_horizon"],
        "full_retrain_wall_estimated": train_full,
    }
    b_daily, b_full = bambam_walls.get("daily") or {}, bambam_walls.get("full") or {}
    out["ratios"] = {
        "daily_run": _ratio(out["daily_wall_estimated"], b_daily.get("wall")),
        "daily_run_full_horizon": _ratio(out["daily_wall_estimated_full_horizon"],
                                         b_daily.get("wall")),
        "daily_training_vs_entity_model_step": _ratio(
            train_daily, (b_daily.get("steps") or {}).get("entity_model")),
        "full_retrain": _ratio(train_full, b_full.get("wall")),
        "full_retrain_vs_entity_model_step": _ratio(
            train_full, (b_full.get("steps") or {}).get("entity_model")),
    }
    return out


def print_legacy(section: dict, bambam_walls: dict[str, dict], echo=print) -> None:
    """The legacy lines of the full benchmark's table."""
    s, r = section["setup"], section["ratios"]
    fc = section["forecast"]

    def f(x, fmt=".0f") -> str:
        return "n/a" if x is None else format(x, fmt)

    echo(f"\nlegacy (sample {section['sample']} entities a step, extrapolated): index "
         f"{s['entities_in_index']} entities, {s['selected_for_training']} with >= "
         f"{s['min_target_count']} targets, {s['due_today']} of them with new rows on day D")
    d = section["daily_training"]
    echo(f"  daily training   {f(d['wall_estimated'])} s ({d['run']} of {d['entities']} run)")
    for name, st in fc["strata"].items():
        echo(f"  forecast {name:8} {f(st['wall_estimated'])} s as it ran, "
             f"{f(st['wall_estimated_full_horizon'])} s full horizon ({st['run']} of "
             f"{st['entities']} run, kinds {','.join(st['kinds']) or '-'})")
    bd = (bambam_walls.get("daily") or {}).get("wall")
    bf = (bambam_walls.get("full") or {}).get("wall")
    echo(f"  daily run        {f(section['daily_wall_estimated'])} s "
         f"(full horizon {f(section['daily_wall_estimated_full_horizon'])} s) vs bambam daily "
         f"{f(bd, '.1f')} s: {f(r['daily_run'], '.1f')}x (full horizon "
         f"{f(r['daily_run_full_horizon'], '.1f')}x)")
    ft = section["full_retrain_training"]
    echo(f"  full retrain     {f(section['full_retrain_wall_estimated'])} s ({ft['run']} of "
         f"{ft['entities']} run) vs bambam full {f(bf, '.1f')} s: "
         f"{f(r['full_retrain'], '.1f')}x")
