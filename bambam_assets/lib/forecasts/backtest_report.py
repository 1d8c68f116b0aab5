"""The backtest's Markdown report and PNG plot (matplotlib with the Agg backend: no display)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from bambam_assets.lib.forecasts.backtest import Score, daily_wti, per_entity

REPORT_FILE, PLOT_FILE = "report.md", "backtest.png"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_lines(scores: list[Score]) -> list[str]:
    """One line per metric: model vs naive, and by how much the model is better."""
    lines = []
    for s in scores:
        if s.metric.startswith("p10"):
            lines.append(f"{s.metric}: model {_fmt(s.model)} vs naive {_fmt(s.naive)} (n={s.n})")
        else:
            imp = s.improvement_pct
            verdict = "n/a" if imp is None else (
                f"{imp:.1f}% lower than naive" if imp >= 0 else f"{-imp:.1f}% higher than naive")
            lines.append(f"{s.metric}: model {_fmt(s.model)} vs naive {_fmt(s.naive)} "
                         f"({verdict}, n={s.n})")
    return lines


def write_plot(scored: pd.DataFrame, path: Path) -> Path:
    """Two panels: park-day mean ACTUAL (observed, forecast, naive) and MAE per entity."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    wti = daily_wti(scored)
    ents = per_entity(scored)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 8))
    for park, part in wti.groupby("park_code"):
        x = pd.to_datetime(part["park_date"])
        ax1.plot(x, part["observed"], "o-", label=f"{park} observed", color="black")
        ax1.plot(x, part["forecast"], "s--", label=f"{park} forecast")
        ax1.plot(x, part["naive"], ":", label=f"{park} naive")
    ax1.set_title("Park-day mean ACTUAL at observed entity-slots")
    ax1.set_ylabel("minutes")
    ax1.legend(fontsize=8)
    fig.autofmt_xdate()
    pos = range(len(ents))
    ax2.bar([p - 0.2 for p in pos], ents["mae"], width=0.4, label="forecast")
    ax2.bar([p + 0.2 for p in pos], ents["naive_mae"], width=0.4, label="naive")
    ax2.set_xticks(list(pos), ents["entity_code"])
    ax2.set_title("ACTUAL MAE per entity")
    ax2.set_ylabel("minutes")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(out_dir: Path, scored: pd.DataFrame, scores: list[Score], as_of: date,
                 days: int, notes: dict[str, str]) -> Path:
    """Write report.md and the plot into `out_dir`; returns the report path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plot(scored, out_dir / PLOT_FILE)
    unmatched = int((~scored["has_slot"]).sum())
    lines = [
        f"# Backtest as of {as_of.isoformat()}, next {days} days", "",
        "The pipeline ran in a scratch home as of that date (nothing later visible to any step);"
        " its forecast is scored against the observations of the following days.", "",
        "| metric | forecast | naive | forecast vs naive | n |", "|---|---|---|---|---|",
    ]
    for s in scores:
        imp = s.improvement_pct
        rel = ("" if s.metric.startswith("p10") or imp is None
               else f"{imp:.1f}% better" if imp >= 0 else f"{-imp:.1f}% worse")
        lines.append(f"| {s.metric} | {_fmt(s.model)} | {_fmt(s.naive)} | {rel} | {s.n} |")
    lines += ["", "## Summary", "", *[f"- {line}" for line in summary_lines(scores)], "",
              "## ACTUAL MAE per entity", "", "| entity | n | forecast | naive |",
              "|---|---|---|---|"]
    for row in per_entity(scored).itertuples():
        lines.append(f"| {row.entity_code} | {row.n} | {row.mae:.2f} | {row.naive_mae:.2f} |")
    lines += ["", "## How it was scored", "",
              "- Each observation is matched to the forecast slot of its entity within 2.5 "
              "minutes; observations without a slot (outside park hours, no forecast) are not "
              f"scored: {unmatched} of {len(scored)}.",
              "- Naive baseline: median by entity, ISO day of week and half hour of the park-day "
              "clock over the training window (park_date <= as-of); band = its 10th-90th "
              "percentiles.",
              "- WTI error: per park day, mean observed ACTUAL vs the mean forecast at the same "
              "entity-slots (observed ACTUAL is too sparse for a per-slot index).", "",
              f"![backtest plot]({PLOT_FILE})", "", "## Run", ""]
    lines += [f"- {k}: {v}" for k, v in notes.items()]
    path = out_dir / REPORT_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
