"""benchmarks/serving.py's ``--app-env NAME=VALUE``: a variable for the replicas only (an A/B of
an environment lever such as OMP_WAIT_POLICY without changing the bare baselines)."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.serving import env_pair


def test_an_env_pair_splits_at_the_first_equals_sign() -> None:
    assert env_pair("OMP_WAIT_POLICY=PASSIVE") == ("OMP_WAIT_POLICY", "PASSIVE")
    assert env_pair("A=b=c") == ("A", "b=c")
    assert env_pair("EMPTY=") == ("EMPTY", "")


@pytest.mark.parametrize("text", ["NOEQUALS", "=value", " =value"])
def test_an_env_pair_without_a_name_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        env_pair(text)
