"""Builders shared by several test modules (and only those): raw files, a hand-made forecast
warehouse, a staleness world. Test modules import from here, never from each other; pytest
fixtures stay in conftest.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bambam_assets.lib.core import schema
from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.dimensions import calendar, entities, season
from bambam_assets.lib.forecasts import posted_aggregates
from bambam_assets.lib.models import registry, training
from bambam_assets.lib.models.features import build_training_frame

# --- raw files -------------------------------------------------------------------------------


def write(root: Path, key: str, text: str) -> Path:
    """Write a raw file (text) under root at key."""
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- the forecast home: a tiny hand-made warehouse (park MK, entities MK1-MK3) with two trained
# models and the posted aggregates, as of FORECAST_AS_OF (forecast, backfill and backtest tests)

NY = ZoneInfo("America/New_York")
FORECAST_AS_OF = date(2024, 6, 30)
FORECAST_HORIZON = 14
FORECAST_FIRST_DAY = FORECAST_AS_OF - timedelta(days=59)
FORECAST_SLOTS_PER_DAY = 13 * 12 + 1  # 09:00..22:00
FORECAST_QUIET_DAY = date(2024, 6, 10)  # hand-made facts only (backfill source rules)


def forecast_facts(rng: np.random.Generator) -> pd.DataFrame:
    """MK1: 900 ACTUAL + POSTED (xgboost); MK3: 150 ACTUAL (hourly fallback); MK2: POSTED only."""
    days = pd.date_range(FORECAST_FIRST_DAY, FORECAST_AS_OF, freq="D")
    days = days[days != pd.Timestamp(FORECAST_QUIET_DAY)]
    parts = []
    for code, n_actual, n_posted in (("MK1", 900, 1500), ("MK3", 150, 300), ("MK2", 0, 600)):
        day = rng.choice(days, size=n_posted)
        minute = rng.integers(9 * 60, 22 * 60, size=n_posted)
        local = pd.to_datetime(day) + pd.to_timedelta(minute, unit="m")
        base = 15 + 30 * np.sin((minute - 540) / 780 * np.pi) + 15 * (local.dayofweek >= 5)
        observed = local.tz_localize(NY).tz_convert("UTC")
        posted = pd.DataFrame({"entity_code": code, "observed_at": observed,
                               "wait_time_type": "POSTED",
                               "wait_time_minutes": (base + 10).round()})
        parts.append(posted)
        if n_actual:
            act = posted.iloc[:n_actual].copy()
            act["wait_time_type"] = "ACTUAL"
            act["observed_at"] = act["observed_at"] + pd.Timedelta(minutes=2)
            act["wait_time_minutes"] = (base[:n_actual] + rng.normal(0, 3, n_actual)).round()
            parts.append(act)
    return _finish(pd.concat(parts, ignore_index=True))


def _finish(facts: pd.DataFrame) -> pd.DataFrame:
    facts = facts.copy()
    facts["park_code"] = "MK"
    local = facts["observed_at"].dt.tz_convert(NY)
    facts["park_date"] = (local - pd.Timedelta(hours=6)).dt.date
    facts["source_file"] = "test"
    facts["wait_time_minutes"] = facts["wait_time_minutes"].astype("Int64")
    return facts[list(schema.FACT_COLUMNS)]


def local_fact(code: str, day: date, hh: int, mm: int, kind: str, minutes) -> pd.DataFrame:
    ts = pd.Timestamp(datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)).tz_convert("UTC")
    return _finish(pd.DataFrame({"entity_code": [code], "observed_at": [ts],
                                 "wait_time_type": [kind], "wait_time_minutes": [minutes]}))


def insert_facts(home: Path, facts: pd.DataFrame) -> None:
    with wh.writer(home) as conn:
        conn.register("new_facts", facts)
        conn.execute("INSERT INTO fct_wait_times BY NAME SELECT * FROM new_facts")
        conn.unregister("new_facts")


def train_and_aggregate(home: Path) -> None:
    """Aggregates and models as of FORECAST_AS_OF (what posted_aggregates and entity_model do)."""
    with wh.writer(home) as conn:
        posted_aggregates.build_posted_aggregates(conn, FORECAST_AS_OF)
        frame = build_training_frame(conn, ["MK1", "MK3"], FORECAST_AS_OF)
    for code in ("MK1", "MK3"):
        rows = frame[frame["entity_code"] == code]
        trained = training.train_entity(rows, "STANDBY", nthread=1)
        registry.save_version(home / "models", trained, code_version="t", params_hash="t",
                              target_count=len(rows), tolerance=10.0)


def build_forecast_home(home: Path) -> Path:
    """A warehouse with facts, dimensions (one date group and season for every day, so days of
    the same weekday share all features), two trained models and the posted aggregates."""
    with wh.writer(home) as conn:
        schema.ensure_tables(conn)
        cal = calendar.build_calendar(FORECAST_AS_OF, FORECAST_HORIZON,
                                      start=FORECAST_FIRST_DAY - timedelta(days=7))
        cal["date_group_id"] = "ANY_DAY"
        schema.replace_dimension(conn, "dim_calendar", cal)
        seasons = season.build_season(cal).assign(season="SUMMER", season_year="SUMMER_2024")
        schema.replace_dimension(conn, "dim_season", seasons)
        raw = pd.DataFrame({"code": ["MK1", "MK2", "MK3"], "name": ["a", "b", "c"],
                            "fastpass_booth": ["false", "false", "false"]})
        schema.replace_dimension(conn, "dim_entity", entities.clean_entities(raw))
        days = pd.date_range(FORECAST_FIRST_DAY, FORECAST_AS_OF + timedelta(days=FORECAST_HORIZON))
        opening = days.tz_localize(NY) + pd.Timedelta(hours=9)
        schema.replace_dimension(conn, "dim_park_hours", pd.DataFrame({
            "park_code": "MK", "park_date": days, "opening_time": opening,
            "closing_time": opening + pd.Timedelta(hours=13), "opening_time_with_emh": opening,
            "closing_time_with_emh": opening + pd.Timedelta(hours=13), "emh_morning": False,
            "emh_evening": False, "source": "official", "confidence": 1.0}))
    insert_facts(home, forecast_facts(np.random.default_rng(3)))
    train_and_aggregate(home)
    return home


# --- the staleness world: facts, entity_index and model_registry rows of entities in every
# staleness situation, evaluated at WORLD_NOW (staleness and retrain-sensor tests)

WORLD_NOW = datetime(2024, 6, 2, 12, 0, tzinfo=UTC)
WORLD_CODE_VERSION, WORLD_PARAMS_HASH = "7", "abc123"


def _model(hours_ago: float, targets: int, code: str = WORLD_CODE_VERSION,
           params: str = WORLD_PARAMS_HASH) -> tuple[float, int, str, str]:
    """A WORLD entity's current model: trained hours_ago with `targets` targets."""
    return (hours_ago, targets, code, params)


