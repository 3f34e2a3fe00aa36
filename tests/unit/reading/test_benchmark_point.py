"""The reading benchmark's choice of operating point (benchmarks/reading_miscues.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "reading_miscues_bench", Path(__file__).resolve().parents[3] / "benchmarks" / "reading_miscues.py")
assert _SPEC is not None and _SPEC.loader is not None
_BENCH = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BENCH)
parse_pool, pick_point, same_tuning = _BENCH.parse_pool, _BENCH.pick_point, _BENCH.same_tuning


def test_clean_cap_applies_before_f1() -> None:
    # (value, F1, share of clean passages flagged): the best F1 breaks the cap.
    tried = [(0.0, 0.90, 0.10), (5.0, 0.85, 0.05), (9.0, 0.80, 0.0)]
    assert pick_point(tried, 0.05) == (5.0, 0.85)


def test_ties_go_to_fewer_clean_alarms_then_larger_value() -> None:
    # Same F1: the point that flags fewer clean passages wins, even at a smaller value.
    tried = [(0.0, 0.85, 0.0), (7.0, 0.85, 1 / 62), (9.0, 0.85, 1 / 62)]
    assert pick_point(tried, 0.05)[0] == 0.0
    # Same F1 and alarms: the larger value (fewer alarms in general).
    tried = [(0.0, 0.85, 0.0), (7.0, 0.85, 0.0)]
    assert pick_point(tried, 0.05)[0] == 7.0


def test_nothing_under_the_cap_falls_back_to_all() -> None:
    tried = [(0.0, 0.9, 0.2), (3.0, 0.8, 0.1)]
    assert pick_point(tried, 0.05) == (0.0, 0.9)


def test_parse_pool() -> None:
    assert parse_pool("41:/tmp/a, 29:/tmp/b") == [(41, Path("/tmp/a")), (29, Path("/tmp/b"))]
    assert parse_pool("") == []
    with pytest.raises(SystemExit):
        parse_pool("41")


def test_a_saved_point_is_reused_only_on_its_own_tuning_parts() -> None:
    saved = {"threshold": 14.0, "tuning": ["seed 11: /tmp/rm11", "seed 17: /tmp/rm17"]}
    same_tuning(saved, ["seed 11: /tmp/rm11", "seed 17: /tmp/rm17"], "p.json")  # the same pool: reused
    with pytest.raises(SystemExit):
        same_tuning(saved, ["seed 11: /tmp/rm11"], "p.json")
    with pytest.raises(SystemExit):
        same_tuning({"threshold": 14.0}, ["seed 11: /tmp/rm11"], "p.json")


@pytest.mark.parametrize("extra", [["--tune-pool", "17:/tmp/x"], ["--point-file", "/tmp/p.json"], ["--evidence", "fit"]])
def test_at_defaults_chooses_nothing(monkeypatch: pytest.MonkeyPatch, extra: list[str]) -> None:
    # The shipped service's figures: with a pool, a point file or a fitted model the run would
    # report something other than the settings' defaults under their name.
    import sys

    monkeypatch.setattr(sys, "argv", ["reading_miscues", "--at-defaults", "--parts", "heldout", *extra])
    with pytest.raises(SystemExit, match="chooses nothing"):
        _BENCH.main()
