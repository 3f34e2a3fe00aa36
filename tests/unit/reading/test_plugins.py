"""The shipped plugins are discovered; Tesseract reads a rendered page into word boxes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deployments.plugin import PluginRunner
from percept.plugins import discover_plugins
from tests.synthetic.reading import render_page

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"


def test_shipped_plugins_are_discovered_cheaply() -> None:
    found = discover_plugins(PLUGINS)
    assert found.errors == []
    kinds = {name: info.kind for name, info in found.plugins.items()}
    assert kinds == {"faster_whisper": "audio", "rapidocr": "image", "tesseract": "image"}


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
def test_tesseract_gives_word_boxes(tmp_path: Path) -> None:
    page = tmp_path / "page.png"
    page.write_bytes(render_page(["The little dog ran.", "It was 3 o'clock."]))
    runner = PluginRunner(discover_plugins(PLUGINS).classes["tesseract"])
    result = runner.process([str(page)])[0]
    assert isinstance(result, dict)
    assert [b["text"] for b in result["boxes"]] == ["The", "little", "dog", "ran.", "It", "was", "3", "o'clock."]
    first, second = result["boxes"][0]["coordinates"], result["boxes"][1]["coordinates"]
    assert first["left_top"]["x"] < first["right_top"]["x"] <= second["left_top"]["x"]
    assert first["left_top"]["y"] < first["left_bottom"]["y"]
    assert result["text"].splitlines() == ["The little dog ran.", "It was 3 o'clock."]
