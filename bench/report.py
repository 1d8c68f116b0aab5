"""Figures of one benchmark repetition, medians over repetitions, and the printed report."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "out"  # where the benchmarks write their reports

# issue 4 "Done when": >= 10x faster, mean test MAE no worse by more than 2%, overhead < 10%
TARGET_SPEEDUP = 10.0
TARGET_MAE_RATIO = 1.02
TARGET_OVERHEAD = 0.10
# A legacy entity slower than this many times the median entity is flagged as a contention
# outlier (other jobs on the machine: XGBoost's OpenMP threads then crawl); see README.
OUTLIER_FACTOR = 5.0


def _mean(values: list[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _mae_pairs(legacy: dict[str, dict], bambam: dict[str, dict], key: str,
               xgboost_only: bool) -> dict[str, Any]:
    """Mean test MAE of both sides over the entities both scored (kinds both xgboost if asked)."""
    pairs = []
    for code, lrec in legacy.items():
        brec = bambam.get(code)
        if brec is None or lrec.get(key) is None or brec.get(key) is None:
            continue
        if xgboost_only and not (lrec["kind"] == "xgboost" and brec["kind"] == "xgboost"):
            continue
        if math.isfinite(lrec[key]) and math.isfinite(brec[key]):
            pairs.append((lrec[key], brec[key]))
    legacy_mean = _mean([p[0] for p in pairs])
    bambam_mean = _mean([p[1] for p in pairs])
    return {"entities": len(pairs), "legacy": legacy_mean, "bambam": bambam_mean,
            "ratio_bambam_to_legacy": _ratio(bambam_mean, legacy_mean)}


def compare(legacy, bambam) -> dict[str, Any]:
    """Everything measured in one repetition (legacy may be None: Bambam side only)."""
    child = bambam.child
    steps = child["steps"]
    in_steps = sum(steps.values())
    b = {
        "success": child["success"],
        "wall": bambam.wall,
        "wall_to_exit": bambam.wall_to_exit,
        "training_step": steps.get("entity_model"),
        "steps_total": in_steps,
        "steps": steps,
        "entity_model_phases": child.get("entity_model_phases"),
        "before_run_pipeline": child["seconds_before_run_pipeline"],
        "imports": child["seconds_imports"],
        "instance": child["seconds_instance"],
        "run_pipeline": child["seconds_run_pipeline"],
        "runs": child["runs"],
        "dagster_overhead_share": (bambam.wall - in_steps) / bambam.wall,
        "dagster_overhead_share_in_run":
            (child["seconds_run_pipeline"] - in_steps) / child["seconds_run_pipeline"],
        "entities_trained": len(child["models"]),
        "models": child["models"],
    }
    out: dict[str, Any] = {"bambam": b}
    if legacy is None:
        return out
    recs = legacy.records
    walls = [r["wall"] for r in recs.values()]
    median_wall = statistics.median(walls) if walls else 0.0
    outliers = {c: r["wall"] for c, r in recs.items() if r["wall"] > OUTLIER_FACTOR * median_wall}
    robust = legacy.wall - sum(outliers.values()) + len(outliers) * median_wall
    n_run = len(recs) + len(legacy.failures)
    robust_all = robust * legacy.entities_total / n_run if n_run else 0.0
    out["legacy"] = {
        "wall": legacy.wall, "wall_estimated_all_entities": legacy.wall_estimated,
        "entities_run": len(recs) + len(legacy.failures), "entities_total": legacy.entities_total,
        "failures": legacy.failures,
        "median_entity_wall": median_wall, "contention_outliers": outliers,
        "wall_robust_all_entities": robust_all,
        "sum_load": sum(r["seconds_load"] for r in recs.values()),
        "sum_features": sum(r["seconds_features"] for r in recs.values()),
        "sum_train": sum(r["seconds_train"] for r in recs.values()),
        "sum_process_start_and_imports": sum(r["wall"] - r["seconds"] for r in recs.values()),
        "records": recs,
    }
    models = child["models"]
    out["speedup"] = _ratio(legacy.wall_estimated, bambam.wall)
    out["speedup_robust"] = _ratio(robust_all, bambam.wall)
    out["speedup_vs_training_step"] = _ratio(legacy.wall_estimated, b["training_step"])
    out["mae_all"] = _mae_pairs(recs, models, "test_mae", xgboost_only=False)
    out["mae_xgboost"] = _mae_pairs(recs, models, "test_mae", xgboost_only=True)
    out["mae_with_posted"] = _mae_pairs(recs, models, "test_mae_with_posted", xgboost_only=True)
    out["n_test_mismatch"] = {c: [r["n_test"], models[c]["n_test"]] for c, r in recs.items()
                              if c in models and r["n_test"] != models[c]["n_test"]}
    return out


def headline(rep: dict[str, Any]) -> dict[str, float | None]:
    """The flat numeric figures of one repetition (the ones medians are taken of)."""
    b = rep["bambam"]
    h: dict[str, float | None] = {
        "bambam_wall": b["wall"], "bambam_training_step": b["training_step"],
        "bambam_steps_total": b["steps_total"],
        "bambam_before_run_pipeline": b["before_run_pipeline"],
        "bambam_run_pipeline": b["run_pipeline"],
        "dagster_overhead_share": b["dagster_overhead_share"],
        "dagster_overhead_share_in_run": b["dagster_overhead_share_in_run"],
    }
    for phase, secs in (b.get("entity_model_phases") or {}).items():
        h[f"entity_model_{phase}"] = secs
    if "legacy" in rep:
        lg = rep["legacy"]
        h |= {"legacy_wall": lg["wall"],
              "legacy_wall_all_entities": lg["wall_estimated_all_entities"],
              "legacy_sum_load": lg["sum_load"], "legacy_sum_features": lg["sum_features"],
              "legacy_sum_train": lg["sum_train"],
              "legacy_sum_process_start_and_imports": lg["sum_process_start_and_imports"],
              "legacy_wall_robust": lg["wall_robust_all_entities"],
              "legacy_median_entity_wall": lg["median_entity_wall"],
              "legacy_contention_outliers": len(lg["contention_outliers"]),
              "speedup": rep["speedup"], "speedup_robust": rep["speedup_robust"],
              "speedup_vs_training_step": rep["speedup_vs_training_step"]}
        for name in ("mae_all", "mae_xgboost", "mae_with_posted"):
            m = rep[name]
            h |= {f"{name}_entities": m["entities"], f"{name}_legacy": m["legacy"],
                  f"{name}_bambam": m["bambam"], f"{name}_ratio": m["ratio_bambam_to_legacy"]}
    return h


def summarize(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the headline figures over repetitions, and the issue's targets checked on them."""
    heads = [headline(r) for r in reps]
    out: dict[str, Any] = {}
    for key in heads[0]:
        values = [h[key] for h in heads if h.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    if out.get("speedup") is not None:
        out["targets"] = {
            "speedup_at_least_10x": out["speedup"] >= TARGET_SPEEDUP,
            "mae_within_2pct_all": (out["mae_all_ratio"] or math.inf) <= TARGET_MAE_RATIO,
            "mae_within_2pct_xgboost": (out["mae_xgboost_ratio"] or math.inf) <= TARGET_MAE_RATIO,
            "dagster_overhead_under_10pct": out["dagster_overhead_share"] < TARGET_OVERHEAD,
        }
    return out


def _f(x: Any, fmt: str = ".1f") -> str:
    return "n/a" if x is None else format(x, fmt)


def print_report(s: dict[str, Any], n_reps: int, echo=print) -> None:
    echo("=" * 72)
    echo(f"training benchmark ({'median of ' + str(n_reps) + ' runs' if n_reps > 1 else '1 run'})")
    if s.get("legacy_wall") is not None:
        est = ("" if s["legacy_wall"] == s["legacy_wall_all_entities"]
               else " (extrapolated from sample)")
        echo(f"legacy wall            {_f(s['legacy_wall_all_entities'])} s{est}")
        echo(f"  load {_f(s['legacy_sum_load'])} s, features {_f(s['legacy_sum_features'])} s, "
             f"train {_f(s['legacy_sum_train'])} s, process start+imports "
             f"{_f(s['legacy_sum_process_start_and_imports'])} s (sums over entities run)")
        echo(f"  median entity {_f(s['legacy_median_entity_wall'])} s; "
             f"{_f(s['legacy_contention_outliers'], '.0f')} entities over {OUTLIER_FACTOR:g}x the "
             f"median (contention?); with them at the median: {_f(s['legacy_wall_robust'])} s")
    echo(f"bambam wall            {_f(s['bambam_wall'])} s  (start+imports+instance "
         f"{_f(s['bambam_before_run_pipeline'])} s, run_pipeline {_f(s['bambam_run_pipeline'])} s)")
    echo(f"  inside asset steps   {_f(s['bambam_steps_total'])} s; training step (entity_model) "
         f"{_f(s['bambam_training_step'])} s")
    if s.get("entity_model_read_features") is not None:
        echo(f"  entity_model: read features {_f(s['entity_model_read_features'])} s, pool+model "
             f"files {_f(s['entity_model_pool_and_registry_files'])} s, registry table+events "
             f"{_f(s['entity_model_registry_table_and_materialization_events'])} s")
    if s.get("speedup") is not None:
        echo(f"speedup legacy/bambam  {_f(s['speedup'], '.2f')}x  (without outliers "
             f"{_f(s['speedup_robust'], '.2f')}x; legacy / bambam training step: "
             f"{_f(s['speedup_vs_training_step'], '.2f')}x)")
        for name, label in (("mae_xgboost", "xgboost both"), ("mae_all", "all scored"),
                            ("mae_with_posted", "with-POSTED")):
            echo(f"mean test MAE {label:13} legacy {_f(s[name + '_legacy'], '.3f')}  bambam "
                 f"{_f(s[name + '_bambam'], '.3f')}  ratio {_f(s[name + '_ratio'], '.3f')}  "
                 f"({_f(s[name + '_entities'], '.0f')} entities)")
    echo(f"dagster overhead       {_f(100 * s['dagster_overhead_share'])}% of bambam wall "
         f"(in-run only: {_f(100 * s['dagster_overhead_share_in_run'])}%)")
    for key, ok in (s.get("targets") or {}).items():
        echo(f"  target {key:32} {'MET' if ok else 'MISSED'}")
    echo("=" * 72)
