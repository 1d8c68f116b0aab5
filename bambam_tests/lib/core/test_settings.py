"""lib/core/settings.py is the one reader of the environment: an AST scan of every module, the
validation of each setting, and README.md's settings table against the names read there."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bambam_assets.lib.core import settings
from bambam_assets.lib.core.parks import QUEUE_TIMES_PARK_ID

ROOT = Path(__file__).resolve().parents[3]
SCANNED = ("bambam_assets", "bench", "scripts")
SETTINGS_MODULE = "bambam_assets/lib/core/settings.py"
# (file, use) -> why that file may touch os.environ; a read of a setting is never exempt.
EXEMPTIONS: dict[tuple[str, str], str] = {
    ("bambam_assets/instance.py", "set DAGSTER_HOME"):
        "exports DAGSTER_HOME so that DagsterInstance.get() and the child processes "
        "(`dagster dev`, the daemon) find the local instance",
    ("bambam_assets/cli/ui.py", "copy"):
        "hands the environment on to the `dagster dev` child process (env=os.environ.copy())",
    ("bench/bambam_side.py", "copy"):
        "the benchmark's child `bambam run` gets a copy of the environment pointing at its home",
    ("bench/faults/runner.py", "copy"):
        "the fault suite's child `bambam run` gets a copy of the environment pointing at its home",
    ("bench/live_bench.py", "copy"):
        "the benchmark's API server child gets a copy of the environment ({**os.environ, ...})",
    ("bench/automation_cost.py", "copy"):
        "the benchmark's `dagster-daemon` child gets a copy of the environment pointing at its "
        "home and code tree",
    ("bench/responsiveness_bench.py", "copy"):
        "the benchmark's dashboard and API server children get a copy of the environment "
        "pointing at the measured home",
    ("bench/forecast_probe.py", "copy"):
        "each probed code tree's child gets a copy of the environment with the tree on "
        "PYTHONPATH",
}
ENV_ATTRS = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def env_uses(source: str) -> list[tuple[int, str]]:
    """(line, use) of every touch of the process environment in `source`: use is "copy" (the
    whole environment handed on: `os.environ.copy()`, `{**os.environ}`, `os.environ | {...}`),
    "set NAME" (`os.environ["NAME"] = ...`) or "read" (anything else, imports included)."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    os_names = {"os"} | {a.asname for node in ast.walk(tree) if isinstance(node, ast.Import)
                         for a in node.names if a.name == "os" and a.asname}
    # names bound by `from os import environ [as x]`, and any bare `getenv`
    env_names = {"getenv"} | {a.asname or a.name for node in ast.walk(tree)
                              if isinstance(node, ast.ImportFrom) and node.module == "os"
                              for a in node.names if a.name in ENV_ATTRS}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [(node.lineno, "read") for a in node.names if a.name in ENV_ATTRS]
        elif isinstance(node, ast.Name) and node.id in env_names:
            found.append((node.lineno, "read"))
        elif (isinstance(node, ast.Attribute) and node.attr in ENV_ATTRS
              and isinstance(node.value, ast.Name) and node.value.id in os_names):
            found.append((node.lineno, _use(node, parents)))
    return sorted(found)


def _use(node: ast.Attribute, parents: dict) -> str:
    parent = parents.get(node)
    if node.attr != "environ":
        return "read"
    if (isinstance(parent, ast.Attribute) and parent.attr == "copy"
            and isinstance(parents.get(parent), ast.Call) and not parents[parent].args):
        return "copy"
    if isinstance(parent, ast.Dict) and any(k is None and v is node
                                            for k, v in zip(parent.keys, parent.values,
                                                            strict=True)):
        return "copy"
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.BitOr) and parent.left is node:
        return "copy"
    if (isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store)
            and isinstance(parent.slice, ast.Constant)):
        return f"set {parent.slice.value}"
    return "read"


def _python_files() -> list[Path]:
    return sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py"))


