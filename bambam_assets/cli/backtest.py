"""`bambam backtest`: replay the pipeline as of a past date in a scratch home and score it.

The scratch home is a folder of its own (default `$BAMBAM_HOME/backtests/<as-of>-<days>d/home`):
its own warehouse, models, curves and Dagster instance, fed from the same raw source. The live
home's warehouse, models and curves are never opened. The scratch home, the raw source, the
as-of date and the forecast and backfill days are passed to `runner.run_pipeline` explicitly
(each run gets them as resource config and tags); the environment is never changed. Every step
filters on the as-of date (features, aggregates, training, forecast, backfill), so rows dated
later, although ingested, are invisible to them; they are what the forecast is scored against.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import click

from bambam_assets.cli.options import parse_date
from bambam_assets.lib.core import settings


@dataclass
class BacktestResult:
    report: Path
    plot: Path
    scores: list  # list[backtest.Score]
    summary: list[str]
    scratch: Path
    seconds: float


def run_backtest(as_of: date, days: int, out_dir: Path, raw: str | None = None,
                 backfill_days: int = 30, keep_scratch: bool = True,
                 log: Callable[[str], None] = print) -> BacktestResult:
    """Run the pipeline as of `as_of` in `out_dir/home`, score the next `days` days, write
    `out_dir/report.md` and the plot; returns the scores."""
    from bambam_assets.cli.progress import ProgressBars
    from bambam_assets.defs.resources import RunKnobs
    from bambam_assets.instance import instance_at
    from bambam_assets.lib.core import warehouse as wh
    from bambam_assets.lib.forecasts import backtest, backtest_report
    from bambam_assets.runner import run_pipeline

    started = time.perf_counter()
    out_dir = Path(out_dir).resolve()
    scratch = out_dir / "home"
    live = settings.home()
    if scratch == live or live.is_relative_to(scratch):
        raise click.UsageError(f"the scratch home {scratch} would contain the live home {live}")
    raw_uri = raw or settings.raw_uri()
    if scratch.exists():
        shutil.rmtree(scratch)  # a fresh replay: nothing from an earlier backtest
    scratch.mkdir(parents=True)
    knobs = RunKnobs.from_settings(as_of=as_of, forecast_days=days, backfill_days=backfill_days)
    instance = instance_at(scratch)
    try:
        with ProgressBars(scratch):
            summary = run_pipeline(instance, log=log, home=scratch, raw_uri=raw_uri, knobs=knobs)
        if not summary.success:
            raise click.ClickException("the scratch pipeline run failed (see the log)")
    finally:
        instance.dispose()
    with wh.reader(scratch) as conn:
        scored = backtest.scored_observations(conn, scratch, as_of, days)
    scores = backtest.score(scored)
    lines = backtest_report.summary_lines(scores)
    notes = {"raw source": raw_uri, "scratch home": str(scratch),
             "seconds": f"{time.perf_counter() - started:.1f}"}
    report = backtest_report.write_report(out_dir, scored, scores, as_of, days, notes)
    if not keep_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return BacktestResult(report, out_dir / backtest_report.PLOT_FILE, scores, lines, scratch,
                          time.perf_counter() - started)


@click.command("backtest")
@click.option("--as-of", "as_of", required=True, callback=parse_date,
              help="Replay the pipeline as of this date (YYYY-MM-DD).")
@click.option("--horizon", "horizon", default=30, show_default=True, type=click.IntRange(1),
              help="Days after the as-of date to forecast and score.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default $BAMBAM_HOME/backtests/<as-of>-<days>d).")
@click.option("--raw", default=None, help="Raw source (default: BAMBAM_RAW).")
@click.option("--backfill-days", default=30, show_default=True, type=click.IntRange(1),
              help="Past days the scratch backfill covers (for the WTI tables).")
@click.option("--keep-scratch/--drop-scratch", default=True, show_default=True,
              help="Keep the scratch home (warehouse, models, curves) after the report.")
def backtest(as_of: date, horizon: int, out: Path | None, raw: str | None, backfill_days: int,
             keep_scratch: bool) -> None:
    """Run the pipeline as of --as-of in a scratch home and score the next --horizon days
    against what was observed, beside a naive baseline; writes report.md and a PNG plot."""
    from bambam_assets.cli.preflight import check_raw_source

    check_raw_source(raw or settings.raw_uri())
    out = out or settings.home_paths().backtests / f"{as_of.isoformat()}-{horizon}d"
    result = run_backtest(as_of, horizon, out, raw, backfill_days, keep_scratch,
                          log=click.echo)
    click.echo(f"backtest as of {as_of} over {horizon} days ({result.seconds:.0f}s):")
    for line in result.summary:
        click.echo(f"  {line}")
    click.echo(f"report: {result.report}")
