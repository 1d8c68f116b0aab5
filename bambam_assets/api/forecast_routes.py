"""The forecast API's routes on the live API's server (same app, same Basic Auth):

- `GET /forecast/{park}/{date}`: every entity's curve of the park day and the park's WTI curve
- `GET /forecast/entity/{entity}?from=&to=`: daily summaries and curves (at most 31 days)
- `GET /calendar/{park}?from=&to=&format=json|csv|parquet`: the crowd calendar
- `GET /best-times/{park}/{date}`: each entity's lowest-wait windows, rope drop/midday/evening
- `GET /export/{park}/forecast.{csv|parquet}?from=&to=` and `/export/{park}/calendar.{fmt}`

`{date}` is the park's own park date (6 AM rule). Answers come from the published files
(lib/forecasts/api_reads.py), never from the warehouse. Every answer has an ETag (the vintage of
its inputs) and Last-Modified; a request whose If-None-Match holds the ETag gets 304.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request, Response

from bambam_assets.lib.forecasts.api_reads import (
    Answer,
    BadRequest,
    NotFound,
    Reader,
    checked_park,
    parse_day,
)

From = Annotated[str | None, Query(alias="from", description="first park date, YYYY-MM-DD")]
To = Annotated[str | None, Query(alias="to", description="last park date, YYYY-MM-DD")]


def _quoted(etag: str) -> str:
    return f'"{etag}"'


def _matches(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match")
    if not given:
        return False
    tags = {t.strip().removeprefix("W/").strip('"') for t in given.split(",")}
    return "*" in tags or etag in tags


def _response(request: Request, answer: Answer) -> Response:
    headers = {"ETag": _quoted(answer.etag), "Last-Modified": answer.last_modified,
               "Cache-Control": "no-cache"}  # revalidate: a new forecast run changes the ETag
    if _matches(request, answer.etag):
        return Response(status_code=304, headers=headers)
    if answer.filename:
        headers["Content-Disposition"] = f'attachment; filename="{answer.filename}"'
    return Response(answer.body, media_type=answer.media_type, headers=headers)


def _day(text: str | None, name: str, default: date | None = None) -> date | None:
    if text is None or text == "":
        return default
    return parse_day(text, name)


def add_forecast_routes(app: FastAPI, reader: Reader) -> None:
    """Register the forecast routes on `app` (the live API)."""

    def guard(call):
        try:
            return call()
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except BadRequest as exc:
            raise HTTPException(422, str(exc)) from exc

    # registered before /forecast/{park}/{date}: "entity" is not a park
    @app.get("/forecast/entity/{entity}")
    def forecast_entity(request: Request, entity: str, start: From = None, end: To = None
                        ) -> Response:
        """An entity's forecast: per day mean/min/max predicted wait and best slot, and each
        day's curve (slot, actual_predicted, p10, p90, posted_predicted, closed)."""
        return _response(request, guard(lambda: reader.entity(
            entity, _day(start, "from"), _day(end, "to"))))

    @app.get("/forecast/{park}/{day}")
    def forecast_park_day(request: Request, park: str, day: str) -> Response:
        """Every entity's curve of the park day (columnar: `slots`, then per entity
        actual_predicted, actual_p10, actual_p90, posted_predicted, closed aligned to them), the
        park's WTI curve and the day's crowd level."""
        def answer() -> Response:
            code, when = checked_park(park), parse_day(day, "date")
            etag, modified = reader.validators(code, when)
            if _matches(request, etag):  # revalidation reads no curve
                return _response(request, Answer(b"", etag, modified))
            return _response(request, reader.park_day(code, when))
        return guard(answer)

    @app.get("/best-times/{park}/{day}")
    def best_times(request: Request, park: str, day: str) -> Response:
        """Each entity's predicted lowest-wait windows and its rope drop / midday / evening
        mean predicted waits."""
        return _response(request, guard(lambda: reader.best_times(
            checked_park(park), parse_day(day, "date"))))

    @app.get("/calendar/{park}")
    def calendar(request: Request, park: str, start: From = None, end: To = None,
                 format: str = "json") -> Response:
        """The crowd calendar: per park day the daily WTI, its band, the crowd level 1-10 and
        its range (default: the forecast horizon)."""
        return _response(request, guard(lambda: reader.calendar(
            checked_park(park), _day(start, "from"), _day(end, "to"), format)))

    @app.get("/export/{park}/{name}")
    def export(request: Request, park: str, name: str, start: From = None, end: To = None
               ) -> Response:
        """Downloads: `forecast.csv`/`forecast.parquet` (every entity's curves, at most 31
        days; `from` required) and `calendar.csv`/`calendar.parquet`."""
        def answer() -> Answer:
            code = checked_park(park)
            what, _, fmt = name.partition(".")
            if what == "calendar":
                return reader.calendar(code, _day(start, "from"), _day(end, "to"), fmt or "csv")
            if what != "forecast":
                raise NotFound(f"no export {name!r}: forecast.csv, forecast.parquet, "
                               "calendar.csv or calendar.parquet")
            first = _day(start, "from")
            if first is None:
                raise BadRequest("from is required for a forecast export")
            return reader.forecast_export(code, first, _day(end, "to", first), fmt or "csv")
        return _response(request, guard(answer))
