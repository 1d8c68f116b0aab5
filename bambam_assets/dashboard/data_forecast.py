"""What the calendar and best-times pages read: the published forecast files (through
lib.forecasts.api_reads, the forecast API's own reader), never the warehouse. One reader per home,
so its caches serve every visit; and the download routes (CSV, Parquet) the pages link to."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

from flask import Flask, Response, abort, request

from bambam_assets.lib.core.parks import PARKS
from bambam_assets.lib.forecasts import published
from bambam_assets.lib.forecasts.api_reads import BadRequest, NotFound, Reader, parse_day

_READERS: dict[Path, Reader] = {}
_LOCK = threading.Lock()
DOWNLOAD_PREFIX = "/download"


def reader_of(home: Path) -> Reader:
    with _LOCK:
        return _READERS.setdefault(Path(home), Reader(Path(home)))


def published_parks(home: Path) -> list[str]:
    """Parks with a published calendar, in the parks' order."""
    return [p for p in PARKS if published.days_file(home, p).is_file()]


def download_url(park: str, what: str, fmt: str, start: date, end: date) -> str:
    return f"{DOWNLOAD_PREFIX}/{park}/{what}.{fmt}?from={start}&to={end}"


def add_download_routes(server: Flask, home: Path) -> None:
    """`/download/{park}/{forecast|calendar}.{csv|parquet}?from=&to=` on the dashboard's server
    (behind its Basic Auth like every route): the forecast API's exports."""

    @server.route(f"{DOWNLOAD_PREFIX}/<park>/<name>")
    def _download(park: str, name: str) -> Response:
        reader = reader_of(home)
        what, _, fmt = name.partition(".")
        try:
            start = parse_day(request.args["from"], "from") if request.args.get("from") else None
            end = parse_day(request.args["to"], "to") if request.args.get("to") else start
            if what == "calendar":
                answer = reader.calendar(park.upper(), start, end, fmt)
            elif what == "forecast" and start is not None:
                answer = reader.forecast_export(park.upper(), start, end, fmt)
            else:
                abort(404)
        except NotFound as exc:
            return Response(f"{exc}\n", 404, mimetype="text/plain")
        except BadRequest as exc:
            return Response(f"{exc}\n", 422, mimetype="text/plain")
        return Response(answer.body, 200, mimetype=answer.media_type.split(";")[0], headers={
            "Content-Disposition": f'attachment; filename="{answer.filename}"',
            "ETag": f'"{answer.etag}"', "Last-Modified": answer.last_modified})