# entity -> (queue type, targets now, 8888 rows, POSTED rows, model: (hours ago, targets at
# training, code version, params hash) or None)
WORLD = {
    "MK1": ("STANDBY", 550, 0, 0, _model(30.0, 500)),              # age 30h > 24h (critical)
    "MK2": ("STANDBY", 520, 0, 0, _model(2.0, 400)),               # 120 new targets
    "MK3": ("PRIORITY", 300, 50, 0, None),                         # no model (8888 not counted)
    "MK4": ("STANDBY", 0, 0, 40, None),                            # POSTED only: nothing to train
    "MK5": ("PRIORITY", 150, 120, 0, _model(1.0, 100)),            # 50 new (120 8888s excluded)
    "EP1": ("STANDBY", 200, 0, 0, _model(1.0, 200, code="6")),     # code version changed
    "EP2": ("STANDBY", 200, 0, 0, _model(1.0, 200, params="old")), # params changed
    "DL1": ("STANDBY", 300, 0, 0, _model(50.0, 300)),              # fresh: 50h <= 72h (high)
    "DL2": ("STANDBY", 300, 0, 0, _model(80.0, 300)),              # age 80h > 72h (high)
    "UF1": ("STANDBY", 250, 0, 0, _model(100.0, 160)),             # fresh: 90 new, 100h <= 168h
    "TDL1": ("STANDBY", 250, 0, 0, _model(170.0, 250)),            # age 170h > 168h (low)
}


