"""Speech recognition with OpenAI's own ``openai-whisper`` library (the ``[card]`` extra).

An alternative to the default faster-whisper plugin for those who want the reference
implementation. Weights are whisper's own checkpoint files (what ``whisper.load_model``
downloads into ``~/.cache/whisper``): put one in ``<models_path>/openai-whisper/<name>.pt``
(``PERCEPT_OPENAI_WHISPER_MODEL`` picks one, else the largest of large-v3, large-v2,
medium.en, small.en, base.en, tiny.en present). Nothing is downloaded. Without the library
this file registers nothing and says why (``SKIPPED``), so a default install has no such
deployment.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, ClassVar

from percept.errors import WeightsMissing
from percept.plugins import AudioChunk, AudioProcessingResult, WordTiming, register_plugin

logger = logging.getLogger(__name__)

SIZES = ("large-v3", "large-v2", "medium.en", "small.en", "base.en", "tiny.en")
SKIPPED = None if importlib.util.find_spec("whisper") else "openai-whisper is not installed (pip install -e '.[card]')"


def models_dir() -> Path:
    from percept.reading.forced import models_roots

    return models_roots()[0] / "openai-whisper"


def find_checkpoint(folder: Path) -> Path:
    """The checkpoint to load from ``folder``, or :class:`WeightsMissing` naming where it goes."""
    wanted = os.environ.get("PERCEPT_OPENAI_WHISPER_MODEL")
    for name in ([wanted] if wanted else []) + list(SIZES):
        if (folder / f"{name}.pt").is_file():
            return folder / f"{name}.pt"
    others = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    if others and not wanted:
        return others[0]
    raise WeightsMissing("openai-whisper", str(folder), hint="put a whisper checkpoint there, e.g. base.en.pt")


class OpenAIWhisperPlugin:
    name = "openai_whisper"
    languages = ["en"]
    description = "Whisper speech recognition (OpenAI's openai-whisper library) with word timestamps"
    device = "cpu"
    model: ClassVar[Any] = None
    english_only = False

    @staticmethod
    def load() -> None:
        checkpoint = find_checkpoint(models_dir())  # before the heavy import: a clear message first
        import whisper

        from percept.models.weights import pick_device

        device = pick_device()
        OpenAIWhisperPlugin.model = whisper.load_model(str(checkpoint), device=device)
        OpenAIWhisperPlugin.device = device
        OpenAIWhisperPlugin.english_only = not OpenAIWhisperPlugin.model.is_multilingual
        logger.info("openai-whisper %s loaded on %s", checkpoint.name, device)

    @staticmethod
    def process_audio(filename: str) -> AudioProcessingResult:
        if OpenAIWhisperPlugin.model is None:
            OpenAIWhisperPlugin.load()
        model = OpenAIWhisperPlugin.model
        # Verbatim reading, as the default plugin: greedy, no conditioning on earlier text.
        out = model.transcribe(filename, language="en", word_timestamps=True, condition_on_previous_text=False,
                               temperature=0.0, fp16=OpenAIWhisperPlugin.device == "cuda")
        chunks = []
        for seg in out.get("segments", []):
            words = [WordTiming(word=str(w["word"]), start=float(w["start"]), end=float(w["end"]),
                                probability=float(w.get("probability", 0.0)))
                     for w in seg.get("words") or []]
            chunks.append(AudioChunk(start=float(seg["start"]), end=float(seg["end"]), text=str(seg["text"]),
                                     words=words))
        return AudioProcessingResult(text="".join(c.text for c in chunks).strip(), segments=chunks)


if SKIPPED is None:
    register_plugin(OpenAIWhisperPlugin)
