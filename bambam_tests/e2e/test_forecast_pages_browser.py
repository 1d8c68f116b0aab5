"""The crowd calendar and best-times pages end to end: a home the real pipeline built (demo data,
its published forecast files), the real dashboard in a subprocess, headless Chromium. The values
shown are checked against the forecast API's reader over the same files."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from bambam_assets.lib.forecasts.api_reads import Reader
from bambam_tests.builders import CHROMIUM, CHROMIUM_ARGS, GRAPH_POINTS_JS, stop_server
from bambam_tests.builders import FORECAST_API_AS_OF as FORECAST_AS_OF

REPO = Path(__file__).resolve().parents[2]
PAGE_BUDGET_S = 2.0  # as the other pages' browser test (shared CI box)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, TimeoutError):  # not listening yet, or still warming up
        return 0

USER, PASSWORD = "barney", "bamm-bamm"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timing,  # page-load budgets: run alone, not beside the parallel pass
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"no system Chromium at {CHROMIUM} (apt install chromium)"),
]


@pytest.fixture(scope="module")
def server(forecast_home: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "BAMBAM_HOME": str(forecast_home), "BAMBAM_AS_OF": FORECAST_AS_OF,
           "DAGSTER_HOME": str(forecast_home / "dagster"), "BAMBAM_DASH_USER": USER,
           "BAMBAM_DASH_PASSWORD": PASSWORD, "PYTHONWARNINGS": "ignore"}
    # its output to a file: a pipe nobody reads fills up, and a thread blocked writing a log
    # line holds logging's lock, so the process hung at exit after SIGTERM (seen in CI)
    log_path = forecast_home.parent / "dashboard.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bambam_assets.cli.dashboard", "--port",
                                 str(port)], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while _status(url + "/calendar") != 200:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "dashboard did not start"
            time.sleep(0.2)
        yield url
    finally:
        stop_server(proc, log_path)


@pytest.fixture(scope="module")
def page(server: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD},
                                      viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        pg.goto(server + "/calendar")
        pg.wait_for_selector("#cal-grid")
        yield pg
        browser.close()


def _load(page, url: str, graph: str) -> float:
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_function(f"ids => ({GRAPH_POINTS_JS})(ids).every(n => n > 0)", arg=[graph])
    return time.perf_counter() - start


def test_calendar_month_shows_each_days_level_and_range(page, server: str,
                                                       forecast_home: Path) -> None:
    days = Reader(forecast_home).days("MK")
    timings = [_load(page, server + "/calendar?park=MK&month=2024-05", "cal-wti")
               for _ in range(3)]
    print("\ncalendar page load (s):", json.dumps([round(t, 3) for t in timings]))
    assert min(timings[1:]) < PAGE_BUDGET_S  # warm: the best later visit (shared, noisy box)
    assert "MK, May 2024" in page.inner_text("#page h3")
    for d in (date(2024, 5, 1), date(2024, 5, 6), date(2024, 5, 31)):
        row = days.loc[d]
        cell = page.locator(f"#cal-{d}")
        assert cell.locator(".cal-level").inner_text() == str(int(row["crowd_level"]))
        assert cell.locator(".cal-range").inner_text() == row["crowd_text"]
    # 31 days of bars, each with its band
    points = page.evaluate(GRAPH_POINTS_JS, ["cal-wti"])
    assert points == [31]
    # April: history days (observed) and forecast days (from the Monday of the as-of week)
    page.click("#cal-prev")
    page.wait_for_function("() => document.querySelector('#page h3')?.textContent"
                           "?.includes('April 2024')")
    assert page.locator("#cal-2024-04-15 .cal-range").inner_text() == "observed"
    assert page.locator("#cal-2024-04-29").get_attribute("class") == "cal-forecast"
    assert "deciles of" in page.inner_text("#cal-scale")


def test_calendar_downloads_are_the_exports(page, server: str) -> None:
    page.goto(server + "/calendar?park=DL&month=2024-05")
    page.wait_for_selector("#cal-downloads")
    href = page.get_attribute("#cal-dl-forecast-csv", "href")
    assert href == "/download/DL/forecast.csv?from=2024-05-01&to=2024-05-31"
    resp = page.request.get(server + href)
    assert resp.status == 200
    assert resp.headers["content-disposition"].endswith('DL_forecast_2024-05-01_2024-05-31.csv"')
    lines = resp.text().splitlines()
    assert lines[0].startswith("park_date,entity_code,slot,slot_start,actual_predicted")
    assert {line.split(",")[0] for line in lines[1:]} == {
        f"2024-05-{d:02d}" for d in range(1, 32)}
    with page.expect_download() as info:
        page.click("#cal-dl-calendar-parquet")
    assert info.value.suggested_filename == "DL_calendar_2024-05-01_2024-05-31.parquet"


def test_best_times_page_lists_each_entitys_windows(page, server: str,
                                                    forecast_home: Path) -> None:
    expected = Reader(forecast_home).best_times_frame("DL", date(2024, 5, 6))
    timings = [_load(page, server + "/best-times?park=DL&date=2024-05-06", "best-periods")
               for _ in range(3)]
    print("\nbest-times page load (s):", json.dumps([round(t, 3) for t in timings]))
    assert min(timings[1:]) < PAGE_BUDGET_S
    codes = page.locator("#best-table td[data-dash-column=entity_code]").all_inner_texts()
    assert codes == [e["entity_code"] for e in expected] and len(codes) == 2
    windows = page.locator("#best-table td[data-dash-column=best_windows]").all_inner_texts()
    assert [w.split(" ")[0] for w in windows] == [
        f"{e['windows'][0]['start']}-{e['windows'][0]['end']}" for e in expected]
    best = page.locator("#best-table td[data-dash-column=best_period]").all_inner_texts()
    assert best == [e["best_period"].replace("_", " ") for e in expected]
    assert page.evaluate(GRAPH_POINTS_JS, ["best-periods"]) == [6]  # 3 periods x 2 entities
    page.click("#best-next")
    page.wait_for_function("() => document.querySelector('#page h3')?.textContent"
                           "?.includes('07 May 2024')")
    page.goto(server + "/best-times?park=DL&date=2030-01-01")  # outside the horizon: said so
    # rendered after load; null-safe: right after goto the page has no #page yet (a TypeError
    # there ends wait_for_function instead of retrying: seen in CI)
    page.wait_for_function("() => document.querySelector('#page')?.innerText"
                           "?.includes('outside the forecast horizon')")
