"""Audio algorithms of the reading contract (docs/reading.md) and the upload conversion (pydub over ffmpeg).

``split_audio`` and ``split_silence`` return the ids of the cut files like the original;
where the files go is the caller's choice (``save(mp3_bytes) -> id``), so the functions
stay free of any store.
"""

from __future__ import annotations

import io
import logging
import math
import uuid
from collections.abc import Callable
from pathlib import Path

from pydub import AudioSegment
from pydub.silence import detect_nonsilent

from percept.errors import Unprocessable

logger = logging.getLogger(__name__)

Save = Callable[[bytes], str]
BUFFER_MS = 50


def dbfs_to_fraction(dbfs: float) -> float:
    """Fraction of full scale (0..1 for dBFS <= 0) of a level in dBFS."""
    return float(10.0 ** (dbfs / 20.0))


def fraction_to_dbfs(fraction: float) -> float:
    """Level in dBFS of a fraction of full scale; ``-inf`` for 0 or less."""
    if fraction <= 0:
        return float("-inf")
    return float(20.0 * math.log10(fraction))


def load_audio(source: str | Path | AudioSegment | bytes) -> AudioSegment:
    """An AudioSegment from a path, bytes or an AudioSegment; 422 when undecodable."""
    if isinstance(source, AudioSegment):
        return source
    try:
        if isinstance(source, bytes):
            return AudioSegment.from_file(io.BytesIO(source))
        return AudioSegment.from_file(str(source))
    except Exception as exc:  # ffmpeg says why in stderr; the client only needs to know it failed
        logger.info("audio decode failed: %s", str(exc)[-300:])
        raise Unprocessable("Could not decode the audio file") from None


def to_mp3(audio: AudioSegment, bitrate: str = "64k") -> bytes:
    """MP3 bytes of an AudioSegment."""
    buffer = io.BytesIO()
    audio.export(buffer, format="mp3", bitrate=bitrate)
    return buffer.getvalue()


def _default_save(directory: Path) -> Save:
    def save(data: bytes) -> str:
        file_id = str(uuid.uuid4())
        (directory / f"{file_id}.mp3").write_bytes(data)
        return file_id

    return save


def split_audio(
    source: str | Path | AudioSegment,
    intervals: list[tuple[float, float]],
    save: Save | None = None,
) -> list[str]:
    """Cut ``source`` at the ``(start, end)`` intervals (seconds); ids of the MP3 pieces in order.

    ``save`` stores one piece and returns its id (default: ``<uuid>.mp3`` beside the file).
    Intervals are clipped to the audio; an empty interval gives an empty (silent) piece.
    """
    audio = load_audio(source)
    if save is None:
        directory = Path(source).parent if isinstance(source, (str, Path)) else Path.cwd()
        save = _default_save(directory)
    length = len(audio)
    ids: list[str] = []
    for start, end in intervals:
        a = max(0, min(length, int(round(start * 1000))))
        b = max(a, min(length, int(round(end * 1000))))
        ids.append(save(to_mp3(audio[a:b])))
    return ids


def silence_intervals(
    audio: AudioSegment, max_len_s: float, silence_percent: float, min_silence_ms: int = 250
) -> list[tuple[float, float]]:
    """Where to cut: pieces of at most ``max_len_s`` seconds, cut only in silences.

    "Silent" is below ``silence_percent`` % of the loudest sample of the recording. Each
    piece is widened by 50 ms on both sides (within the recording). A stretch of sound
    longer than ``max_len_s`` without any silence is cut hard (the only way to keep the
    limit). A recording without any sound gives no piece.
    """
    length = len(audio)
    if length == 0 or audio.max_dBFS == float("-inf"):
        return []
    threshold = audio.max_dBFS + fraction_to_dbfs(max(1e-6, silence_percent / 100.0))
    voiced = detect_nonsilent(audio, min_silence_len=min_silence_ms, silence_thresh=threshold, seek_step=10)
    limit = max(1, int(max_len_s * 1000))
    pieces: list[list[int]] = []
    for start, end in voiced:
        while end - start > limit - 2 * BUFFER_MS and limit > 2 * BUFFER_MS:
            step = limit - 2 * BUFFER_MS
            pieces.append([start, start + step])
            start += step
        if pieces and end - pieces[-1][0] <= limit - 2 * BUFFER_MS:
            pieces[-1][1] = end
        else:
            pieces.append([start, end])
    return [
        (max(0, a - BUFFER_MS) / 1000.0, min(length, b + BUFFER_MS) / 1000.0) for a, b in pieces
    ]


def split_silence(
    source: str | Path | AudioSegment,
    max_len_s: float = 30.0,
    silence_percent: float = 5.0,
    save: Save | None = None,
) -> tuple[list[str], list[tuple[float, float]]]:
    """Cut a recording in silences into pieces of at most ``max_len_s`` seconds.

    Returns the ids of the MP3 pieces and their ``(start, end)`` intervals in seconds.
    """
    audio = load_audio(source)
    if save is None:
        save = _default_save(Path(source).parent if isinstance(source, (str, Path)) else Path.cwd())
    intervals = silence_intervals(audio, max_len_s, silence_percent)
    return split_audio(audio, intervals, save), intervals


def convert_to_mp3(data: bytes, max_duration_s: float) -> tuple[bytes, float]:
    """Decode any audio ffmpeg knows, check its duration, return MP3 bytes and seconds."""
    audio = load_audio(data)
    duration = len(audio) / 1000.0
    if duration <= 0:
        raise Unprocessable("The audio file contains no sound")
    if duration > max_duration_s:
        raise Unprocessable(f"The audio is too long: {duration:.0f} s, the limit is {max_duration_s:.0f} s")
    return to_mp3(audio), duration
