"""Background masks on synthetic composites with known masks; the U²-Net loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from percept.errors import WeightsMissing
from percept.search.background import U2NET_SIZE, U2NetMasker, border_mask, cutout, grabcut_mask, iou
from percept.search.highlight import BackgroundRemover
from tests.unit.search.synthetic import composite, textured_composite

GRABCUT_MIN_IOU = 0.9
BORDER_MIN_IOU = 0.9


@pytest.mark.parametrize("shape", ["ellipse", "rectangle", "triangle"])
@pytest.mark.parametrize(("fg", "bg"), [((220, 40, 40), (235, 235, 225)), ((40, 120, 200), (60, 160, 70))])
def test_plain_composites(shape: str, fg: tuple[int, int, int], bg: tuple[int, int, int]) -> None:
    image, truth = composite(shape, fg, bg, seed=3)
    assert iou(grabcut_mask(image), truth) >= GRABCUT_MIN_IOU
    assert iou(border_mask(image), truth) >= BORDER_MIN_IOU


@pytest.mark.parametrize("seed", [0, 4, 5])
def test_grabcut_on_photo_patches_over_textures(seed: int) -> None:
    image, truth = textured_composite(seed)
    assert iou(grabcut_mask(image), truth) >= GRABCUT_MIN_IOU


def test_a_flat_image_does_not_crash() -> None:
    flat = np.full((50, 60, 3), 200, dtype=np.uint8)
    assert grabcut_mask(flat).shape == (50, 60)


def test_cutout_has_alpha_from_the_mask() -> None:
    image, truth = composite(seed=1)
    rgba = cutout(image, truth, feather=0)
    assert rgba.shape == (*image.shape[:2], 4)
    assert np.array_equal(rgba[..., 3] == 255, truth)


class FakeSession:
    """An onnxruntime session look-alike answering a saliency map of the centre square."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def get_inputs(self) -> list[Any]:
        class Input:
            name = "input.1"

        return [Input()]

    def run(self, _outputs: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feeds["input.1"]
        self.seen.append(x)
        out = np.zeros((1, 1, U2NET_SIZE, U2NET_SIZE), dtype=np.float32)
        out[..., 80:240, 80:240] = 0.9
        return [out, out]


def test_u2net_pre_and_post_processing(tmp_path: Path) -> None:
    session = FakeSession()
    masker = U2NetMasker(tmp_path, session=session)
    mask = masker(np.zeros((100, 200, 3), dtype=np.uint8))
    x = session.seen[0]
    assert x.shape == (1, 3, U2NET_SIZE, U2NET_SIZE) and x.dtype == np.float32
    assert mask.shape == (100, 200)
    assert mask[50, 100] and not mask[5, 5]


def test_u2net_without_weights_names_the_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing) as info:
        U2NetMasker(tmp_path)
    assert "u2net.onnx" in str(info.value.detail) and str(tmp_path) in str(info.value.detail)


def test_remover_falls_back_to_grabcut_and_refuses_u2net_without_weights(tmp_path: Path) -> None:
    remover = BackgroundRemover(tmp_path, "auto")
    assert remover.default == "grabcut" and "u2net" not in remover.methods()
    image, truth = composite(seed=2)
    mask, rgba = remover.remove(image)
    assert iou(mask, truth) >= GRABCUT_MIN_IOU and rgba.shape[2] == 4
    with pytest.raises(WeightsMissing):
        remover.remove(image, "u2net")
    with pytest.raises(WeightsMissing):
        BackgroundRemover(tmp_path, "u2net")
