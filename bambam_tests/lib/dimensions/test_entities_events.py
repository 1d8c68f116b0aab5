"""Entity, event, event-day and metatable cleaning."""

from __future__ import annotations

import pandas as pd

from bambam_assets.lib.core.parks import park_of_entity
from bambam_assets.lib.dimensions.entities import ENTITY_COLUMNS, clean_entities, park_codes
from bambam_assets.lib.dimensions.events import (
    clean_event_days,
    clean_events,
    clean_metatable,
    is_flag_column,
)

FLAGS = ["fastpass_booth", "single_rider", "open_emh_morning", "open_emh_evening",
         "open_very_merry", "open_not_so_scary", "seasonal", "has_posted", "intense"]


def _entities() -> pd.DataFrame:
    wdw = pd.DataFrame({
        "code": ["MK101", " ak86 ", "EU3", "MK101", ""],
        "name": ["Old name", "Flight of Passage", "Stardust Racers", "Space Mountain", "x"],
        "short_name": ["Old", "FoP", "nan", "Space", ""],
        "land": ["Tomorrowland", "Pandora", "", "Tomorrowland", ""],
        "fastpass_booth": ["0", "TRUE", "", "no", "1"],
        "single_rider": ["yes", "Y", "t", "1", ""],
        "open_emh_morning": ["f", "false", "0", "T", ""],
        "open_emh_evening": ["", "", "", "", ""],
        "open_very_merry": ["1", "", "", "1", ""],
        "open_not_so_scary": ["", "", "", "", ""],
        "seasonal": ["", "", "", "", ""],
        "has_posted": ["1", "1", "1", "1", ""],
        "intense": ["", "1", "1", "", ""],
        "height_restriction": ["44", "-1", "", "44", ""],
        "duration": ["3", "0", "-2", "2.5", ""],
        "opened_on": ["1975-01-15", "", "", "1975-01-15", ""],
        "extinct_on": ["", "", "", "", ""],
    }, dtype=str)
    # Another property's export without `land`: the outer union leaves it NaN.
    tdr = pd.DataFrame({
        "code": ["TDL12", "TDS36", "USH05"],
        "name": ["Pooh's Hunny Hunt", "Toy Story Mania", "Mario Kart"],
        "short_name": ["Pooh", "TSM", "Kart"],
        "fastpass_booth": ["", "", "1"],
        "height_restriction": ["", "", "40"],
        "opened_on": ["", "", ""],
        "extinct_on": ["", "2030-01-01", ""],
    }, dtype=str)
    return pd.concat([wdw, tdr], ignore_index=True)


def test_clean_entities_codes_flags_defaults_and_fact_only() -> None:
    out = clean_entities(_entities(), ["MK101", "HS05", "tds99 ", "MK101"])
    assert list(out.columns) == list(ENTITY_COLUMNS)
    assert out["entity_code"].tolist() == [
        "AK86", "EU3", "HS05", "MK101", "TDL12", "TDS36", "TDS99", "USH05"]
    e = out.set_index("entity_code")
    assert e["park_code"].to_dict() == {
        "AK86": "AK", "EU3": "EU", "HS05": "HS", "MK101": "MK", "TDL12": "TDL",
        "TDS36": "TDS", "TDS99": "TDS", "USH05": "USH"}
    # The duplicate MK101 keeps its last row.
    mk = e.loc["MK101"]
    assert (mk["entity_name"], mk["short_name"], mk["land"]) == (
        "Space Mountain", "Space", "Tomorrowland")
    assert [bool(mk[f]) for f in FLAGS] == [False, True, True, False, True, False, False,
                                            True, False]
    assert (mk["height_restriction"], mk["duration"]) == (44.0, 2.5)
    assert mk["opened_on"] == pd.Timestamp("1975-01-15")
    assert mk["extinct_on"] == pd.Timestamp("2099-01-01")
    assert (mk["queue_type"], mk["in_export"]) == ("STANDBY", True)
    ak = e.loc["AK86"]
    assert (ak["fastpass_booth"], ak["queue_type"]) == (True, "PRIORITY")
    assert pd.isna(ak["height_restriction"]) and pd.isna(ak["duration"])  # -1 and 0
    assert ak["opened_on"] == pd.Timestamp("1998-04-22")  # AK opening date
    eu = e.loc["EU3"]
    assert eu["short_name"] is None and eu["land"] is None  # "nan" and "" are null
    assert pd.isna(eu["duration"]) and eu["opened_on"] == pd.Timestamp("2025-06-01")
    assert e.loc["TDL12", "opened_on"] == pd.Timestamp("1983-04-15")
    assert e.loc["TDS36", "extinct_on"] == pd.Timestamp("2030-01-01")
    assert e.loc["TDS36", "land"] is None
    ush = e.loc["USH05"]
    assert (ush["queue_type"], ush["opened_on"]) == ("PRIORITY", pd.Timestamp("1964-07-15"))
    # Fact-only entities: STANDBY, not in the export, default dates, all flags false.
    for code, opened in (("HS05", "1989-05-01"), ("TDS99", "2001-09-04")):
        row = e.loc[code]
        assert (row["queue_type"], row["in_export"]) == ("STANDBY", False)
        assert row["opened_on"] == pd.Timestamp(opened)
        assert row["extinct_on"] == pd.Timestamp("2099-01-01")
        assert not any(bool(row[f]) for f in FLAGS)
        assert row["entity_name"] is None
    assert out["in_export"].sum() == 6
    for column in (*FLAGS, "in_export"):
        assert out[column].dtype == bool


