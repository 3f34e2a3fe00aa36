"""Text recognition with Tesseract (pytesseract + Debian tesseract-ocr-eng): word boxes."""

from __future__ import annotations

from PIL import Image

from percept.plugins import ImageProcessingResult, ImageTextBox, Point, Rectangle, register_plugin


@register_plugin
class TesseractPlugin:
    name = "tesseract"
    languages = ["en"]
    description = "Tesseract OCR (LSTM engine, CPU) with per-word boxes"
    device = "cpu"

    @staticmethod
    def load() -> None:
        import pytesseract

        pytesseract.get_tesseract_version()  # fails early when the binary is missing

    @staticmethod
    def process_image(filename: str) -> ImageProcessingResult:
        import pytesseract

        with Image.open(filename) as img:
            data = pytesseract.image_to_data(img.convert("RGB"), lang="eng", output_type=pytesseract.Output.DICT)
        boxes: list[ImageTextBox] = []
        lines: dict[tuple[int, int, int], list[str]] = {}
        for i, word in enumerate(data["text"]):
            word = str(word).strip()
            if not word:
                continue
            x, y, w, h = (int(data[k][i]) for k in ("left", "top", "width", "height"))
            boxes.append(ImageTextBox(
                text=word,
                coordinates=Rectangle(left_top=Point(x=x, y=y), right_top=Point(x=x + w, y=y),
                                      right_bottom=Point(x=x + w, y=y + h), left_bottom=Point(x=x, y=y + h)),
                confidence=max(0.0, float(data["conf"][i])) / 100.0,
            ))
            lines.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(word)
        return ImageProcessingResult(text="\n".join(" ".join(ws) for ws in lines.values()), boxes=boxes)
