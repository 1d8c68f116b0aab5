"""One realistic new day of raw data for the daily benchmark: history up to D-1, then day D lands.

`split_history(full, raw, day)` takes a workload generated over [start, D] (`full`) and writes
into `raw` the same raw source as it stood at the end of day D-1: every observation line whose
local calendar date is D or later is left out (standby export lines by `observed_at`, public
per-attraction lines by `datetime`, fastpass lines by FYEAR/FMONTH/FDAY). Everything else (entity
lists, park hours, events, metatable: published ahead of time) is identical, hard-linked. A file
whose every line is new (e.g. the next month's file holding only the after-midnight rows of park
day D) does not exist yet in the history.

Why one generation cut in two rather than two generations ([start, D-1] and [start, D]): the
generator draws each entity's random stream over its whole date range, so two generations
differ on EVERY past day, not only on D; cutting one generation gives a history that is an exact
prefix of the full source, as a real daily export is.

`land(full, raw, changed)` then copies the changed files over (new mtime and size, as a new day's
export overwrites its files): afterwards `raw` equals `full`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

_DATE = r"^\d{4}-\d{2}-\d{2}$"


@dataclass
class NewDay:
    day: date
    changed: list[str] = field(default_factory=list)  # relative paths that differ on day D
    new_files: list[str] = field(default_factory=list)  # of which: absent from the history
    new_rows: dict[str, int] = field(default_factory=dict)  # entity code -> raw lines dated >= D
    history_files: int = 0


def _kind(rel: Path) -> str | None:
    """Which observation format a file is (by its place in the layout), None for other files."""
    parts = rel.parts
    if parts[:2] == ("export", "wait_times"):
        return "standby"
    if parts[:2] == ("export", "fastpass_times"):
        return "fastpass"
    if parts[:1] == ("public",):
        return "public"
    return None


def _line_dates(body: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """(local calendar date 'YYYY-MM-DD' or '', entity code) of each raw line, vectorized."""
    if kind == "fastpass":
        cols = body.str.split(",", n=4, expand=True).reindex(columns=range(5)).fillna("")
        day = (cols[3].str.strip() + "-" + cols[2].str.strip().str.zfill(2) + "-"
               + cols[1].str.strip().str.zfill(2))
        return day, cols[0].str.strip().str.upper()
    # standby: entity_code,observed_at,...; public: date,datetime,... (the wall clock is field 1)
    cols = body.str.split(",", n=2, expand=True).reindex(columns=range(3)).fillna("")
    return cols[1].str.strip().str[:10], cols[0].str.strip().str.upper()


def _new_lines(src: Path, kind: str, cutoff: str
               ) -> tuple[list[str], pd.Series, pd.Series, pd.Series]:
    """(header, body lines, mask of lines dated `cutoff` or later, entity code of each line)."""
    lines = src.read_text().splitlines()
    header, body = lines[:1], pd.Series(lines[1:], dtype="object")
    dates, codes = _line_dates(body, kind)
    # unparseable or impossible dates (deliberately bad rows such as month 13) stay in the
    # history: they are old junk. Compared as dates, not strings: "2025-13-16" >= "2025-12-31"
    # as text, which used to mark 51 untouched monthly files as changed on day D.
    parsed = pd.to_datetime(dates.where(dates.str.match(_DATE)), format="%Y-%m-%d",
                            errors="coerce")
    new = parsed.notna() & (parsed >= pd.Timestamp(cutoff))
    if kind == "public":  # the entity is the file name
        codes = pd.Series(src.stem.upper(), index=body.index)
    return header, body, new, codes


def _count(codes: pd.Series, counts: dict[str, int]) -> None:
    for code, n in codes.value_counts().items():  # a loop over entities of one file
        counts[code] = counts.get(code, 0) + int(n)


def new_rows(full: Path, changed: list[str], day: date) -> dict[str, int]:
    """Entity code -> raw lines dated `day` or later, read from the changed files only: the
    `new_rows` of `split_history`, for a split made earlier (e.g. by bench.full_bench)."""
    counts: dict[str, int] = {}
    for rel in changed:  # a loop over files
        kind = _kind(Path(rel))
        if kind is not None:
            _, _, new, codes = _new_lines(full / rel, kind, day.isoformat())
            _count(codes[new], counts)
    return dict(sorted(counts.items()))


def split_history(full: Path, raw: Path, day: date) -> NewDay:
    """Write the raw source as of the end of day-1 into `raw`; returns what day D changes."""
    out = NewDay(day=day)
    cutoff = day.isoformat()
    counts: dict[str, int] = {}
    for src in sorted(p for p in full.rglob("*") if p.is_file()):  # a loop over files
        rel = src.relative_to(full)
        dst = raw / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        kind = _kind(rel)
        if kind is None:
            _link_or_copy(src, dst)
            out.history_files += 1
            continue
        header, body, new, codes = _new_lines(src, kind, cutoff)
        if not new.any():
            _link_or_copy(src, dst)
            out.history_files += 1
            continue
        out.changed.append(str(rel))
        _count(codes[new], counts)
        kept = body[~new]
        if kept.empty:
            out.new_files.append(str(rel))
            continue
        dst.write_text("\n".join(header + kept.tolist()) + "\n")
        out.history_files += 1
    out.new_rows = dict(sorted(counts.items()))
    return out


def land(full: Path, raw: Path, changed: list[str]) -> None:
    """Day D's export lands: the changed files of `full` overwrite (or join) those of `raw`."""
    for rel in changed:
        dst = raw / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            dst.unlink()  # never write through a hard link into the full generation
        shutil.copyfile(full / rel, dst)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
