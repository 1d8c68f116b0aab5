"""One-line answers for the errors an operator can cause: a setting that cannot be read, a raw
source that is missing or unreachable, a warehouse held by another writer.

`bambam` commands raise what they raise; the command group (cli/main.py) turns anything but
click's own exceptions into `Error: <one line>` and exit code 1 through `one_line`. An error
nobody foresaw still gets one line, and its traceback goes to a file the line names, so a bug
stays diagnosable without a Python stack on the operator's terminal.
"""

from __future__ import annotations

import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

LOG_NAME = "cli_errors.log"
MAX_CHARS = 400  # one terminal line or two: a longer message is cut, the log keeps the rest


def _flat(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def _is_lock_error(exc: BaseException) -> bool:
    import duckdb
    from filelock import Timeout

    if isinstance(exc, Timeout):
        return True
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def _log_traceback(exc: BaseException) -> Path:
    """Append the traceback to $BAMBAM_HOME/status/cli_errors.log (the temp folder when the
    home itself is what is wrong); returns the file."""
    try:
        from bambam_assets.lib.core import settings

        folder = settings.home() / "status"
        folder.mkdir(parents=True, exist_ok=True)
    except Exception:  # the home setting or folder is the problem: keep the trace anyway
        folder = Path(tempfile.gettempdir())
    path = folder / LOG_NAME
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"--- {datetime.now(UTC).isoformat()}\n")
        fh.write("".join(traceback.format_exception(exc)))
    return path


def one_line(exc: BaseException) -> str:
    """What went wrong and what to do, on one line."""
    from bambam_assets.lib.core.settings import SettingError

    if isinstance(exc, SettingError):
        return _flat(f"{exc} (set it right, or unset it for the default, and run again)")
    if _is_lock_error(exc):
        return _flat(
            f"the warehouse is held by another writer (a running `bambam run`, Dagster run or "
            f"`bambam ingest release`): wait until it finishes and run again ({exc})")
    if type(exc).__module__.startswith("dagster_postgres"):  # the optional extra: not imported
        return _flat(f"cannot open the Dagster instance's PostgreSQL storage: {exc} (check "
                     "BAMBAM_DAGSTER_PG_URL and that the server is up)")
    if isinstance(exc, ConnectionError):
        return _flat(f"{exc} (check BAMBAM_RAW and AWS_ENDPOINT_URL, and that the server is up)")
    if isinstance(exc, PermissionError):
        return _flat(f"{exc} (check the credentials or the file permissions)")
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return _flat(f"{exc} (check BAMBAM_HOME and BAMBAM_RAW)")
    if isinstance(exc, OSError):
        return _flat(f"{type(exc).__name__}: {exc}")
    log = _log_traceback(exc)
    return _flat(f"unexpected {type(exc).__name__}: {exc} (traceback in {log})")
