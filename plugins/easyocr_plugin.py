"""Text recognition with EasyOCR (the ``[card]`` extra): per-word boxes with four corners.

Weights are EasyOCR's own files, read from ``<models_path>/easyocr`` (its
``model_storage_directory``): the detector ``craft_mlt_25k.pth`` and the English recogniser
``english_g2.pth``. Downloads are switched off. Without the library this file registers
nothing and says why (``SKIPPED``).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, ClassVar

from percept.errors import WeightsMissing
from percept.plugins import ImageProcessingResult, ImageTextBox, Point, Rectangle, register_plugin

logger = logging.getLogger(__name__)

DETECTOR = "craft_mlt_25k.pth"
RECOGNISER = "english_g2.pth"
SKIPPED = None if importlib.util.find_spec("easyocr") else "easyocr is not installed (pip install -e '.[card]')"


def models_dir() -> Path:
    from percept.reading.forced import models_roots

    return models_roots()[0] / "easyocr"


def check_weights(folder: Path) -> None:
    missing = [f for f in (DETECTOR, RECOGNISER) if not (folder / f).is_file()]
    if missing:
        raise WeightsMissing("EasyOCR", str(folder), hint=f"put {' and '.join(missing)} there")


def to_box(corners: Any, text: str, confidence: float) -> ImageTextBox:
    """EasyOCR's ``[[x, y] × 4]`` (clockwise from the top left) as the contract's rectangle."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = ((int(round(float(x))), int(round(float(y)))) for x, y in corners)
    return ImageTextBox(text=text, confidence=float(confidence), coordinates=Rectangle(
        left_top=Point(x=x0, y=y0), right_top=Point(x=x1, y=y1),
        right_bottom=Point(x=x2, y=y2), left_bottom=Point(x=x3, y=y3)))


class EasyOcrPlugin:
    name = "easyocr"
    languages = ["en"]
    description = "EasyOCR (CRAFT detector + CRNN recogniser) with per-word boxes"
    device = "cpu"
    reader: ClassVar[Any] = None

    @staticmethod
    def load() -> None:
        folder = models_dir()
        check_weights(folder)  # before the heavy import: a clear message first
        import easyocr

        from percept.models.weights import pick_device

        device = pick_device()
        EasyOcrPlugin.reader = easyocr.Reader(["en"], gpu=device == "cuda", model_storage_directory=str(folder),
                                              download_enabled=False, verbose=False)
        EasyOcrPlugin.device = device
        logger.info("EasyOCR loaded from %s on %s", folder, device)

    @staticmethod
    def process_image(filename: str) -> ImageProcessingResult:
        if EasyOcrPlugin.reader is None:
            EasyOcrPlugin.load()
        # width_ths=0 keeps words apart (EasyOCR merges neighbours into lines by default)
        found = EasyOcrPlugin.reader.readtext(filename, width_ths=0.0, paragraph=False)
        boxes = [to_box(corners, str(text), conf) for corners, text, conf in found if str(text).strip()]
        return ImageProcessingResult(text=" ".join(b.text for b in boxes), boxes=boxes)


if SKIPPED is None:
    register_plugin(EasyOcrPlugin)
