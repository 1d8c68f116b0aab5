"""Tests of the demo raw-data generator: formats, determinism, realism and injected bad rows."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from bambam_assets.lib.demo.generate import generate
from bambam_assets.lib.demo.write import standby_is_iso

PARKS = ["MK", "TDS"]
START, END = date(2018, 12, 20), date(2019, 3, 12)  # old fastpass (2018-12..2019-02) and new
ARGS = dict(parks=PARKS, entities_per_park=3, start=START, end=END, seed=7, qt_days=2)

STANDBY_HEADER = "entity_code,observed_at,submitted_posted_time,submitted_actual_time,user_id"
FASTPASS_HEADER = "FATTID,FDAY,FMONTH,FYEAR,FHOUR,FMIN,FWINHR,FWINMIN"
PUBLIC_HEADER = "date,datetime,SPOSTMIN,SACTMIN"
ENTITY_HEADER = ("code,name,short_name,land,fastpass_booth,single_rider,open_emh_morning,"
                 "open_emh_evening,open_very_merry,open_not_so_scary,seasonal,has_posted,intense,"
                 "height_restriction,duration,opened_on,extinct_on")
PARK_HOURS_HEADER = ("date,park,opening_time,closing_time,opening_time_with_emh,"
                     "closing_time_with_emh_or_party,emh_morning,emh_evening")
EVENT_DAYS_HEADER = ("date,park_abbreviation,event_abbreviation,event_opening_time,"
                     "event_closing_time")
EVENTS_HEADER = "property_abbrev,event_abbreviation,event_code,event_name,event_hard_ticket"
MAPPING_HEADER = "entity_code,park_code,queue_times_id,queue_times_name"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list]:
    root = tmp_path_factory.mktemp("raw")
    calls: list[tuple[int, int]] = []
    summary = generate(root, progress=lambda d, t: calls.append((d, t)), **ARGS)
    return root, summary, calls


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _entities(root: Path) -> dict[str, dict[str, str]]:
    return {r["code"]: r for p in (root / "export/entities").glob("*.csv") for r in _rows(p)}


def _time(txt: str) -> datetime | None:
    for parse in (lambda t: datetime.strptime(t, "%Y-%m-%d %H:%M:%S"), datetime.fromisoformat):
        try:
            return parse(txt)
        except ValueError:
            pass
    return None


def _park_date(t: datetime) -> date:
    return (t - timedelta(hours=6)).date()


def _classify_value(v: str) -> str | None:
    n = int(v)
    if n < 0 and n != -999:
        return "negative_value"
    return "absurd_value" if n > 1000 else None


def _standby_good_and_bad(root: Path) -> tuple[list[tuple], Counter]:
    """Good standby rows (entity, time, posted, actual, file), each once, and bad-row counts,
    found by parsing the files."""
    codes, good, bad = set(_entities(root)), [], Counter()
    for path in sorted((root / "export/wait_times").rglob("*.csv")):
        seen: set[str] = set()
        for line in _lines(path)[1:]:
            if line in seen:
                bad["duplicate_row"] += 1
                continue
            seen.add(line)
            code, obs, posted, actual, _ = next(csv.reader([line]))
            t = _time(obs)
            kind = ("unparseable_time" if t is None else
                    _classify_value(posted or actual) or
                    ("unknown_entity" if code not in codes else None))
            if kind:
                bad[kind] += 1
            else:
                good.append((code, t, posted, actual, path))
    return good, bad


def _public_good_and_bad(root: Path) -> tuple[list[tuple], Counter]:
    """Good public-file rows (entity, time, posted, actual), each once, and bad-row counts."""
    good, bad = [], Counter()
    for path in sorted((root / "public").glob("*.csv")):
        seen: set[str] = set()
        for line in _lines(path)[1:]:
            if line in seen:
                bad["duplicate_row"] += 1
                continue
            seen.add(line)
            _, txt, posted, actual = next(csv.reader([line]))
            t = _time(txt)
            kind = "unparseable_time" if t is None else _classify_value(posted or actual)
            if kind:
                bad[kind] += 1
            else:
                good.append((path.stem, t, posted, actual))
    return good, bad


def test_determinism_and_seed(demo, tmp_path: Path) -> None:
    root, summary, _ = demo
    again = generate(tmp_path / "a", **ARGS)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                           if p.is_file())
    assert all((root / f).read_bytes() == (tmp_path / "a" / f).read_bytes() for f in files)
    assert {k: v for k, v in again.items() if k != "root"} == \
        {k: v for k, v in summary.items() if k != "root"}
    other = generate(tmp_path / "b", **{**ARGS, "seed": 8})
    assert other["rows"] != summary["rows"]


def test_every_format_with_exact_headers(demo) -> None:
    root, summary, _ = demo
    exp = root / "export"
    standby = sorted((exp / "wait_times").rglob("*.csv"))
    assert standby and all(_lines(p)[0] == STANDBY_HEADER for p in standby)
    assert {p.parent.name for p in standby} == {"wdw", "tdr"}
    fp = {p.name: p for p in (exp / "fastpass_times").rglob("*.csv")}
    old = {n for n in fp if any(k in n for k in ("_2018", "_2019_01", "_2019_02"))}
    assert {"wdw_fastpass_times_2018_12.csv", "wdw_fastpass_times_2019_01.csv",
            "wdw_fastpass_times_2019_02.csv"} <= old
    assert "wdw_fastpass_times_2019_03.csv" in fp
    for name, p in fp.items():
        first, rows = _lines(p)[0], list(csv.reader(_lines(p)[1:]))
        if name in old:  # no header to recognise: a first line to skip, positional rows
            assert "FATTID" not in first.upper() and all(len(r) >= 10 for r in rows)
        else:
            assert first == FASTPASS_HEADER and all(len(r) == 8 for r in rows)
    assert summary["files"]["fastpass_old"] == len(old)
    assert summary["files"]["fastpass_new"] == len(fp) - len(old)
    assert sorted(p.name for p in (exp / "entities").iterdir()) == [
        "current_tdr_entities.csv", "current_wdw_entities.csv"]
    assert all(_lines(p)[0] == ENTITY_HEADER for p in (exp / "entities").iterdir())
    assert all(_lines(p)[0] == PARK_HOURS_HEADER for p in (exp / "park_hours").iterdir())
    assert _lines(exp / "events/current_event_days.csv")[0] == EVENT_DAYS_HEADER
    assert _lines(exp / "events/current_events.csv")[1:] == [
        "wdw,MNSSHP,WDW028,Mickey's Not-So-Scary Halloween Party,1",
        "wdw,MVMCP,WDW029,Mickey's Very Merry Christmas Party,1"]
    assert _lines(exp / "events/current_events.csv")[0] == EVENTS_HEADER
    meta = _lines(exp / "metatable/current_metatable.csv")
    assert meta[0].startswith("DATE,MKOPEN,MKCLOSE,MKEMHMORN,MKEMHEVE,MKFIREWK,TDSOPEN")
    assert meta[1].startswith("12/20/2018,") and meta[-1].startswith("03/12/2019,")
    assert len(meta) == 1 + (END - START).days + 1
    public = list((root / "public").glob("*.csv"))
    assert public and all(_lines(p)[0] == PUBLIC_HEADER for p in public)
    assert _lines(root / "queue_times/entity_mapping.csv")[0] == MAPPING_HEADER


def test_entities_and_windows(demo) -> None:
    root, summary, _ = demo
    ents = _entities(root)
    assert sorted(ents) == ["MK1", "MK2", "MK3", "TDS1", "TDS2", "TDS3"]
    priority = {c for c, r in ents.items() if r["fastpass_booth"] == "true"}
    assert len(priority) == 2 and summary["entities_by_type"] == {"STANDBY": 4, "PRIORITY": 2}
    assert {c[:2] for c in priority} == {"MK", "TD"}
    opened = {c: date.fromisoformat(r["opened_on"]) for c, r in ents.items() if r["opened_on"]}
    assert len(opened) == 1 and START < next(iter(opened.values())) < END
    good, _ = _standby_good_and_bad(root)
    public, _ = _public_good_and_bad(root)
    assert len({p[0] for p in public}) == 1 and {p[0] for p in public}.isdisjoint(
        {g[0] for g in good})
    assert {g[0] for g in good} | {p[0] for p in public} == set(ents) - priority
    for code, first in opened.items():
        mine = [_park_date(t) for c, t, *_ in good + public if c == code]
        assert mine and min(mine) >= first


def test_standby_realism(demo) -> None:
    root, summary, _ = demo
    good = _standby_good_and_bad(root)[0] + _public_good_and_bad(root)[0]
    posted = [int(g[2]) for g in good if g[2]]
    actual = [int(g[3]) for g in good if g[3]]
    open_posted = [v for v in posted if v != -999]
    assert summary["rows"]["POSTED"] == len(open_posted)
    assert summary["rows"]["CLOSED"] == len(posted) - len(open_posted) > 0
    assert summary["rows"]["ACTUAL"] == len(actual)
    assert 0.01 < len(actual) / len(good) < 0.06
    assert 0.003 < summary["rows"]["CLOSED"] / len(posted) < 0.04
    assert sum(open_posted) / len(open_posted) - sum(actual) / len(actual) > 3
    # Posted values are on the 5-minute grid of a sign; times fall in the park's hours.
    assert all(v % 5 == 0 and v >= 5 for v in open_posted)
    assert all(g[1].hour >= 6 or g[1].hour <= 1 for g in good)
    # Popularity spreads row counts: the busiest entity has clearly more rows than the quietest.
    per_entity = Counter(g[0] for g in good)
    assert max(per_entity.values()) > 1.3 * min(per_entity.values())


def test_standby_time_formats(demo) -> None:
    root, _, _ = demo
    good, _ = _standby_good_and_bad(root)
    by_file: dict[Path, list[datetime]] = {}
    for g in good:
        by_file.setdefault(g[4], []).append(g[1])
    iso_files = 0
    for path, times in by_file.items():
        prop, y, m = path.stem.split("_")[0], *map(int, path.stem.split("_")[-2:])
        if standby_is_iso(prop, y, m):
            iso_files += 1
            assert all(t.utcoffset() == timedelta(hours=9 if prop == "tdr" else -5)
                       for t in times)
        else:
            assert all(t.tzinfo is None for t in times)
    assert iso_files >= 1


def test_park_hours_offsets_and_late_closes(demo) -> None:
    root, _, _ = demo
    wdw = {(r["date"], r["park"]): r for r in _rows(root / "export/park_hours/wdw_park_hours.csv")}
    assert wdw[("2019-03-09", "MK")]["opening_time"].endswith("-05:00")
    assert wdw[("2019-03-10", "MK")]["opening_time"].endswith("-04:00")
    assert max(d for d, _ in wdw) == (END + timedelta(days=120)).isoformat()
    late = 0
    for (d, _), r in wdw.items():
        for col in ("closing_time", "closing_time_with_emh_or_party"):
            if r[col]:
                t = datetime.fromisoformat(r[col])
                next_day = t.hour < 6
                late += next_day
                assert t.date() == date.fromisoformat(d) + timedelta(days=next_day)
    assert late > 0
    tdr = _rows(root / "export/park_hours/tdr_park_hours.csv")
    assert {r["park"] for r in tdr} == {"TDS"}
    assert all(r["opening_time"].endswith("+09:00") for r in tdr if r["opening_time"])
    ev = _rows(root / "export/events/current_event_days.csv")
    assert ev and {r["event_abbreviation"] for r in ev} == {"MVMCP"}
    assert all(wdw[(r["date"], "MK")]["closing_time"][11:16] == "18:00" for r in ev)


def test_fastpass_values(demo) -> None:
    root, summary, _ = demo
    codes, n = set(_entities(root)), 0
    for p in (root / "export/fastpass_times").rglob("*.csv"):
        for r in csv.reader(_lines(p)[1:]):
            fattid, fday, fmon, fyear, fh, fm, wh, wm = r[:8]
            if fattid not in codes or fmon == "13":
                continue
            h, m = (int(fh) // 100, int(fh) % 100) if int(fh) >= 100 else (int(fh), int(fm))
            if int(fh) >= 10000:
                h, m = int(fh) // 10000, int(fh) // 100 % 100
            n += 1
            if int(wh) >= 8000:
                continue
            rh, rm = (int(wh) // 100, int(wh) % 100) if int(wh) >= 100 else (int(wh), int(wm))
            wait = (rh * 60 + rm) - (h * 60 + m)
            wait += 1440 if wait < -15 else 0
            assert 0 <= wait <= 720
    assert n == summary["rows"]["PRIORITY"] + summary["bad_rows_by_format"]["fastpass"].get(
        "duplicate_row", 0)


def test_bad_rows_match_summary(demo) -> None:
    root, summary, _ = demo
    _, standby = _standby_good_and_bad(root)
    assert dict(standby) == summary["bad_rows_by_format"]["standby"]
    _, public = _public_good_and_bad(root)
    assert +public == summary["bad_rows_by_format"]["public"]
    fast, codes = Counter(), set(_entities(root))
    for p in (root / "export/fastpass_times").rglob("*.csv"):
        lines = _lines(p)
        fast["duplicate_row"] += sum(c - 1 for c in Counter(lines[1:]).values())
        for r in csv.reader(lines[1:]):
            fast["unknown_entity"] += r[0] not in codes
            fast["unparseable_time"] += r[2] == "13"
    assert +fast == summary["bad_rows_by_format"]["fastpass"]
    total = sum(summary["bad_rows"].values())
    rows = sum(summary["rows_by_format"][k] for k in ("standby", "public", "fastpass"))
    assert 0.0005 < total / rows < 0.005
    assert all(summary["bad_rows"][k] > 0 for k in summary["bad_rows"])


def test_queue_times_snapshots(demo) -> None:
    root, summary, calls = demo
    mapping = _rows(root / "queue_times/entity_mapping.csv")
    ents = _entities(root)
    assert {r["entity_code"] for r in mapping} == {
        c for c, r in ents.items() if r["fastpass_booth"] == "false"}
    mapped = {int(r["queue_times_id"]) for r in mapping}
    snaps = sorted((root / "queue_times").rglob("*.json"))
    assert len(snaps) == summary["files"]["queue_times"]
    assert {p.parent.name for p in snaps} == {"2019-03-11", "2019-03-12"}
    unmapped, readings = set(), 0
    for p in snaps:
        body = json.loads(p.read_text())
        assert body["rides"] == [] and p.name.startswith(p.parts[-3] + "_2019031")
        for land in body["lands"]:
            for ride in land["rides"]:
                readings += 1
                assert set(ride) == {"id", "name", "is_open", "wait_time", "last_updated"}
                assert ride["last_updated"].endswith(".000Z")
                assert ride["is_open"] or ride["wait_time"] == 0
                if ride["id"] not in mapped:
                    unmapped.add(ride["id"])
    assert unmapped and readings == summary["rows_by_format"]["queue_times"]
    assert calls[-1] == (calls[-1][1], calls[-1][1]) and len(calls) == calls[-1][1]


def test_rejects_unknown_park(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, ["XX"], 2, START, END)
