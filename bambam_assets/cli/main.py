"""The `bambam` command group; each command lives in its own module beside this one."""

from __future__ import annotations

import warnings

import click

# Dagster flags single_run backfill policies as beta on every import; the CLI user needs not see it.
warnings.filterwarnings("ignore", message=".*is currently in beta.*")


class _OneLineErrors(click.Group):
    """A group whose commands answer an error in one line (cli/errors.py), never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            from bambam_assets.cli.errors import one_line

            raise click.ClickException(one_line(exc)) from None


@click.group(cls=_OneLineErrors)
def main() -> None:
    """Bambam: theme-park wait-time forecasting on Dagster and DuckDB.

    Settings come from the environment: BAMBAM_HOME (default ./.bambam), BAMBAM_RAW (local folder
    or s3://bucket/prefix, default $BAMBAM_HOME/raw), BAMBAM_AS_OF (default today).
    """


def _register_commands() -> None:
    # One module per command group; main only assembles them.
    from bambam_assets.cli.backtest import backtest
    from bambam_assets.cli.daemon import daemon
    from bambam_assets.cli.dashboard import dashboard
    from bambam_assets.cli.demo import demo_data
    from bambam_assets.cli.ingest import ingest
    from bambam_assets.cli.live import live
    from bambam_assets.cli.models import models
    from bambam_assets.cli.run import run
    from bambam_assets.cli.ui import ui

    for command in (demo_data, run, ui, daemon, models, backtest, dashboard, live, ingest):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":
    main()
