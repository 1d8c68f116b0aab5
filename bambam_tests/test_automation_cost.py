"""The pure parts of bench/automation_cost.py: when a daemon counts as settled, and how runs,
materializations and sampled processes are summarized (no daemon, no dagster)."""

from __future__ import annotations

from bench.automation_cost import (
    RunRow,
    cpu_split,
    markdown_table,
    materialization_counts,
    run_counts,
    settled,
)


def _run(created: float, ended: float | None, status: str = "SUCCESS", job: str = "j",
         trigger: str = "sensor_name=s") -> RunRow:
    return RunRow(f"r{created}", created, ended, status, job, ("a",), trigger)


def test_settled_needs_quiet_after_the_last_run_end_and_nothing_in_progress():
    runs = [_run(10, 50), _run(20, 30)]
    assert settled(runs, False, 0, 50 + 329, quiet_s=330) == (False, 50)
    assert settled(runs, False, 0, 50 + 330, quiet_s=330) == (True, 50)
    # a run still in progress, or a backfill requested: never settled, however long ago
    assert settled([*runs, _run(40, None)], False, 0, 10_000, quiet_s=330)[0] is False
    assert settled(runs, True, 0, 10_000, quiet_s=330)[0] is False


def test_settled_without_any_run_counts_from_the_phase_start():
    # a daemon that launches nothing (the older code's new day, say) settles after quiet_s
    assert settled([], False, 100, 429, quiet_s=330) == (False, 100)
    assert settled([], False, 100, 430, quiet_s=330) == (True, 100)


def test_run_counts_group_by_job_selection_trigger_and_status():
    runs = [_run(1, 2), _run(3, 4), _run(5, 6, status="FAILURE"), _run(7, 8, job="ingest_job")]
    got = run_counts(runs)
    assert got[0] == {"job": "j", "selection": ["a"], "trigger": "sensor_name=s",
                      "status": "SUCCESS", "runs": 2}
    assert sorted((g["job"], g["status"], g["runs"]) for g in got[1:]) == [
        ("ingest_job", "SUCCESS", 1), ("j", "FAILURE", 1)]


def test_materialization_counts_events_and_distinct_partitions():
    events = [("park_wti", None), ("entity_model", "DL1"), ("entity_model", "DL1"),
              ("entity_model", "MK2"), ("park_wti", None)]
    assert materialization_counts(events) == {
        "entity_model": {"events": 3, "partitions": 2},
        "park_wti": {"events": 2, "partitions": 0}}


def test_cpu_split_gives_a_run_worker_its_whole_subtree():
    samples = {
        (1, 0.0): {"ppid": 99, "cpu": 10.0, "run_worker": False},  # the daemon
        (2, 1.0): {"ppid": 1, "cpu": 3.0, "run_worker": False},  # its code server
        (3, 2.0): {"ppid": 1, "cpu": 4.0, "run_worker": True},  # a run worker
        (4, 3.0): {"ppid": 3, "cpu": 1.5, "run_worker": False},  # its forkserver
        (5, 4.0): {"ppid": 4, "cpu": 6.0, "run_worker": False},  # a step process
    }
    assert cpu_split(samples) == {"runs": 11.5, "daemon": 13.0}


def test_markdown_table_one_row_per_phase_and_code():
    phase = {"phase": "one new day", "code": "after", "runs": 3, "cpu_s": 41.2,
             "cpu_psutil": {"runs": 30.0, "daemon": 9.0}, "wall_to_last_run_s": 120.0,
             "wall_to_settled_s": 450.0, "wall_s": 455.0, "settled": True,
             "runs_by_group": [{"status": "SUCCESS", "runs": 2}, {"status": "FAILURE", "runs": 1}],
             "materializations": {"entity_model": {"events": 1, "partitions": 1},
                                  "park_wti": {"events": 1, "partitions": 0}}}
    table = markdown_table([phase]).splitlines()
    assert len(table) == 3
    assert table[2] == ("| one new day | after | 3 (1 not SUCCESS) | 41 | 30 / 9 | 120 | 450 | "
                        "entity_model 1/1, park_wti 1 |")
