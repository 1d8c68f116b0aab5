"""Demo data: raw lines of the observation formats, deliberate bad rows, and streaming writes.

A chunk is a list of column arrays (object dtype, already formatted strings); lines are built
column-wise with numpy, never row by row.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bambam_assets.lib.demo.calendar import offset_strings
from bambam_assets.lib.demo.obs import KIND_ACTUAL, FastpassObs, Obs

STANDBY_HEADER = "entity_code,observed_at,submitted_posted_time,submitted_actual_time,user_id"
PUBLIC_HEADER = "date,datetime,SPOSTMIN,SACTMIN"
FASTPASS_HEADER = "FATTID,FDAY,FMONTH,FYEAR,FHOUR,FMIN,FWINHR,FWINMIN"
OLD_FASTPASS_FIRST_LINE = "attid,d,m,y,h,mi,wh,wm,booth,src"
BAD_RATE = 0.002  # deliberately bad raw rows (incl. duplicates) per good row
BAD_KINDS = ("unparseable_time", "negative_value", "absurd_value", "unknown_entity",
             "duplicate_row")
BAD_TIMES = np.array(["not a time", "2024-13-45 99:00", "2023-02-30 10:00:00"], dtype=object)

Maker = Callable[[list[np.ndarray], np.random.Generator], list[np.ndarray]]


def s(a: np.ndarray) -> np.ndarray:
    """Integers as strings (object array)."""
    return a.astype(str).astype(object)


def join(cols: list[np.ndarray]) -> np.ndarray:
    """CSV lines of a chunk (the values never contain commas or quotes)."""
    out = cols[0].astype(object)
    for c in cols[1:]:
        out = out + "," + c
    return out


def wall_times(base: np.datetime64, day: np.ndarray, tm: np.ndarray, iso_offset: np.ndarray |
               None = None) -> np.ndarray:
    """`YYYY-MM-DD HH:MM:SS` local wall clock, or ISO `YYYY-MM-DDTHH:MM:SS±HH:MM` when the UTC
    offset (minutes, per row) is given."""
    m = (base + day).astype("datetime64[m]") + tm.astype("timedelta64[m]")
    txt = np.datetime_as_string(m, unit="s")
    if iso_offset is not None:
        return txt.astype(object) + offset_strings(iso_offset)
    if not len(txt):
        return txt.astype(object)
    chars = txt.view(np.uint32).reshape(len(txt), -1)
    chars[:, 10] = ord(" ")  # the 'T' between date and time
    return txt.astype(object)


def standby_is_iso(prop: str, year: int, month: int) -> bool:
    """Every 10th monthly standby file (by month number) carries ISO times with offsets."""
    return (year * 12 + month + zlib.crc32(prop.encode())) % 10 == 0


def standby_cols(code: str, obs: Obs, times: np.ndarray,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """Columns of the export standby format: one raw row holds either posted or actual."""
    n = len(obs.value)
    return [np.full(n, code, dtype=object), times, *_value_pair(obs),
            s(rng.integers(1, 2_000_000, n))]


def public_cols(base: np.datetime64, obs: Obs) -> list[np.ndarray]:
    """Columns of the public per-attraction format (`date` is the row's calendar date)."""
    cal = (base + obs.day + obs.tm // 1440).astype("datetime64[D]")
    return [mdy(cal), wall_times(base, obs.day, obs.tm)] + _value_pair(obs)


def mdy(cal: np.ndarray) -> np.ndarray:
    """`MM/DD/YYYY` of datetime64[D] dates, by rearranging the characters of `YYYY-MM-DD`."""
    ymd = np.ascontiguousarray(np.datetime_as_string(cal), dtype="U10")
    c = ymd.view("U1").reshape(len(ymd), 10)
    out = np.empty_like(c)
    out[:, 0:2], out[:, 3:5], out[:, 6:10] = c[:, 5:7], c[:, 8:10], c[:, 0:4]
    out[:, 2] = out[:, 5] = "/"
    return out.view("U10").ravel().astype(object)


def _value_pair(obs: Obs) -> list[np.ndarray]:
    """(posted, actual) columns: one raw row holds one of them, the other is empty."""
    val = s(obs.value)
    actual = obs.kind == KIND_ACTUAL
    return [np.where(actual, "", val), np.where(actual, val, "")]


def fastpass_cols(code: str, base: np.datetime64, fo: FastpassObs, rng: np.random.Generator,
                  old: bool) -> list[np.ndarray]:
    """Columns of the fastpass formats. The new format packs some FHOUR as HHMM or HHMMSS and
    some FWINHR as HHMM (FMIN / FWINMIN then empty); the old one adds two trailing columns."""
    n = len(fo.tm)
    cal = (base + fo.day + fo.tm // 1440).astype("datetime64[D]")
    month = cal.astype("datetime64[M]")
    year = month.astype("datetime64[Y]").astype(np.int64) + 1970
    mon = month.astype(np.int64) % 12 + 1
    dom = (cal - month.astype("datetime64[D]")).astype(np.int64) + 1
    obs = fo.tm % 1440
    fh, fm = obs // 60, obs % 60
    ret = fo.ret - 1440 * (fo.tm // 1440)  # return minute relative to the observation's date
    wh, wm = (ret // 60) % 24, ret % 60
    wh = np.where(fo.sold_out, 8000 + rng.integers(0, 1000, n), wh)
    wm = np.where(fo.sold_out, 0, wm)
    cols = [np.full(n, code, dtype=object), s(dom), s(mon), s(year)]
    if old:
        return cols + [s(fh), s(fm), s(wh), s(wm), s(rng.integers(1, 40, n)),
                       np.full(n, "FP", dtype=object)]
    mode = rng.choice(3, n, p=[0.75, 0.2, 0.05])  # plain, HHMM, HHMMSS
    scale = np.array([1, 100, 10000])[mode]
    pack_o = (mode > 0) & (fh >= 1)  # 00:MM packed would read as an hour: keep those plain
    pack_r = (mode > 0) & (wh >= 1) & ~fo.sold_out
    fhour = np.where(pack_o, fh * scale + fm * scale // 100, fh)
    # A return is packed HHMM only: an HHMMSS value (>= 10000) would read as sold out (>= 8000).
    fwin = np.where(pack_r, wh * 100 + wm, wh)
    return cols + [s(fhour), np.where(pack_o, "", s(fm)), s(fwin), np.where(pack_r, "", s(wm))]


def with_bad_rows(cols: list[np.ndarray], makers: dict[str, Maker],
                  rng: np.random.Generator) -> tuple[np.ndarray, Counter]:
    """Lines of a chunk plus ~BAD_RATE deliberately bad lines (each with exactly one defect,
    all distinct) and exact duplicates of good lines; returns (lines, count per kind)."""
    lines = join(cols)
    n = len(lines)
    kinds = [*makers, "duplicate_row"]
    total = min(int(rng.binomial(n, BAD_RATE)), n)
    if total == 0:
        return lines, Counter()
    per_kind = rng.multinomial(total, np.full(len(kinds), 1 / len(kinds)))
    src = rng.choice(n, total, replace=False)
    bounds = np.concatenate([[0], np.cumsum(per_kind)])
    bad, bad_kind = [], []
    for k, kind in enumerate(kinds[:-1]):
        idx = src[bounds[k]:bounds[k + 1]]
        if len(idx):
            bad.append(join(makers[kind]([c[idx] for c in cols], rng)))
            bad_kind += [kind] * len(idx)
    dup_src = src[bounds[-2]:]
    counts = Counter({"duplicate_row": len(dup_src)} if len(dup_src) else {})
    new, pos = lines[dup_src], dup_src + 1
    if bad:
        bad_lines = np.concatenate(bad)
        _, first = np.unique(bad_lines.astype(str), return_index=True)
        first.sort()
        counts.update(np.array(bad_kind)[first].tolist())
        new = np.concatenate([new, bad_lines[first]])
        pos = np.concatenate([pos, rng.integers(0, n + 1, len(first))])
    return np.insert(lines, pos, new), counts


def _replace(col: int, values: Callable[[int, np.random.Generator], np.ndarray]) -> Maker:
    def make(c: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        c = list(c)
        c[col] = values(len(c[0]), rng)
        return c
    return make


def _value_maker(cols: tuple[int, int], values: Callable[[int, np.random.Generator],
                 np.ndarray]) -> Maker:
    """Replace the filled one of two value columns (posted / actual)."""
    def make(c: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        c = list(c)
        v = s(values(len(c[0]), rng))
        first_filled = c[cols[0]] != ""
        c[cols[0]] = np.where(first_filled, v, "")
        c[cols[1]] = np.where(first_filled, "", v)
        return c
    return make


def _negative(n: int, rng: np.random.Generator) -> np.ndarray:
    return -rng.integers(1, 60, n)  # never -999, the CLOSED sentinel


def _absurd(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(np.array([1500, 5000, 9999]), n)


def _bad_time(n: int, rng: np.random.Generator) -> np.ndarray:
    return BAD_TIMES[rng.integers(0, len(BAD_TIMES), n)]


def standby_makers(park: str, ordinal: int) -> dict[str, Maker]:
    bad_codes = np.array([f"ZZ{ordinal}", f"{park}-{ordinal}"], dtype=object)
    return {
        "unparseable_time": _replace(1, _bad_time),
        "negative_value": _value_maker((2, 3), _negative),
        "absurd_value": _value_maker((2, 3), _absurd),
        "unknown_entity": _replace(0, lambda n, r: bad_codes[r.integers(0, 2, n)]),
    }


def public_makers() -> dict[str, Maker]:
    return {
        "unparseable_time": _replace(1, _bad_time),
        "negative_value": _value_maker((2, 3), _negative),
        "absurd_value": _value_maker((2, 3), _absurd),
    }


def fastpass_makers(park: str, ordinal: int) -> dict[str, Maker]:
    bad_codes = np.array([f"ZZ{ordinal}", f"{park}-{ordinal}"], dtype=object)
    return {
        # FMONTH 13: the observation date cannot be built.
        "unparseable_time": _replace(2, lambda n, r: np.full(n, "13", dtype=object)),
        "unknown_entity": _replace(0, lambda n, r: bad_codes[r.integers(0, 2, n)]),
    }


class Sink:
    """Appends chunks of lines to files; the first write of a run truncates the file, so a run
    into an existing folder still yields byte-identical files."""

    def __init__(self) -> None:
        self.files: dict[Path, str] = {}  # path -> format

    def append(self, path: Path, fmt: str, header: str, lines: np.ndarray) -> None:
        if not len(lines):
            return
        first = path not in self.files
        if first:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.files[path] = fmt
        with path.open("w" if first else "a", newline="") as fh:
            if first:
                fh.write(header + "\n")
            fh.write("\n".join(lines.tolist()) + "\n")

    def count(self) -> Counter:
        return Counter(self.files.values())
