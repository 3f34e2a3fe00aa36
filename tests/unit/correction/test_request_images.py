"""Task names, request validation and the per-image measures."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from percept.correction import analysis
from percept.correction.features import Featurizer, path_allowed, rows_of
from percept.correction.images import (
    MEASURES,
    ImageDecodeError,
    apply_tone_curve,
    deblur,
    decode,
    fit_tone_curve,
    measure,
    measure_gray,
    metadata,
    native_array,
    pixel_features_batch,
    pooled_stats,
    quality_measures,
)
from percept.correction.request import JobConfig, parse_request, parse_task_name
from percept.errors import BadRequest


@pytest.mark.parametrize(("name", "expected"), [
    ("diagnose_mislabeled_images", ("diagnose", "mislabeled_images")),
    ("correct_lighting_conditions", ("correct", "lighting_conditions")),
    ("ic::diagnose::class_splitting", ("diagnose", "class_splitting")),
    ("ic::correct::image_blur", ("correct", "image_blur")),
    ("diagnose_everything", None),
    ("ic::fix::image_blur", None),
    ("correct_", None),
])
def test_task_names(name: str, expected: tuple[str, str] | None) -> None:
    assert parse_task_name(name) == expected


@pytest.mark.parametrize("bad", [
    [], {"dataset": {}}, {"dataset": {"class_files": {}}, "tasks": [{"name": "x"}]},
    {"dataset": {"class_files": {"a": {"/x.png": {}}}}, "tasks": []},
    {"dataset": {"class_files": {"a": {"/x.png": {}}}}, "tasks": [{"nom": 1}]},
    {"dataset": {"class_files": {"a": ["x"]}}, "tasks": [{"name": "x"}]},
    {"dataset": {"class_files": {"a": {"/x.png": {}}}}, "tasks": [{"name": "x"}],
     "config_params": {"batch_size": "many"}},
    {"dataset": {"class_files": {"a": {"/x.png": {}}}}, "tasks": [{"name": "x"}],
     "config_params": {"features": "resnet9000"}},
])
def test_malformed_requests_are_400(bad: object) -> None:
    with pytest.raises(BadRequest):
        parse_request(bad)  # type: ignore[arg-type]


def test_request_fills_uuids_and_classes() -> None:
    parsed = parse_request({"dataset": {"classes": ["a"], "class_files": {
        "a": {"/d/one.png": {}}, "b": {"/d/two.png": {"uuid": "u2"}}}}, "tasks": [{"name": "x"}]})
    assert [i.uuid for i in parsed.items] == ["one", "u2"]
    assert parsed.classes == ["a", "b"] and parsed.warnings
    assert JobConfig.from_params({"batch_size": -3}).batch_size == 0  # 0: chosen by feature kind


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_metadata_channels_and_stats(tmp_path: Path) -> None:
    gray = np.full((10, 20), 51, np.uint8)
    (tmp_path / "g.png").write_bytes(_png(gray))
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255
    (tmp_path / "a.png").write_bytes(_png(rgba))
    g = metadata(tmp_path / "g.png")
    assert (g["channels"], g["height"], g["width"]) == (1, 10, 20)
    assert g["mean"] == [pytest.approx(0.2)] and g["std_dev"] == [pytest.approx(0.0)]
    a = metadata(tmp_path / "a.png")
    assert a["channels"] == 4 and a["mean"][0] == pytest.approx(1.0) and a["mean"][3] == pytest.approx(0.5)
    assert a["std_dev"][3] == pytest.approx(0.5)


def test_decode_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageDecodeError, match="undecodable"):
        decode(tmp_path / "bad.png")
    with pytest.raises(ImageDecodeError, match="not found"):
        decode(tmp_path / "missing.png")


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((48, 48), np.float32)
    for _ in range(6):
        x, y = rng.integers(0, 40, 2)
        img[y:y + 8, x:x + 8] = rng.uniform(0.5, 1.0)
    return img


def _blur_score(gray: np.ndarray) -> float:
    return float(measure_gray(gray)[MEASURES.index("gratio")])


def test_sharpness_measures_fall_with_blur_not_with_exposure() -> None:
    import cv2

    img = _scene()
    blurred = cv2.GaussianBlur(img, (0, 0), 1.5)
    sharp, soft, dim = measure_gray(img), measure_gray(blurred), measure_gray(img * 0.3)
    for name in ("lapvar", "hf", "steep"):
        i = MEASURES.index(name)
        assert soft[i] < sharp[i] - 0.5, name
        assert dim[i] == pytest.approx(sharp[i], abs=0.15), name  # contrast does not read as blur
    assert soft[MEASURES.index("gratio")] > sharp[MEASURES.index("gratio")]


def test_deblur_brings_a_blurred_image_closer_to_the_original() -> None:
    import cv2

    img = _scene()[..., None]
    blurred = cv2.GaussianBlur(img, (0, 0), 1.5)[..., None]
    restored = deblur(blurred, 1.5)
    assert np.abs(restored - img).mean() < 0.8 * np.abs(blurred - img).mean()


@pytest.mark.parametrize("curve", [(0.3, 0.0, 1.0), (1.0, 0.0, 2.5), (1.0, 0.0, 0.4), (1.0, 0.3, 1.0)])
def test_tone_curve_undoes_exposure_faults(curve: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.05, 0.95, (40, 40, 3)).astype(np.float32)
    gain, offset, gamma = curve
    spoiled = np.clip(gain * clean**gamma + offset, 0, 1)
    percents = [1, 5, 25, 50, 75, 95, 99]
    own, ref = np.percentile(spoiled, percents), np.percentile(clean, percents)
    fixed = apply_tone_curve(spoiled, *fit_tone_curve(own, ref))
    assert np.abs(fixed - clean).mean() < 0.25 * np.abs(spoiled - clean).mean()


def test_batch_measures_equal_single_ones() -> None:
    rng = np.random.default_rng(3)
    batch = rng.uniform(0, 1, (5, 32, 32)).astype(np.float32)
    together = quality_measures(batch)
    assert np.allclose(together[2], quality_measures(batch[2:3])[0])
    assert together[:, MEASURES.index("p50")] == pytest.approx(np.median(batch.reshape(5, -1), axis=1), abs=1e-6)
    feats = pixel_features_batch(batch)
    assert feats.shape == (5, 256 + 324) and np.isfinite(feats).all()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1)), min_size=1, max_size=4))
def test_pooled_stats_equal_stats_of_all_pixels(shapes: list[tuple[int, int, int]]) -> None:
    arrays = [np.random.default_rng(s).integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w, s in shapes]
    infos = [measure(Image.fromarray(a), with_pixels=False) for a in arrays]
    mean, std = pooled_stats(infos)
    everything = np.concatenate([a.reshape(-1, 3) / 255.0 for a in arrays])
    assert np.allclose(mean, everything.mean(0), atol=1e-5)
    assert np.allclose(std, everything.std(0), atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=40), st.floats(0.1, 10), st.floats(-50, 50))
def test_robust_z_is_affine_invariant(values: list[float], scale: float, shift: float) -> None:
    v = np.array(values)
    assert np.allclose(analysis.robust_z(v), analysis.robust_z(v * scale + shift), atol=1e-6)


def test_path_allowed_resolves_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.png").write_bytes(b"x")
    (root / "escape").symlink_to("/etc")
    assert path_allowed(str(root / "a.png"), [str(root)])
    assert not path_allowed(str(root / "escape" / "passwd"), [str(root)])
    assert not path_allowed(str(root / ".." / "other.png"), [str(root)])
    assert path_allowed("/etc/passwd", None)


def test_featurizer_reports_errors_per_row(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(_png(np.full((8, 8, 3), 100, np.uint8)))
    (tmp_path / "bad.png").write_bytes(b"junk")
    cols = Featurizer("pixels", allowed_roots=[str(tmp_path)])({
        "path": [str(tmp_path / "ok.png"), str(tmp_path / "bad.png"), str(tmp_path / "nope.png"), "/etc/passwd"],
        "uuid": ["a", "b", "c", "d"]})
    rows = rows_of(cols)
    assert rows[0]["error"] == "" and rows[0]["features"].any() and rows[0]["channels"] == 3
    assert "undecodable" in rows[1]["error"]
    assert "not found" in rows[2]["error"]
    assert "outside" in rows[3]["error"]
    assert native_array(Image.fromarray(np.zeros((2, 2), np.uint8))).shape == (2, 2, 1)