def test_park_codes_match_park_of_entity() -> None:
    codes = pd.Series(["MK141", "EP09", "TDS36", "TDL1", "USH5", "BB2", "TL3", "XX9", "MK",
                       "tds36", "AK10921", "UF1", "IA2", "DL3", "CA4", "EU5", "HS6"])
    expected = [park_of_entity(c) for c in codes]
    assert [None if pd.isna(p) else p for p in park_codes(codes)] == expected
    unknown = clean_entities(pd.DataFrame({"code": ["XX9"]}, dtype=str))
    assert unknown.loc[0, "park_code"] is None
    assert unknown.loc[0, "opened_on"] == pd.Timestamp("1955-07-17")  # fallback


def test_clean_event_days_and_events() -> None:
    days = clean_event_days(pd.DataFrame({
        "date": ["2024-10-01", "2024-10-01", "", "2024-12-05", "2024-10-01"],
        "park_abbreviation": ["", "", "", "mk", ""],
        "event_abbreviation": ["mnsshp", "EPFWF", "MNSSHP", "MVMCP", "MNSSHP"],
        "event_opening_time": ["19:00", "", "19:00", "19:00", "18:30"],
        "event_closing_time": ["24:00", "", "", "24:00", "24:00"],
    }, dtype=str))
    assert days["park_date"].tolist() == [pd.Timestamp("2024-10-01")] * 2 + [
        pd.Timestamp("2024-12-05")]
    assert days["event_abbreviation"].tolist() == ["EPFWF", "MNSSHP", "MVMCP"]
    assert days["park_code"].tolist() == [None, None, "MK"]
    assert days["event_opening_time"].tolist() == [None, "18:30", "19:00"]  # last row wins

    events = clean_events(pd.DataFrame({
        "property_abbrev": ["WDW", "wdw", "DLR"],
        "event_abbreviation": ["mnsshp", "MVMCP", "oogie"],
        "event_code": ["wdw028", "WDW031", "DLR002"],
        "event_name": [" Mickey's Not-So-Scary Halloween Party ", "Very Merry", "Oogie"],
        "event_hard_ticket": ["1", "0", ""],
    }, dtype=str))
    assert events.to_dict("records") == [
        {"property_code": "dlr", "event_abbreviation": "OOGIE", "event_code": "DLR002",
         "event_name": "Oogie", "event_hard_ticket": False},
        {"property_code": "wdw", "event_abbreviation": "MNSSHP", "event_code": "WDW028",
         "event_name": "Mickey's Not-So-Scary Halloween Party", "event_hard_ticket": True},
        {"property_code": "wdw", "event_abbreviation": "MVMCP", "event_code": "WDW031",
         "event_name": "Very Merry", "event_hard_ticket": False},
    ]


def test_clean_metatable_types() -> None:
    meta = clean_metatable(pd.DataFrame({
        "DATE": ["01/02/2024", "01/03/2024", "bad", "01/02/2024"],
        "MKOPEN": ["09:00", "08:00", "", "09:00"],
        "MKCLOSE": ["23:00", "25:00", "", "24:00"],
        "MKEMHMORN": ["1", "0", "", ""],
        "MKEMHEVE": ["", "1", "", "1"],
        "MKHOURS": ["14", "17", "", "15"],
        "MKPRDDAY": ["2", "", "", "1"],
        "MKFIREWK": ["1", "", "", "1"],
        "MKPRDT1": ["15:00", "", "", "15:00"],
        "WDWMEANTEMP": ["70.5", "68", "", "71"],
        "HOLIDAYN": ["None", "x", "", "New Year"],
    }, dtype=str))
    assert meta["park_date"].tolist() == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]
    assert meta.columns[0] == "park_date" and "DATE" not in meta.columns
    assert meta["MKEMHMORN"].tolist() == [False, False]  # "" (last 01/02 row), "0"
    assert meta["MKEMHEVE"].tolist() == [True, True]
    assert meta["MKPRDDAY"].tolist() == [True, False]
    assert meta["MKFIREWK"].dtype == bool
    assert meta["MKOPEN"].tolist() == ["09:00", "08:00"]
    assert meta["MKCLOSE"].tolist() == ["24:00", "25:00"]
    assert meta["MKPRDT1"].tolist() == ["15:00", None]  # T1: a time, not a flag
    assert meta["MKHOURS"].tolist() == [15.0, 17.0]
    assert meta["WDWMEANTEMP"].dtype == float
    assert meta["HOLIDAYN"].tolist() == ["New Year", "x"]
    assert is_flag_column("MKEMHMORN") and is_flag_column("EPFIREWK")
    assert not is_flag_column("MKEMHOPEN") and not is_flag_column("MKPRDNT1")
    assert not is_flag_column("MKOPEN")
