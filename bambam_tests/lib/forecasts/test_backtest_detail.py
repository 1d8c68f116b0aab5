"""Detailed backtest scoring by hand: filled vs covered MAE, caps, hours classes, band, seam."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.forecasts import backtest_detail as bd

NAN = np.nan
DAY = date(2024, 7, 2)


def _rows(specs: list[tuple]) -> pd.DataFrame:
    """specs: (entity, kind, y, pred, naive, has_slot, local_hour, p10, p90)."""
    cols = ["entity_code", "kind", "y", "pred", "naive", "has_slot", "local_hour", "p10", "p90"]
    frame = pd.DataFrame(specs, columns=cols)
    return frame.assign(park_code="MK", park_date=DAY,
                        observed_at=pd.Timestamp("2024-07-02 15:00", tz="UTC"))


SCORED = _rows([
    # covered: pred 12 vs y 10 (naive 20)
    ("MK1", "ACTUAL", 10.0, 12.0, 20.0, True, 11, 5.0, 15.0),
    # covered: pred 30 vs y 20 (naive 25); outside its band
    ("MK1", "ACTUAL", 20.0, 30.0, 25.0, True, 12, 25.0, 35.0),
    # not covered (no slot): filled with the naive 40 vs y 30
    ("MK1", "ACTUAL", 30.0, NAN, 40.0, False, 8, NAN, NAN),
    # a slot without a value is not covered either: filled with naive 15 vs y 15
    ("MK2", "ACTUAL", 15.0, NAN, 15.0, True, 13, NAN, NAN),
    # no naive (no history): counted, left out of every MAE
    ("MK2", "ACTUAL", 50.0, 60.0, NAN, True, 14, NAN, NAN),
    # POSTED: covered, no band
    ("MK1", "POSTED", 40.0, 35.0, 45.0, True, 11, NAN, NAN),
    ("MK1", "POSTED", 400.0, 35.0, 45.0, True, 11, NAN, NAN),
])


def test_drop_above_cap_counts_per_kind() -> None:
    kept, dropped = bd.drop_above_cap(SCORED, 300)
    assert dropped == {"POSTED": 1}
    assert len(kept) == len(SCORED) - 1 and kept["y"].max() == 50
    assert bd.drop_above_cap(SCORED, None) == (SCORED, {})


def test_filled_mae_scores_missing_forecasts_as_naive_and_covered_mae_skips_them() -> None:
    filled = bd.with_fill(bd.drop_above_cap(SCORED, 300)[0])
    assert filled["covered"].tolist() == [True, True, False, False, True, True]
    s = bd.kind_summary(filled[filled["kind"] == "ACTUAL"])
    assert (s["n"], s["n_scored"], s["n_no_naive"], s["n_covered"]) == (5, 4, 1, 3)
    assert s["coverage"] == pytest.approx(3 / 5)
    # filled errors 2, 10, 10, 0; naive errors 10, 5, 10, 0
    assert s["mae"] == pytest.approx(22 / 4)
    assert s["naive_mae"] == pytest.approx(25 / 4)
    assert s["gain_pct"] == pytest.approx((1 - 22 / 25) * 100)
    assert s["bias"] == pytest.approx((2 + 10 + 10 + 0) / 4)
    assert s["naive_bias"] == pytest.approx((10 + 5 + 10 + 0) / 4)
    # covered with a naive value: the first two rows only
    assert s["n_covered_scored"] == 2
    assert s["mae_covered"] == pytest.approx(6.0)
    assert s["naive_mae_covered"] == pytest.approx(7.5)
    assert s["gain_covered_pct"] == pytest.approx(20.0)
    assert s["bias_covered"] == pytest.approx(6.0)


def test_summary_table_pooled_and_per_entity() -> None:
    filled = bd.with_fill(bd.drop_above_cap(SCORED, 300)[0])
    pooled = bd.summary_table(filled, by_entity=False)
    assert pooled[["entity_code", "kind", "n"]].values.tolist() == [
        ["(pooled)", "ACTUAL", 5], ["(pooled)", "POSTED", 1]]
    per = bd.summary_table(filled, by_entity=True).set_index(["entity_code", "kind"])
    assert per.loc[("MK2", "ACTUAL"), "n_no_naive"] == 1
    assert per.loc[("MK2", "ACTUAL"), "mae"] == 0.0
    assert per.loc[("MK1", "POSTED"), "bias"] == -5.0
    assert list(per.columns) == list(bd.SUMMARY_KEYS)


def test_band_coverage_only_where_a_band_exists() -> None:
    band = bd.band_coverage(bd.with_fill(SCORED))
    assert band["ACTUAL"] == {"n": 2, "coverage": 0.5}
    assert band["POSTED"] == {"n": 0, "coverage": None}


def _hours() -> pd.DataFrame:
    t = lambda s: pd.Timestamp(s, tz="America/New_York")  # noqa: E731
    return pd.DataFrame({
        "park_code": ["MK"], "park_date": [DAY],
        "opening_time": [t("2024-07-02 09:00")], "closing_time": [t("2024-07-02 21:00")],
        "opening_time_with_emh": [t("2024-07-02 08:00")],
        "closing_time_with_emh": [t("2024-07-02 23:00")],
    })


def test_hours_class_official_emh_outside_and_no_hours() -> None:
    at = ["2024-07-02 09:00", "2024-07-02 21:00", "2024-07-02 08:10", "2024-07-02 22:59",
          "2024-07-02 07:30", "2024-07-02 23:30", "2024-07-03 10:00"]
    rows = pd.DataFrame({
        "park_code": "MK",
        "park_date": [DAY] * 6 + [date(2024, 7, 3)],
        "observed_at": [pd.Timestamp(a, tz="America/New_York").tz_convert("UTC") for a in at],
    })
    assert bd.hours_class(rows, _hours()).tolist() == [
        bd.OFFICIAL, bd.OFFICIAL, bd.EMH, bd.EMH, bd.OUTSIDE, bd.OUTSIDE, bd.NO_HOURS]


def test_uncovered_where_by_class_hour_and_entity() -> None:
    rows = SCORED.assign(observed_at=[
        pd.Timestamp(f"2024-07-02 {h}", tz="America/New_York").tz_convert("UTC")
        for h in ("11:00", "12:00", "08:30", "13:00", "14:00", "11:00", "11:00")])
    out = bd.uncovered_where(bd.with_fill(rows), _hours())
    assert out["ACTUAL"]["n"] == 2
    assert out["ACTUAL"]["by_hours_class"] == {bd.OFFICIAL: 1, bd.EMH: 1, bd.OUTSIDE: 0,
                                               bd.NO_HOURS: 0}
    assert out["ACTUAL"]["by_local_hour"] == {8: 1, 13: 1}
    assert out["ACTUAL"]["by_entity"] == {"MK1": 1, "MK2": 1}
    assert out["POSTED"]["n"] == 0


def test_worse_than_naive_needs_enough_observations_and_a_margin() -> None:
    table = pd.DataFrame({"entity_code": ["A", "B", "C", "D"], "kind": "ACTUAL",
                          "n_scored": [50, 49, 200, 200], "mae": [11.5, 20.0, 10.9, NAN],
                          "naive_mae": [10.0, 10.0, 10.0, 10.0]})
    assert bd.worse_than_naive(table)["entity_code"].tolist() == ["A"]


def test_wti_seam_compares_the_same_rides_before_and_after() -> None:
    as_of = date(2024, 7, 14)
    d = lambda n: date(2024, 7, n)  # noqa: E731
    observed = pd.DataFrame({
        "entity_code": ["A", "A", "B", "A", "B", "C", "A"],
        "park_date": [d(13), d(14), d(14), d(15), d(16), d(13), d(30)],
        "y": [10.0, 20.0, 30.0, 40.0, 60.0, 999.0, 999.0],  # C: only before; d(30): out of range
    })
    wti = pd.DataFrame({"park_date": [date(2024, 6, 30), d(13), d(14), d(15), d(16)],
                        "wti": [999.0, 50.0, 52.0, 40.0, NAN]})
    seam = bd.wti_seam(observed, wti, as_of, days=14)
    assert seam["entities"] == ["A", "B"]
    before, after = seam["before"], seam["after"]
    assert before["observed"] == pytest.approx((10 + 25) / 2)  # daily means 10 and 25
    assert before["observed_ride_mean"] == pytest.approx((15 + 30) / 2)
    assert (before["observed_days"], before["observed_n"]) == (2, 3)
    assert after["observed"] == pytest.approx(50.0)
    assert before["wti"] == pytest.approx(51.0) and after["wti"] == pytest.approx(40.0)
    assert (before["wti_days"], after["wti_days"]) == (2, 1)
    assert seam["wti_daily"] == {"2024-07-13": 50.0, "2024-07-14": 52.0, "2024-07-15": 40.0}


def test_imputation_summary_scores_the_same_rows_by_hand() -> None:
    rows = pd.DataFrame({
        "entity_code": ["A", "A", "B", "B"],
        "y": [10.0, 20.0, 30.0, 40.0],
        "imputed": [12.0, 18.0, 30.0, np.nan],  # B's second slot had no POSTED: left out
        "pred": [5.0, 25.0, 20.0, 40.0],
        "naive": [10.0, 10.0, 50.0, 40.0],
    })
    pooled = bd.imputation_summary(rows, by_entity=False).iloc[0]
    assert pooled["entity_code"] == "(pooled)" and pooled["n"] == 3
    assert pooled["imputed_mae"] == pytest.approx((2 + 2 + 0) / 3)
    assert pooled["imputed_bias"] == pytest.approx(0.0)
    assert pooled["forecast_mae"] == pytest.approx((5 + 5 + 10) / 3)
    assert pooled["naive_mae"] == pytest.approx((0 + 10 + 20) / 3)
    assert pooled["imputed_gain_pct"] == pytest.approx((1 - (4 / 3) / 10) * 100)
    per = bd.imputation_summary(rows, by_entity=True).set_index("entity_code")
    assert per.loc["B", "n"] == 1 and per.loc["B", "forecast_bias"] == -10
    assert per.loc["A", ["observed_mean", "imputed_mean", "forecast_mean"]].tolist() == [15, 15, 15]
