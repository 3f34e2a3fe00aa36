"""The shipped plugins are discovered; Tesseract reads a rendered page into word boxes."""

from __future__ import annotations

import shutil
import sys
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


def test_whisper_plugin_encodes_the_audio_and_a_short_pad_not_the_30s_window(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    sys.path.insert(0, str(PLUGINS))
    from faster_whisper_plugin import short_window, window_pad_s

    features = np.zeros((1, 80, 3000), dtype=np.float32)
    features[..., :437] = 0.5  # 4.37 s of audio, then faster-whisper's zero padding
    assert short_window(features, 3.0).shape == (1, 80, 738)  # audio + 3 s, an even frame count
    assert short_window(features[0], 0.0).shape == (80, 438)
    assert short_window(features, None).shape == (1, 80, 3000)
    full = np.ones((80, 3000), dtype=np.float32)  # a whole 30 s window of audio: nothing to cut
    assert short_window(full, 3.0).shape == (80, 3000)
    monkeypatch.setenv("PERCEPT_WHISPER_PAD_S", "full")
    assert window_pad_s() is None
    monkeypatch.setenv("PERCEPT_WHISPER_PAD_S", "1.5")
    assert window_pad_s() == 1.5
