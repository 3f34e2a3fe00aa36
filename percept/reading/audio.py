"""Audio algorithms of the reading contract (docs/reading.md) and the upload conversion (pydub over
ffmpeg; PyAV in-process for 16-bit WAVs, MP3s and 16-bit codecs, all bounded by the duration limit).

``split_audio`` and ``split_silence`` return the ids of the cut files like the original;
where the files go is the caller's choice (``save(mp3_bytes) -> id``), so the functions
stay free of any store.
"""

from __future__ import annotations

import io
import logging
import math
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydub import AudioSegment
from pydub.audio_segment import extract_wav_headers
from pydub.exceptions import CouldntEncodeError
from pydub.silence import detect_nonsilent

from percept.errors import Unprocessable

logger = logging.getLogger(__name__)

Save = Callable[[bytes], str]
BUFFER_MS = 50
INT_MAX = 2**31 - 1
LIMIT_MARGIN_S = 0.01  # decoding stops this far past the limit: surely too long, whatever the rounding
# The widest upload accepted (422 past it): 192 kHz, the highest rate recorders commonly offer, and
# 8 channels (7.1). What an upload may decode to is smaller: the duration limit's worth of 48 kHz
# stereo 16-bit samples (DECODED_BYTES_PER_S; 345 MB at the default 1800 s), whatever its header
# says, so a wide upload is accepted only while it is short enough (a 422 past it).
MAX_RATE_HZ = 192_000
MAX_CHANNELS = 8
DECODED_BYTES_PER_S = 48_000 * 2 * 2


def too_long(duration: float | None, limit: float) -> Unprocessable:
    """The contract's 422 for audio past the limit; ``duration`` None when decoding stopped early."""
    told = f"{duration:.0f} s" if duration is not None else f"over {limit:.0f} s"
    return Unprocessable(f"The audio is too long: {told}, the limit is {limit:.0f} s")


def too_wide(channels: int, rate: int) -> Unprocessable:
    """The contract's 422 for audio of more channels or a higher rate than accepted."""
    return Unprocessable(f"The audio has {channels} channels at {rate} Hz; at most {MAX_CHANNELS} channels "
                         f"and {MAX_RATE_HZ} Hz are accepted")


def check_shape(channels: int, rate: int) -> None:
    """422 (:func:`too_wide`) past ``MAX_CHANNELS`` or ``MAX_RATE_HZ``."""
    if channels > MAX_CHANNELS or rate > MAX_RATE_HZ:
        logger.info("audio refused before decoding: %d channels at %d Hz", channels, rate)
        raise too_wide(channels, rate)


def decoded_bytes_cap(max_duration_s: float) -> int:
    """The most decoded bytes an upload may come to: the duration limit (+ the margin) of 48 kHz
    stereo, 16-bit (``DECODED_BYTES_PER_S``)."""
    return int((max_duration_s + LIMIT_MARGIN_S) * DECODED_BYTES_PER_S)


def too_large(cap: int) -> Unprocessable:
    """The contract's 422 for an upload whose decoding passed :func:`decoded_bytes_cap`."""
    return Unprocessable(f"The audio decodes to over {cap / 1e6:.1f} MB of samples, the most accepted "
                         f"(the duration limit at 48 kHz stereo): send it shorter, with fewer channels "
                         f"or at a lower rate")


def seconds_within_cap(channels: int, rate: int, max_duration_s: float) -> float:
    """How far ffmpeg decodes ``channels`` x ``rate`` 16-bit samples: a little past what fits
    :func:`decoded_bytes_cap` (so that an upload longer than that passes the cap: a 422, never a
    silent cut), and no further than a little past the duration limit."""
    fits = decoded_bytes_cap(max_duration_s) / (2 * max(1, channels) * max(1, rate))
    return min(max_duration_s, fits) + LIMIT_MARGIN_S


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