def build_world(home: Path, world: dict = WORLD, now: datetime = WORLD_NOW) -> None:
    """A warehouse with facts, entity_index, dim_entity and model_registry for `world`."""
    with wh.writer(home) as conn:
        schema.ensure_tables(conn)
        for code, (qtype, n, sold_out, posted, model) in world.items():
            park = "".join(ch for ch in code if ch.isalpha())
            kind = "PRIORITY" if qtype == "PRIORITY" else "ACTUAL"
            for wtype, count, minutes in ((kind, n, 20), ("PRIORITY", sold_out, 8888),
                                          ("POSTED", posted, 30)):
                conn.execute(
                    """INSERT INTO fct_wait_times BY NAME
                       SELECT ? AS entity_code, ? AS park_code, DATE '2024-05-20' AS park_date,
                              TIMESTAMPTZ '2024-05-20 14:00:00+00' + to_minutes(i) AS observed_at,
                              ? AS wait_time_type, ? AS wait_time_minutes, 't' AS source_file
                       FROM range(?) r(i)""", [code, park, wtype, minutes, count])
            at_last = model[1] if model else None
            conn.execute("INSERT INTO entity_index (entity_code, park_code, "
                         "target_count_at_last_model) VALUES (?, ?, ?)", [code, park, at_last])
            if model:
                hours, count, code_v, params = model
                conn.execute(
                    """INSERT INTO model_registry (entity_code, version, kind, trained_at,
                       is_current, promoted, target_count, code_version, params_hash)
                       VALUES (?, 1, 'xgboost', ?, true, true, ?, ?, ?)""",
                    [code, now - timedelta(hours=hours), count, code_v, params])
        raw = pd.DataFrame({"code": list(world), "name": list(world),
                            "fastpass_booth": ["true" if v[0] == "PRIORITY" else "false"
                                               for v in world.values()]})
        schema.replace_dimension(conn, "dim_entity", entities.clean_entities(raw))


# --- the queue-times poller: a snapshot and a fake queue-times server (poller and sensor tests)

POLLER_NOW = datetime(2024, 3, 15, 14, 0, tzinfo=UTC)  # 10:00 EDT in Orlando, 23:00 in Tokyo
POLLER_MAPPING = ("entity_code,park_code,queue_times_id,queue_times_name\n"
           "MK101,MK,9101,Space Mountain\nMK102,MK,9102,Jungle Cruise\n"
           "MK103,MK,9103,Haunted Mansion\n")


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def mk_snapshot(now: datetime) -> dict:
    """Three mapped rides (open 40, closed, 2 days stale) and one unmapped ride."""
    return {"lands": [{"id": 1, "name": "Tomorrowland", "rides": [
        {"id": 9101, "name": "Space Mountain", "is_open": True, "wait_time": 40,
         "last_updated": iso(now - timedelta(minutes=3))},
        {"id": 9102, "name": "Jungle Cruise", "is_open": False, "wait_time": 0,
         "last_updated": iso(now - timedelta(minutes=4))},
    ]}], "rides": [
        {"id": 9103, "name": "Haunted Mansion", "is_open": True, "wait_time": 25,
         "last_updated": iso(now - timedelta(days=2))},
        {"id": 9999, "name": "Meet Mickey", "is_open": True, "wait_time": 15,
         "last_updated": iso(now - timedelta(minutes=2))},
    ]}


