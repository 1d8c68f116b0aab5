"""The blocking check on fct_wait_times: bad raw data stops the layers below the fact table.

The bad state arrives the way it would in production: a daily export whose timestamps carry a
wrong year (2042 for 2024) lands in the raw source; the pipeline ingests it; the check fails;
nothing below the fact table is built. The export is then corrected at the source, the next run
re-reads it (its facts of 2042 retracted), the check passes and the dimensions are built."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb

from bambam_assets.definitions import defs
from bambam_assets.defs.groups import DIMENSIONS, GROUP_ASSETS
from bambam_assets.defs.ingest.assets import ingest_wait_times
from bambam_assets.defs.ingest.checks import (
    BLOCKING_CHECKS_PASSED,
    fact_checks,
    fct_wait_times_keys_unique_not_future,
)
from bambam_assets.defs.resources import default_resources
from bambam_assets.instance import instance_at
from bambam_assets.lib.core import schema
from bambam_assets.lib.core.paths import HomePaths
from bambam_assets.lib.demo import generate as demo_data
from bambam_assets.lib.ingest import fact_checks as fact_check_rules
from bambam_assets.lib.ingest.fact_checks import check_facts
from bambam_assets.runner import run_pipeline
from bambam_tests.builders import wrong_year_export

CHECK = fct_wait_times_keys_unique_not_future.check_key.name
# the fact table's own step, and the layers right below it (built in the same run when it passes)
SELECTION = ["fct_wait_times", *GROUP_ASSETS[DIMENSIONS]]
INGEST_STEP = {"fct_wait_times", "fct_rejected_rows", "entity_index"}


def _below_fact_table() -> set[str]:
    """Every asset downstream of fct_wait_times in the real graph, the ingest step's own aside."""
    graph = defs.resolve_asset_graph()
    keys = dg.AssetSelection.assets("fct_wait_times").downstream().resolve(graph)
    return {k.to_user_string() for k in keys} - INGEST_STEP


