"""Bambam's side of the benchmark: `bambam run` in a fresh process, then what its event log says.

`run_bambam` starts `python -m bench.bambam_side RESULT.json SELECTION` with a fresh BAMBAM_HOME
(or, for the daily benchmark, an existing one) doing the work of `bambam run` (interpreter start,
imports, ingest, dimensions, entity_model in one range run on the worker pool; SELECTION "all"
adds the forecast, backfill and WTI assets) and times it from the outside. The child, AFTER its
timed part, reads the Dagster event log of its runs (step durations, the entity_model log lines)
and the models it stored (test MAE per entity), the staleness evaluations its entity_model run
recorded and the numeric metadata of the unpartitioned materializations, and writes them to
RESULT.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class BambamResult:
    wall: float  # seconds from the parent's spawn to the end of run_pipeline in the child
    wall_to_exit: float  # also counts the child's untimed read-out and exit
    child: dict = field(default_factory=dict)  # what the child wrote (see `child_main`)


def run_bambam(raw: Path, home: Path, as_of: date, profile: Path | None = None,
               log=print, selection: str = "training", fresh: bool = True,
               name: str = "run", env: dict[str, str] | None = None) -> BambamResult:
    """One `bambam run` in a fresh process on `raw` with BAMBAM_HOME=`home`.

    `fresh`: `home` must not exist yet (a first run); otherwise it must exist (a daily run on the
    state an earlier run left). `selection`: "training" (entity_model and everything upstream),
    "all" (every asset, what `bambam run` materializes) or "retrain-all" (every asset, every
    entity retrained in full: `bambam run --retrain-all`). `name` names the log and result
    files under `home`, so that several runs on one home keep theirs. `env`: extra environment
    variables of the child (e.g. BAMBAM_TRAIN_MODE).
    """
    if fresh:
        home.mkdir(parents=True)
    elif not home.is_dir():
        raise FileNotFoundError(f"no Bambam home at {home}")
    result_path = home / f"bench_result_{name}.json"
    log_path = home / f"bambam_{name}.log"
    from bambam_assets.lib.core.paths import HomePaths

    # the child's own environment: a copy of ours pointing at this home (never read here)
    env = os.environ | {"BAMBAM_HOME": str(home), "BAMBAM_RAW": str(raw),
                        "BAMBAM_AS_OF": as_of.isoformat(),
                        "DAGSTER_HOME": str(HomePaths(home).dagster)} | (env or {})
    cmd = [sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile)]
        cmd += [str(Path(__file__))]
    else:
        cmd += ["-m", "bench.bambam_side"]
    cmd += [str(result_path), selection]
    log(f"bambam: {' '.join(cmd[1:])}  as of {as_of} (log: {log_path})")
    spawned = time.time()
    started = time.perf_counter()
    with open(log_path, "w") as out:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    to_exit = time.perf_counter() - started
    if proc.returncode != 0 or not result_path.exists():
        raise RuntimeError(f"bambam run failed (exit {proc.returncode}); see {log_path}")
    child = json.loads(result_path.read_text())
    child["seconds_interpreter_start"] = child["entered_at"] - spawned
    child["seconds_before_run_pipeline"] = child["run_pipeline_start"] - spawned
    return BambamResult(wall=child["run_pipeline_end"] - spawned, wall_to_exit=to_exit, child=child)


def _step_times(instance, run_ids: list[str]) -> dict:
    """Per step: STEP_START -> STEP_SUCCESS/FAILURE seconds; run spans; entity_model phases."""
    steps: dict[str, float] = {}
    spans: list[tuple[str, float, float]] = []  # (step, start, end): epoch seconds
    runs: dict[str, float] = {}
    phases: dict[str, float] = {}
    for run_id in run_ids:
        start: dict[str, float] = {}
        run_start = run_end = None
        marks: dict[str, float] = {}
        for e in instance.all_logs(run_id):
            ev = e.dagster_event
            kind = ev.event_type_value if ev is not None else None
            if kind == "STEP_START":
                start[e.step_key] = e.timestamp
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and e.step_key in start:
                steps[e.step_key] = steps.get(e.step_key, 0.0) + e.timestamp - start[e.step_key]
                spans.append((e.step_key, start[e.step_key], e.timestamp))
                if e.step_key == "entity_model":
                    marks["end"] = e.timestamp
            elif kind == "PIPELINE_START":
                run_start = e.timestamp
            elif kind in ("PIPELINE_SUCCESS", "PIPELINE_FAILURE"):
                run_end = e.timestamp
            elif kind is None and e.step_key == "entity_model":
                msg = e.user_message or ""
                if msg.startswith("training "):
                    marks["features_done"] = e.timestamp
                elif msg.startswith("trained "):
                    marks["trained"] = e.timestamp
            if kind == "STEP_START" and e.step_key == "entity_model":
                marks["start"] = e.timestamp
        if run_start is not None and run_end is not None:
            runs[run_id] = run_end - run_start
        if {"start", "features_done", "trained", "end"} <= marks.keys():
            phases = {
                "read_features": marks["features_done"] - marks["start"],
                "pool_and_registry_files": marks["trained"] - marks["features_done"],
                "registry_table_and_materialization_events": marks["end"] - marks["trained"],
            }
    return {"steps": steps, "step_spans": spans, "runs": runs, "entity_model_phases": phases}


def _models(home: Path) -> dict:
    """Per entity: kind, queue type, test MAE (without POSTED, with POSTED), n_test, rounds."""
    import duckdb

    from bambam_assets.lib.core.paths import HomePaths
    from bambam_assets.lib.models import registry

    root = HomePaths(home).models
    out: dict[str, dict] = {}
    conn = duckdb.connect(str(HomePaths(home).warehouse), read_only=True)
    try:
        rows = conn.execute(
            "SELECT entity_code, kind, queue_type, mae FROM model_registry WHERE is_current"
        ).fetchall()
    finally:
        conn.close()
    for code, kind, queue_type, mae in rows:
        meta = registry.read_meta(root, code, registry.current_version(root, code))
        metrics = meta.get("metrics") or {}
        wo, wp = metrics.get("without_posted") or {}, metrics.get("with_posted") or {}
        out[code] = {"kind": kind, "queue_type": queue_type, "test_mae": mae,
                     "test_mae_with_posted": wp.get("mae"), "n_test": wo.get("n_test"),
                     "best_iteration": wo.get("best_iteration"), "targets": metrics.get("rows")}
    return out


def training_selection() -> list[str]:
    """entity_model and everything upstream of it (ingest, dimensions): what training needs.

    Forecast, backfill and WTI assets downstream of the models are left out: this benchmarks
    training.
    """
    import dagster as dg

    from bambam_assets.definitions import defs

    keys = (dg.AssetSelection.assets("entity_model").upstream()
            .required_multi_asset_neighbors().resolve(defs.resolve_asset_graph()))
    return sorted(k.to_user_string() for k in keys)


def _evaluations(home: Path, run_ids: list[str]) -> dict:
    """Per entity: the staleness evaluation recorded by an entity_model run among `run_ids`
    (tier, stale, why, what the run did); empty when none of them trained (nothing was due)."""
    import duckdb

    from bambam_assets.lib.core.paths import HomePaths

    sources = [f"entity_model run {r[:8]}" for r in run_ids]
    conn = duckdb.connect(str(HomePaths(home).warehouse), read_only=True)
    try:
        tables = {t for (t,) in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "retrain_evaluations" not in tables:
            return {}
        rows = conn.execute(
            "SELECT entity_code, tier, stale, summary, action, new_targets, age_hours, "
            "target_count FROM retrain_evaluations WHERE source IN (SELECT unnest(?)) "
            "ORDER BY entity_code", [sources]).fetchall()
    finally:
        conn.close()
    keys = ("tier", "stale", "summary", "action", "new_targets", "age_hours", "target_count")
    return {code: dict(zip(keys, rest, strict=True)) for code, *rest in rows}


def _plain_metadata(instance, run_ids: list[str]) -> dict:
    """Numeric metadata of the unpartitioned materializations (e.g. the ingest's files_read,
    rows_added), per asset, summed over the runs."""
    out: dict[str, dict] = {}
    for run_id in run_ids:
        for e in instance.all_logs(run_id):
            ev = e.dagster_event
            if ev is None or ev.event_type_value != "ASSET_MATERIALIZATION":
                continue
            mat = ev.event_specific_data.materialization
            if mat.partition is not None:
                continue
            md = out.setdefault(mat.asset_key.to_user_string(), {})
            for key, value in mat.metadata.items():
                raw = getattr(value, "value", value)
                if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                    md[key] = md.get(key, 0) + raw
    return out


def child_main(result_path: Path, selection_name: str = "training") -> None:
    """The timed `bambam run`, then the (untimed) event-log and registry read-out."""
    entered = time.time()
    from bambam_assets.instance import local_instance
    from bambam_assets.lib.core import settings
    from bambam_assets.runner import run_pipeline

    imported = time.time()
    instance = local_instance()
    selection = training_selection() if selection_name == "training" else None
    t0 = time.time()
    # "retrain-all": every asset, every entity retrained from scratch (`bambam run --retrain-all`)
    summary = run_pipeline(instance, selection, log=print,
                           retrain_all=selection_name == "retrain-all")
    t1 = time.time()
    result = {
        "success": summary.success, "run_ids": summary.run_ids, "selection": selection,
        "selection_name": selection_name,
        "seconds_imports": imported - entered,
        "seconds_instance": t0 - imported,
        "seconds_run_pipeline": t1 - t0,
        "entered_at": entered, "run_pipeline_start": t0, "run_pipeline_end": t1,
    }
    result |= _step_times(instance, summary.run_ids)
    result["models"] = _models(settings.home())
    result["evaluations"] = _evaluations(settings.home(), summary.run_ids)
    result["asset_metadata"] = _plain_metadata(instance, summary.run_ids)
    result_path.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    if str(REPO) not in sys.path:  # run as a script under cProfile
        sys.path.insert(0, str(REPO))
    child_main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "training")