def load_audio(source: str | Path | AudioSegment | bytes, mp3: bool = False,
               max_duration_s: float | None = None) -> AudioSegment:
    """An AudioSegment from a path, bytes or an AudioSegment; 422 when undecodable.

    Shortcuts that need no ffmpeg process (pydub runs ffprobe, then ffmpeg, for every file: about
    0.15 s a file on this machine): a 16-bit PCM WAV given as bytes is read in-process (ffmpeg
    would copy its samples: the same samples); other bytes are decoded by PyAV when it finds an
    MP3 or a codec of 16-bit samples (FLAC, PCM, ADPCM...), to 16-bit samples as pydub's ffmpeg
    gives them; and ``mp3=True`` (a stored recording, always the MP3 of :func:`convert_to_mp3`) is
    decoded by PyAV. Not always the same samples as ffmpeg's: PyAV bundles FFmpeg 8.1, the system's
    ffmpeg is 5.1, and their MP3 decoders agree exactly at 16 kHz and the other rates checked
    (8-48 kHz) except 24 kHz, where they differ within the decoder's rounding (up to 194/32768
    mono, 3385/32768 stereo; equally close to the input). PCM and FLAC are lossless: the same
    either way. Each shortcut falls back to pydub's ffmpeg when it fails; other codecs (Vorbis,
    Opus, AAC, wider samples) stay ffmpeg's, which keeps their sample width.

    With ``max_duration_s`` (uploads), decoding stops a little past the limit with the contract's
    422 "The audio is too long": never more than the limit's worth of samples is held (a WAV's
    duration is read from its header first; ffmpeg gets ``-t``), whatever the upload decodes to.
    Uploads of more than ``MAX_CHANNELS`` channels or a rate past ``MAX_RATE_HZ`` get a 422
    (:func:`too_wide`) from their header (the WAV header; the stream PyAV opens, for ffmpeg's
    inputs too) before any sample is decoded, and PyAV's decoding stops past
    :func:`decoded_bytes_cap` (a 422 as well) should the stream grow past its header.
    """
    if isinstance(source, AudioSegment):
        return source
    try:
        if isinstance(source, bytes):
            if is_pcm16_wav(source):
                try:
                    return _read_pcm16_wav(source, max_duration_s)
                except _OddHeader:  # ffmpeg decides
                    logger.debug("in-process WAV read failed, decoding with ffmpeg")
                probe = True
            else:
                try:
                    return _decode_pyav(source, max_duration_s, only_16bit=True)
                except _NotHere as exc:
                    logger.debug("in-process decoding skipped (%s), decoding with ffmpeg", exc)
                    probe = not exc.shape_checked
            return _from_file_bounded(io.BytesIO(source), max_duration_s, probe)
        if mp3:
            try:
                return _decode_pyav(str(source), max_duration_s)
            except _NotHere:  # not an MP3 after all: ffmpeg probes it
                logger.debug("%s: in-process decoding failed, decoding with ffmpeg", source)
        return _from_file_bounded(str(source), max_duration_s)
    except Unprocessable:
        raise
    except Exception as exc:  # ffmpeg says why in stderr; the client only needs to know it failed
        logger.info("audio decode failed: %s", str(exc)[-300:])
        raise Unprocessable("Could not decode the audio file") from None


class _OddHeader(ValueError):
    """A WAV header the in-process read leaves to ffmpeg."""


class _NotHere(Exception):
    """PyAV cannot (or should not) decode this input: ffmpeg does. ``shape_checked``: the
    stream's channels and rate passed :func:`check_shape` already."""

    def __init__(self, message: str, shape_checked: bool = False) -> None:
        super().__init__(message)
        self.shape_checked = shape_checked


def _probe_shape(source: str | io.BytesIO) -> tuple[int, int] | None:
    """Channels and rate of the first audio stream as PyAV opens it (headers and the first
    packets, not the whole decoding); None when PyAV cannot open it (ffmpeg then decides)."""
    import av

    try:
        with av.open(source, mode="r", metadata_errors="ignore") as container:
            context = container.streams.audio[0].codec_context
            return int(context.channels), int(context.sample_rate)
    except Exception as exc:
        logger.debug("probe before ffmpeg failed: %s", exc)
        return None
    finally:
        if isinstance(source, io.BytesIO):
            source.seek(0)


