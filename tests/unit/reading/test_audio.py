"""Audio algorithms: dBFS conversions, silence splitting, cutting, conversion limits."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydub import AudioSegment
from pydub.generators import Sine

from percept.errors import Unprocessable
from percept.reading.audio import (
    convert_to_mp3,
    dbfs_to_fraction,
    fraction_to_dbfs,
    silence_intervals,
    split_audio,
    split_silence,
)


def tone(ms: int) -> AudioSegment:
    return Sine(440).to_audio_segment(duration=ms).apply_gain(-6)


def silence(ms: int) -> AudioSegment:
    return AudioSegment.silent(duration=ms)


@given(st.floats(min_value=-120, max_value=0))
def test_dbfs_round_trip(db: float) -> None:
    assert math.isclose(fraction_to_dbfs(dbfs_to_fraction(db)), db, abs_tol=1e-9)


def test_dbfs_known_values() -> None:
    assert dbfs_to_fraction(0) == 1.0
    assert math.isclose(dbfs_to_fraction(-20), 0.1)
    assert fraction_to_dbfs(0) == float("-inf")
    assert math.isclose(fraction_to_dbfs(0.5), -6.0206, abs_tol=1e-3)


def test_silence_split_respects_max_length_and_buffers() -> None:
    audio = silence(500) + tone(1000) + silence(600) + tone(1000) + silence(600) + tone(1000) + silence(500)
    pieces = silence_intervals(audio, max_len_s=2.8, silence_percent=5)
    flat = [t for piece in pieces for t in piece]
    assert flat == pytest.approx([0.45, 3.15, 3.65, 4.75], abs=0.03)  # 50 ms buffers around sound
    assert len(silence_intervals(audio, max_len_s=2.5, silence_percent=5)) == 3
    one = silence_intervals(audio, max_len_s=30, silence_percent=5)
    assert len(one) == 1 and list(one[0]) == pytest.approx([0.45, 4.75], abs=0.03)


def test_long_sound_without_silence_is_cut_hard() -> None:
    pieces = silence_intervals(tone(5000), max_len_s=2, silence_percent=5)
    assert len(pieces) == 3 and all(b - a <= 2.0 + 1e-6 for a, b in pieces)


def test_silent_or_empty_audio_gives_no_piece() -> None:
    assert silence_intervals(silence(1000), 30, 5) == []
    assert silence_intervals(AudioSegment.empty(), 30, 5) == []


def test_split_functions_store_pieces(tmp_path: Path) -> None:
    source = tmp_path / "reading.wav"
    (silence(300) + tone(800) + silence(700) + tone(800)).export(source, format="wav")
    ids, intervals = split_silence(source, max_len_s=1.2, silence_percent=5)
    assert len(ids) == len(intervals) == 2
    assert all((tmp_path / f"{i}.mp3").is_file() for i in ids)
    saved: list[bytes] = []
    names = split_audio(source, [(0.0, 0.5), (0.5, 9.0)], save=lambda b: saved.append(b) or f"p{len(saved)}")
    assert names == ["p1", "p2"]
    assert len(AudioSegment.from_file(io.BytesIO(saved[1]), format="mp3")) == pytest.approx(2100, abs=80)


def test_conversion_limits_and_garbage() -> None:
    wav = io.BytesIO()
    tone(1500).export(wav, format="wav")
    mp3, duration = convert_to_mp3(wav.getvalue(), max_duration_s=10)
    assert mp3[:3] == b"ID3" or mp3[:2] == b"\xff\xfb" or mp3[0] == 0xFF
    assert duration == pytest.approx(1.5, abs=0.01)
    with pytest.raises(Unprocessable, match="too long"):
        convert_to_mp3(wav.getvalue(), max_duration_s=1)
    with pytest.raises(Unprocessable, match="Could not decode"):
        convert_to_mp3(b"this is not audio at all", max_duration_s=10)


# -- the same samples without starting ffmpeg (round 14) ------------------------------------------


def speechlike(ms: int, channels: int = 1) -> AudioSegment:
    """Tones with a pause and a little noise: something an MP3 encoder has to work on."""
    import numpy as np

    audio = (tone(ms // 3) + silence(ms // 3) + Sine(660).to_audio_segment(duration=ms // 3).apply_gain(-9))
    audio = audio.set_frame_rate(16000).set_channels(1).set_sample_width(2)
    samples = np.frombuffer(audio.raw_data, dtype=np.int16).astype(np.int32)
    samples = samples + np.random.default_rng(0).integers(-300, 300, len(samples))
    mono = audio._spawn(np.clip(samples, -32768, 32767).astype(np.int16).tobytes())
    return mono if channels == 1 else AudioSegment.from_mono_audiosegments(mono, mono.reverse())


def no_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydub starts ffmpeg / ffprobe through subprocess.Popen: any start now fails the test."""
    import subprocess

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"ffmpeg started: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.mark.parametrize("channels", [1, 2])
def test_conversion_and_split_give_ffmpegs_samples_without_starting_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, channels: int) -> None:
    from percept.reading.audio import load_audio, to_mp3

    audio = speechlike(1500, channels)
    wav = io.BytesIO()
    audio.export(wav, format="wav")
    # What pydub's ffmpeg gives: the WAV decoded, its MP3, that MP3 decoded.
    by_ffmpeg = AudioSegment.from_file(io.BytesIO(wav.getvalue()))
    ffmpeg_mp3 = io.BytesIO()
    by_ffmpeg.export(ffmpeg_mp3, format="mp3", bitrate="64k")
    (tmp_path / "ffmpeg.mp3").write_bytes(ffmpeg_mp3.getvalue())
    ffmpeg_decoded = AudioSegment.from_file(str(tmp_path / "ffmpeg.mp3"))
    no_ffmpeg(monkeypatch)
    here = load_audio(wav.getvalue())
    assert here.raw_data == by_ffmpeg.raw_data and here.channels == channels and here.frame_rate == 16000
    (tmp_path / "here.mp3").write_bytes(to_mp3(here))
    for source in ("here.mp3", "ffmpeg.mp3"):  # the in-process MP3 holds the same frames as ffmpeg's
        decoded = load_audio(tmp_path / source, mp3=True)
        assert decoded.raw_data == ffmpeg_decoded.raw_data
        assert (decoded.frame_rate, decoded.channels, decoded.sample_width) == (16000, channels, 2)
    pieces: list[bytes] = []
    _, intervals = split_silence(load_audio(tmp_path / "here.mp3", mp3=True), 30, 5, lambda b: pieces.append(b) or "p")
    assert len(pieces) == len(intervals) >= 1


