"""A snapshot of the code location: a change to the graph must be made on purpose.

The test describes `bambam_assets.definitions.defs` (assets with group, deps, partitions kind,
backfill policy, automation condition and freshness policy presence; checks and whether they
block; jobs and their assets; schedules with cron, time zone and target; sensors with minimum
interval, default status and target) and compares it with the committed
`definitions_snapshot.json`. When the graph changed on purpose, regenerate the file and commit it
with the change:

    cd <repo> && PYTHONPATH=. python -m bambam_tests.defs.test_definitions_snapshot
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")
REGENERATE = "PYTHONPATH=. python -m bambam_tests.defs.test_definitions_snapshot"


def _partitions_kind(pd: dg.PartitionsDefinition | None) -> str | None:
    if pd is None:
        return None
    if isinstance(pd, dg.DynamicPartitionsDefinition):
        return f"dynamic({pd.name})"
    if isinstance(pd, dg.TimeWindowPartitionsDefinition):
        return f"time_window({pd.cron_schedule}, {pd.timezone})"
    if isinstance(pd, dg.StaticPartitionsDefinition):
        return f"static({len(pd.get_partition_keys())} keys)"
    if isinstance(pd, dg.MultiPartitionsDefinition):
        return "multi(" + ", ".join(f"{d.name}: {_partitions_kind(d.partitions_def)}"
                                    for d in pd.partitions_defs) + ")"
    return type(pd).__name__


def _enum(value) -> str | None:
    return None if value is None else getattr(value, "value", str(value))


def _target(defs: dg.Definitions, obj) -> str | list[str] | None:
    """A named job by name; an anonymous target (assets) or an automation sensor's selection by
    its asset keys; None without one."""
    if isinstance(obj, dg.AutomationConditionSensorDefinition):
        return sorted(k.to_user_string()
                      for k in obj.asset_selection.resolve(defs.resolve_asset_graph()))
    if isinstance(obj, dg.SensorDefinition) and not obj.has_jobs:
        return None
    name = obj.job_name
    if not name.startswith("__"):
        return name
    return sorted(k.to_user_string()
                  for k in defs.resolve_job_def(name).asset_layer.executable_asset_keys)


def describe(defs: dg.Definitions) -> dict:
    """The parts of the code location the snapshot guards, as plain JSON-able data."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "executable": node.is_executable,
            "partitions": _partitions_kind(node.partitions_def),
            "backfill_policy": (_enum(node.backfill_policy.policy_type)
                                if node.backfill_policy else None),
            "automation_condition": node.automation_condition is not None,
            "freshness_policy": node.freshness_policy is not None,
        }
    checks = {}
    for ck in sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name)):
        spec = graph.get_check_spec(ck)
        checks[f"{ck.asset_key.to_user_string()}:{ck.name}"] = {"blocking": spec.blocking}
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # the implicit and anonymous jobs Dagster builds itself
            continue
        jobs[job.name] = {"assets": sorted(k.to_user_string()
                                           for k in job.asset_layer.executable_asset_keys)}
    schedules = {
        s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone,
                 "default_status": _enum(s.default_status), "target": _target(defs, s)}
        for s in sorted(defs.schedules or [], key=lambda s: s.name)
    }
    sensors = {
        s.name: {"type": type(s).__name__, "minimum_interval_seconds": s.minimum_interval_seconds,
                 "default_status": _enum(s.default_status), "target": _target(defs, s)}
        for s in sorted(defs.sensors or [], key=lambda s: s.name)
    }
    return {"assets": assets, "asset_checks": checks, "jobs": jobs, "schedules": schedules,
            "sensors": sensors}


def render(defs: dg.Definitions) -> str:
    return json.dumps(describe(defs), indent=2, sort_keys=True) + "\n"


def _current() -> str:
    from bambam_assets.definitions import defs

    return render(defs)


def test_definitions_match_the_snapshot() -> None:
    current = _current()
    committed = SNAPSHOT.read_text() if SNAPSHOT.exists() else ""
    if current != committed:
        diff = "".join(difflib.unified_diff(
            committed.splitlines(keepends=True), current.splitlines(keepends=True),
            fromfile=f"{SNAPSHOT.name} (committed)", tofile="current definitions"))
        raise AssertionError(
            "the code location differs from its snapshot. If the change is intended, "
            f"regenerate the snapshot (`{REGENERATE}`) and commit it.\n{diff}")


if __name__ == "__main__":
    SNAPSHOT.write_text(_current())
    print(f"wrote {SNAPSHOT}")
