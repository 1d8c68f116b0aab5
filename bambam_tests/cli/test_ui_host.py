"""`bambam ui` never puts the unauthenticated Dagster webserver beyond loopback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bambam_assets.cli.ui import ui


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_non_loopback_host_is_refused_before_anything_starts(
        host: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # credentials set: they protect the dashboard, never the Dagster webserver
    monkeypatch.setenv("BAMBAM_DASH_USER", "ops")
    monkeypatch.setenv("BAMBAM_DASH_PASSWORD", "s3cret")
    monkeypatch.setenv("BAMBAM_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(ui, ["--host", host, "--port", "1", "--dash-port", "1"])
    assert result.exit_code == 2
    assert "no authentication" in result.output and "reverse proxy" in result.output
    assert not (tmp_path / "home").exists()  # refused before the home or any server
