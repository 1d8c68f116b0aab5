"""The quick subset of the fault table (bench/fault_table.py runs every fault, N times).

Real `bambam run` processes killed with SIGKILL at a deterministic point, and a real S3 server
behind a fault-injecting proxy; after each fault the home is run again and compared with one
clean run over the same raw files: no fact lost or duplicated, every table and curve file the
same (row counts and content hashes), no half-written file servable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fault_table import make_raw
from bench.faults import scenarios as sc

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> sc.Context:
    work = tmp_path_factory.mktemp("faults")
    context = sc.Context(work=work, raw=make_raw(work), clean=Path(), s3_endpoint=s3_endpoint)
    sc.build_clean(context)
    return context


def _assert_held(outcome: sc.Outcome) -> None:
    assert outcome.rerun_ok, outcome
    assert (outcome.lost, outcome.extra) == (0, 0), outcome
    assert outcome.differences == [], outcome
    assert outcome.served_bad == [], outcome


def test_kill_during_ingest_loses_and_duplicates_nothing(ctx: sc.Context) -> None:
    outcome = sc.kill_during_ingest(ctx)
    assert outcome.fault_run.startswith("SIGKILL (the ingest's batch committed"), \
        outcome.fault_run
    _assert_held(outcome)


def test_kill_during_wti_write_leaves_the_old_wti_then_the_same(ctx: sc.Context) -> None:
    outcome = sc.kill_during_wti_write(ctx)
    assert outcome.fault_run.startswith("SIGKILL (park_wti holds"), outcome.fault_run
    _assert_held(outcome)


# The S3 faults (a whole pipeline over a proxied moto server each, ~2 min) stay in the bench
# table only (`python -m bench.fault_table`): the suite must stay under 20 minutes.


def test_live_api_and_dashboard_answer_while_a_training_run_writes(ctx: sc.Context,
                                                                   tmp_path: Path) -> None:
    """Four clients against both real servers while `bambam run --retrain-all` writes the same
    home: the live API without error, and the writer's run succeeds without a lock timeout
    (bench/load_bench.py measures 1, 8 and 32 clients)."""
    import shutil

    from bench.load_bench import measure

    home = tmp_path / "home"
    shutil.copytree(ctx.clean, home, symlinks=True)
    result = measure(home, "MK", [4], seconds=6.0, log=lambda _m: None)
    level = result["levels"][4]
    assert set(level) == {"live", "dashboard"}
    for t in level.values():
        assert t["requests"] > 0
    # the live API answers without error; the dashboard's occasional HTTP 500 while a writer
    # runs is a known open defect (README "Faults and load", issue 16), not asserted away here
    assert level["live"]["errors"] == 0, level["live"]
    assert result["writer_runs"], "no training run overlapped the clients"
    for run in result["writer_runs"]:
        assert run["rc"] == 0 and run["lock_timeouts"] == [], run
