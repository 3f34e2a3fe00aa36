"""Audio algorithms of the reading contract (docs/reading.md) and the upload conversion (pydub over
ffmpeg; PyAV in-process where it gives the same samples).

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
from pydub.exceptions import CouldntEncodeError
from pydub.silence import detect_nonsilent

from percept.errors import Unprocessable

logger = logging.getLogger(__name__)

Save = Callable[[bytes], str]
BUFFER_MS = 50
INT_MAX = 2**31 - 1


def dbfs_to_fraction(dbfs: float) -> float:
    """Fraction of full scale (0..1 for dBFS <= 0) of a level in dBFS."""
    return float(10.0 ** (dbfs / 20.0))


def fraction_to_dbfs(fraction: float) -> float:
    """Level in dBFS of a fraction of full scale; ``-inf`` for 0 or less."""
    if fraction <= 0:
        return float("-inf")
    return float(20.0 * math.log10(fraction))


def is_pcm16_wav(data: bytes) -> bool:
    """Whether ``data`` is a plain RIFF/WAVE file of 16-bit integer PCM (format tag 1 in its
    first chunk, the ``fmt `` chunk right after the header, as writers put it)."""
    return (len(data) >= 44 and data[:4] == b"RIFF" and data[8:12] == b"WAVE" and data[12:16] == b"fmt "
            and int.from_bytes(data[20:22], "little") == 1 and int.from_bytes(data[34:36], "little") == 16)


def load_audio(source: str | Path | AudioSegment | bytes, mp3: bool = False) -> AudioSegment:
    """An AudioSegment from a path, bytes or an AudioSegment; 422 when undecodable.

    Two shortcuts give the same samples without starting ffmpeg (pydub runs ffprobe, then
    ffmpeg, for every file: about 0.15 s a file on this machine): a 16-bit PCM WAV given as
    bytes is read in-process (ffmpeg would copy its samples), and ``mp3=True`` (a stored
    recording, always the MP3 of :func:`convert_to_mp3`) is decoded in-process by PyAV with
    ffmpeg's default MP3 decoder (``mp3float``) to 16-bit samples, as pydub's ffmpeg does. Either
    falls back to pydub when it fails.
    """
    if isinstance(source, AudioSegment):
        return source
    try:
        if isinstance(source, bytes):
            if is_pcm16_wav(source):
                try:
                    return _read_pcm16_wav(source)
                except Exception:  # an odd header: ffmpeg decides
                    logger.debug("in-process WAV read failed, decoding with ffmpeg")
            return AudioSegment.from_file(io.BytesIO(source))
        if mp3:
            try:
                return _decode_pyav(str(source))
            except Exception:  # not an MP3 after all: ffmpeg probes it
                logger.debug("%s: in-process decoding failed, decoding with ffmpeg", source)
        return AudioSegment.from_file(str(source))
    except Exception as exc:  # ffmpeg says why in stderr; the client only needs to know it failed
        logger.info("audio decode failed: %s", str(exc)[-300:])
        raise Unprocessable("Could not decode the audio file") from None


def _read_pcm16_wav(data: bytes) -> AudioSegment:
    """A 16-bit PCM WAV's samples read in-process, as ffmpeg gives them: whole frames only (a
    file cut inside a frame loses the part). Raises (ffmpeg then decides) for a header without a
    sample rate or channels or with a rate past ffmpeg's int (ffmpeg refuses it: 422, not a
    division by zero or a header the MP3 encoding cannot write later) and for a data
    chunk without a whole frame (a streamed WAV's data size 0: ffmpeg reads on to the end)."""
    audio = AudioSegment._from_safe_wav(io.BytesIO(data))
    if not 0 < audio.frame_rate <= INT_MAX or audio.channels <= 0:  # ffmpeg's rate is an int
        raise ValueError("no sample rate (or one past ffmpeg's) or no channels")
    whole = len(audio.raw_data) - len(audio.raw_data) % audio.frame_width
    if whole <= 0:
        raise ValueError("no whole frame in the data chunk")
    return audio if whole == len(audio.raw_data) else audio._spawn(audio.raw_data[:whole])


def _decode_pyav(path: str) -> AudioSegment:
    """An audio file's first audio stream as 16-bit samples at its own rate and channels (PyAV,
    in-process): what pydub's ``ffmpeg -i path -acodec pcm_s16le -f wav -`` gives."""
    import av

    chunks: list[bytes] = []
    with av.open(path, mode="r", metadata_errors="ignore") as container:
        context = container.streams.audio[0].codec_context
        rate, layout, channels = context.sample_rate, context.layout.name, context.channels
        resampler = av.audio.resampler.AudioResampler(format="s16", layout=layout, rate=rate)
        for frame in container.decode(audio=0):
            chunks.extend(out.to_ndarray().tobytes() for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().tobytes() for out in resampler.resample(None))
    if not chunks:
        raise ValueError(f"{path}: no audio frames")
    return AudioSegment(data=b"".join(chunks), sample_width=2, frame_rate=rate, channels=channels)


def _encode_pyav(audio: AudioSegment, bitrate: str) -> bytes:
    """MP3 bytes of 16-bit mono or stereo samples by PyAV's libmp3lame, in-process: the same
    MP3 frames as ``ffmpeg -i audio.wav -b:a <bitrate> -f mp3`` (pydub's export)."""
    import av
    import numpy as np

    if audio.sample_width != 2 or audio.channels not in (1, 2):
        raise ValueError("only 16-bit mono or stereo samples")
    rate = int(bitrate[:-1]) * 1000 if bitrate.lower().endswith("k") else int(bitrate)
    layout = "mono" if audio.channels == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=audio.frame_rate)
        stream.bit_rate = rate
        stream.layout = layout
        samples = np.frombuffer(audio.raw_data, dtype=np.int16).reshape(1, -1)
        if samples.size:
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout=layout)
            frame.sample_rate = audio.frame_rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def to_mp3(audio: AudioSegment, bitrate: str = "64k") -> bytes:
    """MP3 bytes of an AudioSegment: in-process (PyAV) for 16-bit mono or stereo samples, else
    (or when that fails) pydub's export through ffmpeg."""
    try:
        return _encode_pyav(audio, bitrate)
    except Exception as exc:
        logger.debug("in-process MP3 encoding skipped (%s), encoding with ffmpeg", exc)
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
    try:
        return to_mp3(audio), duration
    except CouldntEncodeError as exc:  # decoded, but ffmpeg cannot make an MP3 of it (a rate past its resampler)
        logger.info("audio encode failed: %s", str(exc)[-300:])
        raise Unprocessable("Could not convert the audio file") from None