class FakeQueueTimes:
    """A real threaded HTTP server; `behaviour[qt_id]` = list of steps consumed per request,
    the last one repeating: "ok", "500", "slow", "malformed"; ids not listed answer 404."""

    def __init__(self, body: dict, delay_s: float = 1.0) -> None:
        self.body, self.delay_s = body, delay_s
        self.behaviour: dict[int, list[str]] = {}
        self.hits: dict[int, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = self.path.strip("/").split("/")
                qt = int(parts[1]) if len(parts) == 3 and parts[0] == "parks" else -1
                outer.hits[qt] = outer.hits.get(qt, 0) + 1
                steps = outer.behaviour.get(qt)
                if steps is None:
                    return self._send(404, b'{"error": "not found"}')
                step = steps.pop(0) if len(steps) > 1 else steps[0]
                if step == "500":
                    return self._send(500, b"internal error")
                if step == "slow":
                    time.sleep(outer.delay_s)
                if step == "malformed":
                    return self._send(200, b'{"lands": [{"rides": [')
                self._send(200, json.dumps(outer.body).encode())

            def _send(self, code: int, data: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and went away

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- one STANDBY entity's training rows (incremental update and promotion-guard tests)

INCR_START = pd.Timestamp("2024-03-01")
INCR_NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def synthetic_frame(days: int, shift_from: int, shift: float, seed: int = 3) -> pd.DataFrame:
    """One STANDBY entity's training rows (build_training_frame columns), 30 targets a day;
    waits rise by `shift` minutes from day `shift_from` on (the continuation to learn)."""
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(days), 30)
    minute = rng.integers(9 * 60, 21 * 60, size=len(day))
    park_date = INCR_START + pd.to_timedelta(day, unit="D")
    local = park_date + pd.to_timedelta(minute, unit="m")
    dow = local.dayofweek.to_numpy() + 1
    y = (20 + 25 * np.sin((minute - 540) / 720 * np.pi) + 10 * (dow >= 6)
         + shift * (day >= shift_from) + rng.normal(0, 3, len(day))).round()
    posted = y + 5 + rng.normal(0, 2, len(day))
    return pd.DataFrame({
        "entity_code": "MK1", "park_code": "MK", "park_date": park_date.date,
        "observed_at": local.tz_localize("America/New_York").tz_convert("UTC"),
        "queue_type": "STANDBY", "y": y.astype(float),
        "mins_since_6am": (minute - 360).astype(float), "local_hour": (minute // 60).astype(float),
        "day_of_week": dow.astype(float), "month": local.month.to_numpy().astype(float),
        "date_group_id": np.where(dow >= 6, "WEEKEND", "WEEKDAY"), "season": "SPRING",
        "park_year": 2024.0, "mins_since_park_open": (minute - 540).astype(float),
        "park_open_hour": 9.0, "park_close_hour": 21.0, "park_hours_open": 12.0,
        "emh_morning": 0.0, "emh_evening": 0.0, "party_evening": 0.0, "posted_matched": posted,
        "posted_mean_30": posted, "posted_mean_60": posted,
        "weight": 0.5 ** ((days - day) / 365),
    })


# --- a real uvicorn server for an app (live API tests)


@contextmanager
def serve(app) -> Iterator[str]:
    """A real uvicorn server on a free localhost port, in a thread."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# a small training warehouse: four MK entities of 90 days (entity_model tests)
TRAINING_AS_OF = date(2024, 6, 30)


def training_facts(rng: np.random.Generator) -> pd.DataFrame:
    """MK1: 900 ACTUAL (xgboost), MK2: 120 ACTUAL (fallback), MK3: PRIORITY, MK4: POSTED only."""
    rows = []
    days = pd.date_range(TRAINING_AS_OF - timedelta(days=89), TRAINING_AS_OF, freq="D")
    for code, n_targets, wtype in (("MK1", 900, "ACTUAL"), ("MK2", 120, "ACTUAL"),
                                   ("MK3", 700, "PRIORITY"), ("MK4", 0, "ACTUAL")):
        day = rng.choice(days, size=max(n_targets, 300))
        minute = rng.integers(9 * 60, 21 * 60, size=len(day))
        local = pd.to_datetime(day) + pd.to_timedelta(minute, unit="m")
        observed = local.tz_localize("America/New_York").tz_convert("UTC")
        base = 20 + 25 * np.sin((minute - 9 * 60) / 720 * np.pi) + 10 * (local.dayofweek >= 5)
        posted = pd.DataFrame({"entity_code": code, "observed_at": observed,
                               "wait_time_type": "POSTED",
                               "wait_time_minutes": (base + 10).round()})
        rows.append(posted)
        if n_targets:
            targets = posted.iloc[:n_targets].copy()
            targets["wait_time_type"] = wtype
            targets["observed_at"] = targets["observed_at"] + pd.Timedelta(minutes=3)
            targets["wait_time_minutes"] = (base[:n_targets] + rng.normal(0, 3, n_targets)).round()
            rows.append(targets)
    facts = pd.concat(rows, ignore_index=True)
    facts["park_code"] = "MK"
    local = facts["observed_at"].dt.tz_convert("America/New_York")
    facts["park_date"] = (local - pd.Timedelta(hours=6)).dt.date
    facts["source_file"] = "test"
    facts["wait_time_minutes"] = facts["wait_time_minutes"].astype("Int64")
    return facts[list(schema.FACT_COLUMNS)]


def build_training_home(home: Path) -> Path:
    """The training warehouse in `home`: facts, entity index, calendar, season, entities, hours."""
    rng = np.random.default_rng(7)
    with wh.writer(home) as conn:
        schema.ensure_tables(conn)
        conn.register("f", training_facts(rng))
        conn.execute("INSERT INTO fct_wait_times BY NAME SELECT * FROM f")
        conn.execute("INSERT INTO entity_index (entity_code, park_code) "
                     "SELECT DISTINCT entity_code, park_code FROM fct_wait_times")
        cal = calendar.build_calendar(TRAINING_AS_OF, 30)
        schema.replace_dimension(conn, "dim_calendar", cal)
        schema.replace_dimension(conn, "dim_season", season.build_season(cal))
        raw = pd.DataFrame({"code": ["MK1", "MK2", "MK3", "MK4"],
                            "name": ["a", "b", "c", "d"],
                            "fastpass_booth": ["false", "false", "true", "false"]})
        schema.replace_dimension(conn, "dim_entity", entities.clean_entities(raw))
        days = pd.date_range(TRAINING_AS_OF - timedelta(days=120), TRAINING_AS_OF)
        opening = days.tz_localize("America/New_York") + pd.Timedelta(hours=9)
        hours = pd.DataFrame({
            "park_code": "MK", "park_date": days, "opening_time": opening,
            "closing_time": opening + pd.Timedelta(hours=12), "opening_time_with_emh": opening,
            "closing_time_with_emh": opening + pd.Timedelta(hours=12), "emh_morning": False,
            "emh_evening": False, "source": "official", "confidence": 1.0,
        })
        schema.replace_dimension(conn, "dim_park_hours", hours)
    return home


# --- bad data as it arrives, and a webhook receiver (fact check and alert tests) ------------------

def wrong_year_export(raw: Path, year: int) -> Path:
    """The April 2024 standby export of MK1 (2 days x 12 hours of POSTED), its timestamps dated
    `year`: 2024 is the correct file, another year the typo a source can ship."""
    lines = ["entity_code,observed_at,submitted_posted_time,submitted_actual_time,user_id"]
    for day in (1, 2):
        for hh in range(9, 21):
            lines.append(f"MK1,{year}-04-{day:02d} {hh:02d}:15:00,{20 + hh},,{day * 100 + hh}")
    return write(raw, "export/wait_times/wdw/wdw_wait_times_2024_04.csv", "\n".join(lines) + "\n")


class WebhookReceiver:
    """A real threaded HTTP server recording the JSON bodies POSTed to it; `status` is what it
    answers (200, or 500 to play a broken receiver)."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(json.loads(self.rfile.read(length) or b"null"))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/bambam"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the forecast API and pages (bambam_tests/e2e/test_forecast_*.py) --------------------------

FORECAST_API_AS_OF = "2024-04-30"
FORECAST_API_DAYS = "60"  # a short horizon keeps the run fast; the layout does not depend on it
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# points plotted per graph (-1: not drawn yet); _fullData holds the decoded arrays (the figure's
# own `data` keeps numpy arrays as base64 specs)
GRAPH_POINTS_JS = """ids => ids.map(id => {
    const el = document.querySelector('#' + id + ' .js-plotly-plot');
    if (!el || !el._fullData) return -1;
    return el._fullData.reduce(
        (n, t) => n + Math.max((t.x || []).length || 0, (t.y || []).length || 0), 0);
})"""


def run_demo_pipeline(home: Path, as_of: str = FORECAST_API_AS_OF) -> None:
    """The real pipeline over generated demo data (MK and DL, 2 entities each, 2024-01..04)
    as of `as_of`, in-process (the raw files are generated once per home)."""
    import os

    from bambam_assets.instance import local_instance
    from bambam_assets.lib.demo import generate as demo_data
    from bambam_assets.runner import run_pipeline

    env = {"BAMBAM_HOME": str(home), "BAMBAM_AS_OF": as_of,
           "BAMBAM_FORECAST_DAYS": FORECAST_API_DAYS, "DAGSTER_HOME": str(home / "dagster")}
    saved = {k: os.environ.get(k) for k in [*env, "BAMBAM_RAW"]}
    os.environ.update(env)
    os.environ.pop("BAMBAM_RAW", None)
    try:
        if not (home / "raw").exists():
            demo_data.generate(home / "raw", ["MK", "DL"], 2, date(2024, 1, 1),
                               date(2024, 4, 30), seed=5)
        summary = run_pipeline(local_instance(home), log=lambda _m: None)
        assert summary.success, summary
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class served:
    """A real uvicorn server for `app` on a free localhost port, in a thread:
    `with served(app) as url: ...`."""

    def __init__(self, app) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *_exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def stop_server(proc, log_path: Path, grace_s: float = 30.0) -> None:
    """SIGTERM a server the tests started and wait for it; one still alive after `grace_s` is
    killed, with a warning that says what it was doing (its signal masks, threads and log tail):
    twice in CI a dashboard outlived a 10 s wait after SIGTERM, not reproduced since (it exits in
    0.1 s on a quiet machine), so the tests report it rather than fail on it."""
    import subprocess
    import warnings

    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
        return
    except subprocess.TimeoutExpired:
        pass
    status = Path(f"/proc/{proc.pid}/status")
    info = [ln for ln in status.read_text().splitlines()
            if ln.startswith(("State", "Threads", "SigIgn", "SigCgt"))] if status.exists() else []
    proc.kill()
    proc.wait(timeout=30)
    warnings.warn(f"server pid {proc.pid} ignored SIGTERM for {grace_s:.0f} s ({'; '.join(info)});"
                  f" log tail: {log_path.read_text()[-1000:] if log_path.exists() else ''}",
                  stacklevel=2)
