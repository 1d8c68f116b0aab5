"""Responsiveness of the dashboard and the live API on an existing home (issue 13).

Not part of the test suite. Given a home a `bambam run` made, it measures against the real
servers, each in its own process on a free loopback port:

1. every dashboard page (the registry `dashboard.app.PAGES`, with a park day and an entity taken
   from the home), loaded in headless Chromium (system /usr/bin/chromium, as the e2e tests):
   seconds from navigation until the page is rendered: the page's content is there, no Dash
   loading marker, every graph drawn by plotly, every table drawn. Cold: a fresh dashboard
   process and an empty browser cache, the page the first thing it serves (one server start per
   cold sample). Warm: one server that already served every page once, the browser cache warm.
   Median of `--repeat` loads each.
2. `GET /live/{park}` of the live API (`create_app` on uvicorn, as `bambam live serve`): for each
   park of the home, the first request (models loaded, facts read), a few warm-up requests, then
   up to `--live-requests` sequential requests within `--live-max-seconds`: p50 / p90 / p99.
   The engine's clock is pinned to `--live-at` (default: the home's as-of day at 20:00 UTC, a
   park day with facts for every park) and then runs on: with the wall clock a historical home
   has no facts "today" and /live would answer an empty park.

Prints a table and writes everything to bench/out/responsiveness_{timestamp}.json.

    .venv/bin/python -m bench.responsiveness_bench --home /srv/bambam
    .venv/bin/python -m bench.responsiveness_bench --home H --repeat 5 --live-requests 500
    .venv/bin/python -m bench.responsiveness_bench --home H --skip-live   # pages only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGE_TARGET_S, LIVE_TARGET_MS = 2.0, 50.0

# The element each page's own content has once the route callback answered (pages not listed
# here: any element in #page). Graphs and tables are checked generically.
ANCHORS = {"/": "#status-content", "/quality": "#quality-table", "/curves": "#curve-main",
           "/freshness": "#fresh-table"}

# true once the page is rendered: its anchor is there, Dash shows no loading marker, every
# dcc.Graph is drawn by plotly (not pending) and every DataTable has its cells
READY_JS = """anchor => {
    const page = document.querySelector('#page');
    if (!page || !page.firstElementChild) return false;
    if (anchor && !page.querySelector(anchor)) return false;
    if (document.querySelector('._dash-loading, [data-dash-is-loading="true"], '
                               + '.dash-graph--pending')) return false;
    for (const g of page.querySelectorAll('.dash-graph')) {
        const el = g.querySelector('.js-plotly-plot');
        if (!el || !el._fullData) return false;
    }
    for (const t of page.querySelectorAll('.dash-table-container')) {
        if (!t.querySelector('.dash-spreadsheet')) return false;
    }
    return true;
}"""

# what was drawn: points per graph (as the e2e test counts them) and rows per table
DRAWN_JS = """() => {
    const graphs = {}, tables = {};
    for (const g of document.querySelectorAll('#page .dash-graph')) {
        const el = g.querySelector('.js-plotly-plot');
        graphs[g.id] = !el || !el._fullData ? -1 : el._fullData.reduce(
            (n, t) => n + Math.max((t.x || []).length || 0, (t.y || []).length || 0), 0);
    }
    for (const t of document.querySelectorAll('#page .dash-table-container')) {
        tables[t.id || '?'] = t.querySelectorAll('tbody tr').length;
    }
    return {graphs, tables};
}"""

LIVE_SERVER = """
import sys
from datetime import UTC, datetime
import uvicorn
from bambam_assets.api.live import create_app
from bambam_assets.lib.core import settings
from bambam_assets.lib.live.engine import LiveEngine
port, at, ttl = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
engine = None
if at:  # the engine's clock starts at `at` and runs on (a historical home has no facts today)
    offset = datetime.fromisoformat(at) - datetime.now(UTC)
    engine = LiveEngine(settings.home(), now=lambda: datetime.now(UTC) + offset, live_ttl_s=ttl)
uvicorn.run(create_app(engine=engine, live_ttl_s=ttl), host="127.0.0.1", port=port,
            log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct_ms(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(values) * 1000, q)), 2) if values else None


