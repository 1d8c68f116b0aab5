"""When isolated per-entity failures fail the run: the share rule and its setting."""

from __future__ import annotations

import pytest

from bambam_assets.lib.core import failures, settings


def test_share_counted_in_whole_entities_rounded_up() -> None:
    assert failures.allowed_failures(10, 0.2) == 2
    assert failures.allowed_failures(3, 0.2) == 1  # a single failure stays isolated
    assert failures.allowed_failures(1, 0.2) == 1
    assert failures.allowed_failures(10, 0.7) == 7  # not 8 from 7.000000000000001
    assert failures.allowed_failures(10, 0.0) == 0
    assert failures.allowed_failures(10, 1.0) == 10
    assert failures.allowed_failures(0, 0.2) == 0


def test_one_failure_among_many_passes_most_failing_names_share_and_entities() -> None:
    many = [f"E{i:02d}" for i in range(40)]
    assert failures.too_many_failed(many[:1], 40, 0.2) is None
    assert failures.too_many_failed(many[:8], 40, 0.2) is None  # exactly 20%
    assert failures.too_many_failed([], 40, 0.0) is None
    message = failures.too_many_failed(many[:30], 40, 0.2)
    assert message.startswith("30 of 40 entities failed (75%), more than "
                              "BAMBAM_MAX_FAILED_SHARE=0.2 allows (8 of 40): E00, E01, ")
    assert message.endswith("E19 and 10 more")
    assert "1 of 10 entities failed (10%)" in failures.too_many_failed(many[:1], 10, 0.0)


def test_max_failed_share_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAMBAM_MAX_FAILED_SHARE", raising=False)
    assert settings.max_failed_share() == 0.2
    for value, expected in (("0", 0.0), ("1", 1.0), (" 0.35 ", 0.35), ("", 0.2)):
        monkeypatch.setenv("BAMBAM_MAX_FAILED_SHARE", value)
        assert settings.max_failed_share() == expected
    for bad in ("20%", "-0.1", "1.5", "nan", "abc"):
        monkeypatch.setenv("BAMBAM_MAX_FAILED_SHARE", bad)
        with pytest.raises(ValueError, match=r"BAMBAM_MAX_FAILED_SHARE must be a number from 0 "
                                             r"to 1 .*got '" + bad.strip()):
            settings.max_failed_share()
