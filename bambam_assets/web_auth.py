"""The one access rule of Bambam's HTTP servers (dashboard and live API).

Basic Auth is on when BAMBAM_DASH_USER and BAMBAM_DASH_PASSWORD are both set; a server binds
beyond loopback only when it is on. Basic Auth over plain HTTP sends the password in clear text:
beyond localhost, put the servers behind a TLS-terminating reverse proxy.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress

from bambam_assets.lib.core import settings

REALM = "Bambam"


def credentials() -> tuple[str, str] | None:
    """(user, password) when both settings are non-empty, else None (read at call)."""
    return settings.basic_auth()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_bind(host: str, creds: tuple[str, str] | None, server: str = "the server") -> None:
    """Refuse (ValueError) a non-loopback bind address unless Basic Auth is on."""
    if not is_loopback(host) and not creds:
        raise ValueError(f"refusing to serve {server} on {host} without Basic Auth: set "
                         f"{settings.DASH_USER} and {settings.DASH_PASSWORD}, or bind 127.0.0.1")


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())  # constant time: no timing oracle


def authorized(given: tuple[str, str] | None, want: tuple[str, str]) -> bool:
    """Both comparisons always run, so a wrong user costs the same as a wrong password."""
    if given is None:
        return False
    return _equal(given[0], want[0]) & _equal(given[1], want[1])


def parse_basic(header: str) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic …` header value, or None."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        user, sep, password = base64.b64decode(token.strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def challenge_header() -> dict[str, str]:
    return {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
