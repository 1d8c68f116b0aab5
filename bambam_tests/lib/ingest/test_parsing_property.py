"""Property: random bytes inserted into a valid standby file never lose its valid lines and
never raise (lib.ingest.parsing)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bambam_assets.lib.ingest.formats import RawFormat
from bambam_assets.lib.ingest.parsing.wait_files import parse_wait_files

HEADER = b"entity_code,observed_at,submitted_posted_time,submitted_actual_time,user_id\n"
LINES = [f"MK101,2024-03-02 {9 + i // 12:02d}:{i % 12 * 5:02d}:00,{10 + i},,{i}\n".encode()
         for i in range(20)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.lists(st.tuples(st.integers(0, len(LINES)), st.binary(min_size=1, max_size=40)),
                     max_size=4))
def test_random_bytes_never_lose_valid_lines(junk: list[tuple[int, bytes]]) -> None:
    # Junk goes in as its own line(s) between valid lines (or appended at the end): the valid
    # lines around it are untouched, so every one of them must land.
    body = list(LINES)
    for pos, data in sorted(junk, reverse=True):
        body.insert(pos, data + b"\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.csv"
        path.write_bytes(HEADER + b"".join(body))
        result = parse_wait_files([("f.csv", path, RawFormat.STANDBY)])
    assert result.files["error"].isna().all()
    minutes = set(result.facts["wait_time_minutes"].astype(int))
    assert {10 + i for i in range(len(LINES))} <= minutes
    files = result.files.iloc[0]
    assert files["rows_read"] == files["rows_ok"] + files["rows_rejected"]