def test_future_observations_block_the_layers_below(bambam_home: Path, monkeypatch) -> None:
    raw = bambam_home / "raw"
    demo_data.generate(raw, ["MK"], 1, date(2024, 3, 1), date(2024, 3, 31), seed=3, qt_days=0)
    monkeypatch.setenv("BAMBAM_AS_OF", "2024-04-02")
    export = wrong_year_export(raw, 2042)
    instance = instance_at(bambam_home)
    try:
        bad = run_pipeline(instance, SELECTION, log=lambda _m: None)
        assert not bad.success
        assert CHECK in bad.failed_checks
        below = _below_fact_table()
        assert {"dim_entity", "dim_park_hours", "entity_model", "park_wti"} <= below
        # the fact table landed (it is where the bad rows are to be seen), nothing below it did;
        # dim_calendar and dim_season, built from the exports alone, are not below it
        assert INGEST_STEP <= set(bad.materialized)
        assert not below & set(bad.materialized)
        assert {"dim_calendar", "dim_season"} <= set(bad.materialized)
        record = instance.get_latest_asset_check_evaluation_record(
            fct_wait_times_keys_unique_not_future.check_key)
        meta = record.event.dagster_event.event_specific_data.metadata
        assert meta["future_rows"].value == 24  # 2 days x 12 hours, all of 2042
        assert meta["duplicate_keys"].value == 0
        assert str(meta["future_examples"].value).count("MK1 2042-04-0") == 10  # examples

        # the source corrects the export: re-read in full, the 2042 facts retracted
        wrong_year_export(raw, 2024)
        export.touch()
        good = run_pipeline(instance, SELECTION, log=lambda _m: None)
        assert good.success, good
        assert CHECK not in good.failed_checks
        assert {"dim_entity", "dim_park_hours", "dim_park_hours_versions"} <= set(
            good.materialized)
    finally:
        instance.dispose()
    with duckdb.connect(str(HomePaths(bambam_home).warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM fct_wait_times WHERE park_date >= "
                            "'2024-04-01'").fetchall()[0][0] == 24


def test_duplicate_keys_of_the_latest_ingest_and_replays_allowed(tmp_path: Path,
                                                                 monkeypatch) -> None:
    """The rules themselves on a warehouse written by hand: a duplicate key among the facts of
    the files read since `since` is found (and missed only when it is older than `since`); facts
    after the as-of date but before the real clock (a replay) are no error."""
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    schema.ensure_tables(conn)
    t0 = datetime(2024, 3, 1, 14, 0, tzinfo=UTC)
    conn.execute("INSERT INTO ingest_manifest (source_key, status, ingested_at) VALUES "
                 "('old.csv', 'processed', '2024-03-01 00:00+00'), "
                 "('new.csv', 'processed', '2024-03-05 00:00+00')")
    rows = [("old.csv", t0), ("new.csv", t0), ("new.csv", datetime(2024, 3, 4, 14, tzinfo=UTC))]
    for src, ts in rows:
        conn.execute("INSERT INTO fct_wait_times VALUES ('MK1', 'MK', ?, ?, 'POSTED', 30, ?)",
                     [ts.date(), ts, src])
    now = datetime(2024, 3, 10, tzinfo=UTC)
    found = check_facts(conn, date(2024, 3, 2), now, since=datetime(2024, 3, 4, tzinfo=UTC))
    assert found.duplicate_keys == 1 and found.files_checked == 1
    assert found.duplicate_examples[0].endswith("x2")
    assert found.future_rows == 0  # 2024-03-04 is after the as-of date, but not after the clock
    assert not found.passed
    everything = check_facts(conn, date(2024, 3, 2), now, since=None)
    assert everything.duplicate_keys == 1 and everything.files_checked is None
    conn.execute("INSERT INTO fct_wait_times VALUES ('MK2', 'MK', '2024-03-04', "
                 "'2024-03-04 15:00+00', 'POSTED', 20, 'new.csv')")
    monkeypatch.setattr(fact_check_rules, "CHUNK_ROWS", 1)  # one entity per query: same answer
    chunked = check_facts(conn, date(2024, 3, 2), now, since=None)
    assert chunked.duplicate_keys == 1 and chunked.duplicate_examples[0].startswith("MK1 ")
    older = check_facts(conn, date(2024, 3, 2), now, since=datetime(2024, 3, 6, tzinfo=UTC))
    assert older.duplicate_keys == 0 and older.files_checked == 0
    conn.close()


def test_automation_below_a_failed_check_waits_with_the_guard(bambam_home: Path,
                                                              monkeypatch) -> None:
    """Across runs: after the sensor's ingest_job fails on the check, Dagster's eager() alone
    requests an asset below the fact table (the table itself did materialize); with
    BLOCKING_CHECKS_PASSED it waits."""
    raw = bambam_home / "raw"
    demo_data.generate(raw, ["MK"], 1, date(2024, 3, 1), date(2024, 3, 31), seed=3, qt_days=0)
    monkeypatch.setenv("BAMBAM_AS_OF", "2024-04-02")
    wrong_year_export(raw, 2042)

    @dg.asset(deps=["fct_wait_times"], automation_condition=dg.AutomationCondition.eager())
    def eager_alone() -> None: ...

    @dg.asset(deps=["fct_wait_times"],
              automation_condition=dg.AutomationCondition.eager() & BLOCKING_CHECKS_PASSED)
    def eager_guarded() -> None: ...

    probe = dg.Definitions(assets=[ingest_wait_times, eager_alone, eager_guarded],
                           asset_checks=fact_checks, resources=default_resources())
    instance = instance_at(bambam_home)
    try:
        before = dg.evaluate_automation_conditions(defs=probe, instance=instance)
        run = defs.resolve_job_def("ingest_job").execute_in_process(instance=instance,
                                                                    raise_on_error=False)
        assert not run.success  # the raw sensor's job runs the check too
        after = dg.evaluate_automation_conditions(defs=probe, instance=instance,
                                                  cursor=before.cursor)
    finally:
        instance.dispose()
    requested = {r.key.to_user_string(): r.true_subset.size for r in after.results}
    assert requested["eager_alone"] == 1 and requested["eager_guarded"] == 0