def test_odd_inputs_still_go_through_ffmpeg(tmp_path: Path) -> None:
    from percept.reading.audio import is_pcm16_wav, load_audio, to_mp3

    audio = speechlike(600).set_sample_width(4)  # 32-bit: not the in-process cases
    wav = io.BytesIO()
    audio.export(wav, format="wav")
    assert not is_pcm16_wav(wav.getvalue())
    assert load_audio(wav.getvalue()).raw_data == AudioSegment.from_file(io.BytesIO(wav.getvalue())).raw_data
    assert len(to_mp3(audio)) > 0  # pydub's export
    (tmp_path / "not.mp3").write_bytes(wav.getvalue())  # a stored file that is not MP3: probed
    assert len(load_audio(tmp_path / "not.mp3", mp3=True)) == pytest.approx(600, abs=2)


def test_decoding_for_whisper_keeps_faster_whispers_samples_without_a_full_collection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import numpy as np
    from faster_whisper.audio import decode_audio

    from percept.reading.audio import decode_samples, to_mp3

    path = tmp_path / "a.mp3"
    path.write_bytes(to_mp3(speechlike(1200, 2).set_frame_rate(44100)))
    expected = decode_audio(str(path), sampling_rate=16000)
    collected: list[tuple[object, ...]] = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *args: collected.append(args) or real(*args))
    got = decode_samples(str(path))
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert collected == [(1,)]  # the young generations only, not gc.collect()


