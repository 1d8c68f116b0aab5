"""How far a perfect level would take the forecast (issue 14): hindsight ceilings of the pooled
60-day gain over the naive median, on the homes a `bench.real_backtest` run kept. Data credit:
TouringPlans.com.

    python -m bench.level_ceiling --work /tmp/bt_base            # ACTUAL
    python -m bench.level_ceiling --work /tmp/bt_base --kind POSTED

Each row scales a baseline by the factor that minimises its absolute error on the very
observations it is scored on (141 factors from 0.5 to 2, log-spaced): one factor for all rides
(pooled), one per ride over the 60 days, one per ride and week after the as-of date, one per
park and week (shared by the park's rides: what a crowd calendar would supply). No forecast
made as of D can know these factors; they bound what any level correction of the same curves
(anchoring to recent waits, year-over-year growth, a level feature: bench/README.md) could
reach. The forecast is the filled one the backtest scores (the naive value where a slot has no
forecast); the naive is the backtest's (median by ride, ISO weekday and half hour up to D).
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bambam_assets.lib.core import warehouse as wh
from bambam_assets.lib.core.schema import ACTUAL, POSTED
from bambam_assets.lib.forecasts import backtest
from bambam_assets.lib.forecasts import backtest_detail as bd
from bench.real_backtest import CAP_MINUTES

FACTORS = np.exp(np.linspace(np.log(0.5), np.log(2.0), 141))
DAYS = 60


def best_factor_error(y: np.ndarray, base: np.ndarray) -> float:
    """Sum of |y - f x base| at the factor f (of FACTORS) that makes it smallest."""
    return float(np.abs(y[:, None] - base[:, None] * FACTORS[None, :]).sum(axis=0).min())


def ceilings(scored: pd.DataFrame, as_of: date) -> dict[str, float]:
    """Pooled gain % over the naive of the forecast and of each hindsight-scaled baseline.
    `scored`: backtest.scored_observations of one kind, capped."""
    y = scored["y"].to_numpy(float)
    naive = scored["naive"].to_numpy(float)
    forecast = bd.with_fill(scored)["filled"].to_numpy(float)  # as the backtest fills it
    naive_err = float(np.abs(y - naive).sum())
    week = (pd.to_datetime(scored["park_date"]) - pd.Timestamp(as_of)).dt.days.to_numpy() // 7
    # one factor a park and week, shared by its rides: what a crowd calendar would tell
    groups = {"ride": [scored["entity_code"].to_numpy()],
              "ride x week": [scored["entity_code"].to_numpy(), week],
              "park x week": [scored["park_code"].to_numpy(), week]}
    out = {"forecast": 100 * (1 - float(np.abs(y - forecast).sum()) / naive_err),
           "forecast x pooled": 100 * (1 - best_factor_error(y, forecast) / naive_err)}
    for label, keys in groups.items():
        codes = pd.MultiIndex.from_arrays(keys).factorize()[0]
        for name, base in (("forecast", forecast), ("naive", naive)):
            err = sum(best_factor_error(y[codes == c], base[codes == c])
                      for c in np.unique(codes))
            out[f"{name} x {label}"] = 100 * (1 - err / naive_err)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.level_ceiling",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True,
                        help="a bench.real_backtest --work folder (its homes kept)")
    parser.add_argument("--kind", choices=[ACTUAL, POSTED], default=ACTUAL)
    args = parser.parse_args(argv)
    rows = []
    for folder in sorted(p for p in args.work.iterdir() if (p / "home").is_dir()):
        as_of, home = date.fromisoformat(folder.name), folder / "home"
        with wh.reader(home) as conn:
            scored = backtest.scored_observations(conn, home, as_of, DAYS)
        scored, _ = bd.drop_above_cap(scored[scored["kind"] == args.kind], CAP_MINUTES)
        rows.append((as_of, len(scored), ceilings(scored, as_of)))
    if not rows:
        parser.error(f"no homes under {args.work}: run bench.real_backtest --work there first")
    cols = list(rows[0][2])
    print(f"Pooled {DAYS}-day {args.kind} gain over the naive median, %; 'x ride' = scaled by "
          "the hindsight-best factor of each ride (see the docstring)\n")
    print("| as-of | n | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for as_of, n, rec in rows:
        print(f"| {as_of} | {n} | " + " | ".join(f"{rec[c]:+.1f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
