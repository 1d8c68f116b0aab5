"""Versioned model registry: versions, promotion guard, pruning, rollback, crash safety, mirror."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pytest
import xgboost as xgb

from bambam_assets.lib.models import registry as reg
from bambam_assets.lib.models import registry_table as reg_table

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeTrained:
    entity_code: str
    holdout_mae: float
    models: dict[str, bytes] = field(default_factory=dict)
    queue_type: str = "STANDBY"
    kind: str = "xgboost"
    encodings: dict = field(default_factory=lambda: {"park_code": {"MK": 0}})
    fallback: dict | None = None
    metrics: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def booster_and_data() -> tuple[xgb.Booster, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.uniform(0, 10, size=(300, 3)).astype(np.float32)
    y = 5 * X[:, 0] + rng.normal(0, 0.1, 300)
    booster = xgb.train({"max_depth": 3, "eta": 0.3, "nthread": 1}, xgb.DMatrix(X, y), 20)
    return booster, X


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "models"


def _ubj(booster: xgb.Booster) -> bytes:
    return bytes(booster.save_raw("ubj"))


@cache
def _tiny_ubj() -> bytes:
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    return _ubj(xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, X[:, 0]), 3))


def _save(root: Path, mae: float, entity: str = "MK141", n: int = 0, **kw) -> reg.SaveOutcome:
    trained = FakeTrained(entity, mae, models=kw.pop("models", {"without_posted": _tiny_ubj()}))
    return reg.save_version(root, trained, code_version="c1", params_hash="p1",
                            target_count=1000 + n, now=T0 + timedelta(days=n), **kw)


def test_first_save_writes_files_and_current(root: Path, booster_and_data) -> None:
    booster, _ = booster_and_data
    trained = FakeTrained("MK141", 8.5, models={"without_posted": _ubj(booster),
                                                "with_posted": _ubj(booster)},
                          metrics={"without_posted": {"mae": 8.5, "rmse": 11.0}})
    out = reg.save_version(root, trained, code_version="abc", params_hash="h1",
                           target_count=4321, now=T0)
    assert out == reg.SaveOutcome("MK141", 1, True, "promoted: first model", None)
    vdir = root / "MK141" / "v0001"
    assert sorted(p.name for p in vdir.iterdir()) == ["meta.json", "with_posted.ubj",
                                                      "without_posted.ubj"]
    assert (root / "MK141" / "CURRENT").read_text() == "v0001\n"
    meta = json.loads((vdir / "meta.json").read_text())
    assert meta["trained_at"] == "2025-03-01T12:00:00+00:00"
    assert (meta["version"], meta["kind"], meta["queue_type"]) == (1, "xgboost", "STANDBY")
    assert (meta["code_version"], meta["params_hash"], meta["target_count"]) == ("abc", "h1", 4321)
    assert meta["holdout_mae"] == 8.5 and meta["encodings"] == {"park_code": {"MK": 0}}
    assert meta["models"] == ["with_posted", "without_posted"]


def test_promotion_guard_both_ways_and_tolerance(root: Path) -> None:
    assert _save(root, 10.0).version == 1
    worse = _save(root, 10.6, n=1)  # 10.6 > 10.0 * 1.05
    assert (worse.version, worse.promoted, worse.previous_version) == (2, False, 1)
    assert worse.decision == "rejected: mae 10.600 > 10.000*1.05"
    assert reg.current_version(root, "MK141") == 1
    within = _save(root, 10.4, n=2)  # worse, but within 5 %
    assert (within.version, within.promoted) == (3, True)
    assert within.decision == "promoted: mae 10.400 <= 10.000*1.05"
    better = _save(root, 7.0, n=3)
    assert (better.version, better.promoted, better.previous_version) == (4, True, 3)
    assert reg.current_version(root, "MK141") == 4
    strict = _save(root, 7.01, n=4, tolerance=0.0)
    assert not strict.promoted and reg.current_version(root, "MK141") == 4


def test_incumbent_mae_on_challenger_days_overrides_stored(root: Path) -> None:
    _save(root, 10.0)
    # the current model scores 6.0 on the challenger's newest days: 7.0 is then worse
    out = _save(root, 7.0, n=1, incumbent_mae=6.0)
    assert not out.promoted and out.decision == "rejected: mae 7.000 > 6.000*1.05"


def test_nan_mae_rules(root: Path) -> None:
    assert _save(root, float("nan")).decision == "promoted: first model"
    assert _save(root, 9.0, n=1).decision == "promoted: current model has no holdout MAE"
    out = _save(root, float("nan"), n=2)
    assert (out.promoted, out.decision) == (False, "rejected: challenger has no holdout MAE")


def test_keep_last_five_never_deletes_current(root: Path) -> None:
    _save(root, 5.0)
    for n in range(1, 7):  # six worse challengers: all rejected, v1 stays current
        assert not _save(root, 50.0 + n, n=n).promoted
    assert reg.kept_versions(root, "MK141") == [1, 3, 4, 5, 6, 7]
    assert reg.current_version(root, "MK141") == 1
    assert _save(root, 1.0, n=7).version == 8  # numbering continues past deleted ones
    assert reg.kept_versions(root, "MK141") == [4, 5, 6, 7, 8]
    assert not any(p.name.startswith(".") and p.is_dir() for p in (root / "MK141").iterdir())


def test_keep_is_configurable(root: Path) -> None:
    for n in range(4):
        _save(root, 10.0 - n, n=n, keep=2)
    assert reg.kept_versions(root, "MK141") == [3, 4]


def test_rollback_previous_given_and_deleted(root: Path) -> None:
    for n in range(7):
        _save(root, 10.0 - n, n=n)  # every one better: v7 current, v3..v7 kept
    assert reg.rollback(root, "MK141") == 6
    assert reg.current_version(root, "MK141") == 6
    assert reg.rollback(root, "MK141", 4) == 4
    assert reg.load_model(root, "MK141").version == 4
    with pytest.raises(reg.RegistryError, match=r"version 2 is not kept .*kept: \[3, 4, 5, 6, 7\]"):
        reg.rollback(root, "MK141", 2)
    assert reg.current_version(root, "MK141") == 4  # a failed rollback changes nothing
    assert reg.rollback(root, "MK141", 7) == 7  # forward again: any kept version
    assert [v["current"] for v in reg.list_versions(root, "MK141")] == [False] * 4 + [True]


def test_rollback_without_older_version_errors(root: Path) -> None:
    _save(root, 3.0)
    with pytest.raises(reg.RegistryError, match="no kept version older than current v1"):
        reg.rollback(root, "MK141")
    with pytest.raises(reg.RegistryError, match="no current model"):
        reg.load_model(root, "EP09")


def test_failure_mid_write_leaves_current_intact(root: Path, booster_and_data,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    booster, X = booster_and_data
    _save(root, 4.0, models={"without_posted": _ubj(booster)})
    real_write = reg._write_file

    def failing_write(path: Path, data: bytes) -> None:
        if path.name == "meta.json":
            raise OSError("disk full")
        real_write(path, data)

    monkeypatch.setattr(reg, "_write_file", failing_write)
    with pytest.raises(OSError, match="disk full"):
        _save(root, 1.0, n=1)
    monkeypatch.undo()
    assert reg.current_version(root, "MK141") == 1
    assert reg.kept_versions(root, "MK141") == [1]
    loaded = reg.load_model(root, "MK141")
    assert loaded.version == 1
    np.testing.assert_allclose(loaded.boosters["without_posted"].predict(xgb.DMatrix(X)),
                               booster.predict(xgb.DMatrix(X)))
    assert _save(root, 1.0, n=2).version == 2


def test_failure_switching_current_keeps_old_current(root: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _save(root, 4.0)

    def no_replace(src, dst) -> None:
        raise OSError("killed before the switch")

    monkeypatch.setattr(reg.os, "replace", no_replace)
    with pytest.raises(OSError, match="killed before the switch"):
        _save(root, 1.0, n=1)
    monkeypatch.undo()
    assert reg.current_version(root, "MK141") == 1  # v2 landed but never became current
    assert reg.load_model(root, "MK141").version == 1
    assert reg.kept_versions(root, "MK141") == [1, 2]
    assert _save(root, 0.5, n=2).version == 3


def test_leftover_tmp_from_killed_process_is_cleaned(root: Path) -> None:
    _save(root, 4.0)
    d = root / "MK141"
    (d / ".tmp-deadbeef").mkdir()
    (d / ".tmp-deadbeef" / "without_posted.ubj").write_bytes(b"half")
    (d / ".del-0000-cafe").mkdir()
    (d / "CURRENT.tmp").write_text("v0009\n")  # a switch that never happened
    assert reg.current_version(root, "MK141") == 1
    assert [v["version"] for v in reg.list_versions(root, "MK141")] == [1]
    out = _save(root, 3.0, n=1)
    assert out.version == 2 and reg.current_version(root, "MK141") == 2
    assert sorted(p.name for p in d.iterdir()) == [".lock", "CURRENT", "v0001", "v0002"]


def test_current_naming_a_missing_version_counts_as_none(root: Path) -> None:
    _save(root, 4.0)
    (root / "MK141" / "CURRENT").write_text("v0042\n")
    assert reg.current_version(root, "MK141") is None
    assert _save(root, 9.0, n=1).decision == "promoted: first model"


def test_load_model_boosters_and_fallback(root: Path, booster_and_data) -> None:
    booster, X = booster_and_data
    _save(root, 2.0, models={"without_posted": _ubj(booster), "with_posted": _ubj(booster)})
    loaded = reg.load_model(root, "MK141")
    assert set(loaded.boosters) == {"with_posted", "without_posted"}
    assert loaded.models["with_posted"] == _ubj(booster)  # raw bytes kept, as TrainedEntity
    for b in loaded.boosters.values():
        np.testing.assert_allclose(b.predict(xgb.DMatrix(X[:10])),
                                   booster.predict(xgb.DMatrix(X[:10])), rtol=1e-6)
    fb = FakeTrained("EP09", 12.0, kind="hourly_fallback", queue_type="PRIORITY",
                     fallback={"hourly_mean": {"9": 15.5, "10": 22.0}, "global_mean": 18.0})
    reg.save_version(root, fb, code_version="c1", params_hash="p1", target_count=120, now=T0)
    ep = reg.load_model(root, "EP09")
    assert (ep.kind, ep.queue_type, ep.boosters) == ("hourly_fallback", "PRIORITY", {})
    assert ep.fallback == {"hourly_mean": {"9": 15.5, "10": 22.0}, "global_mean": 18.0}


def test_unsafe_entity_code_rejected(root: Path) -> None:
    with pytest.raises(reg.RegistryError, match="unsafe entity code"):
        reg.current_version(root, "../etc")


def test_write_registry_and_sync_flags(root: Path) -> None:
    metrics = {"without_posted": {"mae": 9.0, "rmse": 12.5, "mape": 30.0, "r2": 0.41,
                                  "naive_mae": 11.0, "best_iteration": 180, "rows": 5000,
                                  "seconds": 1.25}}
    t1 = FakeTrained("MK141", 9.0, models={"without_posted": b"x"}, metrics=metrics)
    o1 = reg.save_version(root, t1, code_version="c1", params_hash="p1", target_count=5000,
                          now=T0)
    o_ep = _save(root, 3.0, entity="EP09")
    conn = duckdb.connect()
    fails = reg_table.failure_rows({"HS80": ValueError("no rows"), "AK07": "timeout"}, "run-1",
                                   now=T0)
    reg_table.write_registry(conn, reg_table.registry_rows(root, [o1, o_ep]), fails)
    row = conn.execute("""SELECT version, kind, queue_type, trained_at, promoted, is_current,
        holdout_mae, mae, rmse, mape, r2, naive_mae, best_iteration, "rows", seconds,
        target_count, code_version, params_hash, decision, error
        FROM model_registry WHERE entity_code = ?""", ["MK141"]).fetchone()
    assert row == (1, "xgboost", "STANDBY", T0, True, True, 9.0, 9.0, 12.5, 30.0, 0.41, 11.0,
                   180, 5000, 1.25, 5000, "c1", "p1", "promoted: first model", None)
    assert conn.execute("SELECT entity_code, error, run_id FROM model_failures ORDER BY 1"
                        ).fetchall() == [("AK07", "timeout", "run-1"),
                                         ("HS80", "ValueError: no rows", "run-1")]

    o2 = _save(root, 20.0, n=1)  # rejected
    reg_table.write_registry(conn, reg_table.registry_rows(root, [o2]),
                             reg_table.failure_rows({}, "run-2"))
    o3 = _save(root, 8.0, n=2)  # promoted
    rows3 = reg_table.registry_rows(root, [o3])
    reg_table.write_registry(conn, rows3, reg_table.failure_rows({}, "run-3"))
    # upsert: no duplicate
    reg_table.write_registry(conn, rows3, reg_table.failure_rows({}, "run-3"))

    def flags() -> list[tuple]:
        return conn.execute("SELECT version, promoted, is_current FROM model_registry "
                            "WHERE entity_code = 'MK141' ORDER BY version").fetchall()

    assert flags() == [(1, True, False), (2, False, False), (3, True, True)]
    reg.rollback(root, "MK141", 1)
    reg_table.sync_current_flags(conn, root, ["MK141", "EP09"])
    assert flags() == [(1, True, True), (2, False, False), (3, True, False)]
    assert conn.execute("SELECT is_current FROM model_registry WHERE entity_code = 'EP09'"
                        ).fetchall() == [(True,)]
    assert conn.execute("SELECT count(*) FROM model_failures").fetchone() == (2,)


def test_write_registry_with_only_failures(root: Path) -> None:
    conn = duckdb.connect()
    empty = reg_table.registry_rows(root, [])
    assert list(empty.columns) == list(reg_table.REGISTRY_COLUMNS) and len(empty) == 0
    reg_table.write_registry(conn, empty,
                             reg_table.failure_rows({"MK1": RuntimeError("boom")}, None, T0))
    assert conn.execute("SELECT count(*) FROM model_registry").fetchone() == (0,)
    assert conn.execute("SELECT entity_code, failed_at, error, run_id FROM model_failures"
                        ).fetchall() == [("MK1", T0, "RuntimeError: boom", None)]
