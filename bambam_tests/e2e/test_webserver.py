"""`dagster dev` on the project's workspace serves the asset graph, the sensor and partitions."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

QUERY = (
    "{\n"
    "  assetNodes { assetKey { path } groupName isPartitioned }\n"
    '  sensorsOrError(repositorySelector: {repositoryName: "__repository__",\n'
    '                                      repositoryLocationName: "bambam"})'
    " { ... on Sensors { results { name sensorState { status } } } }\n"
    "}"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["data"]


@pytest.mark.integration
def test_dagster_dev_shows_assets_and_sensor(bambam_home: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(bambam_home / "dagster")}
    dagster = Path(sys.executable).parent / "dagster"
    # Own session: dagster dev leaves its children running on SIGTERM, so we kill the group.
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1",
         "-p", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        data = None
        while time.monotonic() < deadline:
            try:
                data = _graphql(port, QUERY)
                if data["assetNodes"]:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert data and data["assetNodes"], "dagster dev did not serve the asset graph in 120 s"
        nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
        assert {"fct_wait_times", "dim_park_hours", "entity_model"} <= set(nodes)
        assert nodes["entity_model"]["isPartitioned"] is True
        assert nodes["dim_calendar"]["groupName"] == "dimensions"
        sensors = {s["name"]: s["sensorState"]["status"]
                   for s in data["sensorsOrError"]["results"]}
        assert sensors.get("raw_files_sensor") == "RUNNING"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
