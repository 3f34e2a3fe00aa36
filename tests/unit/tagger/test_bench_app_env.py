"""benchmarks/serving.py's ``--app-env NAME=VALUE``: a variable for the replicas only (an A/B of
an environment lever such as OMP_WAIT_POLICY without changing the bare baselines)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def load_bench(monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = importlib.util.spec_from_file_location(
        "serving_bench_env", REPO_ROOT / "benchmarks" / "serving.py"
    )
    assert spec is not None and spec.loader is not None
    serving = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "serving_bench_env", serving)  # its dataclasses look their module up
    spec.loader.exec_module(serving)
    return serving


def test_an_env_pair_splits_at_the_first_equals_sign(monkeypatch: pytest.MonkeyPatch) -> None:
    serving = load_bench(monkeypatch)
    assert serving.env_pair("OMP_WAIT_POLICY=PASSIVE") == ("OMP_WAIT_POLICY", "PASSIVE")
    assert serving.env_pair("A=b=c") == ("A", "b=c")
    assert serving.env_pair("EMPTY=") == ("EMPTY", "")


@pytest.mark.parametrize("text", ["NOEQUALS", "=value", " =value"])
def test_an_env_pair_without_a_name_is_refused(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    serving = load_bench(monkeypatch)
    with pytest.raises(argparse.ArgumentTypeError):
        serving.env_pair(text)
