"""Format detection and wait-time parsing: exact rows for every format, time zones, DST, the 6 AM
rule, fastpass packing and roll-over, rejections with reasons and line numbers, unreadable files.

All rows are generated here (never copied from real sample files).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bambam_assets.lib.core.schema import FACT_COLUMNS, REJECTED_COLUMNS
from bambam_assets.lib.ingest.formats import WAIT_TIME_FORMATS, RawFormat, detect_format
from bambam_assets.lib.ingest.parsing.wait_files import parse_wait_files, read_qt_mapping

STANDBY_HEADER = "entity_code,observed_at,submitted_posted_time,submitted_actual_time,user_id"
FP_NEW_HEADER = "FATTID,FDAY,FMONTH,FYEAR,FHOUR,FMIN,FWINHR,FWINMIN"
PUBLIC_HEADER = "date,datetime,SPOSTMIN,SACTMIN"


def _parse(tmp_path: Path, specs, mapping: pd.DataFrame | None = None):
    """Write (key, text or bytes, format) files under tmp_path and parse them in one batch."""
    files = []
    for key, content, fmt in specs:
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        files.append((key, path, fmt))
    return parse_wait_files(files, mapping)


def _facts(result) -> list[tuple]:
    """Fact rows as comparable tuples: (entity, park, park_date, observed_at UTC, type, minutes)."""
    return sorted(
        (r.entity_code, r.park_code, str(pd.Timestamp(r.park_date).date()),
         r.observed_at.isoformat(), r.wait_time_type,
         None if pd.isna(r.wait_time_minutes) else int(r.wait_time_minutes))
        for r in result.facts.itertuples()
    )


def _rejected(result) -> list[tuple]:
    return sorted((r.source_file, r.line, r.reason) for r in result.rejected.itertuples())


def _file_row(result, key: str) -> dict:
    return result.files.set_index("source_file").loc[key].to_dict()


# --------------------------------------------------------------------------- detect_format

SNAPSHOT = {"lands": [{"id": 1, "name": "Land", "rides": [
    {"id": 1, "name": "Ride", "is_open": True, "wait_time": 5,
     "last_updated": "2024-07-04T14:55:00.000Z"}]}], "rides": []}


@pytest.mark.parametrize("key, head, expected", [
    ("export/wait_times/wdw/mk.csv",
     (STANDBY_HEADER + "\nMK101,2024-01-01 10:00:00,5,,1\n").encode(), RawFormat.STANDBY),
    ("anywhere/x.csv", b"\xef\xbb\xbf Entity_Code , OBSERVED_AT,\"submitted_posted_time\","
     b"submitted_actual_time\r\n", RawFormat.STANDBY),
    ("export/fastpass_times/wdw/mk_2024.csv", (FP_NEW_HEADER + ",EXTRA\n").lower().encode(),
     RawFormat.FASTPASS_NEW),
    ("export/fastpass_times/wdw/mk_2016.csv", FP_NEW_HEADER.encode(), RawFormat.FASTPASS_OLD),
    ("export/fastpass_times/wdw/MK_201902.csv", b"anything", RawFormat.FASTPASS_OLD),
    ("export/fastpass_times/wdw/mk_2019_01.csv", b"", RawFormat.FASTPASS_OLD),
    ("export/fastpass_times/wdw/mk_2019_03.csv", b"a,b,c\n1,2,3", RawFormat.UNKNOWN),
    ("public/AK25.csv", (PUBLIC_HEADER + "\n07/04/2024,2024-07-04 10:00:00,5,\n").encode(),
     RawFormat.PUBLIC_ATTRACTION),
    ("queue_times/MK/d/MK_1.json", json.dumps(SNAPSHOT).encode(), RawFormat.QUEUE_TIMES_SNAPSHOT),
    ("q.json", b'{"rides": [{"id": 1, "name": "A ride cut sh', RawFormat.QUEUE_TIMES_SNAPSHOT),
    ("q.json", b'{"parks": []}', RawFormat.UNKNOWN),
    ("q.json", b"[1, 2, 3]", RawFormat.UNKNOWN),
    ("queue_times/entity_mapping.csv", b"entity_code,park_code,queue_times_id,queue_times_name\n",
     RawFormat.QUEUE_TIMES_MAPPING),
    ("export/entities/current_wdw_entities.csv",
     b"code,name,short_name,land,fastpass_booth,single_rider,open_emh_morning\n",
     RawFormat.ENTITIES),
    ("export/park_hours/wdw_park_hours.csv",
     b"date,park,opening_time,closing_time,opening_time_with_emh\n", RawFormat.PARK_HOURS),
    ("export/events/current_event_days.csv",
     b"date,park_abbreviation,event_abbreviation,event_opening_time,event_closing_time\n",
     RawFormat.EVENT_DAYS),
    ("export/events/current_events.csv",
     b"property_abbrev,event_abbreviation,event_code,event_name,event_hard_ticket\n",
     RawFormat.EVENTS),
    ("export/metatable/current_metatable.csv", b"DATE,MKOPEN,MKCLOSE,MKEMHMORN\n",
     RawFormat.METATABLE),
    ("export/wait_times/wdw/odd.csv", b"a,b,c\n1,2,3\n", RawFormat.UNKNOWN),
    ("export/wait_times/wdw/img.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", RawFormat.UNKNOWN),
    ("export/wait_times/wdw/empty.csv", b"  \n", RawFormat.UNKNOWN),
])
def test_detect_format(key: str, head: bytes, expected: RawFormat) -> None:
    assert detect_format(key, head) is expected


def test_wait_time_formats() -> None:
    assert WAIT_TIME_FORMATS == {RawFormat.STANDBY, RawFormat.FASTPASS_NEW, RawFormat.FASTPASS_OLD,
                                 RawFormat.PUBLIC_ATTRACTION, RawFormat.QUEUE_TIMES_SNAPSHOT}


# --------------------------------------------------------------------------- standby

def test_standby_time_zones_dst_and_six_am_rule(tmp_path: Path) -> None:
    rows = [
        "mk101 ,2024-07-04 05:59:00,10,,1",        # NY, before 06:00 -> previous park day
        "MK101,2024-07-04 06:00:00,,20.4,1",       # 06:00 -> same day; 20.4 rounds to 20
        "DL01,2024-07-04 12:00:00,45,50,2",        # LA: one raw row gives POSTED and ACTUAL
        "TDL05,2024-07-04 09:00:00,30,,3",         # Tokyo
        "USH02,2024-07-04 01:00:00,15,,4",         # Hollywood is Los Angeles, not New York
        "MK101,2024-03-10 02:30:00,5,,5",          # NY spring-forward gap -> 03:00 EDT
        "MK101,2024-11-03 01:30:00,-999,,6",       # NY fall-back hour -> first (EDT); CLOSED
        "DL01,2024-11-03 01:30:00,7,,7",           # LA fall-back -> first (PDT)
        "CA01,2024-03-10 02:15:00,8,,8",           # LA spring-forward gap -> 03:00 PDT
        "EP09,2024-07-04T10:00:00Z,12.6,,9",       # Z keeps its instant
        "TDS36,2024-07-04 23:30:00+0900,25,,10",   # +HHMM keeps its instant
        "AK01,2024-07-04T07:00:00-04:00,0,,11",    # a 0 wait is a real 0
    ]
    key = "export/wait_times/wdw/a.csv"
    result = _parse(tmp_path, [(key, STANDBY_HEADER + "\n" + "\n".join(rows) + "\n",
                                RawFormat.STANDBY)])
    assert _facts(result) == sorted([
        ("MK101", "MK", "2024-07-03", "2024-07-04T09:59:00+00:00", "POSTED", 10),
        ("MK101", "MK", "2024-07-04", "2024-07-04T10:00:00+00:00", "ACTUAL", 20),
        ("DL01", "DL", "2024-07-04", "2024-07-04T19:00:00+00:00", "POSTED", 45),
        ("DL01", "DL", "2024-07-04", "2024-07-04T19:00:00+00:00", "ACTUAL", 50),
        ("TDL05", "TDL", "2024-07-04", "2024-07-04T00:00:00+00:00", "POSTED", 30),
        ("USH02", "USH", "2024-07-03", "2024-07-04T08:00:00+00:00", "POSTED", 15),
        ("MK101", "MK", "2024-03-09", "2024-03-10T07:00:00+00:00", "POSTED", 5),
        ("MK101", "MK", "2024-11-02", "2024-11-03T05:30:00+00:00", "CLOSED", None),
        ("DL01", "DL", "2024-11-02", "2024-11-03T08:30:00+00:00", "POSTED", 7),
        ("CA01", "CA", "2024-03-09", "2024-03-10T10:00:00+00:00", "POSTED", 8),
        ("EP09", "EP", "2024-07-04", "2024-07-04T10:00:00+00:00", "POSTED", 13),
        ("TDS36", "TDS", "2024-07-04", "2024-07-04T14:30:00+00:00", "POSTED", 25),
        ("AK01", "AK", "2024-07-04", "2024-07-04T11:00:00+00:00", "POSTED", 0),
    ])
    assert result.rejected.empty
    assert set(result.facts["source_file"]) == {key}
    assert list(result.facts.columns) == list(FACT_COLUMNS)
    assert str(result.facts["observed_at"].dtype) == "datetime64[ns, UTC]"
    assert str(result.facts["wait_time_minutes"].dtype) == "Int64"
    assert _file_row(result, key) == {
        "format": "standby", "rows_read": 12, "rows_ok": 12, "rows_rejected": 0, "error": None,
        "rows_collapsed": 0, "stale_rows": 0}


def test_standby_bad_row_mix_reasons_and_lines(tmp_path: Path) -> None:
    lines = [
        STANDBY_HEADER,                                   # 1
        "MK101,2024-07-04 10:00:00,30,,u",                # 2 ok
        "",                                               # 3 blank: skipped, still numbered
        "MK101,2024-07-04 10:05:00,40",                   # 4 too few fields
        "101,2024-07-04 10:00:00,30,,u",                  # 5 no park letters
        "QQ101,2024-07-04 10:00:00,30,,u",                # 6 no such park
        "MK101,not a time,30,,u",                         # 7
        "MK101,2024-02-30 10:00:00,30,,u",                # 8 impossible date
        "MK101,2024-07-04 10:10:00,,,u",                  # 9 no value at all
        "MK101,2024-07-04 10:15:00,abc,,u",               # 10 not a number
        "MK101,2024-07-04 10:20:00,1001,,u",              # 11 out of range
        "MK101,2024-07-04 10:25:00,30,-5,u",              # 12 POSTED kept, ACTUAL rejected
        "MK101,2024-07-04 10:30:00,NA,25,u",              # 13 NA reads as empty: ACTUAL ok
        '"MK101","2024-07-04 10:35:00","50","","u"',      # 14 quoted fields ok
        "MK101,2024-07-04 10:40:00,30,,u,extra",          # 15 too many fields
        "MK 101,2024-07-04 10:45:00,30,,u",               # 16 malformed code
    ]
    key = "mix.csv"
    text = "\ufeff" + "\r\n".join(lines) + "\r\n"  # BOM and CRLF line ends
    result = _parse(tmp_path, [(key, text, RawFormat.STANDBY)])
    assert _rejected(result) == [
        (key, 4, "bad_row"), (key, 5, "bad_entity_code"), (key, 6, "unknown_park"),
        (key, 7, "unparseable_time"), (key, 8, "unparseable_time"), (key, 9, "missing_value"),
        (key, 10, "bad_row"), (key, 11, "value_out_of_range"), (key, 12, "value_out_of_range"),
        (key, 15, "bad_row"), (key, 16, "bad_entity_code"),
    ]
    raw = result.rejected.set_index("line")["raw"]
    assert raw[4] == "MK101,2024-07-04 10:05:00,40"
    assert raw[12] == "MK101,2024-07-04 10:25:00,30,-5,u"
    assert _facts(result) == [
        ("MK101", "MK", "2024-07-04", "2024-07-04T14:00:00+00:00", "POSTED", 30),
        ("MK101", "MK", "2024-07-04", "2024-07-04T14:25:00+00:00", "POSTED", 30),
        ("MK101", "MK", "2024-07-04", "2024-07-04T14:30:00+00:00", "ACTUAL", 25),
        ("MK101", "MK", "2024-07-04", "2024-07-04T14:35:00+00:00", "POSTED", 50),
    ]
    row = _file_row(result, key)
    assert (row["rows_read"], row["rows_ok"], row["rows_rejected"]) == (14, 3, 11)
    assert row["rows_ok"] + row["rows_rejected"] == row["rows_read"]
    assert list(result.rejected.columns) == list(REJECTED_COLUMNS)


def test_empty_batch() -> None:
    result = parse_wait_files([])
    assert list(result.facts.columns) == list(FACT_COLUMNS) and result.facts.empty
    assert list(result.rejected.columns) == list(REJECTED_COLUMNS) and result.rejected.empty
    assert result.files.empty


def test_duplicates_within_batch_are_kept_once(tmp_path: Path) -> None:
    text = STANDBY_HEADER + "\nMK101,2024-07-04 10:00:00,30,,1\nMK101,2024-07-04 10:00:00,30,,2\n"
    result = _parse(tmp_path, [("a.csv", text, RawFormat.STANDBY),
                               ("b.csv", text, RawFormat.STANDBY)])
    assert _facts(result) == [("MK101", "MK", "2024-07-04", "2024-07-04T14:00:00+00:00",
                               "POSTED", 30)]
    assert result.facts["source_file"].tolist() == ["a.csv"]
    assert result.files["rows_ok"].tolist() == [2, 2] and result.rejected.empty


def test_duplicates_across_formats_are_kept_once(tmp_path: Path) -> None:
    standby = STANDBY_HEADER + "\nAK25,2024-07-04 10:00:00,30,,1\n"
    public = (PUBLIC_HEADER + "\n07/04/2024,2024-07-04 10:00:00,30,"
              "\n07/04/2024,2024-07-04 10:00:00,,9\n")
    result = _parse(tmp_path, [("w.csv", standby, RawFormat.STANDBY),
                               ("p/AK25.csv", public, RawFormat.PUBLIC_ATTRACTION)])
    assert sorted(zip(result.facts["wait_time_type"], result.facts["source_file"],
                      strict=True)) == [("ACTUAL", "p/AK25.csv"), ("POSTED", "w.csv")]


# --------------------------------------------------------------------------- public files

def test_public_per_attraction_files(tmp_path: Path) -> None:
    ak = "\n".join([
        PUBLIC_HEADER,
        "07/04/2024,2024-07-04 05:59:00,30,",
        "07/04/2024,2024-07-04 06:00:00,,18",
        "07/04/2024,2024-07-04 12:00:00,-999,",
        "07/04/2024,2024-07-04 12:05:00,,-999",   # -999 means closed only as a posted value
        "07/04/2024,2024-07-04 12:10:00,,",
    ]) + "\n"
    ush = PUBLIC_HEADER + "\n07/04/2024,2024-07-04 12:00:00,20,\n"
    result = _parse(tmp_path, [("public/ak25.csv", ak, RawFormat.PUBLIC_ATTRACTION),
                               ("public/USH7.csv", ush, RawFormat.PUBLIC_ATTRACTION)])
    assert _facts(result) == sorted([
        ("AK25", "AK", "2024-07-03", "2024-07-04T09:59:00+00:00", "POSTED", 30),
        ("AK25", "AK", "2024-07-04", "2024-07-04T10:00:00+00:00", "ACTUAL", 18),
        ("AK25", "AK", "2024-07-04", "2024-07-04T16:00:00+00:00", "CLOSED", None),
        ("USH7", "USH", "2024-07-04", "2024-07-04T19:00:00+00:00", "POSTED", 20),
    ])
    assert _rejected(result) == [("public/ak25.csv", 5, "value_out_of_range"),
                                 ("public/ak25.csv", 6, "missing_value")]


def test_public_file_named_like_no_entity_rejects_its_rows(tmp_path: Path) -> None:
    text = PUBLIC_HEADER + "\n07/04/2024,2024-07-04 12:00:00,20,\n"
    result = _parse(tmp_path, [("public/notes.csv", text, RawFormat.PUBLIC_ATTRACTION)])
    assert _rejected(result) == [("public/notes.csv", 2, "bad_entity_code")]
    assert result.facts.empty


# --------------------------------------------------------------------------- fastpass

def test_fastpass_new_packing_rollover_sold_out_and_collapse(tmp_path: Path) -> None:
    lines = [
        "fyear,FMonth,fday,FATTID,FHOUR,FMIN,FWINHR,FWINMIN,FOTHER",  # any order, any case
        "2024,1,15,MK101,23,50,0,10,x",        # return after midnight: +1 day -> 20 min
        "2024,1,15,MK102,1030,0,1145,0,x",     # packed HHMM
        "2024,1,15,MK103,103000,0,113000,0,x",  # packed HHMMSS
        "2024,1,15,MK104,10,30,9000,0,x",      # FWINHR >= 8000: sold out
        "2024,1,15,MK105,10,30,10,16,x",       # 14 min before: kept as -14
        "2024,1,15,MK105,11,0,10,44,x",        # 16 min before: next day -> 1424
        "2024,1,15,MK106,10,0,11,0,x",         # superseded by the next line (same instant)
        "2024,1,15,MK106,10,0,11,30,x",
        "2024,1,15,MK107,9,75,10,0,x",         # FMIN clipped to 59
        "2024,1,15,DL01,10,0,11,0,x",          # Los Angeles
        "2024,2,30,MK108,10,0,11,0,x",         # impossible date
        "2024,1,15,MK109,10,0,,0,x",           # no return hour
        "2024,1,15,MK110,10,0,888888,0,x",     # beyond any HHMMSS time: sold out
    ]
    key = "export/fastpass_times/wdw/fp_2024.csv"
    result = _parse(tmp_path, [(key, "\n".join(lines) + "\n", RawFormat.FASTPASS_NEW)])
    p = "PRIORITY"
    assert _facts(result) == sorted([
        ("MK101", "MK", "2024-01-15", "2024-01-16T04:50:00+00:00", p, 20),
        ("MK102", "MK", "2024-01-15", "2024-01-15T15:30:00+00:00", p, 75),
        ("MK103", "MK", "2024-01-15", "2024-01-15T15:30:00+00:00", p, 60),
        ("MK104", "MK", "2024-01-15", "2024-01-15T15:30:00+00:00", p, 8888),
        ("MK105", "MK", "2024-01-15", "2024-01-15T15:30:00+00:00", p, -14),
        ("MK105", "MK", "2024-01-15", "2024-01-15T16:00:00+00:00", p, 1424),
        ("MK106", "MK", "2024-01-15", "2024-01-15T15:00:00+00:00", p, 90),
        ("MK107", "MK", "2024-01-15", "2024-01-15T14:59:00+00:00", p, 1),
        ("DL01", "DL", "2024-01-15", "2024-01-15T18:00:00+00:00", p, 60),
        ("MK110", "MK", "2024-01-15", "2024-01-15T15:00:00+00:00", p, 8888),
    ])
    assert _rejected(result) == [(key, 12, "unparseable_time"), (key, 13, "missing_value")]
    row = _file_row(result, key)
    assert (row["rows_read"], row["rows_ok"], row["rows_rejected"], row["rows_collapsed"]) == (
        13, 11, 2, 1)


def test_fastpass_old_positional_first_line_skipped(tmp_path: Path) -> None:
    extra = ",".join(["z"] * 17)  # old files carry 25 columns; only the first 8 are used
    lines = [
        "this first line is not a header,anything",
        f"MK101,15,1,2015,9,5,10,5,{extra}",
        "MK102,15,1,2015,9",                  # fewer than 8 fields
        f"MK103,15,7,2015,1400,0,8000,0,{extra}",
    ]
    key = "export/fastpass_times/wdw/mk_2015.csv"
    result = _parse(tmp_path, [(key, "\n".join(lines), RawFormat.FASTPASS_OLD)])
    assert _facts(result) == [
        ("MK101", "MK", "2015-01-15", "2015-01-15T14:05:00+00:00", "PRIORITY", 60),
        ("MK103", "MK", "2015-07-15", "2015-07-15T18:00:00+00:00", "PRIORITY", 8888),
    ]
    assert _rejected(result) == [(key, 3, "bad_row")]


# --------------------------------------------------------------------------- queue-times

def _ride(rid, is_open, wait, updated):
    return {"id": rid, "name": f"Ride {rid}", "is_open": is_open, "wait_time": wait,
            "last_updated": updated}


def test_queue_times_snapshot(tmp_path: Path) -> None:
    t = "2024-07-04T14:55:00.000Z"
    snap = {
        "lands": [
            {"id": 1, "name": "A", "rides": [_ride(1, True, 35, t), _ride(2, False, 0, t)]},
            {"id": 2, "name": "B", "rides": [_ride(1, True, None, t)]},
        ],
        "rides": [_ride(777, True, 10, t), _ride(1, True, 0, "2024-07-02T10:00:00Z"),
                  _ride(2, True, 20, None), _ride(4, True, 5, t), _ride(3, True, 2000, t)],
    }
    mapping = pd.DataFrame({"entity_code": ["MK101", "MK102", "USH01", "ZZ9"],
                            "park_code": ["MK", "MK", "USH", "MK"],
                            "queue_times_id": [1, 2, 3, 4],
                            "queue_times_name": ["a", "b", "c", "d"]})
    key = "queue_times/MK/2024-07-04/MK_20240704T150000Z.json"
    result = _parse(tmp_path, [(key, json.dumps(snap), RawFormat.QUEUE_TIMES_SNAPSHOT)], mapping)
    assert _facts(result) == sorted([
        ("MK101", "MK", "2024-07-04", "2024-07-04T14:55:00+00:00", "POSTED", 35),
        ("MK102", "MK", "2024-07-04", "2024-07-04T14:55:00+00:00", "CLOSED", None),
        ("MK101", "MK", "2024-07-02", "2024-07-02T10:00:00+00:00", "POSTED", 0),
    ])
    assert _rejected(result) == [
        (key, 3, "missing_value"), (key, 4, "unmapped_ride"), (key, 6, "missing_value"),
        (key, 7, "unknown_park"), (key, 8, "value_out_of_range")]
    raw = result.rejected.set_index("line")["raw"]
    assert json.loads(raw[4]) == _ride(777, True, 10, t)
    row = _file_row(result, key)
    assert (row["rows_read"], row["rows_ok"], row["rows_rejected"], row["stale_rows"]) == (
        8, 3, 5, 1)


def test_queue_times_without_mapping_rejects_every_ride(tmp_path: Path) -> None:
    snap = {"rides": [_ride(1, True, 5, "2024-07-04T14:55:00Z")]}
    result = _parse(tmp_path, [("q.json", json.dumps(snap), RawFormat.QUEUE_TIMES_SNAPSHOT)])
    assert _rejected(result) == [("q.json", 1, "unmapped_ride")]
    assert result.files.loc[0, "stale_rows"] == 0


def test_read_qt_mapping(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("\ufeffEntity_Code,park_code,queue_times_id,queue_times_name,touringplans_name\n"
                 "mk101,mk,1,Space,x\nEP09,EP,12.0,Soarin,y\nMK1,MK,x,Bad id,z\n", "utf-8")
    b = tmp_path / "b.csv"
    b.write_text("entity_code,park_code,queue_times_id,queue_times_name\nMK102,MK,1,Other\n")
    m = read_qt_mapping([a, b])
    assert m.to_dict("records") == [
        {"entity_code": "EP09", "park_code": "EP", "queue_times_id": 12,
         "queue_times_name": "Soarin"},
        {"entity_code": "MK102", "park_code": "MK", "queue_times_id": 1,
         "queue_times_name": "Other"},
    ]
    assert m["queue_times_id"].dtype == np.int64
    bad = tmp_path / "bad.csv"
    bad.write_text("entity_code,queue_times_id\nMK1,1\n")
    with pytest.raises(ValueError, match="park_code"):
        read_qt_mapping([bad])


# --------------------------------------------------------------------------- unreadable files

def test_unreadable_files_are_reported_and_others_parsed(tmp_path: Path) -> None:
    good = STANDBY_HEADER + "\nMK101,2024-07-04 10:00:00,30,,1\n"
    result = _parse(tmp_path, [
        ("bin.csv", b"\x00\x01\x02garbage\xff\n", RawFormat.STANDBY),
        ("empty.csv", b"", RawFormat.STANDBY),
        ("cols.csv", "entity_code,observed_at\nMK101,2024-07-04 10:00:00\n", RawFormat.STANDBY),
        ("good.csv", good, RawFormat.STANDBY),
        ("header_only.csv", STANDBY_HEADER + "\n", RawFormat.STANDBY),
        ("bad.json", '{"lands": [', RawFormat.QUEUE_TIMES_SNAPSHOT),
        ("list.json", "[1, 2]", RawFormat.QUEUE_TIMES_SNAPSHOT),
        ("fp_2015.csv", b"\x00\x00", RawFormat.FASTPASS_OLD),
        ("entities.csv", "code,name\n", RawFormat.ENTITIES),
    ])
    files = result.files.set_index("source_file")
    errors = files["error"].to_dict()
    assert errors["bin.csv"].startswith("binary")
    assert errors["empty.csv"] == "empty file"
    assert "submitted_posted_time" in errors["cols.csv"]
    assert errors["good.csv"] is None and errors["header_only.csv"] is None
    assert errors["bad.json"].startswith("malformed JSON")
    assert errors["list.json"].startswith("not a queue-times snapshot")
    assert errors["fp_2015.csv"].startswith("binary")
    assert errors["entities.csv"].startswith("not a wait-time format")
    failed = [k for k, e in errors.items() if e]
    assert (files.loc[failed, ["rows_read", "rows_ok", "rows_rejected"]] == 0).all().all()
    assert result.facts["source_file"].tolist() == ["good.csv"]
    assert result.rejected.empty


# --------------------------------------------------------------------------- speed

@pytest.mark.timing
def test_parse_is_vectorized(tmp_path: Path) -> None:
    """200 k rows in a few seconds at most: a per-row Python loop would take far longer."""
    n = 200_000
    rng = np.random.default_rng(1)
    stamps = (np.datetime64("2024-01-01T08:00:00") + rng.integers(0, 300 * 86400, n)
              .astype("timedelta64[s]")).astype(str)
    codes = np.array(["MK101", "DL01", "TDS36", "USH02"])[rng.integers(0, 4, n)]
    body = pd.DataFrame({"e": codes, "t": np.char.replace(stamps, "T", " "),
                         "p": rng.integers(0, 100, n), "a": "", "u": 1})
    path = tmp_path / "big.csv"
    path.write_text(STANDBY_HEADER + "\n" + body.to_csv(index=False, header=False))
    start = time.perf_counter()
    result = parse_wait_files([("big.csv", path, RawFormat.STANDBY)])
    elapsed = time.perf_counter() - start
    assert result.files.loc[0, "rows_read"] == n and result.rejected.empty
    assert elapsed < 8, f"{n / elapsed:.0f} rows/s"
