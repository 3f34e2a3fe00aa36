"""Acoustic verdicts: phonetic matching, candidate readings, evidence -> report, Whisper paths."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from percept.reading.forced import ForcedAligner, find_whisper_model, silent_stretches
from percept.reading.phonetic import distance, phonemes, sounds_same
from percept.reading.report import assess_reading, prepare_assessment
from percept.reading.verdict import apply_change, changes_between, confidence, phonetic_align

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def segment(words: list[str], t0: float = 0.0, file: str = "f0", step: float = 0.5) -> dict[str, Any]:
    timed = [{"word": " " + w, "start": t0 + k * step, "end": t0 + k * step + 0.3, "probability": 0.9}
             for k, w in enumerate(words)]
    return {"start": t0, "end": t0 + step * len(words), "text": "".join(w["word"] for w in timed),
            "words": timed, "file": file}


@needs_espeak
def test_sounds_tell_recognition_noise_from_misreading() -> None:
    assert sounds_same("their", "there") and sounds_same("3", "three") and sounds_same("hay", "hey")
    assert not sounds_same("house", "horse") and not sounds_same("ship", "sheep")
    assert 0 < distance("quiet", "quite") < distance("dog", "table")
    assert phonemes("some thing") == phonemes("something")


@needs_espeak
def test_phonetic_alignment_joins_split_and_merged_words() -> None:
    ops = phonetic_align("we went any way to see some thing".split(), "we went anyway to see something".split())
    assert all(kind == "equal" for kind, _, _ in ops)
    assert [j for _, _, j in ops] == [0, 1, 2, 3, 4, 5]
    ops = phonetic_align("the horse ran".split(), "the house ran".split())
    assert ops[1] == ("replace", 1, 1)


@needs_espeak
def test_changes_and_candidate_readings() -> None:
    reference = "The train left the station".split()
    changes = changes_between("the train marble the station".split(), reference)
    assert changes == [{"kind": "replace", "ref": 2, "word": "marble", "norm": "marble"}]
    assert apply_change(reference, changes[0]) == (["The", "train", "marble", "the", "station"], 2)
    skipped = changes_between("train left the station".split(), reference)
    assert skipped == [{"kind": "delete", "ref": 0, "word": "", "norm": ""}]
    assert apply_change(reference, skipped[0]) == (["Train", "left", "the", "station"], None)
    extra = {"kind": "insert", "ref": 1, "word": "little", "norm": "little"}
    assert apply_change(reference, extra) == (["The", "little", "train", "left", "the", "station"], 1)


def answer(base: int, candidates: list[dict[str, Any]], pauses: list[list[float]] | None = None) -> dict[str, Any]:
    return {"base": [{"start": 0.1 + 0.5 * k, "end": 0.4 + 0.5 * k, "logprob": -0.1} for k in range(base)],
            "candidates": candidates, "prompted": "", "pauses": pauses or []}


@needs_espeak
def test_evidence_decides_each_difference() -> None:
    # The transcript heard "dig" for "dog" (the reader misread: strong evidence) and "a" for
    # "the" (a recognition slip: the audio prefers the text).
    reading = [segment("the dig ran to a park".split())]
    reference = "The dog ran to the park"
    state = prepare_assessment(reading, reference)
    assert state.requests() == [{"reference": ["The", "dog", "ran", "to", "the", "park"],
                                 "transcript": ["the", "dig", "ran", "to", "a", "park"]}]
    assessed = [answer(6, [
        {"kind": "replace", "ref": 1, "word": "dig", "norm": "dig", "llr": 9.0, "start": 0.6, "end": 0.9},
        {"kind": "replace", "ref": 4, "word": "a", "norm": "a", "llr": -6.0, "start": 2.1, "end": 2.3},
    ])]
    result = assess_reading(reading, reference, assessed, threshold=2.0)
    words = result["report"]["words"]
    assert [w["status"] for w in words] == ["correct", "substitution", "correct", "correct", "correct", "correct"]
    assert (words[1]["spoken"], words[1]["evidence"], words[1]["start"]) == ("dig", 9.0, 0.6)
    assert words[1]["confidence"] == confidence(9.0, 2.0) and words[1]["confidence"] > 0.99
    the = words[4]
    assert (the["method"], the["transcript"], the["evidence"]) == ("acoustic_evidence_cleared", "a", -6.0)
    assert (the["start"], the["end"]) == (2.1, 2.4)  # the forced times of the reference word
    assert [(e["at_char"], e["found"], e["expected"]) for e in result["errors"]] == [(5, "dig", "dog")]
    # A stricter operating point keeps the same verdicts on clear evidence only.
    strict = assess_reading(reading, reference, assessed, threshold=10.0)
    assert [w["status"] for w in strict["report"]["words"]].count("substitution") == 0
    assert strict["errors"] == []


@needs_espeak
def test_repetitions_self_corrections_and_pauses() -> None:
    reading = [segment("my cat cat likes the horse house".split())]
    reference = "My cat likes the house"
    assessed = [answer(5, [
        {"kind": "insert", "ref": 1, "word": "cat", "norm": "cat", "llr": 4.0, "start": 0.5, "end": 0.8},
        {"kind": "insert", "ref": 4, "word": "horse", "norm": "horse", "llr": 5.0, "start": 2.5, "end": 2.8},
    ], pauses=[[0.9, 1.7]])]
    result = assess_reading(reading, reference, assessed, threshold=1.0, long_pause_s=0.7)
    words = result["report"]["words"]
    assert [(w["index"], w["status"]) for w in words] == [
        (0, "correct"), (1, "repetition"), (2, "correct"), (3, "correct"), (4, "self_correction")]
    assert words[1]["spoken"] == "cat cat" and words[4]["spoken"] == "horse house"
    pause = result["report"]["summary"]["long_pauses"]
    assert len(pause) == 1 and pause[0]["duration"] == 0.8
    paused = next(w for w in words if w.get("pause_before"))
    assert paused["index"] == 3 and paused["start"] == 1.7  # the word after the pause starts when it ends
    assert result["report"]["summary"]["accuracy"] == 1.0
    assert {e["found"] for e in result["errors"]} == {"cat", "horse"}
    # Added words have their own operating point.
    strict = assess_reading(reading, reference, assessed, threshold=1.0, long_pause_s=0.7, added_threshold=4.5)
    assert [w["status"] for w in strict["report"]["words"]] == [
        "correct", "correct", "correct", "correct", "self_correction"]
    assert strict["report"]["summary"]["added_word_threshold"] == 4.5


@needs_espeak
def test_each_kind_of_difference_has_its_operating_point() -> None:
    # Equal evidence (3 nats) for a skipped word, a replaced word and a word said twice that no
    # transcript heard (the aligner's repetition hypothesis): each kind's threshold decides.
    reading = [segment("the dig to the park".split())]
    reference = "The dog ran to the park"
    assessed = [answer(6, [
        {"kind": "replace", "ref": 1, "word": "dig", "norm": "dig", "llr": 3.0, "start": 0.6, "end": 0.9},
        {"kind": "delete", "ref": 2, "word": "", "norm": "", "llr": 3.0},
        {"kind": "insert", "ref": 5, "word": "the", "norm": "the", "llr": 3.0, "source": "repeat",
         "start": 2.1, "end": 2.3},
    ])]

    def statuses(threshold: float, **limits: Any) -> list[str]:
        result = assess_reading(reading, reference, assessed, threshold, **limits)
        return [w["status"] for w in result["report"]["words"]]

    assert statuses(threshold=5.0) == ["correct"] * 6  # every kind at one point: nothing clears it
    assert statuses(threshold=5.0, omission_threshold=2.0) == [
        "correct", "correct", "omission", "correct", "correct", "correct"]
    assert statuses(threshold=2.0, omission_threshold=5.0, added_threshold=5.0, repeat_threshold=2.0) == [
        "correct", "substitution", "correct", "correct", "repetition", "correct"]
    # The added-word point covers the repetition hypothesis unless it has its own.
    assert statuses(threshold=5.0, added_threshold=2.0)[4] == "repetition"
    assert statuses(threshold=5.0, added_threshold=2.0, repeat_threshold=5.0)[4] == "correct"


@needs_espeak
def test_an_added_word_at_the_onset_of_speech_answers_to_its_own_operating_point() -> None:
    # Whisper hears "and" before the first word of a clean reading, and "little" in the middle,
    # both with 3 nats of evidence: the onset point decides the first, the added-word point the other.
    reading = [segment("and the little dog ran home".split())]
    reference = "The dog ran home"
    assessed = [answer(4, [
        {"kind": "insert", "ref": 0, "word": "and", "norm": "and", "llr": 3.0, "start": 0.0, "end": 0.2},
        {"kind": "insert", "ref": 1, "word": "little", "norm": "little", "llr": 3.0, "start": 0.6, "end": 0.9},
    ])]

    def inserted(**limits: Any) -> list[tuple[int, str]]:
        result = assess_reading(reading, reference, assessed, 1.0, added_threshold=1.0, **limits)
        return [(w["at_index"], w["spoken"]) for w in result["report"]["words"] if w["status"] == "insertion"]

    assert inserted() == [(0, "and"), (1, "little")]  # no onset point: the added-word point
    assert inserted(onset_added_threshold=5.0) == [(1, "little")]
    assert inserted(onset_added_threshold=2.0) == [(0, "and"), (1, "little")]
    # A word added after the last one ("... ran home now") keeps the added-word point.
    tail = [answer(4, [{"kind": "insert", "ref": 4, "word": "now", "norm": "now", "llr": 3.0}])]
    result = assess_reading(reading, reference, tail, 1.0, added_threshold=1.0, onset_added_threshold=5.0)
    assert [(w["at_index"], w["status"]) for w in result["report"]["words"] if w["index"] is None] == [(4, "insertion")]
    assert result["report"]["summary"]["onset_added_threshold"] == 5.0


@needs_espeak
def test_a_first_word_skipped_at_the_onset_of_speech_answers_to_its_own_operating_point() -> None:
    # The recogniser missed "The" at the onset of speech and "ran" in the middle, both with 3
    # nats of evidence that they were skipped: the onset omission point decides the first, the
    # omission point the other.
    reading = [segment("dog home".split())]
    reference = "The dog ran home"
    assessed = [answer(4, [{"kind": "delete", "ref": 0, "word": "", "norm": "", "llr": 3.0},
                           {"kind": "delete", "ref": 2, "word": "", "norm": "", "llr": 3.0}])]

    def skipped(**limits: Any) -> list[int]:
        result = assess_reading(reading, reference, assessed, 9.0, omission_threshold=1.0, **limits)
        return [w["index"] for w in result["report"]["words"] if w["status"] == "omission"]

    assert skipped() == [0, 2]  # no onset point: the omission point
    assert skipped(onset_omission_threshold=5.0) == [2]
    assert skipped(onset_omission_threshold=2.0) == [0, 2]
    result = assess_reading(reading, reference, assessed, 9.0, omission_threshold=1.0, onset_omission_threshold=5.0)
    assert result["report"]["summary"]["onset_omission_threshold"] == 5.0


@needs_espeak
def test_one_extra_word_around_a_word_is_one_miscue() -> None:
    # Around "snow" the transcripts heard a false start ("snore snow") and a second copy
    # ("snow snow"): one extra word, the better supported reading stays.
    reading = [segment("in the snore snow".split())]
    reference = "In the snow"

    def kinds(false_start: float, copy: float) -> list[tuple[int | None, str, str]]:
        assessed = [answer(3, [
            {"kind": "insert", "ref": 2, "word": "snore", "norm": "snore", "llr": false_start},
            {"kind": "insert", "ref": 3, "word": "snow", "norm": "snow", "llr": copy},
        ])]
        result = assess_reading(reading, reference, assessed, 1.0, added_threshold=1.0)
        return [(w["index"], w["status"], w["spoken"]) for w in result["report"]["words"] if w["status"] != "correct"]

    assert kinds(false_start=4.0, copy=9.0) == [(2, "repetition", "snow snow")]
    assert kinds(false_start=9.0, copy=4.0) == [(2, "self_correction", "snore snow")]


@needs_espeak
def test_a_replaced_word_heard_again_after_it_is_one_miscue() -> None:
    # "the" read as "marvel"; the transcripts also heard "marble" before "green": one word read
    # differently. The replacement stays even when the added word is better supported (the
    # audio does not hold "the" either way); an unrelated added word is kept.
    reading = [segment("a marvel green hill".split())]
    reference = "A the green hill"

    def kinds(replaced: float, added: float, word: str = "marble") -> list[tuple[int | None, str]]:
        assessed = [answer(4, [
            {"kind": "replace", "ref": 1, "word": "marvel", "norm": "marvel", "llr": replaced},
            {"kind": "insert", "ref": 2, "word": word, "norm": word, "llr": added},
        ])]
        result = assess_reading(reading, reference, assessed, 1.0, added_threshold=1.0)
        return [(w["index"], w["status"]) for w in result["report"]["words"] if w["status"] != "correct"]

    assert kinds(replaced=9.0, added=4.0) == [(1, "substitution")]
    assert kinds(replaced=4.0, added=9.0) == [(1, "substitution")]
    assert kinds(replaced=0.5, added=9.0) == [(None, "insertion")]  # the replacement did not clear its point
    assert kinds(replaced=9.0, added=4.0, word="very") == [(1, "substitution"), (None, "insertion")]


@needs_espeak
def test_the_language_models_share_can_be_taken_out_of_the_evidence() -> None:
    # "the the" is unlikely text, whatever the audio: Whisper's ratio over the text (-3 nats) is
    # mostly its language model's (-5 against silence). Without that share the audio says 7.
    reading = [segment("my cat likes the warm sun".split())]
    reference = "My cat likes the warm sun"
    assessed = [answer(6, [{"kind": "insert", "ref": 4, "word": "the", "norm": "the", "llr": -3.0,
                            "llr_prior": -5.0, "source": "repeat", "start": 1.6, "end": 1.8}])]
    plain = assess_reading(reading, reference, assessed, threshold=5.0, added_threshold=2.0)
    assert [w["status"] for w in plain["report"]["words"]][3] == "correct"
    fair = assess_reading(reading, reference, assessed, threshold=5.0, added_threshold=2.0, prior_weight=1.0)
    words = fair["report"]["words"]
    assert words[3]["status"] == "repetition" and words[3]["evidence"] == 7.0
    assert fair["report"]["summary"]["prior_weight"] == 1.0


def test_without_evidence_the_transcript_decides() -> None:
    reading = [segment("the dog ran".split())]
    result = assess_reading(reading, "the dog ran home", [None], threshold=0.0)
    assert [w["status"] for w in result["report"]["words"]] == ["correct", "correct", "correct", "omission"]
    assert result["report"]["summary"]["forced_scoring"] is False


@needs_espeak
def test_a_recording_without_speech_is_not_a_reading() -> None:
    """Beeps or noise: the recogniser hears no word, the voice activity detector no speech,
    and the forced scoring of the page against it finds no replaced word; every word is
    skipped. Where the detector hears speech that the recogniser missed (fast real reading),
    the forced scoring decides."""
    from percept.reading.forced import speech_seconds
    from tests.synthetic.reading import Espeak

    rate = 16000
    t = np.arange(int(2.5 * rate)) / rate
    beeps = np.where((t % 1.0) < 0.1, 0.3 * np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)
    noise = (0.003 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    assert speech_seconds(beeps) == 0 and speech_seconds(noise) == 0
    engine = Espeak.get()
    samples, _ = engine.synthesize("the little dog ran to the park", "en-us", 150)
    from scipy.signal import resample_poly

    speech = (resample_poly(samples.astype(np.float64), rate, engine.sample_rate) / 32768).astype(np.float32)
    assert speech_seconds(speech) > 1.0

    heard_nothing = {"start": 0.0, "end": 2.5, "text": "", "words": [], "file": "f0"}
    silent = {**answer(4, []), "speech_s": 0.0}
    result = assess_reading([heard_nothing], "the dog ran home", [silent], threshold=0.0)
    assert [w["status"] for w in result["report"]["words"]] == ["omission"] * 4
    spoken = {**answer(4, []), "speech_s": 1.6}  # speech the recogniser missed: the evidence decides
    result = assess_reading([heard_nothing], "the dog ran home", [spoken], threshold=0.0)
    assert [w["status"] for w in result["report"]["words"]] == ["correct"] * 4


def test_quiet_stretches_inside_speech() -> None:
    rate = 16000
    rng = np.random.default_rng(0)
    tone = np.sin(np.arange(rate // 2) * 2 * np.pi * 220 / rate) * 0.5
    audio = np.concatenate([tone, np.zeros(int(1.5 * rate)), tone, np.zeros(rate // 5), tone])
    audio = audio + rng.normal(0, 0.003, len(audio))  # a noise floor
    stretches = silent_stretches(audio, rate, 1.0)
    assert len(stretches) == 1
    start, end = stretches[0]
    assert abs(start - 0.5) < 0.05 and abs(end - 2.0) < 0.05


def test_a_larger_whisper_model_in_the_models_directory_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for size in ("base.en", "small.en"):
        (tmp_path / "whisper" / size).mkdir(parents=True)
        (tmp_path / "whisper" / size / "model.bin").write_bytes(b"weights")
    monkeypatch.delenv("PERCEPT_WHISPER_SIZE", raising=False)
    assert find_whisper_model(tmp_path) == (str(tmp_path / "whisper" / "small.en"), "small.en")
    monkeypatch.setenv("PERCEPT_WHISPER_SIZE", "base.en")
    assert find_whisper_model(tmp_path)[1] == "base.en"
    monkeypatch.delenv("PERCEPT_WHISPER_SIZE")

    loaded: list[str] = []

    class FakeWhisper:
        def __init__(self, path: str, **_: Any) -> None:
            loaded.append(path)

    import faster_whisper

    monkeypatch.setattr(faster_whisper, "WhisperModel", FakeWhisper)
    monkeypatch.setenv("PERCEPT_MODELS_PATH", str(tmp_path))
    aligner = ForcedAligner(tmp_path, device="cpu")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugins"))
    from faster_whisper_plugin import FasterWhisperPlugin

    monkeypatch.setattr(FasterWhisperPlugin, "model", None)
    FasterWhisperPlugin.load()
    # The recogniser and the scorer of the evidence both use the larger model.
    assert aligner.size == FasterWhisperPlugin.size == "small.en"
    assert loaded == [str(tmp_path / "whisper" / "small.en")] * 2


@needs_espeak
def test_real_speech_clean_and_misread() -> None:
    """tiny.en end to end on espeak-ng speech: a clean reading has no miscue, a substituted
    word is found with its time."""
    from percept.reading.settings import ReadingSettings
    from tests.synthetic.reading import Espeak

    engine = Espeak.get()
    config = ReadingSettings()  # the shipped operating point and aligner window
    aligner = ForcedAligner(device="cpu", context_pad_s=config.aligner_context_pad_s)
    reference = "The little dog ran to the park and saw a big green tree."
    for said, expect in ((reference, []), (reference.replace("park", "window"), ["park"])):
        samples, events = engine.synthesize(said, "en-us", 150)
        from scipy.signal import resample_poly

        audio = (resample_poly(samples.astype(np.float64), 16000, engine.sample_rate) / 32768).astype(np.float32)
        text = " ".join(said.rstrip(".").split())
        seg = {"start": 0.0, "end": len(audio) / 16000, "text": " " + text, "words": [], "file": "f"}
        state = prepare_assessment([seg], reference)
        ask = state.requests()[0]
        assessed = [aligner.assess(audio, ask["reference"], ask["transcript"])]
        words = assess_reading([seg], reference, assessed, threshold=config.miscue_threshold, prepared=state,
                               added_threshold=config.added_word_threshold,
                               false_start_logprob=config.false_start_logprob,
                               omission_threshold=config.omission_threshold, repeat_threshold=config.repeat_threshold,
                               prior_weight=config.prior_weight,
                               onset_added_threshold=config.onset_added_threshold)["report"]["words"]
        assert [w["word"] for w in words if w["status"] != "correct"] == expect
        if expect:
            flagged = next(w for w in words if w["status"] != "correct")
            true_start = dict(events)[said.index("window")]
            assert abs(flagged["start"] - true_start) < 0.25


def test_every_word_repetition_is_a_candidate() -> None:
    from percept.reading.forced import repetition_hypotheses

    reference = ["The", "cat", "sat", "down"]
    found = {("insert", 2, "cat"): {}}  # a transcript already heard "cat cat"
    hypotheses = repetition_hypotheses(reference, found)
    assert [(h["ref"], h["word"], h["source"]) for h in hypotheses] == [
        (1, "the", "repeat"), (3, "sat", "repeat"), (4, "down", "repeat")]
    assert apply_change(reference, hypotheses[1])[0] == ["The", "cat", "sat", "sat", "down"]


@needs_espeak
def test_evidence_model_combines_likelihood_ratio_and_pronunciation() -> None:
    from percept.reading.verdict import FEATURES, evidence_features, evidence_score

    base = [{"logprob": -0.1}, {"logprob": -9.0}, {"logprob": -0.2}]
    reference = ["The", "house", "stood"]
    heard = {"kind": "replace", "ref": 1, "word": "horse", "norm": "horse", "llr_free": 2.0, "llr_context": -1.0}
    features = dict(zip(FEATURES, evidence_features(heard, base, reference), strict=True))
    assert features["gop"] == -9.0 and features["gop_prev"] == -0.1
    assert features["llr_free"] == 2.0 and features["llr_context"] == -1.0
    assert 0 < features["distance"] < 1 and features["delete"] == features["insert"] == 0
    # Without a context score the free ratio stands in for it; a repetition is its own kind.
    again = {"kind": "insert", "ref": 2, "word": "house", "norm": "house", "llr_free": -3.0, "source": "repeat"}
    features = dict(zip(FEATURES, evidence_features(again, base, reference), strict=True))
    assert (features["repeat"], features["insert"], features["llr_context"], features["gop"]) == (1.0, 0.0, -3.0, -0.2)
    # A badly pronounced reference word is more evidence of a miscue, whatever the weights' scale.
    weights = {"bias": -2.0, "llr_free": 0.3, "llr_context": 0.2, "gop": -0.4}
    clear = evidence_score(evidence_features(heard, [{"logprob": -0.1}] * 3, reference), weights)
    assert evidence_score(evidence_features(heard, base, reference), weights) > clear


@needs_espeak
def test_a_repetition_whose_first_copy_the_audio_does_not_hold_is_a_false_start() -> None:
    # The recogniser wrote the word once (what it does with a false start that sounds like the
    # word, and with most repetitions); the aligner's added copy is scored against the audio.
    reading = [segment("my cat likes the house".split())]
    reference = "My cat likes the house"
    repeated = {"kind": "insert", "ref": 1, "word": "cat", "norm": "cat", "llr": 4.0, "start": 0.5, "end": 0.8}
    for first_copy, expect in ((-0.4, "repetition"), (-7.5, "self_correction")):
        cand = {**repeated, "logprobs": [-0.2, first_copy, -0.3]}
        result = assess_reading(reading, reference, [answer(5, [cand])], threshold=1.0, false_start_logprob=-3.0)
        words = result["report"]["words"]
        assert [w["status"] for w in words][1] == expect
        assert all("_logprobs" not in w for w in words)
    # Without the setting, the copy is a repetition whatever its score.
    cand = {**repeated, "logprobs": [-0.2, -7.5, -0.3]}
    words = assess_reading(reading, reference, [answer(5, [cand])], threshold=1.0)["report"]["words"]
    assert words[1]["status"] == "repetition"


@needs_espeak
def test_a_word_the_recogniser_wrote_twice_is_a_repetition() -> None:
    # "snow snow" heard as "snore snore", "brown brown" as "round round": the recogniser spelt
    # the word wrongly but the same both times, so one sound was said twice. The added word
    # next to it is a repetition of that word, not a false start of it (whatever its spelling
    # or its first copy's forced score); spelt once, it stays a false start.
    reference = "In the snow"
    added = {"kind": "insert", "ref": 2, "word": "snore", "norm": "snore", "llr": 9.0, "start": 1.0, "end": 1.3,
             "logprobs": [-0.2, -0.5, -0.3]}

    def status(heard: str, cand: dict[str, Any]) -> list[tuple[int | None, str, str]]:
        result = assess_reading([segment(heard.split())], reference, [answer(3, [cand])], threshold=1.0,
                                added_threshold=1.0, false_start_logprob=-3.0)
        return [(w["index"], w["status"], w["spoken"]) for w in result["report"]["words"] if w["status"] != "correct"]

    assert status("in the snore snore", added) == [(2, "repetition", "snore snow")]
    assert status("in the snore snow", added) == [(2, "self_correction", "snore snow")]
    # A copy of the word whose first copy the audio holds poorly: a false start, unless the
    # recogniser wrote the word twice.
    copy = {**added, "word": "snow", "norm": "snow", "logprobs": [-7.5, -0.2, None]}  # the copy after "snow"
    assert status("in the round round", {**copy, "ref": 3}) == [(2, "repetition", "snow snow")]
    assert status("in the snow", {**copy, "ref": 3})[0][1] == "self_correction"


def test_the_second_decode_stops_near_the_pages_length() -> None:
    """A decode with the page as context that loops over the page is cut after half as many
    tokens again as the page holds (not Whisper's 448)."""
    aligner = ForcedAligner(device="cpu")
    seen: dict[str, Any] = {}

    class Result:
        sequences_ids = [[50256]]

    class FakeModel:
        is_multilingual = False

        def generate(self, _encoded: Any, starts: list[list[int]], **options: Any) -> list[Result]:
            seen.update(start=len(starts[0]), **options)
            return [Result()]

    aligner.model.model = FakeModel()
    words = "The boat floated down the quiet river".split()
    assert aligner.decode({"encoded": None}, words) == ""
    tokens = len(aligner._tokenizer().encode(" " + " ".join(words)))
    assert seen["max_length"] == seen["start"] + int(1.5 * tokens) + 10 < 448


@needs_espeak
def test_with_an_evidence_model_its_log_odds_decide() -> None:
    from percept.reading.verdict import evidence_features, evidence_score

    reading = [segment("the dig ran".split())]
    reference = "The dog ran"
    weak = {"kind": "replace", "ref": 1, "word": "dig", "norm": "dig", "llr": -5.0, "llr_free": -5.0,
            "start": 0.5, "end": 0.8}
    assert assess_reading(reading, reference, [answer(3, [weak])], threshold=1.0)["report"]["words"][1]["status"] \
        == "correct"
    weights = {"bias": 4.0, "llr_free": 0.1, "gop": -0.5}
    words = assess_reading(reading, reference, [answer(3, [weak])], threshold=1.0, weights=weights)["report"]["words"]
    expected = evidence_score(evidence_features(weak, answer(3, [])["base"], ["The", "dog", "ran"]), weights)
    assert words[1]["status"] == "substitution" and words[1]["evidence"] == expected > 1.0
    against = {**weights, "bias": -4.0}
    words = assess_reading(reading, reference, [answer(3, [weak])], threshold=1.0, weights=against)["report"]["words"]
    assert words[1]["status"] == "correct"


def test_evidence_weights_name_known_features() -> None:
    import pydantic

    from percept.reading.settings import ReadingSettings

    weights = {"bias": -1.0, "llr_free": 0.5}
    assert ReadingSettings(evidence_weights=weights, prior_weight=0).evidence_weights == weights
    with pytest.raises(pydantic.ValidationError, match="llr_fre"):
        ReadingSettings(evidence_weights={"llr_fre": 0.5}, prior_weight=0)
    # the prior is taken out of the likelihood ratio, which an evidence model does not read
    with pytest.raises(pydantic.ValidationError, match="prior_weight"):
        ReadingSettings(evidence_weights=weights, prior_weight=0.5)


def test_hopeless_repetitions_are_not_scored_against_silence_and_silence_is_encoded_once() -> None:
    """The language model's share (scoring against silence) is only asked for candidates it
    could lift to an operating point; the silent recording is encoded once per length."""
    from percept.reading.forced import PRIOR_FLOOR

    aligner = ForcedAligner.__new__(ForcedAligner)
    aligner.context_pad_s, aligner.score_prior, aligner.probe_words = 3.0, True, 0
    encoded: list[str] = []
    silent_batches: list[list[list[str]]] = []

    def prepare(source: Any) -> dict[str, Any]:
        kind = "silence" if isinstance(source, np.ndarray) and not source.any() else "speech"
        encoded.append(kind)
        return {"encoded": kind, "frames": 100, "audio": np.ones(32000, dtype=np.float32),
                "features": np.ones((80, 100))}

    asked: list[tuple[str, bool, bool]] = []  # (recording, with the page as context, word times wanted)

    def score(prepared: dict[str, Any], sequences: list[list[str]], prompt: list[str] | None = None,
              timed: bool = True) -> list[dict[str, Any]]:
        asked.append((prepared["encoded"], prompt is not None, timed))
        if prepared["encoded"] == "silence":
            silent_batches.append(sequences)
        # "cat cat" is nearly as likely as the text; every other word said twice is hopeless
        logp = [0.0 if seq == ["The", "cat", "sat"] else -1.0 if seq.count("cat") == 2 else PRIOR_FLOOR - 5
                for seq in sequences]
        return [{"logprob": lp, "words": [{"start": 0.0, "end": 0.1, "logprob": -0.1}] * len(seq)}
                for lp, seq in zip(logp, sequences, strict=True)]

    aligner.prepare, aligner.score = prepare, score  # type: ignore[method-assign]
    aligner.decode = lambda prepared, prompt: "The cat sat"  # type: ignore[method-assign]
    for _ in range(2):
        answer = aligner.assess("x.wav", ["The", "cat", "sat"], ["The", "cat", "sat"])
        priced = {c["word"]: c.get("llr_prior") for c in answer["candidates"]}
        assert priced["cat"] is not None and priced["the"] is None and priced["sat"] is None
    assert all(len(batch) == 2 for batch in silent_batches)  # the text and "cat cat" only
    assert encoded == ["speech", "silence", "speech"]  # the 2 s of silence encoded once
    # Word times are asked only of the scoring without context (the passes against silence and
    # with the page as context need log-probabilities alone: no DTW over the recording).
    assert set(asked) == {("speech", False, True), ("silence", False, False), ("speech", True, False)}


def test_an_added_word_that_sounds_like_the_next_word_in_the_audio_is_a_false_start() -> None:
    """The recogniser spells a false start as an unrelated word ("odd" for "bug" before "bag"):
    with ``false_start_echo``, the audio of the added word against the next word's decides."""
    reading = [segment("my cat likes the odd bag".split())]
    reference = "My cat likes the bag"
    added = {"kind": "insert", "ref": 4, "word": "odd", "norm": "odd", "llr": 5.0, "start": 2.5, "end": 2.8}
    # the added word's audio: 0.4 from the next word's, 0.9 or 0.3 from the previous word's
    for before, level, expect in ((0.9, -0.2, "self_correction"), (0.3, -0.2, "correct"), (0.9, None, "correct")):
        cand = {**added, "echo": [before, 0.4]}
        words = assess_reading(reading, reference, [answer(5, [cand])], threshold=1.0,
                               false_start_echo=level)["report"]["words"]
        assert words[-1]["status"] == expect
        assert [w["status"] for w in words if w["index"] is None] == ([] if expect == "self_correction"
                                                                       else ["insertion"])
        assert all("_echo" not in w for w in words)


def test_span_distance_tells_the_same_sound_from_another() -> None:
    from percept.reading.forced import span_distance

    rng = np.random.default_rng(0)
    word, other = rng.normal(size=(80, 30)), rng.normal(size=(80, 25))
    again = word + 0.2 * rng.normal(size=word.shape)  # the same sound, said again with some noise
    features = np.concatenate([word, np.zeros((80, 10)), again, other], axis=1)
    same = span_distance(features, (0.0, 0.3), (0.4, 0.7))  # the word, then the word again
    different = span_distance(features, (0.0, 0.3), (0.7, 0.95))
    assert same < 0.3 < 0.7 < different


@needs_espeak
def test_untimed_scoring_gives_the_timed_scorings_log_probabilities() -> None:
    """tiny.en on espeak-ng speech: ``timed=False`` (CTranslate2's DTW over one encoder frame,
    round 14) changes no log-probability, against the recording with and without the page as
    context and against silence; only the word times are left out."""
    from scipy.signal import resample_poly

    from tests.synthetic.reading import Espeak

    engine = Espeak.get()
    samples, _ = engine.synthesize("The little dog ran to the park.", "en-us", 150)
    audio = (resample_poly(samples.astype(np.float64), 16000, engine.sample_rate) / 32768).astype(np.float32)
    aligner = ForcedAligner(device="cpu", context_pad_s=1.0)
    speech = aligner.prepare(audio)
    sequences = ["the little dog ran to the park".split(), "the little dog ran to the bark".split(),
                 "the little dog dog ran to the park".split()]
    for prepared, prompt in ((speech, None), (speech, ["a", "page"]), (aligner.silence(len(audio)), None)):
        timed = aligner.score(prepared, sequences, prompt)
        untimed = aligner.score(prepared, sequences, prompt, timed=False)
        assert [s["logprob"] for s in untimed] == [s["logprob"] for s in timed]
        assert [[w["logprob"] for w in s["words"]] for s in untimed] == [[w["logprob"] for w in s["words"]] for s in timed]
        assert all(w["start"] is None and w["end"] is None for s in untimed for w in s["words"])
        assert all(w["start"] is not None for s in timed for w in s["words"])


def test_an_added_word_that_leaves_the_next_word_unheld_is_a_substitution_of_it() -> None:
    # "candle" heard before "long", and the reading with "candle" added leaves "long" unheld by
    # the audio (forced log-probability -11.7): "candle" was said instead of "long".
    reading = [segment("all day candle".split())]
    reference = "All day long"

    def kinds(next_logprob: float | None, level: float | None = -10.0, word: str = "candle",
              replaced: float | None = None) -> list[tuple[int | None, str, str]]:
        candidates = [{"kind": "insert", "ref": 2, "word": word, "norm": word, "llr": 9.0,
                       "start": 0.9, "end": 1.2, "logprobs": [-0.2, -0.4, next_logprob]}]
        if replaced is not None:
            candidates.append({"kind": "replace", "ref": 2, "word": "can", "norm": "can", "llr": replaced})
        result = assess_reading(reading, reference, [answer(3, candidates)], 5.0, added_threshold=1.0,
                                next_word_logprob=level)
        return [(w["index"], w["status"], w["spoken"]) for w in result["report"]["words"] if w["status"] != "correct"]

    assert kinds(-11.7) == [(2, "substitution", "candle")]
    assert kinds(-0.3) == [(None, "insertion", "candle")]  # "long" was said too: an added word
    assert kinds(-11.7, level=None) == [(None, "insertion", "candle")]  # off
    assert kinds(None) == [(None, "insertion", "candle")]  # nothing after it in the segment
    assert kinds(-11.7, word="day") == [(1, "repetition", "day day")]  # a copy: the repetition rules decide
    # a replacement of "long" accepted too: it stays, the added word goes (however far past its point)
    assert kinds(-11.7, replaced=6.0) == [(2, "substitution", "can")]


@needs_espeak
def test_a_replacement_heard_again_is_dropped_before_the_next_word_rule_sees_it() -> None:
    # "cat" read as "marvel", "marble" heard again before "sat", and the reading with "marble"
    # added leaves "sat" unheld (-12): the re-heard replacement is one miscue with "marvel" (the
    # rule for a replaced word heard again decides first), not a substitution of "sat".
    reading = [segment("the marvel marble day".split())]

    def kinds(level: float | None, word: str = "marble") -> list[tuple[int | None, str, str]]:
        candidates = [
            {"kind": "replace", "ref": 1, "word": "marvel", "norm": "marvel", "llr": 9.0,
             "start": 0.5, "end": 0.8, "logprobs": [-0.2, -3.0, -1.0]},
            {"kind": "insert", "ref": 2, "word": word, "norm": word, "llr": 8.0,
             "start": 1.0, "end": 1.3, "logprobs": [-5.0, -3.0, -12.0]},
        ]
        result = assess_reading(reading, "The cat sat today", [answer(4, candidates)], 5.0,
                                added_threshold=1.0, next_word_logprob=level)
        return [(w["index"], w["status"], w["spoken"]) for w in result["report"]["words"] if w["status"] != "correct"]

    assert kinds(None) == [(1, "substitution", "marvel")]
    assert kinds(-10.0) == [(1, "substitution", "marvel")]
    # an unrelated added word there still leaves "sat" unheld: a substitution of it
    assert kinds(-10.0, word="very") == [(1, "substitution", "marvel"), (2, "substitution", "very")]
