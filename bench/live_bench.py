"""Benchmark of `POST /predict`: latency p50/p99 and throughput against the real server.

The server runs in its own process (uvicorn, as `bambam live serve` runs it) on a free localhost
port; the model is warm (warm-up requests first). Requests are bounded by count and by time.

    .venv/bin/python bench/live_bench.py                   # synthetic home (the live tests' data)
    .venv/bin/python bench/live_bench.py --home .bambam --entity MK141   # a pipeline's home
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SERVER = ("import sys, uvicorn; from bambam_assets.api.live import create_app; "
          "uvicorn.run(create_app(), host='127.0.0.1', port=int(sys.argv[1]), "
          "log_level='warning')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_home(folder: Path) -> tuple[Path, str]:
    """The live home of bench.homes (two STANDBY entities, with-POSTED models), also the live
    API tests' warehouse."""
    sys.path.insert(0, str(ROOT))
    from bench.homes import build_live_home

    home = folder / "home"
    home.mkdir()
    build_live_home(home)
    return home, "MK1"


def requests_for(entity: str, n: int, rng: np.random.Generator) -> list[dict]:
    minutes = rng.integers(0, 12 * 60, n)  # 09:00..21:00 EDT on 2024-03-15
    posted = rng.integers(5, 120, n)
    start = np.datetime64("2024-03-15T13:00:00")
    return [{"entity_code": entity, "posted": int(p),
             "observed_at": f"{start + np.timedelta64(int(m), 'm')}Z"}
            for m, p in zip(minutes, posted, strict=True)]


def run_client(url: str, bodies: list[dict], deadline: float, out: list[float],
               errors: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as http:
        for body in bodies:
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            r = http.post("/predict", json=body)
            out.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors.append(f"{r.status_code}: {r.text[:200]}")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, help="BAMBAM_HOME to serve (default: synthetic)")
    ap.add_argument("--entity", help="entity to predict (default MK1 on the synthetic home)")
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests")
    ap.add_argument("--threads", type=int, default=4, help="concurrent clients")
    ap.add_argument("--per-thread", type=int, default=500, help="requests per concurrent client")
    ap.add_argument("--max-seconds", type=float, default=30.0, help="time bound of each phase")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.home:
            home, entity = args.home.resolve(), args.entity
            if not entity:
                sys.exit("--entity is needed with --home")
        else:
            home, entity = synthetic_home(Path(tmp))
        port = free_port()
        env = {**os.environ, "BAMBAM_HOME": str(home), "PYTHONPATH": str(ROOT)}
        env.pop("BAMBAM_DASH_USER", None)
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env, cwd=ROOT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/health", trust_env=False).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("server did not start")
                time.sleep(0.1)
            rng = np.random.default_rng(1)
            warm: list[float] = []
            errors: list[str] = []
            run_client(url, requests_for(entity, 50, rng), time.monotonic() + 60, warm, errors)
            if errors:
                sys.exit(f"warm-up failed: {errors[0]}")

            seq: list[float] = []
            t0 = time.perf_counter()
            run_client(url, requests_for(entity, args.requests, rng),
                       time.monotonic() + args.max_seconds, seq, errors)
            seq_s = time.perf_counter() - t0

            conc: list[float] = []
            bodies = [requests_for(entity, args.per_thread, rng) for _ in range(args.threads)]
            end = time.monotonic() + args.max_seconds
            threads = [threading.Thread(target=run_client, args=(url, b, end, conc, errors))
                       for b in bodies]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            conc_s = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(10)

    result = {
        "entity": entity, "cpus": os.cpu_count(),
        "sequential": {"requests": len(seq), "p50_ms": round(pct(seq, 50), 2),
                       "p99_ms": round(pct(seq, 99), 2),
                       "mean_ms": round(statistics.fmean(seq) * 1000, 2) if seq else None,
                       "req_per_s": round(len(seq) / seq_s, 1)},
        "concurrent": {"threads": args.threads, "requests": len(conc),
                       "p50_ms": round(pct(conc, 50), 2), "p99_ms": round(pct(conc, 99), 2),
                       "req_per_s": round(len(conc) / conc_s, 1)},
        "errors": len(errors),
    }
    s, c = result["sequential"], result["concurrent"]
    print(f"/predict sequential: {s['requests']} requests, p50 {s['p50_ms']} ms, "
          f"p99 {s['p99_ms']} ms, {s['req_per_s']} req/s")
    print(f"/predict {c['threads']} clients: {c['requests']} requests, p50 {c['p50_ms']} ms, "
          f"p99 {c['p99_ms']} ms, {c['req_per_s']} req/s")
    print(json.dumps(result))
    if errors:
        print(f"{len(errors)} errors, first: {errors[0]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
