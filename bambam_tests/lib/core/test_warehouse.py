"""Warehouse connections: DuckDB limits on every connection, and steps that fail clearly."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from bambam_assets.lib.core import schema, settings, warehouse
from bambam_assets.lib.forecasts import posted_aggregates as pa

MEM, TEMP, THREADS = "BAMBAM_DUCKDB_MEMORY_LIMIT", "BAMBAM_DUCKDB_TEMP_LIMIT", \
    "BAMBAM_DUCKDB_THREADS"


def _settings(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    names = ("memory_limit", "threads", "temp_directory", "max_temp_directory_size")
    row = conn.execute("SELECT " + ", ".join(f"current_setting('{n}')" for n in names)
                       ).fetchall()[0]
    return dict(zip(names, (str(v) for v in row), strict=True))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (MEM, TEMP, THREADS):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def test_defaults_a_share_of_ram_and_a_temp_folder_under_the_home(home, monkeypatch) -> None:
    class Mem:
        total = 16 * 1024**3

    monkeypatch.setattr(warehouse.psutil, "virtual_memory", lambda: Mem())
    lim = warehouse.limits(home)
    assert lim.memory_bytes == 4 * 1024**3  # a quarter of total RAM
    assert lim.temp_bytes == 4 * 1024**3
    assert lim.temp_directory == home / "duckdb_tmp"
    assert lim.threads >= 1
    assert warehouse.limits(home, read_only=True).memory_bytes == 1024**3  # a quarter of that
    with warehouse.writer(home) as conn:
        got = _settings(conn)
    assert got == {"memory_limit": "4.0 GiB", "threads": str(lim.threads),
                   "temp_directory": str(home / "duckdb_tmp"),
                   "max_temp_directory_size": "4.0 GiB"}
    with warehouse.reader(home) as conn:
        assert _settings(conn)["memory_limit"] == "1.0 GiB"
    with warehouse.reader(home, heavy=True) as conn:  # a read as large as a write
        assert _settings(conn)["memory_limit"] == "4.0 GiB"
    with warehouse.memory_connection(home) as conn:
        assert _settings(conn)["memory_limit"] == "4.0 GiB"
        assert _settings(conn)["temp_directory"] == str(home / "duckdb_tmp")


def test_settings_override_the_limits(home, monkeypatch) -> None:
    monkeypatch.setenv(MEM, "2GiB")
    monkeypatch.setenv(TEMP, "500MiB")
    monkeypatch.setenv(THREADS, "1")
    with warehouse.writer(home) as conn:
        assert _settings(conn) == {"memory_limit": "2.0 GiB", "threads": "1",
                                   "temp_directory": str(home / "duckdb_tmp"),
                                   "max_temp_directory_size": "500.0 MiB"}
    with warehouse.reader(home) as conn:
        assert _settings(conn)["memory_limit"] == "512.0 MiB"
    monkeypatch.setenv(MEM, "100MB")  # a reader never gets more than a writer
    assert warehouse.limits(home, read_only=True).memory_bytes == 100 * 10**6


@pytest.mark.parametrize("value", ["lots", "0", "-1GB", "4XB", "GB"])
def test_a_bad_size_is_a_clear_error(home, monkeypatch, value: str) -> None:
    monkeypatch.setenv(MEM, value)
    with pytest.raises(ValueError, match=f"{MEM} must be a positive size such as 4GB"):
        warehouse.limits(home)
    monkeypatch.delenv(MEM)
    monkeypatch.setenv(TEMP, value)
    with pytest.raises(ValueError, match=f"{TEMP} must be a positive size"):
        settings.duckdb_temp_limit()


@pytest.mark.parametrize(("value", "expected"), [("4GB", 4 * 10**9), ("512MiB", 512 * 2**20),
                                                 ("1.5 gb", 1_500_000_000), ("12345", 12345)])
def test_sizes_use_duckdbs_units(value: str, expected: int) -> None:
    assert settings.parse_size("X", value) == expected


def test_bad_threads_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv(THREADS, "two")
    with pytest.raises(ValueError, match=f"{THREADS} must be a whole number >= 1"):
        settings.duckdb_threads()


def _facts(conn: duckdb.DuckDBPyConnection, n: int) -> None:
    """n POSTED rows of 400 entities over 2 years, waits 0..299: a large histogram."""
    schema.ensure_tables(conn, ("fct_wait_times",))
    conn.execute(f"""
        INSERT INTO fct_wait_times
        SELECT 'MK' || (i % 400), 'MK', DATE '2024-06-30' - CAST(i % 730 AS INTEGER),
               TIMESTAMPTZ '2024-01-01 12:00:00+00' + to_minutes(CAST(i % 1440 AS BIGINT)),
               'POSTED', CAST(hash(i) % 300 AS INTEGER), 't'
        FROM range({n}) r(i)""")
    conn.execute("""CREATE OR REPLACE TABLE dim_calendar AS
        SELECT CAST(d AS DATE) AS park_date, 'G' || (dayofweek(d)) AS date_group_id
        FROM range(DATE '2022-01-01', DATE '2024-07-01', INTERVAL 1 DAY) t(d)""")


def test_a_step_over_the_limits_fails_naming_the_step_and_the_limit(home, monkeypatch) -> None:
    with warehouse.writer(home) as conn:
        _facts(conn, 400_000)
    monkeypatch.setenv(MEM, "20MB")
    monkeypatch.setenv(TEMP, "1MB")
    with warehouse.writer(home) as conn:
        with pytest.raises(warehouse.WarehouseLimitError) as err:
            pa.build_posted_aggregates(conn, date(2024, 6, 30))
        text = str(err.value)
        assert text.startswith("step posted_aggregates exceeded DuckDB's ")
        assert "temp limit 976.5 KiB" in text and "memory limit 19.0 MiB" in text
        assert "raise BAMBAM_DUCKDB_MEMORY_LIMIT (now 19.0 MiB) or " \
               "BAMBAM_DUCKDB_TEMP_LIMIT (now 976.5 KiB)" in text
        assert str(home / "duckdb_tmp") in text
        assert isinstance(err.value.__cause__, duckdb.OutOfMemoryException)
        # the connection is still usable, and nothing was written
        assert not warehouse.table_exists(conn, pa.TABLE)
    monkeypatch.delenv(MEM)
    monkeypatch.delenv(TEMP)
    with warehouse.writer(home) as conn:  # the same build within the default limits
        assert sum(pa.build_posted_aggregates(conn, date(2024, 6, 30)).values()) > 0


def test_a_step_names_which_limit_it_hit(home, monkeypatch) -> None:
    monkeypatch.setenv(MEM, "20MB")
    monkeypatch.setenv(TEMP, "1MB")
    conn = warehouse.memory_connection(home)
    with pytest.raises(warehouse.WarehouseLimitError,
                       match=r"^step sorting exceeded DuckDB's temp limit 976\.5 KiB "
                             r"\(memory limit 19\.0 MiB\)"):
        with warehouse.step(conn, "sorting"):  # spills, and the spill outgrows its limit
            conn.execute("SELECT random() AS b FROM range(2000000) ORDER BY b").fetchall()
    with pytest.raises(warehouse.WarehouseLimitError,
                       match=r"^step aggregating exceeded DuckDB's memory limit 19\.0 MiB "
                             r"\(temp limit 976\.5 KiB\)"):
        with warehouse.step(conn, "aggregating"):  # one value larger than the memory limit
            conn.execute("SELECT string_agg(i::VARCHAR, ',') FROM range(5000000) r(i)"
                         ).fetchall()
    with pytest.raises(duckdb.ParserException):  # other errors pass through unchanged
        with warehouse.step(conn, "broken"):
            conn.execute("SELEC 1")
    conn.close()
