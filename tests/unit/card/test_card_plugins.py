"""The ``[card]`` extra's plugins (openai-whisper, EasyOCR): discovery with and without the
library, the weights check, and openai-whisper's real loader on a tiny checkpoint built here."""

from __future__ import annotations

import importlib.util
import math
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from percept.errors import WeightsMissing
from percept.plugins import AudioProcessingResult, discover_plugins, import_plugin_file

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
CARD = {"openai_whisper_plugin.py": ("openai_whisper", "whisper"), "easyocr_plugin.py": ("easyocr", "easyocr")}


def module_of(file: str):  # type: ignore[no-untyped-def]
    import sys

    import_plugin_file(PLUGINS / file)
    return sys.modules[f"percept_plugins.{Path(file).stem}"]


@pytest.mark.parametrize("file", sorted(CARD))
def test_card_plugin_is_served_only_with_its_library(file: str, tmp_path: Path) -> None:
    shutil.copy(PLUGINS / file, tmp_path / file)
    found = discover_plugins(tmp_path)
    name, library = CARD[file]
    assert found.errors == []  # a missing optional library is not an error
    if importlib.util.find_spec(library):
        assert list(found.plugins) == [name]
    else:
        assert found.plugins == {} and "[card]" in module_of(file).SKIPPED


def test_a_file_that_registers_nothing_without_saying_why_is_still_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty_plugin.py").write_text("X = 1\n")
    (tmp_path / "optional_plugin.py").write_text("SKIPPED = 'libfoo is not installed'\n")
    found = discover_plugins(tmp_path)
    assert [e.file for e in found.errors] == ["empty_plugin.py"]


def test_easyocr_names_the_missing_weights_and_converts_boxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERCEPT_MODELS_PATH", str(tmp_path))
    mod = module_of("easyocr_plugin.py")
    with pytest.raises(WeightsMissing) as err:
        mod.EasyOcrPlugin.load()
    assert str(tmp_path / "easyocr") in str(err.value.detail)
    assert "craft_mlt_25k.pth" in str(err.value.detail) and "english_g2.pth" in str(err.value.detail)
    box = mod.to_box([[10, 5], [50.4, 5], [50, 20], [10, 20.6]], "cat", 0.9)
    assert (box.coordinates.left_top.x, box.coordinates.right_top.x, box.coordinates.left_bottom.y) == (10, 50, 21)
    assert box.text == "cat" and box.confidence == pytest.approx(0.9)


def _tone(path: Path, seconds: float = 2.0, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    signal = (0.3 * np.sin(2 * math.pi * 220 * t) * (np.sin(2 * math.pi * 2 * t) > 0)).astype(np.float32)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((signal * 32767).astype("<i2").tobytes())


def test_openai_whisper_loads_a_checkpoint_from_the_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERCEPT_MODELS_PATH", str(tmp_path))
    mod = module_of("openai_whisper_plugin.py")
    with pytest.raises(WeightsMissing) as err:
        mod.OpenAIWhisperPlugin.load()
    assert str(tmp_path / "openai-whisper") in str(err.value.detail)
    pytest.importorskip("whisper")
    if shutil.which("ffmpeg") is None:
        pytest.skip("openai-whisper decodes audio with ffmpeg")
    from dataclasses import asdict

    import torch
    from whisper.model import ModelDimensions, Whisper

    # A tiny random English-only Whisper in the checkpoint format whisper.load_model reads.
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=1,
                           n_vocab=51864, n_text_ctx=32, n_text_state=32, n_text_head=2, n_text_layer=1)
    torch.manual_seed(0)
    folder = tmp_path / "openai-whisper"
    folder.mkdir()
    torch.save({"dims": asdict(dims), "model_state_dict": Whisper(dims).state_dict()}, folder / "tiny.en.pt")

    mod.OpenAIWhisperPlugin.load()
    model = mod.OpenAIWhisperPlugin.model
    assert model.dims.n_text_state == 32 and not model.is_multilingual
    audio = tmp_path / "tone.wav"
    _tone(audio)
    result = mod.OpenAIWhisperPlugin.process_audio(str(audio))
    assert isinstance(result, AudioProcessingResult)
    for seg in result.segments:  # random weights say nonsense, but in the contract's shape and times
        assert 0 <= seg.start <= seg.end
        assert all(w.start <= w.end for w in seg.words)
