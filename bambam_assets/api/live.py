"""The live HTTP API (FastAPI): `GET /live/{park}`, `GET /live/{park}/today` (the same-day
re-forecast), `POST /predict`, `GET /health`, and the forecast API (`/forecast`, `/calendar`,
`/best-times`, `/export`: api/forecast_routes.py).

Localhost by default (`bambam live serve`); Basic Auth when BAMBAM_DASH_USER and
BAMBAM_DASH_PASSWORD are set (the dashboard's rule). Requests never hold the warehouse: models are
warm in memory, dimensions are copied once, and a park's facts are re-read at most every
`live_ttl_s` with a short read-only connection (see lib.live).
"""

import json
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field, field_validator

from bambam_assets import web_auth
from bambam_assets.api.forecast_routes import add_forecast_routes
from bambam_assets.lib.core import settings
from bambam_assets.lib.core.parks import PARKS, tz_of_park
from bambam_assets.lib.forecasts.api_reads import Reader
from bambam_assets.lib.live import same_day
from bambam_assets.lib.live.engine import LiveEngine, ModelUnavailable, WarehouseUnavailable
from bambam_assets.lib.live.view import (
    entity_view,
    live_predictions,
    park_wti,
    same_day_view,
)


class PredictIn(BaseModel):
    entity_code: str = Field(min_length=2, max_length=16, examples=["MK141"])
    observed_at: datetime = Field(description="ISO-8601 instant with an offset or Z")
    posted: float = Field(ge=0, le=1000, description="the POSTED wait in minutes")

    @field_validator("observed_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("observed_at needs a time zone offset (e.g. 2024-03-02T15:00:00Z)")
        return v

    @field_validator("entity_code")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.strip().upper()


class PredictOut(BaseModel):
    entity_code: str
    observed_at: datetime
    posted: float
    actual_predicted: float
    model_version: int
    model: str


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: ISO instants, NaN/NA as null."""
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="s"))


def _park_code(park: str) -> str:
    code = park.strip().upper()
    if code not in PARKS:
        raise HTTPException(404, f"unknown park {park!r}; known parks: {', '.join(PARKS)}")
    return code


def _auth_dependency(creds: tuple[str, str] | None) -> Callable[..., None]:
    basic = HTTPBasic(auto_error=False)

    def check(given: Annotated[HTTPBasicCredentials | None, Depends(basic)]) -> None:
        if creds is None:
            return  # no credentials configured: localhost use
        pair = None if given is None else (given.username, given.password)
        if not web_auth.authorized(pair, creds):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required",
                                headers=web_auth.challenge_header())
    return check


def _protected_docs(app: FastAPI) -> None:
    """/openapi.json, /docs and /redoc as routes under the app's auth dependency."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    @app.get("/redoc", include_in_schema=False, response_class=HTMLResponse)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")


def create_app(home: Path | None = None, engine: LiveEngine | None = None,
               user: str | None = None, password: str | None = None,
               live_ttl_s: float = 30.0) -> FastAPI:
    """The app; settings (BAMBAM_HOME, auth) are read here, when the app is built."""
    home = Path(home) if home is not None else (engine.home if engine else settings.home())
    engine = engine or LiveEngine(home, live_ttl_s=live_ttl_s)
    creds = (user, password) if user and password else None
    if user is None and password is None:
        creds = web_auth.credentials()
    # FastAPI serves its docs routes outside the app's dependencies: with credentials they are
    # turned off and served again below as ordinary routes, behind the same check.
    open_docs = creds is None
    app = FastAPI(title="Bambam live", version="1",
                  dependencies=[Depends(_auth_dependency(creds))],
                  docs_url="/docs" if open_docs else None,
                  redoc_url="/redoc" if open_docs else None,
                  openapi_url="/openapi.json" if open_docs else None)
    app.state.engine = engine
    if not open_docs:
        _protected_docs(app)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "models_loaded": engine.models.loads}

    @app.get("/live/{park}")
    def live(park: str) -> dict[str, Any]:
        """Each entity of the park seen today: latest POSTED, predicted ACTUAL, forecast, closed."""
        code = _park_code(park)
        try:
            state = engine.park_state(code)
        except WarehouseUnavailable as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from exc
        preds = live_predictions(engine, state)
        entities = entity_view(engine, state, preds)
        wti = park_wti(state, preds, tz_of_park(code))
        latest = wti.iloc[-1] if len(wti) else None
        return {
            "park_code": code, "park_date": state.park_date.isoformat(),
            "now": engine.now().isoformat(), "data_read_at": state.read_wall.isoformat(),
            "entities": _records(entities),
            "wti": None if latest is None else {
                "slot": latest["slot"], "wti": float(latest["wti"]),
                "n_entities": int(latest["n_entities"])},
            "wti_slots": _records(wti),
        }

    @app.get("/live/{park}/today")
    def today(park: str, entity: str | None = None) -> dict[str, Any]:
        """Today's remaining forecast slots per entity: the morning's curve and, beside it, the
        curve updated from today's live POSTED readings (BAMBAM_SAME_DAY_UPDATE)."""
        code = _park_code(park)
        try:
            enabled = settings.same_day_update()
        except settings.SettingError as exc:  # a misconfigured server says which variable
            raise HTTPException(500, str(exc)) from exc
        try:
            state = engine.park_state(code)
        except WarehouseUnavailable as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from exc
        chosen = None if entity is None else entity.strip().upper()
        items = same_day_view(engine, state, enabled, entity=chosen)
        if chosen is not None and not items:
            raise HTTPException(404, f"no forecast left today for {chosen!r} in park {code}")
        params = same_day.DEFAULT_PARAMS
        return {
            "park_code": code, "park_date": state.park_date.isoformat(),
            "now": engine.now().isoformat(), "data_read_at": state.read_wall.isoformat(),
            "same_day_update": enabled,
            "update_params": {  # half-life null: the deviation does not fade
                "window_min": params.window_min, "weight": params.weight,
                "half_life_min": params.half_life_min
                if math.isfinite(params.half_life_min) else None},
            "entities": [{**{k: v for k, v in item.items() if k != "slots"},
                          "last_reading_at": None if item["last_reading_at"] is None
                          else item["last_reading_at"].isoformat(),
                          "slots": _records(item["slots"])} for item in items],
        }

    @app.post("/predict", response_model=PredictOut)
    def predict(body: PredictIn) -> PredictOut:
        """Predicted ACTUAL for one POSTED reading, by the entity's CURRENT with-POSTED model."""
        try:
            p = engine.predict(body.entity_code, body.observed_at, body.posted)
        except ModelUnavailable as exc:
            code = 422 if "PRIORITY" in str(exc) or "not an entity code" in str(exc) else 404
            raise HTTPException(code, str(exc)) from exc
        return PredictOut(entity_code=p.entity_code, observed_at=p.observed_at, posted=p.posted,
                          actual_predicted=round(p.actual_predicted, 4),
                          model_version=p.model_version, model=p.model)

    add_forecast_routes(app, Reader(home))
    return app
