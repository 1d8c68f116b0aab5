"""`bambam run`: materialize the graph once, in-process, on the local instance."""

from __future__ import annotations

import sys

import click


@click.command("run")
@click.option("--select", "select", multiple=True,
              help="Asset key to materialize (repeatable); default: all.")
@click.option("--retrain-all", is_flag=True,
              help="Retrain every entity, not only those the staleness rule finds due.")
def run(select: tuple[str, ...], retrain_all: bool) -> None:
    """Materialize the selected (or all) assets once, in-process, on the local instance.

    Entity models are retrained only where due (no model, 100+ new targets, older than the
    tier's maximum age, or new training code); forecasts and the WTI are rebuilt.
    """
    from bambam_assets.cli.preflight import check_raw_source, reads_raw
    from bambam_assets.cli.progress import ProgressBars
    from bambam_assets.instance import local_instance
    from bambam_assets.lib.core import settings
    from bambam_assets.runner import run_pipeline
    from bambam_assets.summary import print_summary

    settings.as_of()  # a bad BAMBAM_AS_OF is answered here, before any run starts
    if reads_raw(list(select)):
        check_raw_source(settings.raw_uri())
    instance = local_instance()
    with ProgressBars(settings.home()):
        try:
            summary = run_pipeline(instance, list(select) or None, log=click.echo,
                                   retrain_all=retrain_all)
        except ValueError as exc:  # an unknown --select name
            raise click.UsageError(str(exc)) from exc
    print_summary(summary, echo=click.echo)
    if not summary.success:
        sys.exit(1)
