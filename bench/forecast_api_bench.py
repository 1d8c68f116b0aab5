"""Latency of the forecast API's park-day route, `GET /forecast/{park}/{date}`, on a real uvicorn
server on localhost over a home the pipeline built (its published files).

    .venv/bin/python -m bench.forecast_api_bench --home $BAMBAM_HOME [--park MK] [--requests 500]

Three phases, one client with keep-alive, each request timed end to end (client send to last
byte received and JSON-decoded is NOT included: only the HTTP exchange):

- warm: the same park day again and again (the server's encoded body cache hits; the first
  request primes it and is not counted): the issue's "p50 for a park-day, warm";
- uncached: a different park day each request, with a server whose body cache is off, so each
  answer reads its row group and the WTI month file and encodes the JSON (the OS page cache is
  warm after one pass over the days): what the first visitor of a park day waits;
- revalidate: If-None-Match with the day's ETag, answered 304 without reading a curve.

Prints one JSON object: per phase n, p50, p90, p99 and mean in ms, plus the entities and slots of
the park day and the body size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from bambam_assets.api.forecast_routes import add_forecast_routes
from bambam_assets.api.live import create_app
from bambam_assets.lib.core import settings
from bambam_assets.lib.core.parks import PARKS
from bambam_assets.lib.forecasts import published
from bambam_assets.lib.forecasts.api_reads import Reader


def _serve(app) -> tuple[uvicorn.Server, str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def _stats(ms: list[float]) -> dict:
    q = statistics.quantiles(ms, n=100)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 2), "p90_ms": round(q[89], 2),
            "p99_ms": round(q[98], 2), "mean_ms": round(statistics.fmean(ms), 2)}


def _timed(client: httpx.Client, url: str, headers: dict | None = None) -> tuple[float, int]:
    t = time.perf_counter()
    r = client.get(url, headers=headers)
    _ = r.content
    return (time.perf_counter() - t) * 1000, r.status_code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--park", default=None)
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    home = args.home or settings.home()
    park = args.park or next(p for p in PARKS if published.days_file(home, p).is_file())
    first, last = Reader(home).horizon(park)
    days = Reader(home).days(park)
    forecast_days = [d for d in days.index if bool(days.at[d, "has_curves"])]
    day = forecast_days[min(7, len(forecast_days) - 1)]

    warm_server, warm_url = _serve(create_app(home=home, user="", password=""))
    cold_app = FastAPI()
    add_forecast_routes(cold_app, Reader(home, cache_size=0))
    cold_server, cold_url = _serve(cold_app)
    out: dict = {"home": str(home), "park": park, "day": str(day),
                 "horizon": [str(first), str(last)]}
    try:
        with httpx.Client(timeout=60) as client:
            first_resp = client.get(f"{warm_url}/forecast/{park}/{day}")
            first_resp.raise_for_status()
            body = first_resp.json()
            out.update(entities=len(body["entities"]), slots=len(body["slots"]),
                       body_bytes=len(first_resp.content))
            etag = first_resp.headers["etag"]
            warm = [_timed(client, f"{warm_url}/forecast/{park}/{day}")[0]
                    for _ in range(args.requests)]
            for d in forecast_days:  # one pass: the OS page cache holds the files
                client.get(f"{cold_url}/forecast/{park}/{d}")
            cold = [_timed(client, f"{cold_url}/forecast/{park}/"
                           f"{forecast_days[i % len(forecast_days)]}")[0]
                    for i in range(args.requests)]
            reval = []
            for _ in range(args.requests):
                ms, status = _timed(client, f"{warm_url}/forecast/{park}/{day}",
                                    {"If-None-Match": etag})
                assert status == 304, status
                reval.append(ms)
        out.update(warm=_stats(warm), uncached=_stats(cold), revalidate=_stats(reval))
    finally:
        warm_server.should_exit = cold_server.should_exit = True
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
