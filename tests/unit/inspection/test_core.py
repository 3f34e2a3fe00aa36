"""Algorithms, maps, boxes, licenses and messages: the Ray-free core."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from percept.inspection import engine
from percept.inspection.algorithms import ALGORITHMS, omp_residual
from percept.inspection.i18n import language, translate
from percept.inspection.imaging import extract_patches, find_boxes, scores_to_map
from percept.inspection.license import LicenseError, issue_license, verify_license
from percept.inspection.uploads import item_id_of
from percept.storage import open_state_store
from tests.synthetic import inspection as synthetic


def test_params_parse_defaults_and_overrides() -> None:
    oc = ALGORITHMS["OC"]
    values = oc.resolve([(252, "0.2"), (201, "[8, 8]")])
    assert values["nu_max"] == 0.2 and values["patch_size"] == (8, 8)
    with pytest.raises(ValueError) as err:
        oc.resolve([(252, "abc"), (999, "1"), (201, "[1000, 2]")])
    assert len(err.value.args[0]) == 3


def test_omp_matches_scikit_learn() -> None:
    from sklearn.decomposition import sparse_encode

    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(12, 20))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    x = rng.normal(size=(50, 20))
    codes = sparse_encode(x, atoms, algorithm="omp", n_nonzero_coefs=3)
    np.testing.assert_allclose(omp_residual(x, atoms, 3), x - codes @ atoms, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(5, 40), w=st.integers(5, 40), p=st.integers(2, 8), stride=st.integers(1, 6))
def test_patch_grid_covers_every_pixel(h: int, w: int, p: int, stride: int) -> None:
    img = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
    patches, grid = extract_patches(img, (p, p), stride)
    assert patches.shape == (grid.count, 3 * p * p)
    ones = scores_to_map(np.ones(grid.count, np.float32), grid, (h, w))
    np.testing.assert_allclose(ones, 1.0)  # every pixel is covered by at least one patch


def test_boxes_are_scaled_to_the_original() -> None:
    norm = np.zeros((50, 50), np.float32)
    norm[10:20, 30:35] = 3.0
    norm[40, 40] = 5.0  # too small to count
    boxes = find_boxes(norm, 1.0, 4, 2.0, (100, 100))
    assert len(boxes) == 1
    assert boxes[0] | {"score": 0} == {"x_min": 60, "y_min": 20, "x_max": 69, "y_max": 39, "score": 0, "area": 200}


@pytest.mark.parametrize("algorithm_id", ["hacarus-dictionary-learning", "OC"])
def test_defects_are_found_where_they_are(algorithm_id: str) -> None:
    rng = np.random.default_rng(3)
    goods = synthetic.good_crops("brick", 10, 96, rng)
    params = ALGORITHMS[algorithm_id].resolve([(105 if algorithm_id != "OC" else 205, "1500")])
    model = engine.TrainedModel.from_bytes(engine.train(algorithm_id, params, goods[:8]).to_bytes())
    clean = engine.predict(model, goods[8])
    bad, mask = synthetic.add_defect(goods[9], "stain", rng)
    found = engine.predict(model, bad)
    assert not found.good and found.score > clean.score
    ys, xs = mask.nonzero()
    assert any(b["x_min"] <= xs.mean() <= b["x_max"] and b["y_min"] <= ys.mean() <= b["y_max"] for b in found.boxes)
    assert found.heatmap_png()[:4] == b"\x89PNG"


def test_license_round_trip_and_forgery(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
    text = issue_license(store, "ci_1")
    assert verify_license(store, text, "ci_1")["client_id"] == "ci_1"
    with pytest.raises(LicenseError):
        verify_license(store, text, "ci_2")
    with pytest.raises(LicenseError):
        verify_license(store, text.replace("PERCEPT-LICENSE-1.", "PERCEPT-LICENSE-1.x"), "ci_1")
    with pytest.raises(LicenseError):
        verify_license(store, "garbage", "ci_1")
    expired = issue_license(store, "ci_1", valid_days=-1)
    with pytest.raises(LicenseError, match="expired"):
        verify_license(store, expired, "ci_1")


def test_language_and_translation() -> None:
    assert language("ja-JP,ja;q=0.9,en;q=0.8") == "ja"
    assert language("en-US,ja;q=0.5") == "en"
    assert language(None) == "en" and language("fr") == "en"
    assert translate("Cannot find items", "ja") == "アイテムが見つかりません"
    assert translate(["Invalid filename a b.png"], "ja") == ["無効なファイル名 a b.png"]
    assert translate("Cannot find items", "en") == "Cannot find items"


def test_item_ids_are_stems_without_spaces_or_dots() -> None:
    assert item_id_of("dir/IMG6760_U.jpg") == "IMG6760_U"
    assert item_id_of("a b.png") is None and item_id_of("a.b.png") is None and item_id_of("noext") is None
