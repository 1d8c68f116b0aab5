"""Best time to ride: an entity's predicted lowest-wait windows of a park day, and how rope drop,
midday and evening compare.

From the entity's forecast curve of the day (5-minute slots, actual_predicted):

- windows: maximal runs of consecutive slots whose predicted wait is at most the day's lowest
  predicted wait + WINDOW_MARGIN minutes; the MAX_WINDOWS longest (ties: the lower mean wait,
  then the earlier), each with its first slot, its end (last slot + 5 minutes) and mean wait. A
  margin, not the single lowest slot: a forecast a few minutes lower at 09:05 than at 18:40 does
  not say 18:40 is worse, and guests plan in half hours, not in slots.
- periods, on the park-day clock: rope drop = the entity's first ROPE_DROP_MINUTES of slots (its
  opening, EMH included), evening = its last EVENING_MINUTES, midday = MIDDAY (11:30-14:30) outside
  those two; each with its mean predicted wait; `best_period` is the lowest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOW_MARGIN = 5.0
MAX_WINDOWS = 3
ROPE_DROP_MINUTES, EVENING_MINUTES = 60, 120
MIDDAY = ("11:30", "14:30")
SLOT_MINUTES = 5
PERIODS = ("rope_drop", "midday", "evening")


def _clock(slot: str, minutes: int = SLOT_MINUTES) -> str:
    h, m = (int(x) for x in slot.split(":"))
    total = (h * 60 + m + minutes) % (24 * 60)  # slots after midnight read 00:00, 00:05, ...
    return f"{total // 60:02d}:{total % 60:02d}"


def windows(slots: list[str], waits: np.ndarray) -> list[dict]:
    """The lowest-wait windows of one curve (slots in time order, NaN where no wait)."""
    waits = np.asarray(waits, dtype=float)
    if not len(waits) or np.isnan(waits).all():
        return []
    low = np.nanmin(waits)
    ok = ~np.isnan(waits) & (waits <= low + WINDOW_MARGIN)
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(ok):
        if ok[i]:
            j = i
            while j + 1 < len(ok) and ok[j + 1]:
                j += 1
            runs.append((i, j))
            i = j + 1
        else:
            i += 1
    found = [{"start": slots[a], "end": _clock(slots[b]), "minutes": (b - a + 1) * SLOT_MINUTES,
              "mean_wait": round(float(np.mean(waits[a:b + 1])), 1),
              "min_wait": round(float(np.min(waits[a:b + 1])), 1)} for a, b in runs]
    found.sort(key=lambda w: (-w["minutes"], w["mean_wait"], w["start"]))
    return found[:MAX_WINDOWS]


def periods(slots: list[str], waits: np.ndarray) -> dict:
    """Mean predicted wait of rope drop, midday and evening, and the best of them."""
    waits = np.asarray(waits, dtype=float)
    n = len(slots)
    rope = np.zeros(n, dtype=bool)
    rope[: ROPE_DROP_MINUTES // SLOT_MINUTES] = True
    evening = np.zeros(n, dtype=bool)
    evening[max(n - EVENING_MINUTES // SLOT_MINUTES, 0):] = True
    clock = np.asarray(slots, dtype=object)
    midday = (clock >= MIDDAY[0]) & (clock < MIDDAY[1]) & ~rope & ~evening
    out: dict = {}
    for name, mask in zip(PERIODS, (rope, midday, evening), strict=True):
        vals = waits[mask & ~np.isnan(waits)]
        out[name] = round(float(vals.mean()), 1) if len(vals) else None
    known = {k: v for k, v in out.items() if v is not None}
    out["best_period"] = min(known, key=known.get) if known else None
    return out


def best_times(curves: pd.DataFrame, names: dict[str, str] | None = None) -> list[dict]:
    """Per entity of a park day's curves (entity_code, slot, slot_start, actual_predicted): its
    windows and periods. Grain: one dict per entity, in entity-code order."""
    names = names or {}
    out = []
    for code, part in curves.sort_values(["entity_code", "slot_start"]).groupby(
            "entity_code", sort=True):
        slots = part["slot"].tolist()
        waits = part["actual_predicted"].to_numpy(float)
        out.append({"entity_code": code, "entity_name": names.get(code, code),
                    "lowest_wait": None if np.isnan(waits).all() else round(
                        float(np.nanmin(waits)), 1),
                    "windows": windows(slots, waits), **periods(slots, waits)})
    return out
