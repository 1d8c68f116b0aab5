"""A real PostgreSQL server for tests (the production Dagster instance's storage).

The machines and CI run one at 127.0.0.1:5432 with trust auth: tests use it, each in a database
of its own that it creates and drops. On a machine without that server, a throwaway one is
started with the system's `initdb` / `pg_ctl` (/usr/lib/postgresql/*/bin) in a temporary folder
on a free port and stopped at the end of the session; without those binaries the test fails and
says why (never a silent skip: CI always has the server).

Fixtures (registered for every test in bambam_tests/conftest.py):

- `pg_server` (session): the server's base URL, `postgresql://USER@HOST:PORT` (libpq form).
- `pg_database` (function): the URL of a new, empty database on it, dropped afterwards, in the
  form BAMBAM_DAGSTER_PG_URL takes (`postgresql+psycopg2://...`); `libpq_url(url)` turns it
  back into what psycopg2.connect takes.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HOST, PORT = "127.0.0.1", 5432
USERS = ("postgres", "root")  # trust auth: whichever role exists
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL with its driver (`postgresql+psycopg2://`) as libpq takes it."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def _connect(base_url: str, database: str = "postgres", timeout: int = 3):
    import psycopg2

    conn = psycopg2.connect(f"{base_url}/{database}", connect_timeout=timeout)
    conn.autocommit = True  # CREATE / DROP DATABASE cannot run inside a transaction
    return conn


def _try_server(host: str, port: int) -> tuple[str | None, str]:
    """(base URL of a reachable server with a usable role, or None; what went wrong)."""
    errors = []
    for user in USERS:
        url = f"postgresql://{user}@{host}:{port}"
        try:
            _connect(url).close()
            return url, ""
        except Exception as exc:  # psycopg2.OperationalError: refused, no such role, auth
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    return None, "; ".join(errors)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _start_throwaway(why: str) -> tuple[str, Callable[[], None]]:
    """initdb + pg_ctl start in a temporary folder; returns (base URL, stop)."""
    bins = sorted(glob.glob(PG_BIN_GLOB))
    if not bins or not Path(bins[-1], "initdb").exists():
        pytest.fail(f"no PostgreSQL server at {HOST}:{PORT} ({why}) and no initdb under "
                    f"{PG_BIN_GLOB} to start a throwaway one: install PostgreSQL (Debian: "
                    "apt-get install postgresql) or start the server", pytrace=False)
    bin_dir = Path(bins[-1])
    folder = Path(tempfile.mkdtemp(prefix="bambam-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres system user
        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, and no `postgres` system user to run a throwaway "
                        "PostgreSQL server as", pytrace=False)
        os.chown(folder, pg_user.pw_uid, pg_user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = folder / "data"
    subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust"], check=True, capture_output=True)
    subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l",
                    str(folder / "server.log"), "-o",
                    f"-h {HOST} -p {port} -k {folder}", "start"],
                   check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

    url = f"postgresql://postgres@{HOST}:{port}"
    deadline = time.monotonic() + 30
    while _try_server(HOST, port)[0] is None:
        if time.monotonic() > deadline:
            stop()
            pytest.fail(f"the throwaway PostgreSQL server on port {port} did not answer",
                        pytrace=False)
        time.sleep(0.2)
    return url, stop


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Base URL of a running PostgreSQL server (the machine's, else a throwaway one)."""
    url, why = _try_server(HOST, PORT)
    if url is not None:
        yield url
        return
    url, stop = _start_throwaway(why)
    try:
        yield url
    finally:
        stop()


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """URL of a new, empty database of this test; dropped (with its connections) afterwards."""
    name = f"bambam_test_{uuid.uuid4().hex[:12]}"
    conn = _connect(pg_server)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')  # a generated name, not user input
    finally:
        conn.close()
    try:
        yield f"{pg_server}/{name}".replace("postgresql://", "postgresql+psycopg2://", 1)
    finally:
        conn = _connect(pg_server)
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()