def median_s(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


# ---- the home ---------------------------------------------------------------------------------

def home_facts(home: Path, as_of: date | None, entity: str | None) -> dict:
    """As-of day (the newest park day observed, unless given), the parks, and the entity the
    entity pages show (the one with the most POSTED rows, else the most rows, among those
    observed on the as-of day; unless given)."""
    sys.path.insert(0, str(ROOT))
    from bambam_assets.lib.core import warehouse as wh

    with wh.reader(home, timeout_s=10) as conn:
        if as_of is None:
            as_of = conn.execute("SELECT max(CAST(latest_park_date AS DATE)) "
                                 "FROM entity_index").fetchone()[0]
        parks = [p for (p,) in conn.execute("SELECT DISTINCT park_code FROM entity_index "
                                            "WHERE park_code IS NOT NULL ORDER BY 1").fetchall()]
        n_entities = conn.execute("SELECT count(*) FROM entity_index").fetchone()[0]
        n_facts = conn.execute("SELECT count(*) FROM fct_wait_times").fetchone()[0]
        if entity is None:
            got = conn.execute("""
                SELECT entity_code FROM entity_index
                WHERE CAST(latest_park_date AS DATE) >= ?
                ORDER BY posted_count DESC, row_count DESC, entity_code LIMIT 1""",
                [as_of]).fetchone() or conn.execute(
                "SELECT entity_code FROM entity_index ORDER BY row_count DESC LIMIT 1").fetchone()
            entity = got[0] if got else None
        park = conn.execute("SELECT park_code FROM entity_index WHERE entity_code = ?",
                            [entity]).fetchone()
    if as_of is None or entity is None:
        sys.exit(f"{home}: no observed entity (run the pipeline first)")
    size = sum(f.stat().st_size for f in home.rglob("*") if f.is_file())
    return {"as_of": as_of, "parks": parks, "entity": entity,
            "entity_park": park[0] if park else None, "entities": n_entities,
            "facts": n_facts, "home_bytes": size}


def page_urls(facts: dict) -> list[tuple[str, str, str | None]]:
    """(name, path with query, anchor) of every page of the registry; the curves page on the
    as-of day (observations, backfill) and a week later (forecast)."""
    sys.path.insert(0, str(ROOT))
    from bambam_assets.dashboard.app import PAGES

    entity, as_of = facts["entity"], facts["as_of"]
    out = []
    for page in PAGES:
        anchor = ANCHORS.get(page.PATH)
        if page.PATH == "/curves":
            for label, day in (("as-of day", as_of), ("+7 days", as_of + timedelta(days=7))):
                query = urlencode({"entity": entity, "date": day.isoformat()})
                out.append((f"{page.PATH} ({label})", f"{page.PATH}?{query}", anchor))
        elif page.PATH == "/quality":
            out.append((page.PATH, f"{page.PATH}?{urlencode({'entity': entity})}", anchor))
        else:
            out.append((page.PATH, page.PATH, anchor))
    return out


# ---- servers ----------------------------------------------------------------------------------

def server_env(home: Path, as_of: date) -> dict:
    env = {**os.environ, "BAMBAM_HOME": str(home), "BAMBAM_AS_OF": as_of.isoformat(),
           "DAGSTER_HOME": str(home / "dagster"), "PYTHONPATH": str(ROOT),
           "PYTHONWARNINGS": "ignore"}
    for var in ("BAMBAM_DASH_USER", "BAMBAM_DASH_PASSWORD"):  # loopback: no auth
        env.pop(var, None)
    return env


@contextmanager
def running(cmd: list[str], env: dict, ready_url: str, timeout_s: float = 120,
            log_path: Path | None = None):
    """A server process, yielded with its start time once `ready_url` answers 200. Its stderr
    goes to `log_path` (default: a temp file, removed after): a pipe nobody reads would block
    the server once the request log fills it, and a 500's traceback is only there."""
    t0 = time.perf_counter()
    own_log = log_path is None
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="bambam-server-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    with open(log_path, "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                text=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(ready_url, timeout=10, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                sys.exit(f"server exited: {' '.join(cmd)}\n{log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                sys.exit(f"server did not answer {ready_url} within {timeout_s} s")
            time.sleep(0.1)
        yield time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if own_log:
            log_path.unlink(missing_ok=True)


def dashboard(home: Path, facts: dict, env: dict):
    port = free_port()
    cmd = [sys.executable, "-m", "bambam_assets.cli.dashboard", "--port", str(port)]
    return f"http://127.0.0.1:{port}", running(cmd, env, f"http://127.0.0.1:{port}/")


# ---- dashboard pages --------------------------------------------------------------------------

def load(page, url: str, anchor: str | None, timeout_s: float) -> tuple[float, dict]:
    """Navigate to `url`; seconds until it is rendered, and what it drew."""
    t0 = time.perf_counter()
    page.goto(url, timeout=timeout_s * 1000)
    page.wait_for_function(READY_JS, arg=anchor, timeout=timeout_s * 1000, polling=25)
    elapsed = time.perf_counter() - t0
    return elapsed, page.evaluate(DRAWN_JS)


def bench_pages(home: Path, facts: dict, args) -> dict:
    from playwright.sync_api import sync_playwright

    env = server_env(home, facts["as_of"])
    pages = page_urls(facts)
    result = {name: {"url": path, "cold_s": [], "warm_s": []} for name, path, _ in pages}
    starts: list[float] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        viewport = {"width": 1280, "height": 900}
        try:
            for name, path, anchor in pages:  # cold: a fresh server and browser cache each
                for _ in range(args.repeat):
                    url, server = dashboard(home, facts, env)
                    with server as started:
                        starts.append(started)
                        ctx = browser.new_context(viewport=viewport)
                        try:
                            elapsed, drawn = load(ctx.new_page(), url + path, anchor,
                                                  args.page_timeout)
                        finally:
                            ctx.close()
                    result[name]["cold_s"].append(round(elapsed, 3))
                    result[name]["drawn"] = drawn
                    print(f"  cold {name}: {elapsed:.3f} s", flush=True)
            url, server = dashboard(home, facts, env)
            with server as started:  # warm: one server, every page served once before
                starts.append(started)
                ctx = browser.new_context(viewport=viewport)
                pg = ctx.new_page()
                for _name, path, anchor in pages:
                    load(pg, url + path, anchor, args.page_timeout)
                for _ in range(args.repeat):
                    for name, path, anchor in pages:
                        elapsed, drawn = load(pg, url + path, anchor, args.page_timeout)
                        result[name]["warm_s"].append(round(elapsed, 3))
                        result[name]["drawn"] = drawn
                        print(f"  warm {name}: {elapsed:.3f} s", flush=True)
                ctx.close()
        finally:
            browser.close()
    for r in result.values():
        r["cold_median_s"], r["warm_median_s"] = median_s(r["cold_s"]), median_s(r["warm_s"])
    return {"pages": result, "server_start_s": [round(s, 2) for s in starts]}


# ---- /live/{park} -----------------------------------------------------------------------------

def bench_live(home: Path, facts: dict, args) -> dict:
    at = args.live_at or f"{facts['as_of'].isoformat()}T20:00:00+00:00"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-c", LIVE_SERVER, str(port), at, str(args.live_ttl)]
    out: dict = {"at": at, "live_ttl_s": args.live_ttl, "parks": {}}
    with running(cmd, server_env(home, facts["as_of"]), f"{url}/health") as started:
        out["server_start_s"] = round(started, 2)
        with httpx.Client(base_url=url, timeout=60, trust_env=False) as http:
            for park in facts["parks"]:
                t0 = time.perf_counter()
                r = http.get(f"/live/{park}")
                first = time.perf_counter() - t0
                if r.status_code != 200:
                    sys.exit(f"/live/{park}: {r.status_code} {r.text[:300]}")
                body = r.json()
                for _ in range(args.live_warmup):
                    http.get(f"/live/{park}")
                times: list[float] = []
                errors = 0
                deadline = time.monotonic() + args.live_max_seconds
                while len(times) < args.live_requests and time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    r = http.get(f"/live/{park}")
                    times.append(time.perf_counter() - t0)
                    errors += r.status_code != 200
                out["parks"][park] = {
                    "park_date": body["park_date"], "entities": len(body["entities"]),
                    "predicted": sum(e.get("actual_predicted") is not None
                                     for e in body["entities"]),
                    "wti_slots": len(body["wti_slots"]), "response_bytes": len(r.content),
                    "first_ms": round(first * 1000, 1), "requests": len(times),
                    "errors": errors, "p50_ms": pct_ms(times, 50), "p90_ms": pct_ms(times, 90),
                    "p99_ms": pct_ms(times, 99), "max_ms": pct_ms(times, 100)}
                p = out["parks"][park]
                print(f"  /live/{park}: first {p['first_ms']} ms, p50 {p['p50_ms']} ms "
                      f"({p['requests']} requests)", flush=True)
    return out


# ---- report -----------------------------------------------------------------------------------

def report(result: dict) -> str:
    lines = [f"home {result['home']}: {result['home_facts']['entities']} entities, "
             f"{result['home_facts']['facts']:,} facts, parks "
             f"{','.join(result['home_facts']['parks'])}, as of {result['home_facts']['as_of']}, "
             f"entity {result['home_facts']['entity']}"]
    if "dashboard" in result:
        d = result["dashboard"]
        lines += ["", f"dashboard pages (median of {result['repeat']}; target < {PAGE_TARGET_S} s)",
                  f"{'page':28} {'cold s':>8} {'warm s':>8}  samples cold | warm"]
        for name, p in d["pages"].items():
            ok = "" if (p["warm_median_s"] or 0) < PAGE_TARGET_S else "  OVER"
            lines.append(f"{name:28} {p['cold_median_s']:>8.3f} {p['warm_median_s']:>8.3f}  "
                         f"{p['cold_s']} | {p['warm_s']}{ok}")
        lines.append(f"dashboard process start (until / answers): median "
                     f"{median_s(d['server_start_s'])} s")
    if "live" in result:
        lv = result["live"]
        lines += ["", f"GET /live/{{park}} at {lv['at']} (target p50 < {LIVE_TARGET_MS:.0f} ms)",
                  f"{'park':6} {'day':10} {'ent':>4} {'first ms':>9} {'n':>5} {'p50 ms':>8} "
                  f"{'p90 ms':>8} {'p99 ms':>8}"]
        for park, p in lv["parks"].items():
            ok = "" if (p["p50_ms"] or 0) < LIVE_TARGET_MS else "  OVER"
            lines.append(f"{park:6} {p['park_date']:10} {p['entities']:>4} {p['first_ms']:>9} "
                         f"{p['requests']:>5} {p['p50_ms']:>8} {p['p90_ms']:>8} "
                         f"{p['p99_ms']:>8}{ok}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="a home after `bambam run`")
    ap.add_argument("--as-of", type=date.fromisoformat,
                    help="BAMBAM_AS_OF of the servers (default: the newest observed park day)")
    ap.add_argument("--entity", help="entity of the curves and quality pages (default: the one "
                    "with the most POSTED rows observed on the as-of day)")
    ap.add_argument("--repeat", type=int, default=3, help="loads per page, cold and warm")
    ap.add_argument("--page-timeout", type=float, default=60.0, help="seconds per page load")
    ap.add_argument("--chromium", default=CHROMIUM)
    ap.add_argument("--live-at", help="instant of the live engine's clock (ISO with offset; "
                    "default: the as-of day at 20:00 UTC)")
    ap.add_argument("--live-requests", type=int, default=200, help="timed requests per park")
    ap.add_argument("--live-max-seconds", type=float, default=30.0, help="time bound per park")
    ap.add_argument("--live-warmup", type=int, default=5, help="untimed requests per park")
    ap.add_argument("--live-ttl", type=float, default=30.0,
                    help="the engine's live_ttl_s (`bambam live serve --live-ttl`)")
    ap.add_argument("--skip-dashboard", action="store_true")
    ap.add_argument("--skip-live", action="store_true")
    args = ap.parse_args()

    home = args.home.resolve()
    if not (home / "warehouse.duckdb").is_file():
        sys.exit(f"{home}: no warehouse.duckdb (run the pipeline first)")
    if not args.skip_dashboard and not Path(args.chromium).exists():
        sys.exit(f"no Chromium at {args.chromium} (apt-get install chromium)")
    facts = home_facts(home, args.as_of, args.entity)
    result: dict = {"started_at": datetime.now(UTC).isoformat(), "home": str(home),
                    "home_facts": {**facts, "as_of": facts["as_of"].isoformat()},
                    "repeat": args.repeat, "cpus": os.cpu_count(), "host": platform.node(),
                    "load_avg_before": os.getloadavg()}
    if not args.skip_dashboard:
        print("dashboard pages:", flush=True)
        result["dashboard"] = bench_pages(home, facts, args)
    if not args.skip_live:
        print("live API:", flush=True)
        result["live"] = bench_live(home, facts, args)
    result["load_avg_after"] = os.getloadavg()
    print()
    print(report(result))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"responsiveness_{datetime.now():%Y%m%d_%H%M%S}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
