"""`bambam ingest`: raw files quarantined after repeated failed reads, and their release."""

from __future__ import annotations

import click


def _warehouse(read_only: bool):
    from bambam_assets.lib.core import settings
    from bambam_assets.lib.core import warehouse as wh

    home = settings.home()
    path = wh.warehouse_path(home)
    if not path.exists():
        raise click.ClickException(f"no warehouse under {home}: run `bambam run` first")
    return wh.connect(path, read_only=read_only, home=home)


@click.group("ingest")
def ingest() -> None:
    """Raw-file ingest: quarantined files."""


@ingest.command("quarantine")
def ingest_quarantine() -> None:
    """List the quarantined raw files with their attempts and last error."""
    from bambam_assets.lib.ingest.quarantine import quarantined_files

    conn = _warehouse(read_only=True)
    try:
        files = quarantined_files(conn)
    finally:
        conn.close()
    if files.empty:
        click.echo("no quarantined raw files")
        return
    for r in files.itertuples(index=False):
        click.echo(f"{r.source_key}\t{r.attempts} attempts\t{r.quarantined_at}\t{r.error}")


@ingest.command("release")
@click.argument("keys", nargs=-1)
@click.option("--all", "release_all", is_flag=True, help="Release every quarantined file.")
def ingest_release(keys: tuple[str, ...], release_all: bool) -> None:
    """Release quarantined raw files (KEY ... or --all): the next ingest reads them again."""
    from bambam_assets.lib.ingest.quarantine import release

    if bool(keys) == release_all:
        raise click.UsageError("give KEY ... or --all (not both)")
    conn = _warehouse(read_only=False)
    try:
        released = release(conn, None if release_all else keys)
    finally:
        conn.close()
    for key in released:
        click.echo(f"released {key}")
    missing = sorted(set(keys) - set(released))
    if missing:
        raise click.ClickException(f"not quarantined: {', '.join(missing)}")
    if not released:
        click.echo("no quarantined raw files")
