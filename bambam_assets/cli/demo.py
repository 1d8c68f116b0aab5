"""`bambam demo-data`: raw files in the real formats, generated."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from bambam_assets.cli.options import parse_date


@click.command("demo-data")
@click.option("--parks", default="MK,EP,HS,AK", show_default=True,
              help="Comma-separated park codes.")
@click.option("--entities-per-park", default=4, show_default=True, type=int)
@click.option("--start", default="2024-01-01", show_default=True, callback=parse_date)
@click.option("--end", default="2025-12-31", show_default=True, callback=parse_date)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write (default: BAMBAM_RAW when local).")
def demo_data(parks: str, entities_per_park: int, start: date, end: date, seed: int,
              out: Path | None) -> None:
    """Write raw files in the real formats (TouringPlans export and public files, queue-times)."""
    from tqdm import tqdm

    from bambam_assets.lib.core import settings
    from bambam_assets.lib.core.parks import PARKS
    from bambam_assets.lib.demo import generate as gen

    park_list = [p.strip().upper() for p in parks.split(",") if p.strip()]
    unknown = [p for p in park_list if p not in PARKS]
    if unknown:
        raise click.BadParameter(f"unknown parks {unknown}; known: {', '.join(PARKS)}")
    if out is None:
        uri = settings.raw_uri()
        if uri.startswith("s3://"):
            raise click.UsageError("BAMBAM_RAW is S3: pass --out DIR and upload the folder")
        out = Path(uri)
    with tqdm(total=0, unit="entity", desc="demo data") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        summary = gen.generate(out, park_list, entities_per_park, start, end, seed=seed,
                               progress=progress)
    click.echo(f"wrote demo data to {out}")
    for key, value in summary.items():
        click.echo(f"  {key}: {value}")