def test_env_uses_recognises_every_form() -> None:
    source = """
import os
import os as o
from os import environ as env, getenv
a = os.environ.get("X")
b = os.getenv("X")
c = o.environ["X"]
d = getenv("X")
e = os.environ.copy()
f = {**os.environ, "X": "1"}
g = os.environ | {"X": "1"}
os.environ["DAGSTER_HOME"] = "/h"
h = "BAMBAM_X" in os.environ
i = env.get("X")
def j(environ=None): return environ  # a parameter called environ is no environment
"""
    assert env_uses(source) == [
        (4, "read"), (4, "read"), (5, "read"), (6, "read"), (7, "read"), (8, "read"),
        (9, "copy"), (10, "copy"), (11, "copy"), (12, "set DAGSTER_HOME"), (13, "read"),
        (14, "read")]


def test_only_the_settings_module_reads_the_environment() -> None:
    files = _python_files()
    assert len(files) > 50 and ROOT / SETTINGS_MODULE in files
    offending, used = [], set()
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel == SETTINGS_MODULE:
            continue
        for line, use in env_uses(path.read_text()):
            if (rel, use) in EXEMPTIONS:
                used.add((rel, use))
            else:
                offending.append(f"{rel}:{line}: {use}")
    assert not offending, ("read the environment only in lib/core/settings.py (a typed, "
                           "validated function per setting): " + ", ".join(offending))
    assert used == set(EXEMPTIONS), f"stale exemptions: {set(EXEMPTIONS) - used}"
    assert env_uses((ROOT / SETTINGS_MODULE).read_text())  # it does read it


# ---- validation -----------------------------------------------------------------------------

BAD_VALUES = [
    (settings.as_of, settings.AS_OF, "2024-13-01"),
    (settings.as_of, settings.AS_OF, "yesterday"),
    (settings.forecast_days, settings.FORECAST_DAYS, "ten"),
    (settings.forecast_days, settings.FORECAST_DAYS, "0"),
    (settings.forecast_days, settings.FORECAST_DAYS, "2.5"),
    (settings.backfill_days, settings.BACKFILL_DAYS, "-3"),
    (settings.train_mode, settings.TRAIN_MODE, "sometimes"),
    (settings.retrain_min_new_targets, settings.RETRAIN_MIN_NEW_TARGETS, "many"),
    (settings.retrain_min_new_targets, settings.RETRAIN_MIN_NEW_TARGETS, "-1"),
    (settings.retrain_max_age_hours, settings.RETRAIN_MAX_AGE_HOURS, "bogus=1"),
    (settings.retrain_max_age_hours, settings.RETRAIN_MAX_AGE_HOURS, "critical"),
    (settings.retrain_max_age_hours, settings.RETRAIN_MAX_AGE_HOURS, "critical=0"),
    (settings.stale_days, settings.STALE_DAYS, "soon"),
    (settings.stale_days, settings.STALE_DAYS, "-1"),
    (settings.log_level, settings.LOG_LEVEL, "LOUD"),
    (settings.queue_times_url, settings.QUEUE_TIMES_URL, "queue-times.com"),
    (settings.queue_times_parks, settings.QUEUE_TIMES_PARKS, "MK,XX"),
    (settings.queue_times_interval_s, settings.QUEUE_TIMES_INTERVAL_S, "-60"),
    (settings.queue_times_interval_s, settings.QUEUE_TIMES_INTERVAL_S, "5m"),
]


@pytest.mark.parametrize(("read", "name", "value"), BAD_VALUES,
                         ids=[f"{n}={v}" for _, n, v in BAD_VALUES])
def test_a_bad_value_is_a_one_line_error_naming_variable_value_and_expectation(
    read, name: str, value: str
) -> None:
    with pytest.raises(settings.SettingError) as err:
        read({name: value})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{name} must be ") and message.endswith(f"got {value!r}")
    assert isinstance(err.value, ValueError)


