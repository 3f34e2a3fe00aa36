"""Text recognition with RapidOCR (PP-OCR on onnxruntime): one box per word, four corners."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from percept.plugins import ImageProcessingResult, ImageTextBox, Point, Rectangle, register_plugin

logger = logging.getLogger(__name__)


def _rectangle(points: Any) -> Rectangle:
    lt, rt, rb, lb = ([float(v) for v in p] for p in points)
    return Rectangle(left_top=Point(x=lt[0], y=lt[1]), right_top=Point(x=rt[0], y=rt[1]),
                     right_bottom=Point(x=rb[0], y=rb[1]), left_bottom=Point(x=lb[0], y=lb[1]))


@register_plugin
class RapidOcrPlugin:
    name = "rapidocr"
    languages = ["en"]
    description = "RapidOCR (PP-OCR detection and recognition on onnxruntime) with per-word boxes"
    device = "cpu"
    engine: ClassVar[Any] = None

    @staticmethod
    def load() -> None:
        from rapidocr import RapidOCR

        # onnxruntime's CPU provider: the wheel shipped here has no CUDA provider.
        RapidOcrPlugin.engine = RapidOCR()

    @staticmethod
    def process_image(filename: str) -> ImageProcessingResult:
        if RapidOcrPlugin.engine is None:
            RapidOcrPlugin.load()
        out = RapidOcrPlugin.engine(filename, return_word_box=True)
        boxes: list[ImageTextBox] = []
        lines: list[str] = []
        word_results = getattr(out, "word_results", None) or ()
        for index, text in enumerate(out.txts or ()):
            lines.append(str(text))
            words = word_results[index] if index < len(word_results) else ()
            if words:
                for word, score, points in words:
                    boxes.append(ImageTextBox(text=str(word), coordinates=_rectangle(points), confidence=float(score)))
            elif out.boxes is not None:
                boxes.append(ImageTextBox(text=str(text), coordinates=_rectangle(out.boxes[index]),
                                          confidence=float(out.scores[index])))
        return ImageProcessingResult(text=" ".join(lines), boxes=boxes)
