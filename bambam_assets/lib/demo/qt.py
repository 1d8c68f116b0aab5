"""Demo data: queue-times.com snapshots (one JSON per park per fetch) and the entity mapping."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bambam_assets.lib.core.parks import PARKS, QUEUE_TIMES_PARK_ID
from bambam_assets.lib.demo.entities import DemoEntity
from bambam_assets.lib.demo.obs import StandbyModel

MAPPING_HEADER = ("entity_code", "park_code", "queue_times_id", "queue_times_name")
FETCH_EVERY = 30  # minutes between fetches


@dataclass
class ParkFetches:
    """Fetch moments of one park over the snapshot days, and each mapped ride's reading."""

    park: str
    day: np.ndarray  # index into the park calendar
    tm: np.ndarray  # minute of the park day
    utc: np.ndarray  # datetime64[s] UTC of each fetch
    park_date: np.ndarray  # `YYYY-MM-DD` park date of each fetch
    # code -> (entity, listed, is_open, wait_time, seconds since its last update)
    rides: dict[str, tuple[DemoEntity, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = \
        field(default_factory=dict)


def park_fetches(park: str, d: pd.DataFrame, first_day: int) -> ParkFetches:
    """Every 30 minutes (on :00 / :30) from EMH opening until closing, days from `first_day`."""
    days = np.arange(first_day, len(d))
    days = days[~d["blank"].to_numpy()[days]]
    lo = -(-d["open_emh"].to_numpy()[days] // FETCH_EVERY) * FETCH_EVERY
    hi = d["close_emh"].to_numpy()[days]
    k = int((hi - lo).max()) // FETCH_EVERY + 1 if len(days) else 0
    t = lo[:, None] + FETCH_EVERY * np.arange(k)[None, :]
    i, j = np.nonzero(t < hi[:, None])
    day, tm = days[i], t[i, j]
    local = (d["date"].to_numpy().astype("datetime64[m]")[day] + tm.astype("timedelta64[m]"))
    utc = (local - d["offset"].to_numpy()[day].astype("timedelta64[m]")).astype("datetime64[s]")
    park_date = np.datetime_as_string(d["date"].to_numpy().astype("datetime64[D]")[day])
    return ParkFetches(park, day, tm, utc, park_date)


def add_ride(f: ParkFetches, ent: DemoEntity, model: StandbyModel, active: np.ndarray,
             rng: np.random.Generator) -> None:
    """Readings of a STANDBY entity at each fetch: the posted pattern of its model, read a few
    minutes before the fetch; closed while it is down; absent on days it does not exist."""
    lag = rng.integers(5, 290, len(f.tm))  # seconds since the ride's last update
    tm = f.tm - (lag + 59) // 60
    down = model.down(f.day, tm)
    wait = np.where(down, 0, model.posted(f.day, tm, rng))
    f.rides[ent.code] = (ent, active[f.day], ~down, wait, lag)


def write_snapshots(root: Path, f: ParkFetches, seed: int) -> tuple[int, int]:
    """`queue_times/{PARK}/{date}/{PARK}_{UTC}.json` per fetch; one or two extra rides that are
    not in the mapping. Returns (files, ride readings)."""
    rng = np.random.default_rng([seed, PARKS.index(f.park), 0, 5])
    qt_park = QUEUE_TIMES_PARK_ID[f.park]
    extra = [(qt_park * 10000 + 9000 + i, f"Meet Characters at Spot {i + 1}")
             for i in range(int(rng.integers(1, 3)))]
    extra_wait = 5 * rng.integers(0, 9, (len(extra), len(f.tm)))
    # Stable land ids: the position of the land name among all of the park's lands.
    land_names = sorted({ent.land for ent, *_ in f.rides.values()} | {"Character Experiences"})
    land_id = {name: qt_park * 100 + i for i, name in enumerate(land_names)}
    n_files = n_rides = 0
    for k in range(len(f.tm)):  # one file per fetch
        lands: dict[str, list[dict]] = {}
        for ent, listed, is_open, wait, lag in f.rides.values():
            if not listed[k]:  # not opened yet, or extinct
                continue
            updated = f.utc[k] - np.timedelta64(int(lag[k]), "s")
            lands.setdefault(ent.land, []).append({
                "id": ent.qt_id, "name": ent.name, "is_open": bool(is_open[k]),
                "wait_time": int(wait[k]) if is_open[k] else 0,
                "last_updated": f"{np.datetime_as_string(updated, unit='s')}.000Z"})
        for e, (rid, name) in enumerate(extra):
            lands.setdefault("Character Experiences", []).append({
                "id": rid, "name": name, "is_open": True, "wait_time": int(extra_wait[e, k]),
                "last_updated": f"{np.datetime_as_string(f.utc[k], unit='s')}.000Z"})
        body = {"lands": [{"id": land_id[land], "name": land, "rides": rides}
                          for land, rides in lands.items()], "rides": []}
        stamp = np.datetime_as_string(f.utc[k], unit="s").replace("-", "").replace(":", "")
        path = root / "queue_times" / f.park / str(f.park_date[k]) / f"{f.park}_{stamp}Z.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body))
        n_files += 1
        n_rides += sum(len(r) for r in lands.values())
    return n_files, n_rides


def write_mapping(root: Path, entities: Sequence[DemoEntity]) -> Path:
    """`queue_times/entity_mapping.csv`: every STANDBY entity of a park queue-times covers."""
    path = root / "queue_times" / "entity_mapping.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(MAPPING_HEADER)
        for e in entities:
            if e.qt_id is not None and not e.priority:
                w.writerow([e.code, e.park, e.qt_id, e.name])
    return path
