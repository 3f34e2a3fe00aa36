"""Syllable nuclei: a word said twice that no transcript heard, counted in the audio (round 17)."""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np
import pytest

from percept.reading.forced import syllable_nuclei
from percept.reading.phonetic import syllables
from percept.reading.report import assess_reading, syllable_excess

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def bursts(centres: list[float], rate: int = 16000, length_s: float = 2.0) -> Any:
    """Vowel-like bursts (a 700 Hz tone under a 150 ms Hann window) at ``centres`` over a faint noise."""
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.002, int(length_s * rate))
    width = int(0.15 * rate)
    tone = np.sin(np.arange(width) * 2 * np.pi * 700 / rate) * np.hanning(width) * 0.4
    for c in centres:
        a = int(c * rate) - width // 2
        audio[a : a + width] += tone
    return audio


def test_syllable_nuclei_are_the_band_energy_peaks() -> None:
    centres = [0.3, 0.55, 0.8, 1.2, 1.45]
    found = syllable_nuclei(bursts(centres), 16000)
    assert len(found) == len(centres)
    assert all(abs(f - c) <= 0.03 for f, c in zip(found, centres, strict=True))
    assert syllable_nuclei(np.zeros(16000), 16000) == []  # no speech, no nuclei
    assert syllable_nuclei(np.zeros(50), 16000) == []  # shorter than 10 frames


@needs_espeak
def test_syllables_of_a_word() -> None:
    assert [syllables(w) for w in ("the", "cat", "happy", "window", "yesterday")] == [1, 1, 2, 2, 3]


def base_times(n: int) -> list[dict[str, Any]]:
    return [{"start": 0.1 + 0.5 * k, "end": 0.4 + 0.5 * k, "logprob": -0.1} for k in range(n)]


@needs_espeak
def test_syllable_excess_counts_the_nuclei_between_the_anchors() -> None:
    words = ["My", "cat", "likes", "the", "warm", "sun"]
    once = [0.25, 0.75, 1.25, 1.75, 2.25, 2.75]
    twice = [0.25, 0.75, 1.25, 1.65, 1.85, 2.25, 2.75]  # "the" said twice
    # a copy of "the" (word 3) added before word 4: words 3..5 from 1.6 s to the end (2.9 s)
    assert syllable_excess(4, base_times(6), once, words, 0.0) == 0
    assert syllable_excess(4, base_times(6), twice, words, 0.0) == 1
    # in the middle: words 0..2, from word 0's start to word 3's (1.6 s; a shift moves both)
    assert syllable_excess(1, base_times(6), once, words, 0.0) == 0
    assert syllable_excess(1, base_times(6), once, words, -0.2) == 0
    assert syllable_excess(1, base_times(6), once, words[:5], 0.0) is None  # the page and the times disagree


def segment(words: list[str]) -> dict[str, Any]:
    timed: list[dict[str, Any]] = [
        {"word": " " + w, "start": 0.5 * k, "end": 0.5 * k + 0.3, "probability": 0.9}
        for k, w in enumerate(words)
    ]
    return {
        "start": 0.0,
        "end": 0.5 * len(words),
        "text": "".join(w["word"] for w in timed),
        "words": timed,
        "file": "f0",
    }


@needs_espeak
def test_the_syllable_count_moves_a_repetition_hypothesis_across_its_point() -> None:
    reading = [segment("my cat likes the warm sun".split())]
    reference = "My cat likes the warm sun"

    def status(llr: float, nuclei: list[float], weight: float | None) -> str:
        cand = {
            "kind": "insert",
            "ref": 4,
            "word": "the",
            "norm": "the",
            "llr": llr,
            "source": "repeat",
            "start": 1.6,
            "end": 1.8,
        }
        answer = {"base": base_times(6), "candidates": [cand], "prompted": "", "pauses": [], "nuclei": nuclei}
        result = assess_reading(
            reading,
            reference,
            [answer],
            threshold=5.0,
            added_threshold=2.0,
            repeat_threshold=-3.0,
            repeat_syllable_weight=weight,
        )
        return str(result["report"]["words"][3]["status"])

    once = [0.25, 0.75, 1.25, 1.75, 2.25, 2.75]
    twice = [0.25, 0.75, 1.25, 1.65, 1.85, 2.25, 2.75]
    assert status(-4.0, twice, None) == "correct"  # off: the evidence alone, under its point
    assert status(-4.0, twice, 2.0) == "repetition"  # one nucleus more: -4 + 2 clears -3
    assert status(-4.0, once, 2.0) == "correct"
    assert status(-2.0, once, None) == "repetition"
    assert status(-2.0, once, 2.0) == "correct"  # none more: -2 - 2 does not clear -3
    # an answer without nuclei (an aligner of before) leaves the evidence as it is
    cand = {"kind": "insert", "ref": 4, "word": "the", "norm": "the", "llr": -2.0, "source": "repeat"}
    old = {"base": base_times(6), "candidates": [cand], "prompted": "", "pauses": []}
    result = assess_reading(
        reading,
        reference,
        [old],
        threshold=5.0,
        added_threshold=2.0,
        repeat_threshold=-3.0,
        repeat_syllable_weight=2.0,
    )
    assert result["report"]["words"][3]["status"] == "repetition"
