"""Basic Auth for the dashboard's Flask server (the rule itself is in bambam_assets.web_auth)."""

from __future__ import annotations

from flask import Flask, Response, request

from bambam_assets import web_auth


def protect(server: Flask, credentials: tuple[str, str]) -> None:
    """Answer 401 to every request (pages, callbacks, assets) without the right credentials."""

    @server.before_request
    def _check() -> Response | None:
        given = web_auth.parse_basic(request.headers.get("Authorization", ""))
        if web_auth.authorized(given, credentials):
            return None
        return Response("authentication required\n", 401, web_auth.challenge_header())
