"""Demo raw data: a deterministic, realistic raw source in every format Bambam reads.

`generate` writes, under `root`, the TouringPlans export (standby, fastpass old/new, entities,
park hours, events, metatable), public per-attraction files and queue-times snapshots, in the
layouts of docs/raw_formats.md. It works one entity at a time (numpy over all of that entity's
days) and appends to the monthly files, so memory stays at one entity's history whatever the
scale. Same inputs and seed give byte-identical files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bambam_assets.lib.core.parks import PARKS, QUEUE_TIMES_PARK_ID
from bambam_assets.lib.demo import write as dw
from bambam_assets.lib.demo.calendar import park_days
from bambam_assets.lib.demo.dims import write_events, write_metatable, write_park_hours
from bambam_assets.lib.demo.entities import DemoEntity, make_entities, write_entity_files
from bambam_assets.lib.demo.obs import (
    KIND_ACTUAL,
    KIND_CLOSED,
    KIND_POSTED,
    StandbyModel,
    fastpass_observations,
)
from bambam_assets.lib.demo.qt import add_ride, park_fetches, write_mapping, write_snapshots

HOURS_AHEAD_DAYS = 120  # official park hours are published this far past `end`
LAST_OLD_FASTPASS_MONTH = np.datetime64("2019-02")


def _month_slices(months: np.ndarray) -> list[tuple[np.datetime64, slice]]:
    """(month, slice) runs of a time-sorted datetime64[M] array."""
    if not len(months):
        return []
    cuts = np.flatnonzero(months[1:] != months[:-1]) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(months)]
    return [(months[a], slice(a, b)) for a, b in zip(starts, ends, strict=True)]


class _Run:
    """State of one generate() call: sink, counters, and the queue-times fetch plans."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root, self.seed = root, seed
        self.sink = dw.Sink()
        self.rows: Counter = Counter()
        self.rows_by_format: Counter = Counter()
        self.bad: dict[str, Counter] = {"standby": Counter(), "public": Counter(),
                                        "fastpass": Counter()}

    def standby(self, ent: DemoEntity, d: pd.DataFrame, rng: np.random.Generator,
                model: StandbyModel) -> None:
        obs = model.observations()
        base = d["date"].iloc[0].to_datetime64().astype("datetime64[D]")
        self.rows.update({"POSTED": int((obs.kind == KIND_POSTED).sum()),
                          "ACTUAL": int((obs.kind == KIND_ACTUAL).sum()),
                          "CLOSED": int((obs.kind == KIND_CLOSED).sum())})
        fmt = "public" if ent.public else "standby"
        self.rows_by_format[fmt] += len(obs.kind)
        months = (base + obs.day + obs.tm // 1440).astype("datetime64[M]")
        offset = d["offset"].to_numpy()
        makers = dw.public_makers() if ent.public else dw.standby_makers(ent.park, ent.ordinal)
        # Month by month, so memory holds one month of formatted lines, not the whole history.
        for month, sl in _month_slices(months):
            y, m = int(str(month)[:4]), int(str(month)[5:7])
            part = dw.Obs(obs.day[sl], obs.tm[sl], obs.kind[sl], obs.value[sl])
            if ent.public:
                cols = dw.public_cols(base, part)
                path, header = self.root / "public" / f"{ent.code}.csv", dw.PUBLIC_HEADER
            else:
                iso = offset[part.day] if dw.standby_is_iso(ent.prop, y, m) else None
                cols = dw.standby_cols(ent.code, part, dw.wall_times(base, part.day, part.tm, iso),
                                       rng)
                path = (self.root / "export" / "wait_times" / ent.prop
                        / f"{ent.prop}_wait_times_{y:04d}_{m:02d}.csv")
                header = dw.STANDBY_HEADER
            lines, bad = dw.with_bad_rows(cols, makers, rng)
            self.sink.append(path, fmt, header, lines)
            self.bad[fmt].update(bad)

    def fastpass(self, ent: DemoEntity, d: pd.DataFrame, rng: np.random.Generator) -> None:
        fo = fastpass_observations(ent, d, rng)
        base = d["date"].iloc[0].to_datetime64().astype("datetime64[D]")
        self.rows["PRIORITY"] += len(fo.tm)
        self.rows_by_format["fastpass"] += len(fo.tm)
        months = (base + fo.day + fo.tm // 1440).astype("datetime64[M]")
        makers = dw.fastpass_makers(ent.park, ent.ordinal)
        for month, sl in _month_slices(months):
            old = month <= LAST_OLD_FASTPASS_MONTH
            part = type(fo)(fo.day[sl], fo.tm[sl], fo.ret[sl], fo.sold_out[sl])
            lines, bad = dw.with_bad_rows(dw.fastpass_cols(ent.code, base, part, rng, old),
                                          makers, rng)
            y, m = str(month)[:4], str(month)[5:7]
            path = (self.root / "export" / "fastpass_times" / ent.prop
                    / f"{ent.prop}_fastpass_times_{y}_{m}.csv")
            header = dw.OLD_FASTPASS_FIRST_LINE if old else dw.FASTPASS_HEADER
            self.sink.append(path, "fastpass_old" if old else "fastpass_new", header, lines)
            self.bad["fastpass"].update(bad)


def generate(root: Path, parks: Sequence[str], entities_per_park: int, start: date, end: date,
             seed: int = 42, qt_days: int = 2,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Write demo raw files for `parks` (codes of parks.PARKS) with observations from `start`
    to `end` (park dates, inclusive) under `root`; return a summary.

    Summary keys: `entities` (count), `entities_by_type` (STANDBY / PRIORITY), `files` (files
    written per format), `rows` (good rows per wait type POSTED / ACTUAL / CLOSED / PRIORITY),
    `rows_by_format` (good rows per observation format, queue_times = ride readings),
    `bad_rows` (deliberately bad rows per kind, all formats) and `bad_rows_by_format`.
    `progress(done, total)` is called after each entity and each other file group.
    """
    root = Path(root)
    parks = [p.upper() for p in parks]
    unknown = [p for p in parks if p not in PARKS]
    if unknown or not parks:
        raise ValueError(f"unknown or no parks: {unknown or parks}; known: {PARKS}")
    if end < start or entities_per_park < 1:
        raise ValueError("need start <= end and entities_per_park >= 1")
    entities = make_entities(parks, entities_per_park, start, end, seed)
    cal = {p: park_days(p, start, end + timedelta(days=HOURS_AHEAD_DAYS), seed) for p in parks}
    n_obs_days = (end - start).days + 1
    obs_days = {p: d.iloc[:n_obs_days] for p, d in cal.items()}
    qt_first = max(0, n_obs_days - qt_days)
    fetches = {p: park_fetches(p, obs_days[p], qt_first)
               for p in parks if qt_days > 0 and p in QUEUE_TIMES_PARK_ID}

    total, done = len(entities) + 4 + len(fetches), 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    files: Counter = Counter()
    files["entities"] = len(write_entity_files(root, entities, seed))
    tick()
    files["park_hours"] = len(write_park_hours(root, cal))
    tick()
    files["events"] = len(write_events(root, cal))
    tick()
    write_metatable(root, cal, start, end)
    files["metatable"] = 1
    tick()

    run = _Run(root, seed)
    for ent in entities:
        d = obs_days[ent.park]
        rng = np.random.default_rng([seed, PARKS.index(ent.park), ent.ordinal, 10])
        if ent.priority:
            run.fastpass(ent, d, rng)
        else:
            model = StandbyModel(ent, d, rng)
            run.standby(ent, d, rng, model)
            if ent.park in fetches:
                qt_rng = np.random.default_rng([seed, PARKS.index(ent.park), ent.ordinal, 11])
                active = ent.active_days(d["date"].to_numpy().astype("datetime64[D]"))
                add_ride(fetches[ent.park], ent, model, active, qt_rng)
        tick()
    files.update(run.sink.count())

    if fetches:
        write_mapping(root, entities)
        files["queue_times_mapping"] = 1
    for f in fetches.values():
        n_files, n_rides = write_snapshots(root, f, seed)
        files["queue_times"] += n_files
        run.rows_by_format["queue_times"] += n_rides
        tick()

    bad_total: Counter = Counter()
    for c in run.bad.values():
        bad_total.update(c)
    n_priority = sum(e.priority for e in entities)
    return {
        "root": str(root),
        "parks": parks,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "seed": seed,
        "entities": len(entities),
        "entities_by_type": {"STANDBY": len(entities) - n_priority, "PRIORITY": n_priority},
        "files": dict(sorted(files.items())),
        "rows": {k: int(run.rows[k]) for k in ("POSTED", "ACTUAL", "CLOSED", "PRIORITY")},
        "rows_by_format": {k: int(v) for k, v in sorted(run.rows_by_format.items())},
        "bad_rows": {k: int(bad_total[k]) for k in dw.BAD_KINDS},
        "bad_rows_by_format": {fmt: {k: int(v) for k, v in sorted(c.items())}
                               for fmt, c in run.bad.items()},
    }
