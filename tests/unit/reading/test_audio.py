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