def _from_file_bounded(source: str | io.BytesIO, max_duration_s: float | None,
                       probe: bool = True) -> AudioSegment:
    """pydub's ffmpeg decoding; with a limit, ffmpeg stops a little past it (``-t``) and past the
    limit is a 422, as is a stream wider than accepted (:func:`check_shape`, from PyAV's look at
    the header when ``probe``, before ffmpeg starts; with ``-t`` that bounds what ffmpeg outputs)."""
    if max_duration_s is None:
        return AudioSegment.from_file(source)
    shape = _probe_shape(source) if probe else None
    seconds = max_duration_s + LIMIT_MARGIN_S
    if shape is not None:
        check_shape(*shape)
        seconds = seconds_within_cap(*shape, max_duration_s)  # ffmpeg's output bounded by the cap too
    audio = AudioSegment.from_file(source, duration=seconds)
    check_shape(audio.channels, audio.frame_rate)  # ffmpeg's reading, where PyAV could not tell
    if len(audio) / 1000.0 > max_duration_s:
        raise too_long(None, max_duration_s)
    if len(audio.raw_data) // audio.sample_width * 2 > decoded_bytes_cap(max_duration_s):
        raise too_large(decoded_bytes_cap(max_duration_s))
    return audio


def _read_pcm16_wav(data: bytes, max_duration_s: float | None = None) -> AudioSegment:
    """A 16-bit PCM WAV's samples read in-process, as ffmpeg gives them: whole frames only (a
    file cut inside a frame loses the part). Raises ``_OddHeader`` (ffmpeg then decides) for a
    header without a sample rate or channels or with a rate past ffmpeg's int (ffmpeg refuses it:
    422, not a division by zero or a header the MP3 encoding cannot write later) and for a data
    chunk without a whole frame (a streamed WAV's data size 0: ffmpeg reads on to the end).
    Past ``max_duration_s`` (the duration the header and the data present give) a 422, before any
    sample is copied; with a limit, so is a header wider than accepted (:func:`check_shape`)."""
    try:
        headers = extract_wav_headers(data)
        fmt = next(h for h in headers if h.id == b"fmt ")
        channels = int.from_bytes(data[fmt.position + 10:fmt.position + 12], "little")
        rate = int.from_bytes(data[fmt.position + 12:fmt.position + 16], "little")
        chunk = headers[-1]
        if chunk.id != b"data":
            raise _OddHeader("no data chunk last")
    except (StopIteration, IndexError, ValueError) as exc:
        raise _OddHeader(str(exc)) from None
    if not 0 < rate <= INT_MAX or channels <= 0:  # ffmpeg's rate is an int
        raise _OddHeader("no sample rate (or one past ffmpeg's) or no channels")
    if max_duration_s is not None:
        check_shape(channels, rate)
    frames = min(chunk.size, len(data) - chunk.position - 8) // (2 * channels)
    if frames <= 0:
        raise _OddHeader("no whole frame in the data chunk")
    if max_duration_s is not None and round(1000 * frames / rate) / 1000.0 > max_duration_s:
        raise too_long(round(1000 * frames / rate) / 1000.0, max_duration_s)
    if max_duration_s is not None and frames * 2 * channels > decoded_bytes_cap(max_duration_s):
        logger.info("audio refused before copying: %d frames of %d channels at %d Hz", frames, channels, rate)
        raise too_large(decoded_bytes_cap(max_duration_s))
    # The samples straight from the data chunk the headers above found (pydub's WAV reader would
    # parse the headers again and copy the samples once more for a file cut inside a frame).
    start = chunk.position + 8
    return AudioSegment(data=data[start:start + frames * 2 * channels], sample_width=2, frame_rate=rate,
                        channels=channels)


