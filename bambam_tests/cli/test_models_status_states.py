"""`bambam models status` (recorded and --live) on every state the pipeline leaves: a warehouse
with no model yet, after the first run, after a rerun, after a retrain and a rollback, and after
a run whose training failed. Real runs of the graph (in-process) on a small demo home; the
command runs through click with its real code."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from bambam_assets.cli.main import main
from bambam_assets.defs.resources import RunKnobs
from bambam_assets.instance import instance_at
from bambam_assets.lib.demo import generate as demo_data
from bambam_assets.runner import run_pipeline

AS_OF = date(2024, 5, 31)


def _status(home: Path, *args: str) -> list[str]:
    result = CliRunner().invoke(main, ["models", "status", *args], env={"BAMBAM_HOME": str(home),
                                "BAMBAM_AS_OF": AS_OF.isoformat()})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output.splitlines()


def _rows(lines: list[str]) -> dict[str, str]:
    """entity -> its line, for the table's entity lines."""
    return {ln.split()[0]: ln for ln in lines[1:] if re.fullmatch(r"MK\d+", ln.split()[0] if
                                                                  ln.split() else "")}


@pytest.mark.integration
def test_models_status_on_every_state_the_pipeline_leaves(bambam_home: Path,
                                                          tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    demo_data.generate(raw, ["MK"], 2, date(2024, 3, 1), AS_OF, seed=7, qt_days=0)
    home = tmp_path / "home"
    knobs = RunKnobs(as_of=AS_OF, forecast_days=3, backfill_days=5, train_mode="full")
    instance = instance_at(home)

    def run(select=None, retrain_all=False):
        summary = run_pipeline(instance, select, log=lambda _m: None, home=home,
                               raw_uri=str(raw), knobs=knobs, retrain_all=retrain_all)
        return summary

    try:
        # 1. ingest only: a warehouse, no model, no evaluation
        assert run(["fct_wait_times"]).success
        assert _status(home) == ["no evaluation recorded yet"]
        _status(home, "--live")  # no dimensions yet: answered, whatever it finds

        # 2. the first full run: every entity trained, fresh
        assert run().success
        first = _rows(_status(home))
        assert set(first) == {"MK1", "MK2"}, first
        assert all("full retrain v1" in line for line in first.values()), first

        # 3. a rerun with nothing new: still answered, still fresh
        assert run().success
        assert set(_rows(_status(home))) == {"MK1", "MK2"}
        assert all(" fresh " in line for line in _rows(_status(home, "--live")).values())

        # 4. a full retrain, then a rollback of MK1 to the version before
        assert run(["entity_model"], retrain_all=True).success
        rolled = CliRunner().invoke(main, ["models", "rollback", "MK1"],
                                    env={"BAMBAM_HOME": str(home)})
        assert rolled.exit_code == 0 and "version 1 is now current" in rolled.output, \
            rolled.output
        after = _rows(_status(home))
        assert set(after) == {"MK1", "MK2"}
        assert set(_rows(_status(home, "--live"))) == {"MK1", "MK2"}

        # 5. a run whose training fails: MK2's current model file is destroyed, the retrain
        # reads it (the incumbent is scored) and the entity fails; status still answers
        for f in (home / "models" / "MK2").glob("v*/*.ubj"):
            f.write_bytes(b"\0garbage")
        run(["entity_model"], retrain_all=True)
        failed = _rows(_status(home))
        assert set(failed) == {"MK1", "MK2"}
        assert set(_rows(_status(home, "--live"))) == {"MK1", "MK2"}
    finally:
        instance.dispose()
