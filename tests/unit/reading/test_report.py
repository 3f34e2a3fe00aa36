"""The word-level reading report: verdicts, timings, re-scoring, summary figures."""

from __future__ import annotations

from typing import Any

import pytest

from percept.reading.report import compare_reading, reference_plan
from percept.reading.workflow import assemble_segment


def segment(words: list[str], t0: float = 0.0, file: str = "f0", step: float = 0.5) -> dict[str, Any]:
    timed = [{"word": " " + w, "start": t0 + k * step, "end": t0 + k * step + 0.3, "probability": 0.9}
             for k, w in enumerate(words)]
    return {"start": t0, "end": t0 + step * len(words), "text": "".join(w["word"] for w in timed),
            "words": timed, "file": file}


def verdicts(result: dict[str, Any]) -> list[tuple[Any, str, str]]:
    return [(w["index"], w["word"] or w["spoken"], w["status"]) for w in result["report"]["words"]]


def test_each_miscue_kind_is_named() -> None:
    reading = [segment("the big dig ran ran to the".split()), segment("and then sat down".split(), 5.0, "f1")]
    result = compare_reading(reading, "The big dog ran to the park and sat down.")
    assert verdicts(result) == [
        (0, "the", "correct"), (1, "big", "correct"), (2, "dog", "substitution"), (3, "ran", "repetition"),
        (4, "to", "correct"), (5, "the", "correct"), (6, "park", "omission"), (7, "and", "correct"),
        (None, "then", "insertion"), (8, "sat", "correct"), (9, "down", "correct"),
    ]
    errors = [(e["audio_segment"]["file"], e["at_char"], e["found"], e["expected"]) for e in result["errors"]]
    assert errors == [("f0", 9, "dig", "dog"), ("f0", 13, "ran", ""), ("f0", 27, "", "park"), ("f1", 5, "then", "")]
    dog = result["report"]["words"][2]
    assert (dog["spoken"], dog["start"], dog["end"], dog["method"]) == ("dig", 1.0, 1.3, "word_alignment")
    insertion = result["report"]["words"][8]
    assert insertion["at_index"] == 8 and insertion["start"] == 5.5


def test_self_correction() -> None:
    result = compare_reading([segment("she red read the book".split())], "She read the book")
    assert verdicts(result)[1] == (1, "read", "self_correction")
    assert result["report"]["words"][1]["spoken"] == "red read"
    assert result["report"]["summary"]["accuracy"] == 1.0


def test_summary_figures() -> None:
    # 4 reference words, 3 read right; "three" ends at 1.3 s, "five" starts at 3.8 s.
    reading = [segment("one two three".split()), segment(["five"], 3.8, "f1")]
    summary = compare_reading(reading, "one two three four", long_pause_s=1.0)["report"]["summary"]
    assert summary["accuracy"] == 0.75
    assert summary["reading_time_s"] == pytest.approx(4.1)
    assert summary["wcpm"] == pytest.approx(3 / (4.1 / 60), abs=0.1)
    assert [(p["after"], p["before"], p["duration"]) for p in summary["long_pauses"]] == [("three", "five", 2.5)]


def test_reference_plan_assigns_words_to_segments() -> None:
    reading = [segment("the dog".split()), segment("ran to the park".split(), 3.0, "f1")]
    assert reference_plan(reading, "the dog ran to the park") == [(0, 2), (2, 6)]
    assert reference_plan(reading, "") == [(0, 0), (0, 0)]
    assert reference_plan([], "a b") == []


def test_segments_without_word_times_are_interpolated() -> None:
    plain = {"start": 2.0, "end": 4.0, "text": " one two", "file": "f"}
    result = compare_reading([plain], "one two")
    words = result["report"]["words"]
    assert [w["method"] for w in words] == ["text_alignment_interpolated_times"] * 2
    assert words[0]["start"] == pytest.approx(2.25) and words[1]["end"] == pytest.approx(4.0)


def test_nothing_said_or_nothing_to_read() -> None:
    silent = compare_reading([], "a b")
    assert [(e["audio_segment"], e["expected"]) for e in silent["errors"]] == [(None, "a"), (None, "b")]
    assert silent["report"]["summary"]["wcpm"] is None
    extra = compare_reading([segment(["hello"])], "")
    assert [(e["found"], e["expected"]) for e in extra["errors"]] == [("hello", "")]
    assert extra["report"]["summary"]["accuracy"] is None


def test_assemble_segment_makes_times_absolute() -> None:
    piece = {"start": 10.0, "end": 12.0, "file": "p", "key": "k"}
    result = {"text": "Hi there", "segments": [{"start": 0.1, "end": 1.0, "text": " Hi there",
                                                 "words": [{"word": " Hi", "start": 0.1, "end": 0.4},
                                                           {"word": " there", "start": 0.5, "end": 1.0}]}]}
    seg = assemble_segment(piece, result)
    assert seg["text"] == " Hi there" and seg["words"][1]["start"] == 10.5
    bare = assemble_segment(piece, {"text": "Hi", "segments": []})
    assert bare["text"] == " Hi" and bare["words"] == []


def test_written_twice_is_a_repetition_even_for_a_false_start() -> None:
    """The documented cost of the "written twice" rule (docs/reading.md, eighth round): a
    confusable false start the recogniser spells like the word, *lager lager* for "ladder
    letter", is reported as a repetition, not a self-correction; without the rule the spelling
    (phonetically close to "letter") makes it a self-correction."""
    from percept.reading.report import _repetitions

    def entries() -> list[dict[str, Any]]:
        return [
            {"index": 0, "word": "the", "status": "correct", "spoken": "the", "start": 0.0, "end": 0.2, "method": "m"},
            {"index": None, "word": "", "status": "insertion", "spoken": "lager", "start": 0.3, "end": 0.6,
             "method": "m", "_logprobs": [None, -5.0, None]},
            {"index": 1, "word": "letter", "status": "correct", "spoken": "lager", "start": 0.7, "end": 1.0,
             "method": "m"},
        ]

    with_rule = entries()
    _repetitions(with_rule, false_start_logprob=-2.0, twice={1})
    assert [(e["index"], e["status"], e["spoken"]) for e in with_rule] == [
        (0, "correct", "the"), (1, "repetition", "lager lager")]
    without = entries()
    _repetitions(without, false_start_logprob=-2.0, twice=set())
    assert [(e["index"], e["status"]) for e in without] == [(0, "correct"), (1, "self_correction")]
