"""Checks a command makes before it starts a run, so that a bad argument is answered in one
line rather than by a failed Dagster step and its traceback."""

from __future__ import annotations

import click

# The assets whose steps read the raw source (ingest and the dimension exports).
RAW_READERS = ("fct_wait_times", "fct_rejected_rows", "entity_index", "dim_")


def reads_raw(select: list[str] | None) -> bool:
    """Whether a run of this selection (None = everything) reads the raw source."""
    return not select or any(s.startswith(RAW_READERS) for s in select)


def check_raw_source(uri: str) -> None:
    """Raise a one-line ClickException unless the raw source can be listed: the local folder
    exists, or the S3 bucket answers a one-key listing."""
    from botocore.exceptions import BotoCoreError, ClientError

    from bambam_assets.lib.ingest.raw_source import LocalRawSource, open_raw_source

    try:
        source = open_raw_source(uri)
    except ValueError as exc:
        raise click.ClickException(f"{exc} (BAMBAM_RAW)") from None
    if isinstance(source, LocalRawSource):
        if not source.root.is_dir():
            raise click.ClickException(
                f"raw source folder {source.root} does not exist: set BAMBAM_RAW to an existing "
                "folder or s3://bucket/prefix (or run `bambam demo-data` to fill it)")
        return
    try:
        # One key is enough to know the endpoint answers, the bucket exists and we may list it.
        source.client.list_objects_v2(Bucket=source.bucket, Prefix=source.prefix, MaxKeys=1)
    except (ClientError, BotoCoreError) as exc:
        err = source._error(exc, "list")
        raise click.ClickException(
            " ".join(f"{err} (check BAMBAM_RAW, AWS_ENDPOINT_URL and the credentials)".split())
        ) from None
