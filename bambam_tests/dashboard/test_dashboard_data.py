"""Dashboard queries, cache, status maths and auth on a small hand-made warehouse (no browser)."""

from __future__ import annotations

import base64
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from bambam_assets.cli.dashboard import dashboard
from bambam_assets.dashboard import data, runs, theme
from bambam_assets.dashboard import data_curves as dc
from bambam_assets.dashboard.app import create_app, warm_up
from bambam_assets.dashboard.context import make_context, stale_days_setting
from bambam_assets.dashboard.pages import curves, freshness, quality, status
from bambam_assets.dashboard.store import WarehouseStore
from bambam_assets.lib.core import schema
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.web_auth import check_bind

AS_OF = date(2024, 3, 20)
NY = "America/New_York"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A warehouse with three MK entities (one extinct), a fact-only DL entity, observations
    from three sources, rejected rows, manifest rows and model versions."""
    home = tmp_path / "home"
    home.mkdir()
    with wh.writer(home) as conn:
        conn.execute(schema.DIM_DDL["dim_entity"])
        conn.execute("""INSERT INTO dim_entity (entity_code, entity_name, park_code, queue_type,
                        opened_on, extinct_on) VALUES
            ('MK1', 'Space Mountain', 'MK', 'STANDBY', DATE '1975-01-15', DATE '2099-01-01'),
            ('MK2', 'Old Ride', 'MK', 'STANDBY', DATE '1980-01-01', DATE '2024-01-01'),
            ('MK3', 'New Ride', 'MK', 'STANDBY', DATE '2024-01-01', NULL)""")
        conn.execute("""INSERT INTO entity_index (entity_code, park_code, latest_observed_at,
                        first_park_date, latest_park_date, row_count) VALUES
            ('MK1', 'MK', TIMESTAMPTZ '2024-03-19 20:00:00+00', DATE '2024-01-01',
             DATE '2024-03-19', 5),
            ('MK2', 'MK', TIMESTAMPTZ '2023-12-31 20:00:00+00', DATE '2023-01-01',
             DATE '2023-12-31', 2),
            ('MK3', 'MK', TIMESTAMPTZ '2024-03-15 20:00:00+00', DATE '2024-03-01',
             DATE '2024-03-15', 1),
            ('DL9', 'DL', TIMESTAMPTZ '2024-03-10 20:00:00+00', DATE '2024-03-01',
             DATE '2024-03-10', 1)""")
        # 2024-03-10 is the US spring-forward day: 14:00 UTC is 10:00 EDT, 13:00 UTC 09:00 EDT
        conn.execute("""INSERT INTO fct_wait_times VALUES
            ('MK1', 'MK', DATE '2024-03-10', TIMESTAMPTZ '2024-03-10 13:00:00+00', 'POSTED', 20,
             'export/wait_times/wdw/wdw_wait_times_2024_03.csv'),
            ('MK1', 'MK', DATE '2024-03-10', TIMESTAMPTZ '2024-03-10 14:00:00+00', 'POSTED', 40,
             'export/wait_times/wdw/wdw_wait_times_2024_03.csv'),
            ('MK1', 'MK', DATE '2024-03-10', TIMESTAMPTZ '2024-03-10 14:05:00+00', 'ACTUAL', 31,
             'export/wait_times/wdw/wdw_wait_times_2024_03.csv'),
            ('MK1', 'MK', DATE '2024-03-10', TIMESTAMPTZ '2024-03-10 15:00:00+00', 'CLOSED', NULL,
             'export/wait_times/wdw/wdw_wait_times_2024_03.csv'),
            ('MK1', 'MK', DATE '2024-03-19', TIMESTAMPTZ '2024-03-19 20:00:00+00', 'POSTED', 60,
             'queue_times/MK/2024-03-19/MK_20240319T200000Z.json'),
            ('MK3', 'MK', DATE '2024-03-15', TIMESTAMPTZ '2024-03-15 20:00:00+00', 'POSTED', 5,
             'public/MK3.csv')""")
        conn.execute("""INSERT INTO fct_rejected_rows (source_file, line, reason, raw, rejected_at)
            VALUES ('a', 1, 'bad_entity_code', 'x', TIMESTAMPTZ '2024-03-18 10:00:00+00'),
                   ('a', 2, 'bad_entity_code', 'x', TIMESTAMPTZ '2024-03-18 11:00:00+00'),
                   ('b', 1, 'unparseable_time', 'x', TIMESTAMPTZ '2024-03-19 10:00:00+00'),
                   ('c', 1, 'unparseable_time', 'x', TIMESTAMPTZ '2023-01-01 10:00:00+00')""")
        conn.execute("""INSERT INTO ingest_manifest (source_key, format, status, rows_added,
                        rows_rejected, ingested_at) VALUES
            ('export/a.csv', 'standby', 'processed', 10, 1, TIMESTAMPTZ '2024-03-19 10:00:00+00'),
            ('export/b.csv', 'standby', 'failed', NULL, NULL, TIMESTAMPTZ '2024-03-19 11:00:00+00'),
            ('queue_times/x.json', 'queue_times_snapshot', 'processed', 3, 0,
             TIMESTAMPTZ '2024-03-19 20:01:00+00')""")
        conn.execute("""INSERT INTO model_registry (entity_code, version, kind, trained_at,
                        promoted, is_current, holdout_mae, mae, rmse, naive_mae) VALUES
            ('MK1', 1, 'xgboost', TIMESTAMPTZ '2024-03-01 00:00:00+00', true, false, 4.0, 4.0,
             5.0, 8.0),
            ('MK1', 2, 'xgboost', TIMESTAMPTZ '2024-03-08 00:00:00+00', true, true, 5.0, 5.0,
             6.0, 8.0),
            ('MK3', 1, 'hourly_fallback', TIMESTAMPTZ '2024-03-08 00:00:00+00', true, true,
             3.0, 3.0, 4.0, 2.0),
            ('DL9', 1, 'xgboost', TIMESTAMPTZ '2024-03-08 00:00:00+00', true, false, 2.0, 2.0,
             3.0, 4.0),
            ('DL9', 2, 'xgboost', TIMESTAMPTZ '2024-03-09 00:00:00+00', false, false, 1.5, 1.5,
             2.0, 4.0)""")
    return home


@contextmanager
def _read(home: Path):
    with wh.reader(home) as conn:
        yield conn


# ---- model quality ------------------------------------------------------------------------------

def test_model_quality_current_models_with_park_tier_and_skill(home: Path) -> None:
    with _read(home) as conn:
        df = data.model_quality(conn).set_index("entity_code")
    assert list(df.index) == ["MK1", "MK3"]  # DL9 has no current version
    assert df.loc["MK1", "version"] == 2 and df.loc["MK1", "entity_name"] == "Space Mountain"
    assert df.loc["MK1", "tier"] == "critical"
    assert df.loc["MK1", "skill"] == pytest.approx(1 - 5.0 / 8.0)
    assert df.loc["MK3", "skill"] == pytest.approx(1 - 3.0 / 2.0)  # worse than naive: negative


def test_worse_models_flags_newest_version_above_previous(home: Path) -> None:
    with _read(home) as conn:
        worse = data.worse_models(conn)
        hist = data.mae_history(conn, "MK1")
    assert worse["entity_code"].tolist() == ["MK1"]  # DL9 got better, MK3 has one version
    row = worse.iloc[0]
    assert (row["latest_version"], row["previous_version"]) == (2, 1)
    assert row["delta"] == pytest.approx(1.0) and row["pct"] == pytest.approx(0.25)
    assert hist["version"].tolist() == [1, 2] and hist["holdout_mae"].tolist() == [4.0, 5.0]


def test_entity_code_from_the_page_is_a_bound_parameter(home: Path) -> None:
    evil = "MK1' OR '1'='1"
    with _read(home) as conn:
        assert data.mae_history(conn, evil).empty
        assert dc.observations(conn, evil, date(2024, 3, 10), NY).empty
    with pytest.raises(ValueError):
        dc.checked_entity(evil)  # never becomes a path part either
    with pytest.raises(ValueError):
        dc.forecast_path(Path("/x"), "../../etc")


# ---- freshness ---------------------------------------------------------------------------------

def test_entity_freshness_stale_only_among_operating_entities(home: Path) -> None:
    with _read(home) as conn:
        df = data.entity_freshness(conn, AS_OF, 2).set_index("entity_code")
    assert df.loc["MK1", "days_since"] == 1 and not df.loc["MK1", "stale"]
    assert df.loc["MK3", "days_since"] == 5 and df.loc["MK3", "stale"]
    assert not df.loc["MK2", "operating"] and not df.loc["MK2", "stale"]  # extinct on 2024-01-01
    assert df.loc["DL9", "operating"] and df.loc["DL9", "stale"]  # unknown to dim: operating
    with _read(home) as conn:
        relaxed = data.entity_freshness(conn, AS_OF, 9).set_index("entity_code")
    assert relaxed["stale"].sum() == 1 and relaxed.loc["DL9", "stale"]  # 10 days > 9


def test_source_freshness_names_sources_from_file_keys(home: Path) -> None:
    with _read(home) as conn:
        per = data.source_freshness(conn)
    assert set(zip(per["entity_code"], per["source"], per["rows"], strict=True)) == {
        ("MK1", "wait_times", 4), ("MK1", "queue_times", 1), ("MK3", "public", 1)}
    summary = data.source_summary(per).set_index("source")
    assert summary.loc["queue_times", "latest_observed_at"] == pd.Timestamp(
        "2024-03-19 20:00", tz="UTC")
    assert summary["entities"].to_dict() == {"public": 1, "queue_times": 1, "wait_times": 1}


def test_rejected_rows_per_day_and_reason_in_window(home: Path) -> None:
    with _read(home) as conn:
        rej = data.rejected_per_day(conn, days=30)
        polls = data.ingest_polls(conn).set_index("format")
    assert [(str(d.date()), r, n) for d, r, n in rej.itertuples(index=False)] == [
        ("2024-03-18", "bad_entity_code", 2), ("2024-03-19", "unparseable_time", 1)]
    assert polls.loc["standby", "files"] == 2 and polls.loc["standby", "failed"] == 1
    assert polls.loc["standby", "rows_added"] == 10


def test_a_new_warehouse_gives_empty_answers(tmp_path: Path) -> None:
    with wh.writer(tmp_path):  # what any first writer leaves: every table, empty
        pass
    with _read(tmp_path) as conn:
        for fn in (data.model_quality, data.worse_models, data.retrain_evaluations,
                   data.model_failures, data.source_freshness, data.rejected_per_day,
                   data.ingest_polls, data.fetch_status, dc.entity_choices):
            assert fn(conn).empty, fn.__name__
        assert data.entity_freshness(conn, AS_OF, 2).empty
        assert data.mae_history(conn, "MK1").empty
        assert dc.observations(conn, "MK1", AS_OF, NY).empty
        assert dc.park_hours(conn, "MK", AS_OF, NY).empty
        # the WTI tables exist once the WTI asset has run
        assert dc.wti_day(conn, "MK", AS_OF) is None and dc.wti_window(conn, "MK", AS_OF) is None


# ---- curves ------------------------------------------------------------------------------------

def test_observations_on_the_park_clock_across_dst(home: Path) -> None:
    with _read(home) as conn:
        obs = dc.observations(conn, "MK1", date(2024, 3, 10), NY)
        tod = dc.time_of_day_profile(conn, "MK1", NY)
        dow = dc.day_of_week_profile(conn, "MK1")
    assert [str(t) for t in obs["local_time"]] == [
        "2024-03-10 09:00:00", "2024-03-10 10:00:00", "2024-03-10 10:05:00"]
    assert obs["wait_time_type"].tolist() == ["POSTED", "POSTED", "ACTUAL"]  # CLOSED left out
    posted = tod[tod["wait_time_type"] == "POSTED"].set_index("hour")["mean_minutes"].to_dict()
    assert posted == {9: 20.0, 10: 40.0, 16: 60.0}  # 2024-03-19 20:00 UTC = 16:00 EDT
    sunday = dow[(dow["wait_time_type"] == "POSTED") & (dow["dow"] == 7)]
    assert sunday["mean_minutes"].tolist() == [30.0]


def test_forecast_and_backfill_parquet_read_by_day(tmp_path: Path) -> None:
    path = dc.forecast_path(tmp_path, "MK1")
    path.parent.mkdir(parents=True)
    starts = pd.to_datetime(["2024-07-01 13:00", "2024-07-01 13:05", "2024-07-02 13:00"],
                            utc=True)
    pq.write_table(pa.table({
        "entity_code": ["MK1"] * 3, "park_date": [date(2024, 7, 1)] * 2 + [date(2024, 7, 2)],
        "slot": ["09:00", "09:05", "09:00"], "slot_start": starts,
        "actual_predicted": [10.0, 12.0, 30.0], "actual_p10": [5.0, 6.0, 20.0],
        "actual_p90": [15.0, 18.0, 40.0], "posted_predicted": [14.0, 16.0, 35.0]}), path)
    day = dc.forecast_day(tmp_path, "mk1", date(2024, 7, 1), NY)
    assert [str(t) for t in day["local_time"]] == ["2024-07-01 09:00:00", "2024-07-01 09:05:00"]
    assert day["actual_predicted"].tolist() == [10.0, 12.0]
    assert dc.forecast_dates(tmp_path, "MK1") == (date(2024, 7, 1), date(2024, 7, 2))
    assert dc.forecast_day(tmp_path, "MK1", date(2024, 7, 3), NY).empty
    assert dc.backfill_day(tmp_path, "MK1", date(2024, 7, 1), NY) is None  # no file
    assert dc.forecast_dates(tmp_path, "MK2") is None


# ---- store -------------------------------------------------------------------------------------

class FakeOpener:
    """wh.reader stand-in that can pretend a writer holds the file."""

    def __init__(self) -> None:
        self.locked, self.calls = False, 0

    @contextmanager
    def __call__(self, _home: Path, _timeout: float):
        self.calls += 1
        if self.locked:
            raise duckdb.IOException('Could not set lock on file "w.duckdb": Conflicting lock')
        conn = duckdb.connect()
        try:
            yield conn
        finally:
            conn.close()


def test_store_serves_cached_answer_marked_stale_while_busy(tmp_path: Path) -> None:
    wh.warehouse_path(tmp_path).touch()
    opener = FakeOpener()
    store = WarehouseStore(tmp_path, ttl_s=0, busy_hold_s=60, opener=opener)
    query = lambda conn: conn.execute("SELECT 42").fetchall()[0][0]  # noqa: E731
    fresh = store.read("q", query)
    assert (fresh.value, fresh.stale, fresh.note) == (42, False, "")
    opener.locked = True
    busy = store.read("q", query)
    assert busy.value == 42 and busy.stale and busy.as_of == fresh.as_of
    assert busy.note.startswith("as of ") and busy.note.endswith("(warehouse busy)")
    other = store.read("other", query)  # nothing cached: no value, still no exception
    assert other.value is None and other.stale and "busy" in other.note
    assert opener.calls == 2  # the busy hold: the second read did not try the file again
    opener.locked = False
    store._busy_at = None
    assert store.read("q", query).stale is False


def test_store_reuses_answers_within_ttl_and_reports_missing_warehouse(tmp_path: Path) -> None:
    opener = FakeOpener()
    store = WarehouseStore(tmp_path, ttl_s=60, opener=opener)
    assert store.read("q", lambda c: 1).missing
    wh.warehouse_path(tmp_path).touch()
    assert store.read("q", lambda c: 1).value == 1
    assert store.read("q", lambda c: 2).value == 1 and opener.calls == 1


# ---- status maths ------------------------------------------------------------------------------

def test_eta_and_progress_steps() -> None:
    assert runs.eta_from_rate(10, 40, 20.0) == 60.0
    assert runs.eta_from_rate(0, 40, 20.0) is None
    assert runs.eta_from_history([100.0, 300.0, 200.0], 50.0) == 150.0
    assert runs.eta_from_history([100.0], 150.0) == 0.0 and runs.eta_from_history([], 1) is None
    doc = {"run_id": "r", "current_step": "entity_model", "steps": {"entity_model": {
        "done": 45, "total": 200, "entity": "MK45", "failed": 1, "state": "running",
        "started_at": "2024-03-20T10:00:00+00:00", "updated_at": "2024-03-20T10:01:00+00:00"}}}
    steps = runs.progress_steps(doc, now=datetime(2024, 3, 20, 10, 1, 30, tzinfo=UTC))
    row = steps.iloc[0]
    assert row["label"] == "entity 45 of 200" and row["elapsed_s"] == 90.0
    assert row["eta_s"] == pytest.approx(155 * 2.0)
    assert runs.progress_steps(None).empty
    assert runs.fmt_duration(3725) == "1h 02m" and runs.fmt_duration(187) == "3m 07s"


def test_last_run_per_group_and_past_durations() -> None:
    t = pd.Timestamp("2024-03-20", tz="UTC")
    frame = pd.DataFrame([
        {"run_id": "c", "status": "FAILURE", "assets": ["entity_model"], "started_at": t,
         "ended_at": t, "duration_s": 9.0, "selection": "entity_model"},
        {"run_id": "b", "status": "SUCCESS", "assets": ["dim_entity", "fct_wait_times"],
         "started_at": t, "ended_at": t, "duration_s": 5.0, "selection": "dim_entity,fct"},
        {"run_id": "a", "status": "SUCCESS", "assets": ["entity_model"], "started_at": t,
         "ended_at": t, "duration_s": 7.0, "selection": "entity_model"},
    ])
    groups = {"entity_model": "models", "dim_entity": "dimensions", "fct_wait_times": "ingest"}
    last = runs.last_run_per_group(frame, groups)
    assert list(zip(last["group"], last["run_id"], last["status"], strict=True)) == [
        ("dimensions", "b", "SUCCESS"), ("ingest", "b", "SUCCESS"), ("models", "c", "FAILURE")]
    assert runs.past_durations(frame, "entity_model", exclude_run="c") == [7.0]
    assert runs.current_run(frame)["run_id"] == "c"


# ---- pages, app, auth, CLI ---------------------------------------------------------------------

def test_pages_render_no_data_state_without_a_warehouse(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, stale_days=2, as_of=AS_OF)
    for page in (status, quality, curves, freshness):
        text = str(page.layout(ctx, {}))
        assert "no " in text, page.__name__


def test_pages_render_from_the_small_warehouse(home: Path) -> None:
    ctx = make_context(home, stale_days=2, as_of=AS_OF)
    assert "Space Mountain" in str(quality.layout(ctx, {}))
    text = str(freshness.layout(ctx, {}))
    assert "stale-count" in text and "MK3" in text
    main, *_rest, note = curves.figures(ctx, "MK1", date(2024, 3, 10))
    names = [t.name for t in main.data]
    assert names == ["observed POSTED", "observed ACTUAL"] and note == ""


def test_freshness_age_chart_draws_the_oldest_entities_only() -> None:
    # at the real estate's 1,694 entities one bar each took the browser over a second to draw
    n = freshness.AGE_BARS + 25
    fresh = pd.DataFrame({"entity_code": [f"E{i}" for i in range(n)],
                          "entity_name": [f"ride {i}" for i in range(n)],
                          "days_since": list(range(n, 0, -1)),  # ordered oldest first
                          "stale": [i < 3 for i in range(n)]})
    bars = freshness._age_figure(fresh, stale_days=2).data[0]
    assert list(bars.x) == [f"E{i}" for i in range(freshness.AGE_BARS)]
    assert min(bars.y) == n - freshness.AGE_BARS + 1
    small = freshness._age_figure(fresh.head(5), stale_days=2)
    assert list(small.data[0].x) == [f"E{i}" for i in range(5)]
    assert f"of {n}" in freshness._age_figure(fresh, 2).layout.title.text


def test_quality_chart_plots_each_entity_against_its_naive_baseline() -> None:
    # one point per entity with both MAEs (not a labelled bar each: 1,694 did not lay out fast)
    df = pd.DataFrame({"entity_code": ["A1", "A2", "A3", "A4"],
                       "mae": [5.0, 12.0, 7.0, None], "naive_mae": [8.0, 10.0, 9.0, 4.0]})
    fig = quality._mae_figure(df)
    diagonal, points = fig.data
    assert list(points.text) == ["A1", "A2", "A3"]
    assert list(points.x) == [8.0, 10.0, 9.0] and list(points.y) == [5.0, 12.0, 7.0]
    assert list(diagonal.x) == [0, 12.0] == list(diagonal.y)
    assert "2 of 3 entities beat it" in fig.layout.title.text
    assert not quality._mae_figure(df.assign(mae=None)).data


def test_warm_up_builds_every_page_and_survives_a_failing_one(
        home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(home, use_env_credentials=False, stale_days=2, as_of=AS_OF)
    built: list[str] = []
    for page in (status, curves, freshness):
        monkeypatch.setattr(page, "layout", lambda ctx, q, _p=page, _f=page.layout: (
            built.append(_p.PATH), _f(ctx, q))[1])

    def broken(_ctx, _query):
        raise RuntimeError("boom")

    monkeypatch.setattr(quality, "layout", broken)
    warm_up(app)  # logs the failing page, builds the others
    assert built == ["/", "/curves", "/freshness"]
    assert "warm-up of /quality failed" in caplog.text
    assert app.bambam_context.store._cache  # the warehouse was read once


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_basic_auth_when_credentials_are_set(tmp_path: Path) -> None:
    client = create_app(tmp_path, credentials=("fred", "pw")).server.test_client()
    assert client.get("/").status_code == 401
    assert client.get("/", headers=_basic("fred", "nope")).status_code == 401
    assert client.get("/", headers={"Authorization": "Basic !!!"}).status_code == 401
    assert client.get("/", headers=_basic("fred", "pw")).status_code == 200
    open_client = create_app(tmp_path, use_env_credentials=False).server.test_client()
    assert open_client.get("/").status_code == 200


def test_non_loopback_bind_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    with pytest.raises(ValueError, match="Basic Auth"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", ("u", "p"))
    monkeypatch.delenv("BAMBAM_DASH_USER", raising=False)
    monkeypatch.delenv("BAMBAM_DASH_PASSWORD", raising=False)
    result = CliRunner().invoke(dashboard, ["--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2 and "BAMBAM_DASH_USER" in result.output


def test_settings_and_table_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAMBAM_STALE_DAYS", raising=False)
    assert stale_days_setting() == 2
    monkeypatch.setenv("BAMBAM_STALE_DAYS", "5")
    assert stale_days_setting() == 5
    monkeypatch.setenv("BAMBAM_STALE_DAYS", "soon")
    with pytest.raises(ValueError):
        stale_days_setting()
    df = pd.DataFrame({"at": pd.to_datetime(["2024-03-10 14:05"], utc=True),
                       "day": pd.to_datetime(["2024-03-10"]), "x": [1.23456], "n": [None]})
    assert theme.records(df) == [{"at": "2024-03-10 14:05 UTC", "day": "2024-03-10",
                                  "x": 1.235, "n": None}]


def test_quality_filters_by_park_and_tier(home: Path) -> None:
    with _read(home) as conn:
        df = data.model_quality(conn)
    assert quality._filtered(df, ["MK"], None)["entity_code"].tolist() == ["MK1", "MK3"]
    assert quality._filtered(df, None, ["high"]).empty
    assert len(quality._filtered(df, [], [])) == 2


def test_status_page_renders_before_a_run_starts(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A run `bambam run` (or the daemon) created but has not started has no start time: the status
    page showed HTTP 500 for it (`NaTType does not support strftime`, found by
    bench/load_bench.py while `bambam run` was launching runs)."""
    import dagster as dg

    from bambam_assets.instance import local_instance

    monkeypatch.delenv("BAMBAM_DAGSTER_PG_URL", raising=False)
    instance = local_instance(tmp_path)
    created = instance.add_run(dg.DagsterRun(job_name="__ASSET_JOB", run_id="created-run-0001",
                                             status=dg.DagsterRunStatus.NOT_STARTED))
    ctx = make_context(tmp_path, stale_days=2, as_of=AS_OF)
    frame = ctx.recent_runs()
    assert frame["run_id"].tolist() == [created.run_id] and pd.isna(frame["started_at"].iloc[0])
    text = str(status.layout(ctx, {}))
    assert "NOT_STARTED" in text and "created-" in text


def test_the_dashboard_stops_on_sigterm_even_when_its_parent_ignored_it(tmp_path: Path) -> None:
    """An ignored SIGTERM survives exec (a background job of a CI shell): the dashboard served,
    then outlived terminate() (its SigIgn mask had SIGTERM). `bambam dashboard` now stops."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "BAMBAM_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster"),
           "PYTHONWARNINGS": "ignore"}
    for var in ("BAMBAM_DASH_USER", "BAMBAM_DASH_PASSWORD"):
        env.pop(var, None)
    log = tmp_path / "dashboard.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bambam_assets.cli.dashboard", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "dashboard did not start"
            time.sleep(0.2)
        proc.terminate()
        assert proc.wait(timeout=15) is not None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
