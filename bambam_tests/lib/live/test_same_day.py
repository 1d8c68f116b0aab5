"""lib.live.same_day: the deviation of today's POSTED readings, its decay over the horizon, no
change without a reading, closed slots kept closed, only the remaining slots answered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.live import same_day
from bambam_assets.lib.live.same_day import UpdateParams

DAY = "2024-05-31"


def at(hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(f"{DAY} {hhmm}").tz_localize("America/New_York").tz_convert("UTC")


def curve() -> pd.DataFrame:
    """09:00-17:55 in 5-minute slots: ACTUAL 30, POSTED 40, closed (null) 14:00-14:55."""
    start = pd.date_range(at("09:00"), at("17:55"), freq="5min")
    local = start.tz_convert("America/New_York")
    frame = pd.DataFrame({"entity_code": "MK1", "park_date": pd.Timestamp(DAY),
                          "slot": local.strftime("%H:%M"), "slot_start": start,
                          "actual_predicted": 30.0, "actual_p10": 20.0, "actual_p90": 45.0,
                          "posted_predicted": 40.0})
    closed = (local.hour == 14)
    frame.loc[closed, ["actual_predicted", "actual_p10", "actual_p90", "posted_predicted"]] = \
        np.nan
    return frame


def readings(*pairs: tuple[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"observed_at": [at(t) for t, _ in pairs],
                         "posted": [float(v) for _, v in pairs]})


def test_ratio_of_the_window_readings() -> None:
    # 10:10 and 10:40 in the hour before 11:00; 09:30 outside it; 11:30 after now
    got = same_day.posted_deviation(curve(), readings(("09:30", 400), ("10:10", 50),
                                                      ("10:40", 70), ("11:30", 400)),
                                    at("11:00"), window_min=60)
    assert got.ratio == pytest.approx(120 / 80)
    assert (got.readings, got.last_reading_at) == (2, at("10:40"))
    # a reading in a closed slot of the forecast has nothing to compare with
    closed = same_day.posted_deviation(curve(), readings(("14:20", 90)), at("14:30"))
    assert closed == same_day.NO_DEVIATION
    # the ratio is bounded: one odd reading cannot multiply the curve by ten
    assert same_day.posted_deviation(curve(), readings(("10:40", 400)), at("11:00")).ratio == \
        same_day.RATIO_BOUNDS[1]


def test_decay_halves_every_half_life() -> None:
    p = UpdateParams(half_life_min=60, weight=0.8)
    np.testing.assert_allclose(same_day.decay(np.array([0, 60, 120, -5]), p),
                               [0.8, 0.4, 0.2, 0.8])
    np.testing.assert_allclose(same_day.updated_actual(np.array([30.0, 30.0, np.nan]),
                                                       np.array([0, 60, 0]), 1.5, p),
                               [30 * 1.4, 30 * 1.2, np.nan])
    # one ratio per row, NaN = no reading for that row: unchanged
    np.testing.assert_allclose(
        same_day.updated_actual(np.array([30.0, 30.0]), np.array([0, 0]),
                                np.array([0.5, np.nan]), p), [30 * 0.6, 30.0])


def test_reforecast_updates_the_remaining_slots_and_fades() -> None:
    p = UpdateParams(half_life_min=60, weight=1.0, window_min=60)
    rest, dev = same_day.reforecast(curve(), readings(("10:30", 60), ("10:50", 60)), at("11:02"),
                                    p)
    assert dev.ratio == pytest.approx(1.5) and dev.last_reading_at == at("10:50")
    assert rest["slot"].iloc[0] == "11:00" and rest["slot"].iloc[-1] == "17:55"  # from now's slot
    by = rest.set_index("slot")["actual_updated"]
    assert by["11:50"] == pytest.approx(30 * (1 + 0.5 * 0.5))  # 60 min after the last reading
    assert by["12:50"] == pytest.approx(30 * (1 + 0.5 * 0.25))
    assert by["17:55"] < by["12:50"] and by["17:55"] > 30  # fading back to the morning's curve
    # closed slots stay closed; the morning's columns are the file's
    closed = rest[rest["slot"].str.startswith("14:")]
    assert len(closed) == 12 and closed["actual_updated"].isna().all()
    assert (rest["actual_predicted"].dropna() == 30).all()
    assert (rest["actual_p10"].dropna() == 20).all()


@pytest.mark.parametrize("given", [
    None,
    pd.DataFrame({"observed_at": pd.Series([], dtype="datetime64[ns, UTC]"),
                  "posted": pd.Series([], dtype=float)}),
    readings(("08:00", 90)),  # only readings older than the window
    readings(("12:00", 90)),  # only readings after now
    readings(("10:30", float("nan"))),
])
def test_no_usable_reading_changes_nothing(given) -> None:
    rest, dev = same_day.reforecast(curve(), given, at("11:00"), UpdateParams(window_min=60))
    assert dev == same_day.NO_DEVIATION
    pd.testing.assert_series_equal(rest["actual_updated"], rest["actual_predicted"],
                                   check_names=False)


def test_lower_readings_lower_the_curve_but_never_below_zero() -> None:
    rest, dev = same_day.reforecast(curve(), readings(("10:55", 0)), at("11:00"),
                                    UpdateParams(half_life_min=30, weight=1.0))
    assert dev.ratio == same_day.RATIO_BOUNDS[0]
    assert rest["actual_updated"].min() >= 0
    # the 11:00 slot is 5 minutes after the reading
    assert rest["actual_updated"].iloc[0] == pytest.approx(30 * (1 - 2 / 3 * 0.5 ** (5 / 30)))


def test_the_switch_setting() -> None:
    from bambam_assets.lib.core import settings

    assert settings.same_day_update({}) is settings.DEFAULT_SAME_DAY_UPDATE
    assert settings.same_day_update({"BAMBAM_SAME_DAY_UPDATE": " OFF "}) is False
    assert settings.same_day_update({"BAMBAM_SAME_DAY_UPDATE": "on"}) is True
    with pytest.raises(settings.SettingError, match="BAMBAM_SAME_DAY_UPDATE must be on or off"):
        settings.same_day_update({"BAMBAM_SAME_DAY_UPDATE": "maybe"})


def test_the_default_keeps_the_whole_day_without_fading() -> None:
    # the tuned default: every reading since opening, 3/4 of the deviation, the same all day
    rest, dev = same_day.reforecast(curve(), readings(("09:10", 40), ("12:50", 80)), at("13:00"))
    assert dev.ratio == pytest.approx(1.5) and dev.readings == 2
    lift = (rest["actual_updated"] / rest["actual_predicted"]).dropna()
    np.testing.assert_allclose(lift, 1 + 0.5 * same_day.DEFAULT_PARAMS.weight)
