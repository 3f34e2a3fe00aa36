"""Upload limits on the decoded size (docs/reading.md, "Upload limits"): an upload within the byte
and duration limits whose header declares a very high rate or many channels is refused with the
contract's 422 before it is decoded; PyAV's decoding stops past the decoded-bytes cap."""

from __future__ import annotations

import io
import struct
import subprocess
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydub import AudioSegment

from percept.api.app import create_app
from percept.errors import Unprocessable
from percept.reading import audio as module
from percept.reading.audio import convert_to_mp3, load_audio
from tests.unit.reading.test_api import build, login, upload

WIDE = r"The audio has 64 channels at 768000 Hz; at most 8 channels and 192000 Hz are accepted"


def wav(rate: int, channels: int, seconds: float, tag: int = 1, width: int = 2, trailer: bytes = b"") -> bytes:
    """A hand-made WAV of silence: format ``tag`` (1 PCM, 3 float), ``width`` bytes a sample,
    ``trailer`` chunks after the data chunk."""
    samples = bytes(int(rate * seconds) * channels * width)
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * width * channels, width * channels, 8 * width)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(samples)) + samples
    body += trailer
    return b"RIFF" + struct.pack("<I", len(body)) + body


def no_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"ffmpeg started: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def peak_of(data: bytes, limit: float = 1800) -> tuple[str, int]:
    """The 422's message and the peak of Python memory while refusing ``data``."""
    tracemalloc.start()
    try:
        with pytest.raises(Unprocessable) as info:
            convert_to_mp3(data, max_duration_s=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(info.value.detail), peak


def test_a_wav_header_of_64_channels_at_768_khz_is_refused_before_any_sample_is_copied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = wav(768_000, 64, 0.02)  # 20 ms (under any duration limit), 2 MB
    assert module.is_pcm16_wav(data)
    no_ffmpeg(monkeypatch)

    def no_segment(*args: object, **kwargs: object) -> None:
        raise AssertionError("samples copied before the shape check")

    monkeypatch.setattr(module.AudioSegment, "__init__", no_segment)
    message, peak = peak_of(data)
    assert message == WIDE
    assert peak < len(data) / 4, peak


@pytest.mark.parametrize("case", ["float samples (PyAV looks, ffmpeg's to decode)",
                                  "a chunk after the data (ffmpeg's, probed by PyAV)",
                                  "nothing probed (ffmpeg's own reading)"])
def test_wide_wavs_on_ffmpegs_path_are_refused(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if case.startswith("float"):
        data = wav(768_000, 64, 0.01, tag=3, width=4)
    else:
        data = wav(768_000, 64, 0.01, trailer=b"LIST" + struct.pack("<I", 4) + b"INFO")
    if case.startswith("nothing"):
        monkeypatch.setattr(module, "_probe_shape", lambda source: None, raising=False)
    else:
        no_ffmpeg(monkeypatch)  # refused before ffmpeg starts
    with pytest.raises(Unprocessable, match=WIDE):
        convert_to_mp3(data, max_duration_s=1800)


def flac(rate: int, channels: int, seconds: float) -> bytes:
    return subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", f"anullsrc=r={rate}:cl={channels}c",
         "-t", str(seconds), "-c:a", "flac", "-f", "flac", "-"], check=True, capture_output=True).stdout


def test_a_small_flac_declaring_384_khz_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 s of 8-channel 384 kHz silence: a few KB that decode to 18.4 MB of 16-bit samples (and
    # two copies of them before); refused from the stream's header, nothing decoded.
    data = flac(384_000, 8, 3)
    assert len(data) < 200_000
    no_ffmpeg(monkeypatch)
    module._DECODED.clear()
    message, peak = peak_of(data)
    assert message == "The audio has 8 channels at 384000 Hz; at most 8 channels and 192000 Hz are accepted"
    assert not module._DECODED
    assert peak < 2_000_000, peak


def test_pyav_decoding_stops_at_the_decoded_bytes_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stream that grows past what its header allows cannot be made by hand here: the cap is
    # lowered instead (to 8 kHz mono's worth) and a 16 kHz mono MP3 within the duration limit decoded.
    wave = (np.sin(np.arange(16000 * 8) / 5) * 3000).astype(np.int16)
    data = module.to_mp3(AudioSegment(wave.tobytes(), sample_width=2, frame_rate=16000, channels=1))
    monkeypatch.setattr(module, "DECODED_BYTES_PER_S", 8000 * 2, raising=False)
    module._DECODED.clear()
    with pytest.raises(Unprocessable, match=r"The audio decodes to over 0\.2 MB of samples"):
        convert_to_mp3(data, max_duration_s=10)
    cap = module.decoded_bytes_cap(10)
    assert list(module._DECODED) and module._DECODED[-1] * 2 <= cap + 2 * 1152 * 2  # stopped at the cap
    monkeypatch.undo()
    assert convert_to_mp3(data, max_duration_s=10)[1] == pytest.approx(8, abs=0.1)


@pytest.mark.parametrize("rate, channels, codec", [(8000, 1, "wav"), (48000, 2, "wav"), (44100, 2, "flac"),
                                                   (192_000, 8, "flac"), (192_000, 8, "wav")])
def test_recordings_up_to_the_widest_accepted_still_convert(rate: int, channels: int, codec: str) -> None:
    data = wav(rate, channels, 0.5) if codec == "wav" else flac(rate, channels, 0.5)
    mp3, duration = convert_to_mp3(data, max_duration_s=10)
    assert duration == pytest.approx(0.5, abs=0.03) and len(mp3) > 0
    here = load_audio(data, max_duration_s=10)
    assert (here.channels, here.frame_rate) == (channels, rate)
    by_ffmpeg = AudioSegment.from_file(io.BytesIO(data))
    assert here.raw_data == by_ffmpeg.raw_data


LARGE = r"The audio decodes to over 1\.9 MB of samples, the most accepted \(the duration limit at 48 kHz stereo\)"


@pytest.mark.parametrize("codec", ["wav", "flac", "float wav"])
def test_a_wide_recording_within_the_duration_limit_but_past_the_decoded_bytes_cap_is_refused(
        codec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 s of 8-channel 192 kHz (an accepted shape) under a 10 s limit: 6.1 MB of 16-bit samples,
    # past the limit's worth of 48 kHz stereo (1.9 MB). The 16-bit WAV is refused from its header
    # before a sample is copied, the FLAC while PyAV decodes, the float WAV by ffmpeg's output
    # (bounded a little past the cap), never accepted cut short.
    if codec == "wav":
        data = wav(192_000, 8, 2)
    elif codec == "flac":
        data = flac(192_000, 8, 2)
    else:
        data = wav(192_000, 8, 2, tag=3, width=4)
    if codec != "float wav":
        no_ffmpeg(monkeypatch)
    with pytest.raises(Unprocessable, match=LARGE):
        convert_to_mp3(data, max_duration_s=10)
    with pytest.raises(Unprocessable, match=LARGE):
        load_audio(data, max_duration_s=10)


def test_the_upload_route_answers_the_contracts_422(tmp_path: Path) -> None:
    with TestClient(create_app(build(tmp_path)[0])) as client:
        answer = refused_upload(client)
    assert answer.status_code == 422
    assert answer.json() == {
        "detail": "The audio has 8 channels at 384000 Hz; at most 8 channels and 192000 Hz are accepted"}


def refused_upload(client: TestClient) -> Any:
    ann = login(client, "ann")
    return upload(client, ann, "audio", flac(384_000, 8, 3), "audio/flac")