def _decode_pyav(source: str | bytes, max_duration_s: float | None = None,
                 only_16bit: bool = False) -> AudioSegment:
    """An audio file's first audio stream as 16-bit samples at its own rate and channels (PyAV,
    in-process, streaming), as pydub's ``ffmpeg -i path -acodec pcm_s16le -f wav -`` gives them
    within MP3 decoder rounding (identical at 16 kHz; see :func:`load_audio`). ``only_16bit``: only MP3s and codecs of 16-bit samples
    (pydub keeps wider samples of other codecs). Past ``max_duration_s`` (+ 10 ms) decoding stops
    with the 422; ``_NotHere`` when PyAV cannot decode it (ffmpeg then decides). With a limit, a
    stream wider than accepted is a 422 before decoding (:func:`check_shape`, the stream's
    channels and rate), and decoding stops past :func:`decoded_bytes_cap` (a 422)."""
    import av

    limit = None if max_duration_s is None else max_duration_s + LIMIT_MARGIN_S
    cap = None if max_duration_s is None else decoded_bytes_cap(max_duration_s)
    checked = False
    buffer = io.BytesIO()
    frames = 0
    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else source, mode="r",
                     metadata_errors="ignore") as container:
            context = container.streams.audio[0].codec_context
            if max_duration_s is not None:
                check_shape(context.channels, context.sample_rate)
                checked = True
            if only_16bit and not (context.name.startswith("mp3") or context.format.name in ("s16", "s16p")):
                raise _NotHere(f"{context.name} ({context.format.name} samples)", shape_checked=checked)
            rate, layout, channels = context.sample_rate, context.layout.name, context.channels
            resampler = av.audio.resampler.AudioResampler(format="s16", layout=layout, rate=rate)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    frames += out.samples
                    buffer.write(out.to_ndarray().tobytes())
                if limit is not None and frames > limit * rate:
                    _DECODED.append(frames)
                    raise too_long(None, max_duration_s)  # type: ignore[arg-type]
                if cap is not None and buffer.tell() > cap:
                    _DECODED.append(frames)
                    raise too_large(cap)
            for out in resampler.resample(None):
                frames += out.samples
                buffer.write(out.to_ndarray().tobytes())
    except (Unprocessable, _NotHere):
        raise
    except Exception as exc:
        raise _NotHere(f"{exc.__class__.__name__}: {exc}") from None
    _DECODED.append(frames)
    if not frames:
        raise _NotHere("no audio frames")
    return AudioSegment(data=buffer.getvalue(), sample_width=2, frame_rate=rate, channels=channels)


_DECODED: deque[int] = deque(maxlen=8)  # frames the last PyAV decodes ended with (for the tests)


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


def decode_samples(source: str, rate: int = 16000) -> Any:
    """16 kHz mono float32 samples of an audio file: faster-whisper's ``decode_audio`` (the same
    PyAV decoding and resampling, so the same samples) without its full garbage collection
    after every file. That ``gc.collect()`` frees the resampler's reference cycles at once; in a
    served process with a large heap it cost 0.13 s a file (a quarter of the decoding of a
    5 s segment), twice per segment (the speech plugin and the aligner). Only the young
    generations are collected here, where those cycles are."""
    import gc

    import av
    import numpy as np
    from faster_whisper.audio import _group_frames, _ignore_invalid_frames, _resample_frames

    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=rate)
    raw = io.BytesIO()
    dtype = None
    with av.open(source, mode="r", metadata_errors="ignore") as container:
        frames = _resample_frames(_group_frames(_ignore_invalid_frames(container.decode(audio=0)), 500000), resampler)
        for frame in frames:
            array = frame.to_ndarray()
            dtype = array.dtype
            raw.write(array)
    del resampler
    gc.collect(1)
    return np.frombuffer(raw.getbuffer(), dtype=dtype).astype(np.float32) / 32768.0


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
    """Decode any audio ffmpeg knows, check its duration, return MP3 bytes and seconds. The
    decoding itself stops a little past ``max_duration_s`` (422): an upload that decodes to far
    more than its size never comes whole into memory."""
    audio = load_audio(data, max_duration_s=max_duration_s)
    duration = len(audio) / 1000.0
    if duration <= 0:
        raise Unprocessable("The audio file contains no sound")
    if duration > max_duration_s:
        raise too_long(duration, max_duration_s)
    try:
        return to_mp3(audio), duration
    except CouldntEncodeError as exc:  # decoded, but ffmpeg cannot make an MP3 of it (a rate past its resampler)
        logger.info("audio encode failed: %s", str(exc)[-300:])
        raise Unprocessable("Could not convert the audio file") from None