def test_defaults_and_values(tmp_path: Path) -> None:
    none: dict[str, str] = {}
    assert settings.home({settings.HOME: str(tmp_path)}) == tmp_path.resolve()
    assert settings.home(none) == Path("./.bambam").resolve()
    assert settings.raw_uri({settings.HOME: str(tmp_path)}) == str(tmp_path.resolve() / "raw")
    assert settings.raw_uri({settings.RAW: "s3://b/p"}) == "s3://b/p"
    assert settings.dagster_home({settings.HOME: str(tmp_path)}) == tmp_path.resolve() / "dagster"
    # unset: the park date furthest behind (6 AM rule), not the machine's date: at 03:50 UTC
    # the US parks are still on the previous day (this line failed then when it said today)
    assert settings.as_of(none, now=datetime(2026, 12, 3, 3, 50, tzinfo=UTC)) == date(2026, 12, 2)
    assert settings.as_of(none, now=datetime(2026, 12, 3, 15, 0, tzinfo=UTC)) == date(2026, 12, 3)
    assert settings.as_of(none) in (date.today() - timedelta(days=1), date.today())
    assert settings.as_of({settings.AS_OF: " 2024-03-31 "}) == date(2024, 3, 31)
    assert settings.forecast_days(none) is None and settings.backfill_days(none) is None
    assert settings.forecast_days({settings.FORECAST_DAYS: "30"}) == 30
    assert settings.train_mode(none) == "auto"
    assert settings.train_mode({settings.TRAIN_MODE: " FULL "}) == "full"
    assert settings.retrain_min_new_targets(none) is None
    assert settings.retrain_max_age_hours({settings.RETRAIN_MAX_AGE_HOURS:
                                           "critical=48, high=80.5"}) == \
        {"critical": 48.0, "high": 80.5}
    assert settings.basic_auth(none) is None
    assert settings.basic_auth({settings.DASH_USER: "u"}) is None
    assert settings.basic_auth({settings.DASH_USER: "u", settings.DASH_PASSWORD: " p "}) == \
        ("u", " p ")
    assert settings.stale_days(none) == 2
    assert settings.log_level(none) == "WARNING"
    assert settings.log_level({settings.LOG_LEVEL: "debug"}) == "DEBUG"
    assert settings.queue_times_url(none) is None
    assert settings.queue_times_parks(none) == list(QUEUE_TIMES_PARK_ID)
    assert settings.queue_times_parks({settings.QUEUE_TIMES_PARKS: "mk, BB"}) == ["MK", "BB"]
    assert settings.queue_times_interval_s(none) == 300
    assert settings.aws_endpoint_url(none) is None
    both = {settings.AWS_ENDPOINT_URL: "http://a", settings.AWS_ENDPOINT_URL_S3: "http://s3"}
    assert settings.aws_endpoint_url(both) == "http://s3"
    assert settings.aws_endpoint_url({settings.AWS_ENDPOINT_URL: "http://a"}) == "http://a"
    assert settings.aws_endpoint_url({**both,
                                      settings.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: "true"}) is None


def test_read_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.FORECAST_DAYS, "5")
    assert settings.forecast_days() == 5
    monkeypatch.setenv(settings.FORECAST_DAYS, "6")
    assert settings.forecast_days() == 6
    monkeypatch.setenv(settings.FORECAST_DAYS, "")  # empty counts as unset
    assert settings.forecast_days() is None


def _bambam_names() -> set[str]:
    tree = ast.parse((ROOT / SETTINGS_MODULE).read_text())
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and re.fullmatch(r"BAMBAM_[A-Z0-9_]+", node.value)}


def test_nothing_is_read_at_import() -> None:
    """Bad values everywhere: importing the code location and the CLI still works."""
    env = {name: "!bad!" for name in _bambam_names()} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", "import bambam_assets.definitions, bambam_assets.cli.main, "
         "bambam_assets.api.live, bambam_assets.dashboard.app"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_readme_settings_table_lists_every_bambam_variable() -> None:
    names = _bambam_names()
    assert {"BAMBAM_HOME", "BAMBAM_TRAIN_MODE", "BAMBAM_QUEUE_TIMES_PARKS"} <= names
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Pointing it at real data", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`(BAMBAM_[A-Z0-9_]+)`",
                                                           row.split("|")[1])}
    assert names - listed == set(), f"missing from README.md's settings table: {names - listed}"
    assert listed - names == set(), f"in README.md but never read: {listed - names}"
