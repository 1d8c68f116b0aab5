"""Demo data: the attractions (entities) of each park and the entity export files."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from bambam_assets.lib.core.parks import PARKS, PROPERTY_OF_PARK, QUEUE_TIMES_PARK_ID

ENTITY_HEADER = (
    "code", "name", "short_name", "land", "fastpass_booth", "single_rider", "open_emh_morning",
    "open_emh_evening", "open_very_merry", "open_not_so_scary", "seasonal", "has_posted",
    "intense", "height_restriction", "duration", "opened_on", "extinct_on",
)
_LANDS: dict[str, tuple[str, ...]] = {
    "MK": ("Main Street U.S.A.", "Adventureland", "Frontierland", "Liberty Square",
           "Fantasyland", "Tomorrowland"),
    "EP": ("World Celebration", "World Discovery", "World Nature", "World Showcase"),
    "HS": ("Hollywood Boulevard", "Sunset Boulevard", "Echo Lake", "Toy Story Land",
           "Star Wars: Galaxy's Edge"),
    "AK": ("Discovery Island", "Africa", "Asia", "Pandora", "DinoLand U.S.A."),
}
_ADJ = ("Haunted", "Flying", "Great", "Wild", "Space", "Enchanted", "Frozen", "Little",
        "Thunder", "Magic", "Jungle", "Royal", "Runaway", "Twilight", "Tiki", "Galactic")
_NOUN = ("Mountain", "Voyage", "Railroad", "Carousel", "Expedition", "Mansion", "Safari",
         "Coaster", "Cruise", "Adventure", "Tower", "Flight", "Spinner", "Theater", "Trek")


@dataclass(frozen=True)
class DemoEntity:
    """One attraction; `priority` entities have return-time (fastpass) data, others standby."""

    code: str
    park: str
    ordinal: int  # the n of `{PARK}{n}`
    priority: bool
    public: bool  # standby entity whose history goes to a TouringPlans public file
    popularity: float  # 0..1, the log10 position in two orders of magnitude of demand
    opened_on: date | None
    extinct_on: date | None
    name: str
    short_name: str
    land: str
    qt_id: int | None  # queue-times ride id (STANDBY entities of parks queue-times covers)

    @property
    def prop(self) -> str:
        return PROPERTY_OF_PARK[self.park]

    def active_days(self, dates: np.ndarray) -> np.ndarray:
        """Mask of park dates (datetime64[D]) in [opened_on, extinct_on)."""
        ok = np.ones(len(dates), dtype=bool)
        if self.opened_on:
            ok &= dates >= np.datetime64(self.opened_on)
        if self.extinct_on:
            ok &= dates < np.datetime64(self.extinct_on)
        return ok


def make_entities(parks: Sequence[str], per_park: int, start: date, end: date,
                  seed: int) -> list[DemoEntity]:
    """The entities of the requested parks, in park order then code order.

    About 1 in 5 is a PRIORITY entity (at least one per park of 2+ entities); every 4th STANDBY
    entity (over all parks) is a public-file entity; every 7th STANDBY entity opens after
    `start` and another every 7th closes before `end`.
    """
    out: list[DemoEntity] = []
    standby_seen = 0
    span = (end - start).days
    for park in parks:
        rng = np.random.default_rng([seed, PARKS.index(park), 0, 2])
        n_priority = max(1, round(per_park / 5)) if per_park >= 2 else 0
        priority = set((rng.choice(per_park, n_priority, replace=False) + 1).tolist())
        lands = _LANDS.get(park, tuple(f"{park} Land {c}" for c in "ABCD"))
        names: list[str] = []
        land_of: dict[str, str] = {}
        for n in range(1, per_park + 1):
            erng = np.random.default_rng([seed, PARKS.index(park), n, 1])
            popularity = float(erng.random())
            land = lands[int(erng.integers(len(lands)))]
            if n in priority:
                base = names[(n - 1) % len(names)] if names else f"{park} Headliner"
                land = land_of.get(base, land)  # the priority queue of a ride is in its land
                name, short, opened, extinct, public, qt_id = (
                    f"{base} Lightning Lane", f"{base[:14]} LL", None, None, False, None)
            else:
                name = f"{_ADJ[erng.integers(len(_ADJ))]} {_NOUN[erng.integers(len(_NOUN))]}"
                if name in names:
                    name = f"{name} {n}"
                names.append(name)
                land_of[name] = land
                short = name if len(name) <= 16 else name[:16].rstrip()
                opened = extinct = None
                if standby_seen % 7 == 2 and span > 20:
                    opened = start + timedelta(days=int(erng.integers(span // 10, span // 2)))
                if standby_seen % 7 == 5 and span > 20:
                    extinct = end - timedelta(days=int(erng.integers(span // 10, span // 2)))
                public = standby_seen % 4 == 3
                qt_park = QUEUE_TIMES_PARK_ID.get(park)
                qt_id = qt_park * 10000 + n if qt_park is not None else None
                standby_seen += 1
            out.append(DemoEntity(
                code=f"{park}{n}", park=park, ordinal=n, priority=n in priority, public=public,
                popularity=popularity, opened_on=opened, extinct_on=extinct, name=name,
                short_name=short, land=land, qt_id=qt_id))
    return out


def write_entity_files(root: Path, entities: Sequence[DemoEntity], seed: int) -> list[Path]:
    """`export/entities/current_{prop}_entities.csv`, one row per entity; flags written as
    "true"/"false" or "1"/"0" like the real exports; blank opened_on/extinct_on when unknown."""
    paths: list[Path] = []
    for prop in dict.fromkeys(e.prop for e in entities):
        path = root / "export" / "entities" / f"current_{prop}_entities.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(ENTITY_HEADER)
            for e in (x for x in entities if x.prop == prop):
                r = np.random.default_rng([seed, PARKS.index(e.park), e.ordinal, 3])
                b = (r.random(8) < np.array([0.2, 0.6, 0.3, 0.7, 0.6, 0.1, 0.3, 0.5])).tolist()
                tf = ("false", "true")
                w.writerow([
                    e.code, e.name, e.short_name, e.land, tf[e.priority], int(b[0]), int(b[1]),
                    int(b[2]), tf[b[3]], tf[b[4]], tf[b[5]], tf[not e.priority], int(b[6]),
                    int(r.choice([-1, 0, 32, 38, 40, 44, 48])) if b[7] else "",
                    int(r.integers(0, 20)),
                    e.opened_on.isoformat() if e.opened_on else "",
                    e.extinct_on.isoformat() if e.extinct_on else "",
                ])
        paths.append(path)
    return paths