@pytest.mark.skipif(__import__("shutil").which("sox") is None, reason="sox is not installed")
def test_the_suites_room_reverb_renders_the_same_samples_every_time() -> None:
    # The benchmark's renders are cached per machine; a before/after check of a speed change
    # compares recognitions of the same audio only if a reading renders to the same samples.
    import numpy as np

    from tests.synthetic.reading import _sox

    wave = (np.sin(np.arange(16000) / 5) * 8000).astype(np.int16)
    first, second = (_sox(wave, 16000, ["reverb", "50", "50", "50"]) for _ in range(2))
    assert np.array_equal(first, second)


def pcm16_wav(rate: int = 16000, channels: int = 1, samples: bytes | None = None, declared: int | None = None) -> bytes:
    """A hand-made 16-bit PCM WAV: header fields as given, ``declared`` the data chunk's size."""
    import struct

    import numpy as np

    if samples is None:
        samples = np.random.default_rng(3).integers(-3000, 3000, 1600 * max(1, channels)).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels % 2**32, 2 * channels, 16)
    size = len(samples) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("rate, channels", [(0, 1), (16000, 0)])
def test_a_wav_header_without_a_rate_or_channels_is_refused_not_a_crash(rate: int, channels: int) -> None:
    # ffmpeg refuses these headers (422); read in-process they divided by zero (a 500).
    with pytest.raises(Unprocessable, match="Could not decode"):
        convert_to_mp3(pcm16_wav(rate, channels), max_duration_s=10)


@pytest.mark.parametrize("case", ["streamed, data size 0", "cut in a sample", "stereo cut in a frame"])
def test_an_odd_wav_upload_gives_ffmpegs_samples(case: str) -> None:
    from percept.reading.audio import is_pcm16_wav, load_audio

    wav = {"streamed, data size 0": pcm16_wav(declared=0),  # a writer that could not seek back
           "cut in a sample": pcm16_wav(samples=bytes(range(256)) * 4 + b"\x01"),
           "stereo cut in a frame": pcm16_wav(channels=2, samples=bytes(range(256)) * 4 + b"\x01\x02")}[case]
    assert is_pcm16_wav(wav)
    by_ffmpeg = AudioSegment.from_file(io.BytesIO(wav))
    assert len(by_ffmpeg.raw_data) > 0
    here = load_audio(wav)
    assert (here.raw_data, here.channels, here.frame_rate) == (by_ffmpeg.raw_data, by_ffmpeg.channels, 16000)
    assert convert_to_mp3(wav, max_duration_s=10)[1] == pytest.approx(len(by_ffmpeg) / 1000.0)


@pytest.mark.parametrize("rate", [3_000_000_000, 2**31 - 1])
def test_a_wav_at_an_impossible_rate_is_refused_not_a_crash(rate: int) -> None:
    # Past ffmpeg's int the header is refused by ffmpeg (422) but was read in-process and failed
    # writing the MP3 (struct.error, a 500); at 2**31 - 1 ffmpeg decodes it but cannot encode it.
    samples = bytes(2 * 2_000_000)  # long enough for a duration above 0 (1 ms) at either rate
    with pytest.raises(Unprocessable):
        convert_to_mp3(pcm16_wav(rate, 1, samples), max_duration_s=10)


# -- the duration limit holds while decoding (round 14 hardening) ---------------------------------


def long_upload(seconds: int, codec: str) -> bytes:
    """``seconds`` of a quiet tone at 8 kHz mono, small: MP3 at 8 kb/s (PyAV) or Vorbis (ffmpeg)."""
    import subprocess

    if codec == "mp3":
        import numpy as np

        wave = (np.sin(np.arange(seconds * 8000) * 2 * np.pi * 440 / 8000) * 3000).astype(np.int16)
        from percept.reading.audio import to_mp3

        return to_mp3(AudioSegment(wave.tobytes(), sample_width=2, frame_rate=8000, channels=1), "8k")
    return subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", f"sine=f=440:d={seconds}:sample_rate=8000",
         "-c:a", "libvorbis", "-q:a", "0", "-f", "ogg", "-"], check=True, capture_output=True).stdout


