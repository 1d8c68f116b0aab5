"""HTTP Basic Auth for the dashboard, on when BAMBAM_DASH_USER and BAMBAM_DASH_PASSWORD are set."""

from __future__ import annotations

import base64
import binascii
import hmac
import os

from flask import Flask, Response, request

REALM = "Bambam dashboard"


def credentials_from_env() -> tuple[str, str] | None:
    """(user, password) when both variables are set and non-empty, else None (read at call)."""
    user = os.environ.get("BAMBAM_DASH_USER", "")
    password = os.environ.get("BAMBAM_DASH_PASSWORD", "")
    return (user, password) if user and password else None


def _given() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        user, sep, password = base64.b64decode(token.strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())  # constant time: no timing oracle


def protect(server: Flask, credentials: tuple[str, str]) -> None:
    """Answer 401 to every request (pages, callbacks, assets) without the right credentials."""
    want_user, want_password = credentials

    @server.before_request
    def _check() -> Response | None:
        given = _given()
        # both comparisons always run, so a wrong user costs the same as a wrong password
        ok = given is not None and _equal(given[0], want_user) & _equal(given[1], want_password)
        if ok:
            return None
        return Response("authentication required\n", 401,
                        {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
