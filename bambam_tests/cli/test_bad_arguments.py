"""Every `bambam` command, given a bad argument, answers in one line with what to do: exit
code 1 or 2, exactly one `Error:` line, no traceback.

Bad arguments: an unknown asset or entity or park, a date that is not a date, a setting that
cannot be read, a raw source that is missing or unreachable (S3 on a closed port), a home with
no warehouse. The commands run in-process through click's runner with their real code (no
mocks); the S3 case talks HTTP to a port nothing listens on.
"""

from __future__ import annotations

import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bambam_assets.cli.main import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


CLOSED_S3 = {"BAMBAM_RAW": "s3://bucket/raw", "AWS_ENDPOINT_URL": "",
             "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}

# (id, argv, extra environment, a phrase the one line must hold)
CASES = [
    ("run-unknown-asset", ["run", "--select", "no_such_asset"], {}, "unknown asset"),
    ("run-bad-as-of", ["run"], {"BAMBAM_AS_OF": "31/12/2025"}, "BAMBAM_AS_OF"),
    ("run-missing-raw-folder", ["run"], {"BAMBAM_RAW": "{tmp}/no_such_folder"}, "does not exist"),
    ("run-unreachable-s3", ["run"], CLOSED_S3, "cannot reach"),
    ("run-s3-without-bucket", ["run"], {"BAMBAM_RAW": "s3://"}, "names no bucket"),
    ("backtest-bad-date", ["backtest", "--as-of", "yesterday"], {}, "YYYY-MM-DD"),
    ("backtest-missing-raw", ["backtest", "--as-of", "2024-05-01", "--raw", "{tmp}/nowhere"],
     {}, "does not exist"),
    ("backtest-unreachable-s3", ["backtest", "--as-of", "2024-05-01"], CLOSED_S3,
     "cannot reach"),
    ("demo-data-bad-date", ["demo-data", "--start", "2024-13-01", "--out", "{tmp}/d"], {},
     "YYYY-MM-DD"),
    ("demo-data-unknown-park", ["demo-data", "--parks", "ZZ", "--out", "{tmp}/d"], {},
     "unknown parks"),
    ("demo-data-s3-without-out", ["demo-data"], {"BAMBAM_RAW": "s3://bucket/raw"}, "--out"),
    ("models-list-unknown-entity", ["models", "list", "NOSUCH1"], {}, "no model versions"),
    ("models-rollback-unknown-entity", ["models", "rollback", "NOSUCH1"], {},
     "no model versions"),
    ("models-rollback-bad-version", ["models", "rollback", "MK1", "--version", "two"], {},
     "--version"),
    ("models-status-no-warehouse", ["models", "status"], {}, "run `bambam run` first"),
    ("models-status-live-bad-as-of", ["models", "status", "--live"],
     {"BAMBAM_AS_OF": "not-a-date", "warehouse": "1"}, "BAMBAM_AS_OF"),
    ("ingest-release-unknown-key", ["ingest", "release", "export/x.csv"], {"warehouse": "1"},
     "not quarantined"),
    ("ingest-quarantine-no-warehouse", ["ingest", "quarantine"], {}, "run `bambam run` first"),
    ("ingest-release-no-warehouse", ["ingest", "release", "export/x.csv"], {},
     "run `bambam run` first"),
    ("ingest-release-no-key", ["ingest", "release"], {}, "KEY ... or --all"),
    ("live-poll-once-unknown-park", ["live", "poll-once", "--parks", "ZZ"], {},
     "no queue-times id"),
    ("live-poll-once-bad-url", ["live", "poll-once", "--parks", "MK"],
     {"BAMBAM_QUEUE_TIMES_URL": "ftp://example.com"}, "BAMBAM_QUEUE_TIMES_URL"),
    ("live-serve-public-without-auth", ["live", "serve", "--host", "0.0.0.0"], {},
     "BAMBAM_DASH"),
    ("live-serve-bad-port", ["live", "serve", "--port", "http"], {}, "--port"),
    ("dashboard-public-without-auth", ["dashboard", "--host", "0.0.0.0"], {}, "BAMBAM_DASH"),
    ("ui-public-host", ["ui", "--host", "0.0.0.0"], {}, "loopback"),
    ("daemon-unreachable-postgres", ["daemon"],
     {"BAMBAM_DAGSTER_PG_URL": f"postgresql+psycopg2://u@127.0.0.1:{_closed_port()}/none"},
     "BAMBAM_DAGSTER_PG_URL"),
]


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out |= _leaf_commands(cmd, prefix + (name,))
        else:
            out.add(prefix + (name,))
    return out


def test_every_command_has_a_bad_argument_case() -> None:
    covered = set()
    for _id, argv, _env, _phrase in CASES:
        words = tuple(a for a in argv if not a.startswith("-"))
        covered |= {c for c in _leaf_commands(main) if words[: len(c)] == c}
    assert _leaf_commands(main) - covered == set()


@pytest.mark.parametrize(("argv", "env", "phrase"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_argument_answers_in_one_line(bambam_home: Path, tmp_path: Path, argv, env,
                                          phrase) -> None:
    env = {k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()}
    if env.pop("warehouse", None):  # the case needs a (new, empty) warehouse to get that far
        from bambam_assets.lib.core import warehouse as wh

        with wh.writer(bambam_home):
            pass
    if env.get("AWS_ENDPOINT_URL") == "":
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{_closed_port()}"
    env.setdefault("BAMBAM_DASH_USER", "")
    env.setdefault("BAMBAM_DASH_PASSWORD", "")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    result = CliRunner().invoke(main, argv, env=env)
    out = result.output
    assert isinstance(result.exception, SystemExit), out  # not an exception escaping click
    assert result.exit_code in (1, 2), out
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, out
    assert phrase in errors[0], out
    # click's usage errors add "Usage:" and "Try ... --help" above the one line, nothing else
    assert len([line for line in out.splitlines() if line.strip()]) <= 3, out
    # a mistyped entity leaves nothing behind
    assert not (bambam_home / "models" / "NOSUCH1").exists()
