"""Shared fixtures: a small digits dataset with known faults (written once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic.correction import SyntheticDataset, make_digits_dataset


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    """Classes 0,1,2,3,4,6 (+7 filed under 1), 45 images each, 10 % labels flipped."""
    root: Path = tmp_path_factory.mktemp("digits")
    return make_digits_dataset(root, seed=1, per_class=45, classes=[0, 1, 2, 3, 4, 6, 7],
                               merge=(7, 1), n_blur=4, n_dark=3, n_bright=3)
