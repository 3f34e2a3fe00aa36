"""The shipped plugins are discovered; Tesseract reads a rendered page into word boxes."""

from __future__ import annotations

import logging
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


def test_whisper_decode_cap_grows_with_the_windows_audio(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    sys.path.insert(0, str(PLUGINS))
    from faster_whisper_plugin import TOKEN_BASE, content_frames, token_cap, tokens_per_s

    assert token_cap(1.2) == TOKEN_BASE + 36  # a looping 1.2 s tail window: 52 asked (~26 made), not 224
    assert token_cap(0.0) == TOKEN_BASE
    assert token_cap(5.0, None) is None
    assert token_cap(2.05, 10.0) == TOKEN_BASE + 21  # rounded up
    features = np.zeros((80, 3000), dtype=np.float32)
    features[3, :437] = 0.5
    assert content_frames(features) == 437
    assert content_frames(np.zeros((1, 80, 3000), dtype=np.float32)) == 0
    monkeypatch.delenv("PERCEPT_WHISPER_TOKENS_PER_S", raising=False)
    assert tokens_per_s() == 30.0  # on by default
    monkeypatch.setenv("PERCEPT_WHISPER_TOKENS_PER_S", "none")
    assert tokens_per_s() is None
    monkeypatch.setenv("PERCEPT_WHISPER_TOKENS_PER_S", "7.5")
    assert tokens_per_s() == 7.5
    assert token_cap(0.20005, 10.0) == TOKEN_BASE + 3  # 2.0005 tokens: rounded up (int(x + 0.999) gave 2)
    assert token_cap(0.1 * 3, 10.0) == TOKEN_BASE + 3  # 3.0000000000000004 (float noise): 3


@pytest.mark.parametrize(("variable", "value"), [
    ("PERCEPT_WHISPER_TOKENS_PER_S", "nan"), ("PERCEPT_WHISPER_TOKENS_PER_S", "0"),
    ("PERCEPT_WHISPER_TOKENS_PER_S", "-5"), ("PERCEPT_WHISPER_TOKENS_PER_S", "inf"),
    ("PERCEPT_WHISPER_TOKENS_PER_S", "abc"), ("PERCEPT_WHISPER_TOKENS_PER_S", "4.9"),
    ("PERCEPT_WHISPER_TOKENS_PER_S", ""), ("PERCEPT_WHISPER_PAD_S", "nan"),
    ("PERCEPT_WHISPER_PAD_S", "-1"), ("PERCEPT_WHISPER_PAD_S", "inf"), ("PERCEPT_WHISPER_PAD_S", "abc"),
])
def test_whisper_plugin_load_refuses_a_bad_setting(variable: str, value: str, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A bad decode cap or encoder pad fails the load with a logged message that names the
    variable (before: nan/0/-5 silently 0 tokens a second, inf an OverflowError on every decode,
    'abc' a bare ValueError); nothing is loaded."""
    sys.path.insert(0, str(PLUGINS))
    from faster_whisper_plugin import FasterWhisperPlugin

    monkeypatch.delenv("PERCEPT_WHISPER_TOKENS_PER_S", raising=False)
    monkeypatch.delenv("PERCEPT_WHISPER_PAD_S", raising=False)
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(FasterWhisperPlugin, "model", None)
    with caplog.at_level(logging.ERROR, logger="faster_whisper_plugin"), pytest.raises(ValueError, match=variable):
        FasterWhisperPlugin.load()
    assert variable in caplog.text
    assert FasterWhisperPlugin.model is None


@pytest.mark.parametrize(("tokens", "pad", "want"), [("5", "0", (5.0, 0.0)), ("NONE", "full", (None, None)),
                                                     (" 12.5 ", "1.5", (12.5, 1.5))])
def test_whisper_settings_accepted(tokens: str, pad: str, want: tuple[float | None, float | None],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(PLUGINS))
    from faster_whisper_plugin import tokens_per_s, window_pad_s

    monkeypatch.setenv("PERCEPT_WHISPER_TOKENS_PER_S", tokens)
    monkeypatch.setenv("PERCEPT_WHISPER_PAD_S", pad)
    assert (tokens_per_s(), window_pad_s()) == want


def test_whisper_plugin_decodes_each_window_under_its_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin's model (tiny.en) asks faster-whisper's decode for at most token_cap(window
    seconds) new tokens: a 2.5 s recording's window gets 16 + 75 by default, 16 + 25 at
    PERCEPT_WHISPER_TOKENS_PER_S=10, no cap at 'none'."""
    import wave

    import numpy as np
    from faster_whisper import WhisperModel

    sys.path.insert(0, str(PLUGINS))
    from faster_whisper_plugin import FasterWhisperPlugin, token_cap

    asked: list[int | None] = []
    original = WhisperModel.generate_with_fallback

    def spy(self, encoder_output, prompt, tokenizer, options):  # type: ignore[no-untyped-def]
        asked.append(options.max_new_tokens)
        return original(self, encoder_output, prompt, tokenizer, options)

    monkeypatch.setattr(WhisperModel, "generate_with_fallback", spy)
    monkeypatch.delenv("PERCEPT_WHISPER_TOKENS_PER_S", raising=False)
    monkeypatch.setattr(FasterWhisperPlugin, "model", None)  # loaded again: the cap is read at load
    rng = np.random.default_rng(0)
    t = np.arange(int(2.5 * 16000)) / 16000
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
               + 0.05 * rng.standard_normal(len(t)))
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((samples * 20000).astype(np.int16).tobytes())
    FasterWhisperPlugin.process_audio(str(path))
    assert asked, "faster-whisper decoded no window"
    assert asked[0] == token_cap(2.5, 30.0) == 16 + 75
    assert all(a is not None and a <= token_cap(2.5, 30.0) for a in asked)  # type: ignore[operator]
    assert FasterWhisperPlugin.loaded_tokens_per_s == 30.0  # what the benchmark's cache is keyed on
    for value, want, loaded in (("10", token_cap(2.5, 10.0), 10.0), ("none", None, None)):
        asked.clear()
        monkeypatch.setenv("PERCEPT_WHISPER_TOKENS_PER_S", value)
        FasterWhisperPlugin.model = None
        FasterWhisperPlugin.process_audio(str(path))
        assert asked and asked[0] == want
        assert FasterWhisperPlugin.loaded_tokens_per_s == loaded
    monkeypatch.setenv("PERCEPT_WHISPER_TOKENS_PER_S", "10")  # the environment after the load
    assert FasterWhisperPlugin.loaded_tokens_per_s is None