@pytest.mark.parametrize("codec", ["mp3", "vorbis"])
def test_a_small_upload_that_decodes_past_the_limit_is_refused_while_decoding(codec: str) -> None:
    # 600 s in ~0.6 MB: decoded whole (8 kHz, 16-bit MP3 / 32-bit Vorbis as pydub keeps it) 9.6 /
    # 19.2 MB, and pydub's ffmpeg read held three copies of that at once (its output, a bytearray
    # to mend the header, bytes again). Now decoding stops just past the 300 s limit: PyAV counts
    # samples and holds one copy of at most the limit's worth; ffmpeg gets -t (pydub's three
    # copies are of the limit's worth).
    import tracemalloc

    from percept.reading import audio as module

    limit, width = 300, 2 if codec == "mp3" else 4
    data = long_upload(2 * limit, codec)
    assert len(data) < 1_500_000
    limits_worth = limit * 8000 * width
    module._DECODED.clear()
    tracemalloc.start()
    try:
        with pytest.raises(Unprocessable, match=r"The audio is too long: over 300 s, the limit is 300 s"):
            convert_to_mp3(data, max_duration_s=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The whole decode is 2x the limit's worth: before, the peak was over 6x (three copies).
    assert peak < (1.5 if codec == "mp3" else 3.5) * limits_worth, peak
    if codec == "mp3":  # decoded in-process: stopped one MP3 frame past the limit (+ 10 ms)
        assert list(module._DECODED) and module._DECODED[-1] <= (limit + 0.01) * 8000 + 2 * 576
    else:
        assert not module._DECODED  # Vorbis is ffmpeg's (pydub keeps its 32-bit samples)
    # Under the limit the same upload is whole, as before.
    mp3, duration = convert_to_mp3(data, max_duration_s=2 * limit + 1)
    assert duration == pytest.approx(2 * limit, abs=0.1) and len(mp3) > 0


def test_a_wav_past_the_limit_is_refused_from_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    from percept.reading import audio as module

    wav = pcm16_wav(8000, 2, bytes(4 * 8000 * 12 + 2))  # 12 s of stereo, a stray byte after it

    def no_read(*args: object) -> None:
        raise AssertionError("samples read before the duration check")

    monkeypatch.setattr(module.AudioSegment, "_from_safe_wav", no_read)
    no_ffmpeg(monkeypatch)  # nor ffmpeg's decoding of it
    with pytest.raises(Unprocessable, match=r"The audio is too long: 12 s, the limit is 10 s"):
        convert_to_mp3(wav, max_duration_s=10)
    monkeypatch.undo()
    assert convert_to_mp3(wav, max_duration_s=12)[1] == 12.0


def test_other_16bit_codecs_are_decoded_in_process_and_wider_ones_keep_ffmpegs_samples(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from percept.reading.audio import load_audio

    def encode(*args: str) -> bytes:
        return subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=440:d=1.5:sample_rate=22050",
                               *args, "-"], check=True, capture_output=True).stdout

    flac, wav24 = encode("-c:a", "flac", "-f", "flac"), encode("-c:a", "pcm_s24le", "-f", "wav")
    by_ffmpeg = [AudioSegment.from_file(io.BytesIO(data)) for data in (flac, wav24)]
    assert [a.sample_width for a in by_ffmpeg] == [2, 4]  # pydub widens 24-bit to 32
    assert load_audio(wav24, max_duration_s=10).raw_data == by_ffmpeg[1].raw_data  # ffmpeg's (32-bit)
    no_ffmpeg(monkeypatch)
    here = load_audio(flac, max_duration_s=10)  # lossless: the same samples, no ffmpeg started
    assert (here.raw_data, here.frame_rate, here.channels) == (by_ffmpeg[0].raw_data, 22050, 1)
