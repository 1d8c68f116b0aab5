"""The live API and the dashboard under concurrent clients while a training run writes.

    .venv/bin/python -m bench.load_bench                       # demo home, 1, 8 and 32 clients
    .venv/bin/python -m bench.load_bench --home .bambam --park MK --concurrency 1,8,32

Both servers run as their own processes, as `bambam live serve` and `bambam dashboard` run them
(the live API with a 0.5 s facts TTL, so it keeps re-reading the warehouse). While the clients
run, `bambam run --retrain-all` runs again and again on the same home: every entity retrained,
the registry, forecasts, backfill and WTI written. Each client thread sends GET /live/{park} and
a dashboard page render (the Dash callback that builds a page from the warehouse), in turn, for
`--seconds` per level. Counted: latency p50/p99 per target, errors (an exception or a status
other than 200), answers marked "warehouse busy", and every writer run's exit code and any lock
timeout in its output.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.faults.runner import AS_OF, pipeline_env, run_bambam  # noqa: E402
from bench.responsiveness_bench import LIVE_SERVER, free_port, running  # noqa: E402

PAGES = ("/", "/quality", "/freshness", "/curves")
TIMEOUT_MARKERS = ("Timeout", "timed out", "Could not set lock")


def page_request(path: str) -> dict:
    """The Dash callback that renders a page (what a browser asks after loading `path`)."""
    return {"output": "page.children", "outputs": {"id": "page", "property": "children"},
            "inputs": [{"id": "url", "property": "pathname", "value": path},
                       {"id": "url", "property": "search", "value": ""}],
            "changedPropIds": ["url.pathname"]}


@dataclass
class Tally:
    times: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    busy: dict[str, int] = field(default_factory=dict)
    first_error: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, target: str, seconds: float, error: str | None, busy: bool) -> None:
        with self.lock:
            self.times.setdefault(target, []).append(seconds)
            if error:
                self.errors[target] = self.errors.get(target, 0) + 1
                self.first_error.setdefault(target, error[:200])
            if busy:
                self.busy[target] = self.busy.get(target, 0) + 1


def client(live_url: str, dash_url: str, park: str, deadline: float, tally: Tally,
           offset: int) -> None:
    i = offset
    with httpx.Client(timeout=60, trust_env=False) as http:
        while time.monotonic() < deadline:
            if i % 2 == 0:
                target, call = "live", lambda: http.get(f"{live_url}/live/{park}")
            else:
                page = PAGES[(i // 2) % len(PAGES)]
                target = "dashboard"
                call = lambda page=page: http.post(  # noqa: E731
                    f"{dash_url}/_dash-update-component", json=page_request(page))
            i += 1
            t0 = time.perf_counter()
            try:
                r = call()
                error = None if r.status_code == 200 else f"HTTP {r.status_code}: {r.text[:150]}"
                busy = "warehouse busy" in r.text
            except httpx.HTTPError as exc:
                error, busy = f"{type(exc).__name__}: {exc}", False
            tally.add(target, time.perf_counter() - t0, error, busy)


@dataclass
class Writer:
    """`bambam run --retrain-all` again and again on `home` until stopped."""

    home: Path
    runs: list[dict] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def loop(self) -> None:
        while not self.stop.is_set():
            r = run_bambam(self.home, args=["--retrain-all"])
            timeouts = [ln for ln in r.lines if any(m in ln for m in TIMEOUT_MARKERS)]
            self.runs.append({"rc": r.rc, "seconds": round(r.seconds, 1),
                              "lock_timeouts": timeouts[:3],
                              "error": (r.error_lines() or [""])[0][:200]})

    def __enter__(self) -> Writer:
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(values) * 1000, q)), 1) if values else None


def measure(home: Path, park: str, levels: list[int], seconds: float,
            log=print) -> dict:
    """Every level's tallies, with the writer runs that overlapped them."""
    env = {**pipeline_env(home), "PYTHONWARNINGS": "ignore"}
    for var in ("BAMBAM_DASH_USER", "BAMBAM_DASH_PASSWORD"):
        env.pop(var, None)
    live_port, dash_port = free_port(), free_port()
    live_url, dash_url = f"http://127.0.0.1:{live_port}", f"http://127.0.0.1:{dash_port}"
    at = f"{AS_OF}T18:00:00+00:00"
    live_cmd = [sys.executable, "-c", LIVE_SERVER, str(live_port), at, "0.5"]
    dash_cmd = [sys.executable, "-m", "bambam_assets.cli.dashboard", "--port", str(dash_port)]
    out: dict = {"levels": {}, "writer_runs": []}
    logs = {"live": home / "load_bench_live.log", "dashboard": home / "load_bench_dashboard.log"}
    with running(live_cmd, env, f"{live_url}/health", log_path=logs["live"]), \
            running(dash_cmd, env, f"{dash_url}/", log_path=logs["dashboard"]):
        with httpx.Client(timeout=120, trust_env=False) as http:  # warm both before timing
            http.get(f"{live_url}/live/{park}").raise_for_status()
            for page in PAGES:
                http.post(f"{dash_url}/_dash-update-component",
                          json=page_request(page)).raise_for_status()
        with Writer(home) as writer:
            while not writer.runs and not (home / "status" / "progress.json").exists():
                time.sleep(0.2)
            for n in levels:
                tally = Tally()
                deadline = time.monotonic() + seconds
                threads = [threading.Thread(target=client, args=(live_url, dash_url, park,
                                                                 deadline, tally, k))
                           for k in range(n)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                level = {}
                for target, times in sorted(tally.times.items()):
                    level[target] = {"requests": len(times), "p50_ms": pct(times, 50),
                                     "p99_ms": pct(times, 99),
                                     "errors": tally.errors.get(target, 0),
                                     "busy": tally.busy.get(target, 0),
                                     "first_error": tally.first_error.get(target)}
                out["levels"][n] = level
                log(f"{n} clients: {json.dumps(level)}")
        out["writer_runs"] = writer.runs
    # what a 500 was: the servers' tracebacks (the HTTP answer only says "Internal Server Error")
    out["server_errors"] = {name: server_errors(path.read_text()) for name, path in logs.items()}
    return out


def server_errors(log: str, limit: int = 5) -> list[str]:
    """The distinct last lines of the tracebacks in a server's log (the exception raised),
    at most `limit` of them."""
    found: list[str] = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("Traceback"):
            continue
        j = i + 1
        while j < len(lines) and (lines[j].startswith(" ") or lines[j].startswith("During")
                                  or not lines[j].strip() or lines[j].startswith("Traceback")):
            j += 1
        last = lines[j] if j < len(lines) else lines[-1]
        if last not in found:
            found.append(last)
    return found[:limit]


def report(result: dict, seconds: float) -> str:
    lines = ["| clients | target | requests | p50 ms | p99 ms | errors | 'warehouse busy' |",
             "|---|---|---|---|---|---|---|"]
    for n, level in result["levels"].items():
        for target, t in level.items():
            lines.append(f"| {n} | {target} | {t['requests']} | {t['p50_ms']} | {t['p99_ms']} | "
                         f"{t['errors']} | {t['busy']} |")
    runs = result["writer_runs"]
    failed = [r for r in runs if r["rc"] != 0]
    timeouts = sum(len(r["lock_timeouts"]) for r in runs)
    lines.append("")
    lines.append(f"Writer: {len(runs)} `bambam run --retrain-all` runs overlapped the clients "
                 f"({seconds:.0f} s per level); {len(failed)} failed; lock timeouts: {timeouts}; "
                 f"run times {', '.join(str(r['seconds']) for r in runs)} s.")
    for name, errors in result.get("server_errors", {}).items():
        lines.extend(f"{name} server raised: {e}" for e in errors)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None,
                    help="a pipeline's home (default: a demo home built first)")
    ap.add_argument("--park", default="MK")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    work = None
    home = args.home
    if home is None:
        from bench.fault_table import make_raw

        work = Path(tempfile.mkdtemp(prefix="bambam-load-"))
        home = work / "home"
        shutil.copytree(make_raw(work), home / "raw")
        first = run_bambam(home)
        if first.rc != 0:
            sys.exit(f"the first run failed:\n{first.output[-2000:]}")
    levels = [int(x) for x in args.concurrency.split(",")]
    result = measure(home, args.park, levels, args.seconds)
    table = report(result, args.seconds)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    if work:
        shutil.rmtree(work, ignore_errors=True)
    bad = any(t["errors"] for level in result["levels"].values() for t in level.values())
    return 1 if bad or any(r["rc"] != 0 for r in result["writer_runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
_ = subprocess
