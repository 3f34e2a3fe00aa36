"""The aligner's probe: words Whisper prefers at a reference word, given the page's words before it."""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np
import pytest

from percept.reading.forced import ForcedAligner
from percept.reading.report import assess_reading

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


class _Result:
    def __init__(self, ids: list[int], logits: list[Any] | None = None) -> None:
        self.sequences_ids = [ids]
        self.logits = [logits] if logits is not None else []


class _FakeWhisper:
    """Teacher-forced ranks and greedy continuations as CTranslate2's ``generate`` returns them:
    the tokens after the start-of-transcript prompt, with one log-probability row per token."""

    is_multilingual = False

    def __init__(self, aligner: ForcedAligner, prefer: dict[int, tuple[int, float]]) -> None:
        self.start = len(aligner._tokenizer().sot_sequence) + 1
        self.vocab = aligner._tokenizer().eot + 1
        self.prefer = prefer  # token position -> (preferred token, its margin over the page's token)
        self.calls: list[dict[str, Any]] = []

    def generate(self, _encoded: Any, prompts: list[list[int]], **options: Any) -> list[_Result]:
        self.calls.append(options)
        forced = prompts[0][self.start:]
        rows = []
        for k, token in enumerate(forced):
            row = np.full(self.vocab, -20.0, dtype=np.float32)
            row[token] = 0.0
            if k in self.prefer:
                other, margin = self.prefer[k]
                row[other] = margin
            rows.append(row)
        return [_Result(forced, rows)]


def _aligner(prefer_word: str | None, margin: float, at_word: int, words: int = 3,
             probe_margin: float = 0.5) -> tuple[ForcedAligner, list[str], _FakeWhisper]:
    aligner = ForcedAligner(device="cpu", probe_words=words, probe_margin=probe_margin)
    tokenizer = aligner._tokenizer()
    reference = ["The", "cat", "sat", "down"]
    at = sum(len(tokenizer.encode(" " + w)) for w in reference[:at_word])
    prefer = {at: (tokenizer.encode(prefer_word)[0], margin)} if prefer_word else {}
    fake = _FakeWhisper(aligner, prefer)
    aligner.model.model = fake
    return aligner, reference, fake


def test_the_probe_offers_the_word_whisper_prefers_given_the_words_before_it() -> None:
    aligner, reference, fake = _aligner(" hut", 2.0, at_word=1)
    assert aligner.probe({"encoded": None}, reference) == {1: "hut"}
    assert len(fake.calls) == 1 and fake.calls[0]["return_logits_vocab"]  # one pass over the page


def test_the_probe_keeps_what_whisper_prefers_by_more_than_its_margin() -> None:
    aligner, reference, _ = _aligner(" hut", 0.3, at_word=1)
    assert aligner.probe({"encoded": None}, reference) == {}  # 0.3 nats: not past the 0.5 margin
    aligner, reference, _ = _aligner(" hut", 0.3, at_word=1, probe_margin=0.2)
    assert aligner.probe({"encoded": None}, reference) == {1: "hut"}
    aligner, reference, fake = _aligner(" hut", 2.0, at_word=1, words=0)
    assert aligner.probe({"encoded": None}, reference) == {} and fake.calls == []  # off


def test_the_probe_offers_words_only() -> None:
    # Whisper preferring punctuation there, or the middle of a word, is no other word read
    for token in (",", "ing"):
        aligner, reference, _ = _aligner(token, 3.0, at_word=2)
        assert aligner.probe({"encoded": None}, reference) == {}
    aligner, reference, _ = _aligner(" sat", 3.0, at_word=2)  # the page's own word: nothing else
    assert aligner.probe({"encoded": None}, reference) == {}
    # at most ``probe_words`` words, the clearest first
    aligner, reference, fake = _aligner(" hut", 2.0, at_word=1, words=1)
    tokenizer = aligner._tokenizer()
    fake.prefer[len(tokenizer.encode(" The cat"))] = (tokenizer.encode(" mat")[0], 4.0)
    assert aligner.probe({"encoded": None}, reference) == {2: "mat"}


def segment(words: list[str], start: float = 0.0, step: float = 0.5) -> dict[str, Any]:
    timed = [{"word": " " + w, "start": start + k * step, "end": start + k * step + 0.3, "probability": 0.9}
             for k, w in enumerate(words)]
    return {"start": start, "end": start + step * len(words), "text": "".join(w["word"] for w in timed),
            "words": timed, "file": "f0"}


