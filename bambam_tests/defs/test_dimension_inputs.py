"""Dimension fingerprints: unchanged inputs skip the rebuild but still materialize."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from bambam_assets.defs.dimensions.assets import dimension_assets
from bambam_assets.defs.dimensions.checks import dimension_checks
from bambam_assets.defs.ingest.assets import ingest_wait_times
from bambam_assets.defs.resources import (
    RawSourceResource,
    RunSettingsResource,
    WarehouseResource,
)
from bambam_assets.lib.core import forecast_week, schema
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.demo import generate as demo_data
from bambam_assets.lib.dimensions import inputs as di
from bambam_assets.lib.ingest.formats import RawFormat

# ---------------------------------------------------------------- the module, on a bare DuckDB


@pytest.fixture
def conn():
    c = duckdb.connect()
    schema.ensure_tables(c, ("ingest_manifest",))
    yield c
    c.close()


def _add_export(c, key: str, fmt: RawFormat, size: int, modified: datetime, etag=None,
                status: str = "processed") -> None:
    c.execute(
        "INSERT OR REPLACE INTO ingest_manifest"
        " (source_key, size, etag, modified_at, format, status) VALUES (?, ?, ?, ?, ?, ?)",
        [key, size, etag, modified, fmt.value, status],
    )


T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_export_identities_are_the_processed_files_of_one_format(conn) -> None:
    _add_export(conn, "export/park_hours/b.csv", RawFormat.PARK_HOURS, 20, T0)
    _add_export(conn, "export/park_hours/a.csv", RawFormat.PARK_HOURS, 10, T0, etag="abc")
    _add_export(conn, "export/park_hours/c.csv", RawFormat.PARK_HOURS, 10, T0, status="failed")
    _add_export(conn, "export/metatable/m.csv", RawFormat.METATABLE, 5, T0)
    assert di.export_identities(conn, RawFormat.PARK_HOURS) == [
        "export/park_hours/a.csv|10|abc",
        f"export/park_hours/b.csv|20|{T0.isoformat()}",
    ]
    assert di.export_identities(conn, RawFormat.EVENTS) == []


def test_fingerprint_changes_with_any_identity_and_the_code_version(conn, monkeypatch) -> None:
    _add_export(conn, "export/park_hours/a.csv", RawFormat.PARK_HOURS, 10, T0)
    fp = di.fingerprint(di.export_identities(conn, RawFormat.PARK_HOURS), date(2024, 3, 1))
    assert fp == di.fingerprint(di.export_identities(conn, RawFormat.PARK_HOURS), date(2024, 3, 1))
    assert len(fp) == 64

    later = T0 + timedelta(seconds=1)
    _add_export(conn, "export/park_hours/a.csv", RawFormat.PARK_HOURS, 10, later)
    touched = di.fingerprint(di.export_identities(conn, RawFormat.PARK_HOURS), date(2024, 3, 1))
    _add_export(conn, "export/park_hours/a.csv", RawFormat.PARK_HOURS, 11, T0)
    resized = di.fingerprint(di.export_identities(conn, RawFormat.PARK_HOURS), date(2024, 3, 1))
    assert len({fp, touched, resized}) == 3
    assert di.fingerprint(["x"], date(2024, 3, 2)) != di.fingerprint(["x"], date(2024, 3, 1))
    assert di.fingerprint({"a": 1, "b": 2}) == di.fingerprint({"b": 2, "a": 1})

    monkeypatch.setattr(di, "DIMENSION_CODE_VERSION", "2")
    assert di.fingerprint(["export/park_hours/a.csv|11|" + T0.isoformat()], date(2024, 3, 1)) \
        != resized
    with pytest.raises(TypeError):
        di.fingerprint(object())


def test_codes_digest_ignores_order_but_not_a_new_code() -> None:
    assert di.codes_digest(["MK2", "MK1"]) == di.codes_digest(["MK1", "MK2"])
    assert di.codes_digest(["MK1", "MK2", "MK3"]) != di.codes_digest(["MK1", "MK2"])


def test_is_current_needs_the_same_fingerprint_and_every_table(conn) -> None:
    assert di.is_current(conn, "dim_x", "fp1", ["dim_x"]) is None  # never built (log created)
    conn.execute("CREATE TABLE dim_x (a INTEGER)")
    di.record_build(conn, "dim_x", "fp1")
    since = di.is_current(conn, "dim_x", "fp1", ["dim_x"])
    assert since is not None
    assert datetime.fromisoformat(since).tzinfo is not None
    assert abs(datetime.fromisoformat(since) - datetime.now(UTC)) < timedelta(minutes=1)

    assert di.is_current(conn, "dim_x", "fp1", ["dim_x", "dim_y"]) is None  # a table missing
    di.record_build(conn, "dim_x", "fp1")
    assert di.is_current(conn, "dim_other", "fp1", ["dim_x"]) is None  # another dimension
    conn.execute("DROP TABLE dim_x")
    assert di.is_current(conn, "dim_x", "fp1", ["dim_x"]) is None  # table dropped since
    conn.execute("CREATE TABLE dim_x (a INTEGER)")
    di.record_build(conn, "dim_x", "fp1")
    assert di.is_current(conn, "dim_x", "fp2", ["dim_x"]) is None  # inputs changed
    # ... and the old row is gone: if the rebuild dies half-way, a later run whose inputs are
    # back to fp1 must not take the half-written table for fp1's
    assert di.stored_fingerprint(conn, "dim_x") is None
    assert di.is_current(conn, "dim_x", "fp1", ["dim_x"]) is None


def test_record_build_upserts_one_row_per_dimension(conn) -> None:
    di.record_build(conn, "dim_x", "fp1")
    first = conn.execute("SELECT built_at FROM dim_build_log").fetchall()[0][0]
    time.sleep(0.01)
    di.record_build(conn, "dim_x", "fp2")
    di.record_build(conn, "dim_y", "fp1")
    rows = conn.execute(
        "SELECT dimension, fingerprint, built_at FROM dim_build_log ORDER BY 1").fetchall()
    assert [(d, f) for d, f, _ in rows] == [("dim_x", "fp2"), ("dim_y", "fp1")]
    assert rows[0][2] > first
    assert di.stored_fingerprint(conn, "dim_x") == "fp2"
    assert di.stored_fingerprint(conn, "dim_z") is None


def test_an_unlogged_upstream_never_matches(conn) -> None:
    di.record_build(conn, "dim_calendar", "cal")
    assert di.upstream_fingerprint(conn, "dim_calendar") == "cal"
    a, b = (di.upstream_fingerprint(conn, "dim_metatable") for _ in range(2))
    assert a != b and a.startswith("unlogged:")


# ---------------------------------------------------------------- the assets, through Dagster

AS_OF = date(2024, 3, 14)
DIM_TABLES = ("dim_calendar", "dim_season", "dim_entity", "dim_metatable", "dim_event_days",
              "dim_events", "dim_park_hours_versions", "dim_park_hours")


@pytest.fixture(scope="module")
def demo_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("dim_inputs") / "raw"
    demo_data.generate(raw, ["MK"], 2, date(2024, 3, 1), AS_OF, seed=5, qt_days=0)
    return raw


def _run(home: Path, raw: Path, as_of: date) -> tuple[dict, dict]:
    """Ingest + every dimension (and its checks); returns (metadata, step seconds) per key."""
    result = dg.materialize(
        [ingest_wait_times, *dimension_assets, *dimension_checks],
        instance=dg.DagsterInstance.ephemeral(),
        resources={"warehouse": WarehouseResource(home=str(home)),
                   "raw_source": RawSourceResource(uri=str(raw)),
                   "run_settings": RunSettingsResource(as_of=as_of.isoformat())},
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]
    meta = {}
    for ev in result.get_asset_materialization_events():
        mat = ev.materialization
        meta[mat.asset_key.to_user_string()] = {
            **{k: v.value for k, v in mat.metadata.items()},
            "data_version": mat.tags.get("dagster/data_version"),
        }
    seconds = {ev.step_key: ev.event_specific_data.duration_ms / 1000
               for ev in result.get_step_success_events()}
    return meta, seconds


def _contents(home: Path) -> dict[str, list]:
    with wh.reader(home) as c:
        return {t: sorted(c.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in DIM_TABLES}


def test_unchanged_inputs_skip_the_rebuild_and_changed_ones_do_not(
    tmp_path: Path, demo_raw: Path
) -> None:
    home = tmp_path / "home"
    first, first_s = _run(home, demo_raw, AS_OF)
    assert all(first[t]["rebuilt"] is True for t in DIM_TABLES)
    assert first["dim_park_hours"]["dagster/row_count"] > 0
    before = _contents(home)

    second, second_s = _run(home, demo_raw, AS_OF)
    for t in DIM_TABLES:
        assert second[t]["rebuilt"] is False, t
        assert second[t]["dagster/row_count"] == first[t]["dagster/row_count"], t
        assert second[t]["data_version"] == first[t]["data_version"], t
        assert datetime.fromisoformat(second[t]["unchanged_since"]) <= datetime.now(UTC)
    assert _contents(home) == before
    steps = [d.node_def.name for d in dimension_assets]
    print(f"\ndim_park_hours_tables step: first {first_s['dim_park_hours_tables']:.3f} s, "
          f"unchanged {second_s['dim_park_hours_tables']:.3f} s; the {len(steps)} dimension "
          f"steps: first {sum(first_s[k] for k in steps):.3f} s, "
          f"unchanged {sum(second_s[k] for k in steps):.3f} s")

    # The park-hours export is rewritten (new size and mtime): only its dimension rebuilds.
    path = next((demo_raw / "export" / "park_hours").glob("*.csv"))
    stat = path.stat()
    path.write_text(path.read_text() + "\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third, _ = _run(home, demo_raw, AS_OF)
    assert third["dim_park_hours"]["rebuilt"] is True
    assert third["dim_park_hours_versions"]["rebuilt"] is True
    assert third["dim_park_hours"]["data_version"] != first["dim_park_hours"]["data_version"]
    for t in ("dim_calendar", "dim_season", "dim_entity", "dim_metatable", "dim_event_days",
              "dim_events"):
        assert third[t]["rebuilt"] is False, t
    after_export = _contents(home)
    assert after_export["dim_park_hours"] == before["dim_park_hours"]  # same hours, new file

    # Another day of the same forecast week moves nothing: the calendar and the donor hours are
    # built as of the week's inputs day (lib.core.forecast_week).
    same_week = AS_OF + timedelta(days=1)
    assert forecast_week.inputs_as_of(same_week) == forecast_week.inputs_as_of(AS_OF)
    fourth, _ = _run(home, demo_raw, same_week)
    for t in ("dim_calendar", "dim_season", "dim_park_hours"):
        assert fourth[t]["rebuilt"] is False, t
    # The next week moves the horizon by seven days: calendar, season and park hours rebuild.
    next_week = forecast_week.week_start(AS_OF) + timedelta(days=7)
    fifth, _ = _run(home, demo_raw, next_week)
    for t in ("dim_calendar", "dim_season"):
        assert fifth[t]["rebuilt"] is True, t
        assert fifth[t]["dagster/row_count"] == third[t]["dagster/row_count"] + 7, t
    assert fifth["dim_park_hours"]["rebuilt"] is True
    assert (fifth["dim_park_hours"]["dagster/row_count"]
            > third["dim_park_hours"]["dagster/row_count"])
    for t in ("dim_entity", "dim_metatable", "dim_events"):
        assert fifth[t]["rebuilt"] is False, t


def test_a_dropped_table_is_rebuilt(tmp_path: Path, demo_raw: Path) -> None:
    home = tmp_path / "home"
    _run(home, demo_raw, AS_OF)
    with wh.writer(home) as c:
        c.execute("DROP TABLE dim_events")
    again, _ = _run(home, demo_raw, AS_OF)
    assert again["dim_events"]["rebuilt"] is True and again["dim_event_days"]["rebuilt"] is True
    assert again["dim_calendar"]["rebuilt"] is False