def answer(base: int, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    return {"base": [{"start": 0.1 + 0.5 * k, "end": 0.4 + 0.5 * k, "logprob": -0.1} for k in range(base)],
            "candidates": candidates, "prompted": "", "pauses": []}


def flagged(reading: list[dict[str, Any]], answers: list[dict[str, Any]],
            page: str = "near the old barn") -> list[tuple[int | None, str, str]]:
    """(index, status, spoken) of every word the report does not call correct."""
    words = assess_reading(reading, page, answers, 14.0)["report"]["words"]
    return [(w["index"], w["status"], w["spoken"]) for w in words if w["status"] != "correct"]


@needs_espeak
def test_a_probed_word_next_to_a_change_before_it_is_not_a_miscue() -> None:
    # The probe presumes the words before its word were read as written: "rocket" accepted for
    # "old" leaves the probe's "bat" for "barn" after it without that presumption.
    reading = [segment("near the rocket barn".split())]
    probed = {"kind": "replace", "ref": 3, "word": "bat", "norm": "bat", "llr": 20.0, "source": "probe",
              "start": 1.5, "end": 1.8}
    before = {"kind": "replace", "ref": 2, "word": "rocket", "norm": "rocket", "llr": 30.0, "source": "transcript",
              "start": 1.0, "end": 1.3}
    assert flagged(reading, [answer(4, [probed])]) == [(3, "substitution", "bat")]
    assert flagged(reading, [answer(4, [before, probed])]) == [(2, "substitution", "rocket")]
    # a transcript's difference there is not the probe's: it keeps its own verdict
    assert flagged(reading, [answer(4, [before, {**probed, "source": "transcript"}])]) == [
        (2, "substitution", "rocket"), (3, "substitution", "bat")]


@needs_espeak
def test_a_misread_word_no_transcript_wrote_is_found_by_the_probe() -> None:
    """tiny.en on espeak-ng speech: "candle" read for "scarf", a free transcript that wrote the
    page's word there and no second decode (the two transcripts, the only other source of
    candidates, both miss it): the probe offers "candle", whose evidence clears the shipped
    operating point; without the probe the word passes as read."""
    from scipy.signal import resample_poly

    from percept.reading.report import prepare_assessment
    from percept.reading.settings import ReadingSettings
    from tests.synthetic.reading import Espeak

    engine = Espeak.get()
    config = ReadingSettings()
    reference = "Grandma knitted a blue scarf for me."
    samples, _ = engine.synthesize(reference.replace("scarf", "candle"), "en-us", 150)
    audio = (resample_poly(samples.astype(np.float64), 16000, engine.sample_rate) / 32768).astype(np.float32)
    seg = {"start": 0.0, "end": len(audio) / 16000, "text": " Grandma knitted a blue scarf for me",
           "words": [], "file": "f"}
    state = prepare_assessment([seg], reference)
    ask = state.requests()[0]

    def statuses(words: int) -> list[tuple[str, str, str]]:
        aligner = ForcedAligner(device="cpu", context_pad_s=config.aligner_context_pad_s, probe_words=words,
                                probe_margin=config.probe_margin)
        assessed = [aligner.assess(audio, ask["reference"], ask["transcript"], prime=False)]
        report = assess_reading([seg], reference, assessed, config.miscue_threshold, prepared=state,
                                added_threshold=config.added_word_threshold,
                                omission_threshold=config.omission_threshold, repeat_threshold=config.repeat_threshold,
                                prior_weight=config.prior_weight, onset_added_threshold=config.onset_added_threshold,
                                onset_omission_threshold=config.onset_omission_threshold)["report"]
        return [(w["word"], w["status"], w["spoken"]) for w in report["words"] if w["status"] != "correct"]

    assert statuses(config.probe_words) == [("scarf", "substitution", "candle")]
    assert statuses(0) == []


def test_the_probe_forces_and_probes_the_words_not_the_punctuation_around_them() -> None:
    """A page's words as written ('"Hello,"', "(It", "-"): only their letters are forced (the
    first token of '"Hello,"' would be a quote, where Whisper prefers any word), a word of no
    letters is skipped, and the page's own word in another case is no other word (nor does it
    take one of the ``probe_words`` places)."""
    aligner, _, fake = _aligner(None, 0.0, at_word=0, words=1)
    tokenizer = aligner._tokenizer()
    bare = tokenizer.encode(" Hello said Tom")
    fake.prefer = {0: (tokenizer.encode(" hello")[0], 5.0),
                   len(tokenizer.encode(" Hello said")): (tokenizer.encode(" mat")[0], 2.0)}
    assert aligner.probe({"encoded": None}, ['"Hello,"', "said", "-", "(Tom."]) == {3: "mat"}
    calls: list[list[int]] = []
    generate = fake.generate
    fake.generate = lambda encoded, prompts, **options: calls.append(prompts[0]) or generate(encoded, prompts, **options)
    aligner.probe({"encoded": None}, ['"Hello,"', "said", "-", "(Tom."])
    assert calls[0][fake.start:] == bare


@needs_espeak
def test_a_clean_punctuated_reading_is_not_probed_for_its_punctuation_nor_flagged() -> None:
    """tiny.en on espeak-ng speech of a page with quotes, a bracket and dashes, read as written:
    the probe offers the same words (at the same words) whether it is given the page's words with
    their punctuation or without, and the report flags nothing. (Before the fix, given the
    punctuation, four of its five offers were the words after a quote, a bracket or a dash.)"""
    from scipy.signal import resample_poly

    from percept.reading.report import prepare_assessment
    from percept.reading.settings import ReadingSettings
    from percept.reading.text import normalise_word
    from tests.synthetic.reading import Espeak

    engine = Espeak.get()
    config = ReadingSettings()
    reference = '"Hello," said Tom. (It was - he thought - a fine day.)'
    samples, _ = engine.synthesize(reference, "en-us", 150)
    audio = (resample_poly(samples.astype(np.float64), 16000, engine.sample_rate) / 32768).astype(np.float32)
    aligner = ForcedAligner(device="cpu", context_pad_s=config.aligner_context_pad_s, probe_words=config.probe_words,
                            probe_margin=config.probe_margin)
    prepared = aligner.prepare(audio)
    free = aligner.decode(prepared, None)  # tiny.en's own free transcript of the reading
    seg = {"start": 0.0, "end": len(audio) / 16000, "text": " " + free.strip(), "words": [], "file": "f"}
    state = prepare_assessment([seg], reference)
    ask = state.requests()[0]
    written = reference.split()
    lettered = [k for k, w in enumerate(written) if normalise_word(w)]
    assert [normalise_word(written[k]) for k in lettered] == [normalise_word(w) for w in ask["reference"]]
    with_punctuation = aligner.probe(prepared, written, most=20)
    assert {lettered.index(k): w for k, w in with_punctuation.items()} == aligner.probe(prepared, ask["reference"],
                                                                                        most=20)
    assert all(normalise_word(w) != normalise_word(written[k]) for k, w in with_punctuation.items())
    assessed = [aligner.assess(audio, ask["reference"], ask["transcript"])]
    out = assess_reading([seg], reference, assessed, config.miscue_threshold, prepared=state,
                         added_threshold=config.added_word_threshold, omission_threshold=config.omission_threshold,
                         repeat_threshold=config.repeat_threshold, prior_weight=config.prior_weight,
                         onset_added_threshold=config.onset_added_threshold,
                         onset_omission_threshold=config.onset_omission_threshold,
                         false_start_logprob=config.false_start_logprob, false_start_echo=config.false_start_echo,
                         next_word_logprob=config.next_word_logprob)
    assert out["errors"] == []
    assert [w["word"] for w in out["report"]["words"] if w["status"] != "correct"] == []


@needs_espeak
def test_a_probed_word_after_an_added_word_before_the_word_before_it_is_not_a_miscue() -> None:
    # "big" accepted as added before "old": the words before "barn" were not read as written
    # either, so the probe's "bat" for "barn" (given "near the old") lost its premise.
    reading = [segment("near the big old barn".split())]
    added = {"kind": "insert", "ref": 2, "word": "big", "norm": "big", "llr": 30.0, "source": "transcript",
             "start": 1.0, "end": 1.3}
    probed = {"kind": "replace", "ref": 3, "word": "bat", "norm": "bat", "llr": 20.0, "source": "probe",
              "start": 2.0, "end": 2.3}
    assert (3, "substitution", "bat") in flagged(reading, [answer(4, [probed])])
    assert [(status, spoken) for _, status, spoken in flagged(reading, [answer(4, [added, probed])])] == [
        ("insertion", "big")]


@needs_espeak
def test_a_change_in_the_segment_before_leaves_a_probed_word_its_verdict() -> None:
    # The probe starts afresh at every segment (teacher-forced through that segment's words
    # only): "rocket" accepted at the last word of the first segment says nothing about the
    # probe's "bat" at the first word of the next.
    reading = [segment("near the rocket".split()), segment(["barn"], start=3.0)]
    before = {"kind": "replace", "ref": 2, "word": "rocket", "norm": "rocket", "llr": 30.0, "source": "transcript",
              "start": 1.0, "end": 1.3}
    probed = {"kind": "replace", "ref": 0, "word": "bat", "norm": "bat", "llr": 20.0, "source": "probe",
              "start": 0.0, "end": 0.3}
    assert flagged(reading, [answer(3, [before]), answer(1, [probed])]) == [
        (2, "substitution", "rocket"), (3, "substitution", "bat")]
