"""The reading report: every reference word's verdict, with its time in the recording.

The spoken words (with the timestamps the speech model gave each word) are aligned to the
reference text word by word, with a substitution cost that falls with spelling
similarity. The alignment gives the contract's ``errors`` and, per reference word, a
verdict: ``correct``, ``substitution``, ``omission``, ``repetition``, ``self_correction``;
spoken words matching no reference word are ``insertion`` entries. Each verdict says which
method produced it, and the summary gives accuracy, words correct per minute (WCPM),
reading rate and long pauses.

Without the aligner this transcript alignment is the report; with it, the verdicts come from the
acoustic evidence (:func:`assess_reading`, :mod:`percept.reading.verdict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from percept.reading.text import (
    Op,
    Token,
    align_words,
    errors_from_ops,
    normalise_word,
    tokenize,
    word_similarity,
)

WORD_TIMES = "word_alignment"  # alignment over the speech model's word timestamps
INTERPOLATED = "text_alignment_interpolated_times"  # the model gave no word times
RULE = "+rule"
LOW_CONFIDENCE = 0.5
SELF_CORRECTION_DISTANCE = 0.6  # a false start sounds at most this far from the word (pooled tuning parts)
BUFFER_S = 0.05  # the silence split widens each segment by this much on both sides


@dataclass
class SpokenWord:
    """A spoken token with its segment, time and the model's confidence."""

    segment: int
    token: Token
    start: float
    end: float
    probability: float | None
    method: str


def spoken_words(segments: list[dict[str, Any]]) -> list[SpokenWord]:
    """Tokens of every segment's text with times from the segment's word list.

    When the segment's text is the concatenation of its words (what the shipped Whisper
    plugin returns), each token takes the time of the word that holds it; otherwise the
    times are spread over the segment in proportion to the character position.
    """
    result: list[SpokenWord] = []
    for index, seg in enumerate(segments):
        text = str(seg.get("text", ""))
        words = seg.get("words") or []
        start, end = float(seg.get("start", 0.0)), float(seg.get("end", 0.0))
        spans: list[tuple[int, int, dict[str, Any]]] = []
        if words and "".join(str(w["word"]) for w in words) == text:
            offset = 0
            for w in words:
                spans.append((offset, offset + len(str(w["word"])), w))
                offset += len(str(w["word"]))
        for token in tokenize(text):
            holder = next((w for a, b, w in spans if a <= token.start < b), None)
            if holder is not None:
                result.append(SpokenWord(index, token, float(holder["start"]), float(holder["end"]),
                                         holder.get("probability"), WORD_TIMES))
            else:
                n = max(1, len(text))
                t0 = start + (end - start) * token.start / n
                t1 = start + (end - start) * token.end / n
                result.append(SpokenWord(index, token, round(t0, 3), round(t1, 3), None, INTERPOLATED))
    return result


def _segment_ref(seg: dict[str, Any]) -> dict[str, Any]:
    return {k: seg[k] for k in ("start", "end", "text", "file") if k in seg}


def _entry(index: int | None, word: str, status: str, spoken: SpokenWord | None, method: str,
           said: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "index": index,
        "word": word,
        "status": status,
        "spoken": said if said is not None else (spoken.token.text if spoken else ""),
        "start": round(spoken.start, 3) if spoken else None,
        "end": round(spoken.end, 3) if spoken else None,
        "segment": spoken.segment if spoken else None,
        "probability": round(float(spoken.probability), 3) if spoken and spoken.probability is not None else None,
        "method": method,
    }
    entry["uncertain"] = bool(entry["probability"] is not None and entry["probability"] < LOW_CONFIDENCE)
    return entry


def classify(spoken: list[SpokenWord], reference: list[Token], ops: list[Op]) -> list[dict[str, Any]]:
    """Per reference word (and per inserted word) its verdict, in reading order."""
    entries: list[dict[str, Any]] = []
    by_ref: dict[int, dict[str, Any]] = {}
    pending: list[SpokenWord] = []  # inserted words waiting to see what follows them
    recent: list[int] = []  # reference indexes read most recently (for repetitions)

    def settle(next_ref: int | None, next_op: str | None) -> None:
        for word in pending:
            target: int | None = None
            status = "insertion"
            if next_ref is not None and next_op == "equal" and word.token.norm == reference[next_ref].norm:
                target, status = next_ref, "repetition"
            elif next_ref is not None and next_op == "equal" and (
                reference[next_ref].norm.startswith(word.token.norm)
                or word_similarity(word.token.norm, reference[next_ref].norm) >= 0.5
            ):
                target, status = next_ref, "self_correction"
            else:
                target = next((j for j in reversed(recent[-3:]) if reference[j].norm == word.token.norm), None)
                if target is not None:
                    status = "repetition"
            if target is None:
                entry = _entry(None, "", "insertion", word, word.method)
                entry["at_index"] = next_ref if next_ref is not None else len(reference)
                entries.append(entry)
            else:
                by_ref.setdefault(target, {})["pre"] = (status, word)
        pending.clear()

    for kind, i, j in ops:
        if kind == "insert":
            assert i is not None
            pending.append(spoken[i])
            continue
        settle(j, kind)
        assert j is not None
        said = spoken[i] if i is not None else None
        status = {"equal": "correct", "replace": "substitution", "delete": "omission"}[kind]
        method = said.method if said else WORD_TIMES if spoken and spoken[0].method == WORD_TIMES else INTERPOLATED
        entry = _entry(j, reference[j].norm, status, said, method)
        extra = by_ref.pop(j, None)
        if extra and status == "correct":
            entry["status"], first = extra["pre"]
            entry["method"] = method + RULE
            entry["spoken"] = f"{first.token.text} {entry['spoken']}"
            entry["start"] = round(first.start, 3)
        entries.append(entry)
        if kind == "equal":
            recent.append(j)
    settle(None, None)
    # Repetitions of an earlier word were attached after the fact.
    for j, extra in by_ref.items():
        for entry in entries:
            if entry["index"] == j and entry["status"] == "correct":
                status, word = extra["pre"]
                entry["status"] = status
                entry["method"] = entry["method"] + RULE
                entry["spoken"] = f"{entry['spoken']} {word.token.text}"
                entry["end"] = round(word.end, 3)
    return entries


def summarise(entries: list[dict[str, Any]], spoken: list[SpokenWord], long_pause_s: float) -> dict[str, Any]:
    """Accuracy, WCPM, reading rate and the long pauses of a reading."""
    refs = [e for e in entries if e["index"] is not None]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    read_right = sum(counts.get(s, 0) for s in ("correct", "repetition", "self_correction"))
    timed = sorted(spoken, key=lambda w: w.start)
    duration = (timed[-1].end - timed[0].start) if timed else 0.0
    minutes = duration / 60.0
    pauses = []
    for before, after in zip(timed, timed[1:], strict=False):
        gap = after.start - before.end
        if gap >= long_pause_s:
            pauses.append({"after": before.token.text, "before": after.token.text,
                           "start": round(before.end, 3), "end": round(after.start, 3), "duration": round(gap, 3)})
    return {
        "reference_words": len(refs),
        "spoken_words": len(spoken),
        "counts": counts,
        "accuracy": round(read_right / len(refs), 4) if refs else None,
        "reading_time_s": round(duration, 3),
        "wcpm": round(read_right / minutes, 1) if minutes > 0 else None,
        "reading_rate_wpm": round(len(spoken) / minutes, 1) if minutes > 0 else None,
        "long_pause_s": long_pause_s,
        "long_pauses": pauses,
    }


def reference_plan(segments: list[dict[str, Any]], reference_text: str) -> list[tuple[int, int]]:
    """Which reference words each segment holds, ``(first, end)`` per segment, from the
    transcript's alignment (a skipped word goes with the segment of the word before it)."""
    spoken = spoken_words(segments)
    reference = tokenize(reference_text)
    ops = align_words([w.token.norm for w in spoken], [t.norm for t in reference])
    owner: list[int] = []
    last = spoken[0].segment if spoken else 0  # words skipped first go with the first segment
    for _kind, i, j in ops:
        if i is not None:
            last = spoken[i].segment
        if j is not None:
            owner.append(last)
    plan: list[tuple[int, int]] = []
    for index in range(len(segments)):
        held = [j for j, seg in enumerate(owner) if seg == index]
        plan.append((held[0], held[-1] + 1) if held else (0, 0))
    return plan


def compare_reading(segments: list[dict[str, Any]], reference_text: str, long_pause_s: float = 1.0) -> dict[str, Any]:
    """The contract's ``errors`` and the word-level ``report`` of a reading against a text, from
    the transcript alone (the fallback when the aligner's evidence is missing)."""
    spoken = spoken_words(segments)
    reference = tokenize(reference_text)
    ops = align_words([w.token.norm for w in spoken], [t.norm for t in reference])
    entries = classify(spoken, reference, ops)
    phrases = [str(s.get("text", "")) for s in segments]
    errors: list[dict[str, Any]] = []
    if not segments:  # nothing was said: every reference word was skipped
        errors = [{"audio_segment": None, "at_char": 0, "found": "", "expected": t.norm} for t in reference]
    for err in errors_from_ops(phrases, [(w.segment, w.token) for w in spoken], reference, ops):
        errors.append({
            "audio_segment": _segment_ref(segments[err.phrase]),
            "at_char": err.at_char,
            "found": err.found,
            "expected": err.expected,
        })
    summary = summarise(entries, spoken, long_pause_s)
    summary["rescored_words"] = 0
    summary["forced_scoring"] = False
    return {"errors": errors, "report": {"words": entries, "summary": summary}}


# -- the acoustic assessment (percept.reading.verdict) ---------------------------------------

ACOUSTIC = "acoustic_evidence"  # a difference the likelihood ratio of the audio supports
MISS = "acoustic_evidence_cleared"  # the transcript differed, the audio supports the text
RULE_EVIDENCE = ACOUSTIC + RULE


def _plan_from_ops(spoken: list[SpokenWord], n_ref: int, n_segments: int, ops: list[Op]) -> list[tuple[int, int]]:
    owner: list[int] = [0] * n_ref
    last = spoken[0].segment if spoken else 0
    for _kind, i, j in ops:
        if i is not None:
            last = spoken[i].segment
        if j is not None:
            owner[j] = last
    plan: list[tuple[int, int]] = []
    for index in range(n_segments):
        held = [j for j in range(n_ref) if owner[j] == index]
        plan.append((held[0], held[-1] + 1) if held else (0, 0))
    return plan


@dataclass
class Assessment:
    """The transcript side of an assessment: what to ask the aligner per segment."""

    spoken: list[SpokenWord]
    reference: list[Token]
    ops: list[Op]  # phonetic alignment of the free transcript to the reference
    plan: list[tuple[int, int]]  # per segment: (first, end) reference indexes
    words: list[str]  # the reference as written

    def requests(self) -> list[dict[str, list[str]]]:
        """Per segment: ``reference`` (its words as written) and ``transcript`` (its words)."""
        from percept.reading.verdict import written_words

        said = written_words([w.token for w in self.spoken])
        result = []
        for s, (a, b) in enumerate(self.plan):
            part = list(self.words[a:b])
            if part:
                part[0] = part[0][:1].upper() + part[0][1:]
            result.append({"reference": part,
                           "transcript": [w for w, sp in zip(said, self.spoken, strict=True) if sp.segment == s]})
        return result


def prepare_assessment(segments: list[dict[str, Any]], reference_text: str) -> Assessment:
    """Phonetic alignment of the free transcript to the reference, and the segment plan."""
    from percept.reading.verdict import phonetic_align, written_words

    spoken = spoken_words(segments)
    reference = tokenize(reference_text)
    ops = phonetic_align([w.token.norm for w in spoken], [t.norm for t in reference])
    plan = _plan_from_ops(spoken, len(reference), len(segments), ops)
    return Assessment(spoken, reference, ops, plan, written_words(reference))


def evidence_kind(cand: dict[str, Any]) -> str:
    """Which operating point a candidate reading answers to: ``replace``, ``delete``, ``insert``
    (an added word a transcript heard) or ``repeat`` (a word said twice that no transcript
    heard: the aligner tests every word's repetition, see
    :func:`percept.reading.forced.repetition_hypotheses`)."""
    kind = str(cand["kind"])
    return "repeat" if kind == "insert" and cand.get("source") == "repeat" else kind


def at_onset(cand: dict[str, Any]) -> bool:
    """Whether a candidate adds a word a transcript heard before the first reference word of
    its segment: at the onset of a stretch of speech cut on silence Whisper hears short words
    that were never said (an "and"), so such a word answers to its own operating point
    (``onset_added_threshold``). The end of a segment keeps the added-word point (the tuning
    part shows no such false words there, and a word added after the last one is a common
    misreading)."""
    return evidence_kind(cand) == "insert" and int(cand["ref"]) == 0


def false_start_of(said: str, target: str, echo: list[float | None] | None, echo_level: float | None) -> bool:
    """Whether an added word (``said``, normalised) before ``target`` was a false start of it:
    its spelling is a prefix of the word or sounds close to it (phonemes), or, with
    ``echo_level``, its audio sounds closer to the next word than to the previous word by at
    least ``-echo_level`` (``echo``: the aligner's log-mel distances to the words around it)."""
    from percept.reading.phonetic import distance

    if target.startswith(said) or distance(said, target) <= SELF_CORRECTION_DISTANCE:
        return True
    before, after = (list(echo or []) + [None, None])[:2]
    return echo_level is not None and before is not None and after is not None and \
        float(after) - float(before) <= echo_level


def syllable_excess(at: int, base: list[dict[str, Any]], nuclei: list[float], written: list[str],
                    shift: float) -> int | None:
    """Syllable nuclei the audio holds around an added word (before the segment's word ``at``)
    beyond the syllables of the words read there: the nuclei (:func:`percept.reading.forced.
    syllable_nuclei`) from the forced start of word ``at - 1`` to that of word ``at + 2`` (the
    segment's start and end at its edges), less the syllables of those words. A word said twice
    adds at least one; Whisper's forced times of the page's words are the anchors, and its
    scores do not tell a short word said twice from one said once. ``None`` without times."""
    from percept.reading.phonetic import syllables

    n = len(base)
    if n == 0 or len(written) != n:
        return None
    lo, hi = at - 1, at + 2
    start = float(base[lo]["start"]) + shift if lo >= 0 else 0.0
    end = float(base[hi]["start"]) + shift if hi < n else float(base[-1]["end"]) + 0.1
    held = sum(1 for t in nuclei if start <= float(t) < end)
    return held - sum(syllables(normalise_word(w) or w) for w in written[max(lo, 0):hi])


def _accepted(assessed: list[dict[str, Any] | None], plan: list[tuple[int, int]], segments: list[dict[str, Any]],
              limits: dict[str, float], shift: float, weights: dict[str, float] | None = None,
              words: list[str] | None = None, prior_weight: float = 0.0,
              echo_level: float | None = None,
              next_word_logprob: float | None = None,
              syllable_weight: float | None = None) -> tuple[dict[int, dict[str, Any]], dict[int, list[dict[str, Any]]],
                                                       dict[int, tuple[float, float]]]:
    """Changes whose evidence clears the operating point of their kind (``limits``, see
    :func:`evidence_kind`), by global reference index: one change of a word
    (``replace``/``delete``), the words inserted before it; and per reference word the
    rejected change that came closest to its operating point, as ``(evidence, limit)``.
    Where two accepted changes compete, the one further past its operating point stays.

    ``prior_weight``: the share of the language model's opinion (the candidate's likelihood
    ratio against silence, ``llr_prior``) taken out of each of the two ratios the evidence adds
    up (without and with the page as context). ``syllable_weight``: nats added to the evidence of
    a repetition hypothesis whose stretch of audio holds more syllable nuclei than its words
    have syllables, taken away from one whose stretch holds none more (see
    :func:`syllable_excess`)."""
    from percept.reading.verdict import evidence_features, evidence_score

    change_at: dict[int, dict[str, Any]] = {}
    inserts: dict[int, list[dict[str, Any]]] = {}
    rejected: dict[int, tuple[float, float]] = {}

    def margin(item: dict[str, Any]) -> float:
        return float(item["llr"]) - float(item["limit"])

    def reject(j: int, llr: float, limit: float) -> None:
        if j not in rejected or llr - limit > rejected[j][0] - rejected[j][1]:
            rejected[j] = (llr, limit)

    for s, answer in enumerate(assessed):
        if not answer or s >= len(plan):
            continue
        a, b = plan[s]
        offset = float(segments[s].get("start", 0.0))
        written = (words or [])[a:b]
        for cand in answer.get("candidates", []):
            j = a + int(cand["ref"])
            llr = float(cand["llr"])
            if prior_weight and cand.get("llr_prior") is not None:
                llr = round(llr - 2 * prior_weight * float(cand["llr_prior"]), 3)
                cand = {**cand, "llr_raw": cand["llr"], "llr": llr}
            if syllable_weight and evidence_kind(cand) == "repeat" and answer.get("nuclei") is not None:
                extra = syllable_excess(int(cand["ref"]), answer.get("base", []), answer["nuclei"], written, shift)
                if extra is not None:
                    llr = round(llr + (syllable_weight if extra >= 1 else -syllable_weight), 3)
                    cand = {**cand, "llr_raw": cand.get("llr_raw", cand["llr"]), "llr": llr, "syllable_excess": extra}
            if weights is not None:
                llr = evidence_score(evidence_features(cand, answer.get("base", []), written), weights)
                cand = {**cand, "llr_raw": cand["llr"], "llr": llr}
            timed = {k: round(max(offset, offset + float(cand[k]) + shift), 3)
                     for k in ("start", "end") if cand.get(k) is not None}
            kind = evidence_kind(cand)
            limit = limits["onset"] if "onset" in limits and at_onset(cand) else limits[kind]
            if kind == "delete" and int(cand["ref"]) == 0 and "onset_delete" in limits:
                limit = limits["onset_delete"]
            item = {**cand, **timed, "ref": j, "segment": s, "limit": limit}
            if llr <= limit:
                reject(j, llr, limit)
                continue
            if cand["kind"] == "insert":
                # One added word per gap: the transcripts often offer several spellings of the
                # one word said there; the best supported one stays.
                held = inserts.setdefault(j, [])
                if not held or margin(item) > margin(held[0]):
                    inserts[j] = [item]
            elif j not in change_at or margin(item) > margin(change_at[j]):
                change_at[j] = item
    from percept.reading.phonetic import distance

    def heard_again(change: dict[str, Any] | None, added: dict[str, Any]) -> bool:
        """``added`` sounds like the replacement ``change`` right before it (*marvel* for "the",
        *marble* heard again before the next word): one word read differently (see below)."""
        if not change or change["kind"] != "replace":
            return False
        said, extra = normalise_word(change["word"]), normalise_word(added["word"])
        return bool(said and extra) and distance(said, extra) <= SELF_CORRECTION_DISTANCE

    # An added word whose own reading leaves the next reference word unheld by the audio (that
    # word's forced log-probability in the reading with the added word, ``logprobs[2]``, below
    # ``next_word_logprob``) was said instead of it: a substitution of that word (where a replaced
    # word was accepted there too, the replacement stays), not an insertion before it. Not an
    # added word that sounds like a replacement of the word before that stays: the rule for a
    # replaced word heard again (below) drops it.
    if next_word_logprob is not None:
        for j in sorted(inserts):
            item = inserts[j][0]
            lp = (item.get("logprobs") or [None, None, None])[2]
            if lp is None or float(lp) >= next_word_logprob or not 0 <= j < len(words or []):
                continue
            said = normalise_word(item["word"])
            if said in {normalise_word((words or [])[k]) for k in (j - 1, j) if k >= 0}:
                continue  # a copy of a word around it: the repetition rules decide
            before = change_at.get(j - 1)
            if before is not None and heard_again(before, item) and (not inserts.get(j - 1) or max(
                    margin(c) for c in inserts[j - 1]) <= margin(before)):
                continue  # (the replacement stays there: an added word before it is less clear)
            del inserts[j]
            if j not in change_at or change_at[j]["kind"] != "replace":
                change_at[j] = {**item, "kind": "replace"}
    # A word Whisper preferred at a reference word given the page's words before it (the
    # aligner's probe, see :meth:`percept.reading.forced.ForcedAligner.probe`) presumes those
    # words were read as written: next to an accepted change before it (the word before changed,
    # or a word added before that one), that presumption is gone. The probe starts afresh at every
    # segment: a change in the segment before does not count. (A word added right before the
    # probed one is another explanation of the same audio: the rule below keeps the clearer.)
    first_of = {j: a for a, b in plan for j in range(a, b)}
    for j in [j for j in change_at if change_at[j].get("source") == "probe"]:
        if first_of.get(j, 0) <= j - 1 and ((j - 1) in change_at or inserts.get(j - 1)):
            gone = change_at.pop(j)
            reject(j, float(gone["llr"]), float(gone["limit"]))
    # One word read differently is one miscue: a replaced word and an added word before it
    # both accepted are two explanations of the same stretch of audio; the clearer one stays.
    for j in [j for j in change_at if change_at[j]["kind"] == "replace" and inserts.get(j)]:
        if max(margin(c) for c in inserts[j]) > margin(change_at[j]):
            gone = change_at.pop(j)
            reject(j, float(gone["llr"]), float(gone["limit"]))
        else:
            del inserts[j]

    # So are a replaced word and an added word right after it that sounds like the replacement
    # (*marvel* for "the", and *marble* heard again before the next word): the replacement
    # stays, however the two compare. Both cleared their points, so the audio does not hold the
    # reference word as written; keeping the added word instead would report that word as read
    # correctly (four pooled tuning parts at the shipped point: substitutions found 18 -> 19,
    # false insertions 16 -> 15, nothing else moved).
    for j in [j for j in change_at if change_at[j]["kind"] == "replace" and inserts.get(j + 1)]:
        if not heard_again(change_at[j], inserts[j + 1][0]):
            continue
        gone = inserts.pop(j + 1)[0]
        reject(j + 1, float(gone["llr"]), float(gone["limit"]))
    # Likewise one extra word heard around a reference word: a false start that sounds like it
    # before it ("snore snow") and a second copy after it ("snow snow") both accepted explain
    # the same extra word; the clearer one stays.
    for j in sorted(inserts):
        nxt = inserts.get(j + 1)
        if not inserts.get(j) or not nxt or j >= len(words or []):
            continue
        said, target = normalise_word(inserts[j][0]["word"]), normalise_word((words or [])[j])
        # (the audio is not asked about a copy of the word before: that one is a repetition of it)
        echo = inserts[j][0].get("echo") if j == 0 or said != normalise_word((words or [])[j - 1]) else None
        if not said or normalise_word(nxt[0]["word"]) != target or said == target or not false_start_of(
                said, target, echo, echo_level):
            continue
        gone_at = j if margin(nxt[0]) > margin(inserts[j][0]) else j + 1
        gone = inserts.pop(gone_at)[0]
        reject(gone_at, float(gone["llr"]), float(gone["limit"]))
    return change_at, inserts, rejected


def assess_reading(segments: list[dict[str, Any]], reference_text: str,
                   assessed: list[dict[str, Any] | None], threshold: float, long_pause_s: float = 1.0,
                   prepared: Assessment | None = None, time_shift: float = 0.0,
                   added_threshold: float | None = None, weights: dict[str, float] | None = None,
                   false_start_logprob: float | None = None, omission_threshold: float | None = None,
                   repeat_threshold: float | None = None, prior_weight: float = 0.0,
                   onset_added_threshold: float | None = None,
                   false_start_echo: float | None = None,
                   onset_omission_threshold: float | None = None,
                   next_word_logprob: float | None = None,
                   repeat_syllable_weight: float | None = None) -> dict[str, Any]:
    """The contract's ``errors`` and the word-level ``report`` from acoustic evidence.

    ``assessed``: per segment the aligner's answer to :meth:`Assessment.requests` (see
    :meth:`percept.reading.forced.ForcedAligner.assess`; times relative to the segment), or
    ``None`` where it is missing (those words keep the transcript's alignment).
    ``threshold`` applies to replaced words, ``omission_threshold`` (default: ``threshold``) to
    skipped ones, ``added_threshold`` (default: ``threshold``) to added words a transcript heard
    (insertions, repetitions, false starts) and ``repeat_threshold`` (default:
    ``added_threshold``) to the repetition every word is tested for; ``false_start_logprob`` tells a
    false start that sounds like the word from a repetition (see :func:`_repetitions`);
    ``onset_added_threshold`` (default: ``added_threshold``) to an added word a transcript heard
    before a segment's first word (see :func:`at_onset`); ``onset_omission_threshold`` (default:
    ``omission_threshold``) to a segment's first word skipped: at the onset of speech cut on
    silence the recogniser misses short first words ("The", "We") that were said, as it hears
    ones that were not. ``false_start_echo``: an added word
    whose audio is closer to the next word's than to the previous word's by at least minus this
    is a false start of the next word (see :func:`_repetitions`). ``next_word_logprob``: an added
    word whose reading leaves the next word's forced log-probability below this was said instead
    of that word (a substitution, see :func:`_accepted`). ``repeat_syllable_weight``: nats added to
    (taken from) the evidence of a word said twice that no transcript heard when the audio holds
    more (no more) syllable nuclei around it than the page's words have (see :func:`_accepted`).
    ``prior_weight`` takes the language model's share out of the
    evidence (see :func:`_accepted`). ``time_shift`` (seconds) is added to the aligner's word times (Whisper's cross-attention
    times lag the speech; the setting ``word_time_shift_s`` is measured by the benchmark).
    """
    from percept.reading.phonetic import distance
    from percept.reading.verdict import confidence

    state = prepared or prepare_assessment(segments, reference_text)
    spoken, reference = state.spoken, state.reference
    added = threshold if added_threshold is None else added_threshold
    limits = {"replace": threshold, "delete": threshold if omission_threshold is None else omission_threshold,
              "insert": added, "repeat": added if repeat_threshold is None else repeat_threshold,
              "onset": added if onset_added_threshold is None else onset_added_threshold}
    limits["onset_delete"] = limits["delete"] if onset_omission_threshold is None else onset_omission_threshold
    change_at, inserts, rejected = _accepted(assessed, state.plan, segments, limits, time_shift, weights, state.words,
                                             prior_weight, false_start_echo, next_word_logprob,
                                             repeat_syllable_weight)
    scored_segments = {s for s, answer in enumerate(assessed) if answer}
    # Segments where the recogniser heard no word and the voice activity detector no speech
    # (noise, beeps, a tone): scoring the page against sound that holds no speech is no
    # evidence that it was read. (tiny.en also hears nothing in some fast real readings; there
    # the detector finds speech and the forced scoring decides.)
    heard = {w.segment for w in spoken}
    no_speech = {s for s, answer in enumerate(assessed)
                 if answer and s not in heard and float(answer.get("speech_s", 1.0)) <= 0.0}
    # Transcript positions per reference word (free alignment), for times and the errors.
    said_at: dict[int, int] = {}
    for kind, i, j in state.ops:
        if i is not None and j is not None and kind in ("equal", "replace"):
            said_at.setdefault(j, i)
    base: dict[int, dict[str, Any]] = {}
    for s, answer in enumerate(assessed):
        if not answer or s >= len(state.plan):
            continue
        a, _b = state.plan[s]
        offset = float(segments[s].get("start", 0.0))
        for k, word in enumerate(answer.get("base", [])):
            base[a + k] = {"start": round(max(offset, offset + word["start"] + time_shift), 3),
                           "end": round(max(offset, offset + word["end"] + time_shift), 3),
                           "probability": round(math.exp(min(0.0, float(word["logprob"]))), 4), "segment": s}

    def owner(j: int) -> int | None:
        return next((s for s, (a, b) in enumerate(state.plan) if a <= j < b), None)

    entries: list[dict[str, Any]] = []
    for j, token in enumerate(reference):
        seg = owner(j)
        for extra in inserts.get(j, []):
            entries.append({"index": None, "at_index": j, "word": "", "status": "insertion", "spoken": extra["word"],
                            "start": extra.get("start"), "end": extra.get("end"), "segment": extra["segment"],
                            "probability": None, "method": ACOUSTIC, "evidence": extra["llr"],
                            "confidence": confidence(extra["llr"], extra["limit"]), "_logprobs": extra.get("logprobs"), "_echo": extra.get("echo")})
        timed = base.get(j)
        i = said_at.get(j)
        free = spoken[i] if i is not None else None
        entry: dict[str, Any] = {
            "index": j, "word": token.norm, "status": "correct", "spoken": token.text,
            "start": timed["start"] if timed else (round(free.start, 3) if free else None),
            "end": timed["end"] if timed else (round(free.end, 3) if free else None),
            "segment": timed["segment"] if timed else (free.segment if free else seg),
            "probability": round(float(free.probability), 3) if free and free.probability is not None else None,
            "forced_probability": timed["probability"] if timed else None,
            "method": ACOUSTIC if seg in scored_segments else (free.method if free else WORD_TIMES),
        }
        change = change_at.get(j)
        if change is not None:
            entry["status"] = "substitution" if change["kind"] == "replace" else "omission"
            entry["spoken"] = change["word"]
            if change["kind"] == "replace":
                entry["start"], entry["end"] = change.get("start", entry["start"]), change.get("end", entry["end"])
            entry["evidence"] = change["llr"]
            entry["confidence"] = confidence(change["llr"], change["limit"])
        elif j in rejected:
            entry["evidence"] = rejected[j][0]
            entry["confidence"] = confidence(*rejected[j])
            entry["method"] = MISS
            if free is not None and free.token.norm != token.norm:
                entry["transcript"] = free.token.text
        elif seg not in scored_segments and free is None:
            entry["status"] = "omission"  # no evidence either way: the transcript's verdict
        elif seg not in scored_segments and free is not None and distance(free.token.norm, token.norm) > 0:
            entry["status"], entry["spoken"] = "substitution", free.token.text
        if entry["status"] == "correct" and seg in no_speech:
            entry["status"] = "omission"
        if "confidence" not in entry:
            entry["confidence"] = entry["forced_probability"] if timed else entry["probability"]
        entry["uncertain"] = bool(entry["confidence"] is not None and entry["confidence"] < 0.7)
        entries.append(entry)
    for extra in inserts.get(len(reference), []):
        entries.append({"index": None, "at_index": len(reference), "word": "", "status": "insertion",
                        "spoken": extra["word"], "start": extra.get("start"), "end": extra.get("end"),
                        "segment": extra["segment"], "probability": None, "method": ACOUSTIC,
                        "evidence": extra["llr"], "confidence": confidence(extra["llr"], extra["limit"]),
                        "_logprobs": extra.get("logprobs"), "_echo": extra.get("echo")})
    _repetitions(entries, false_start_logprob, false_start_echo, heard_twice(spoken, said_at))
    pauses = _pauses(segments, assessed, entries, long_pause_s)
    errors = _errors(entries, segments, spoken, said_at, reference)
    summary = summarise(entries, spoken, long_pause_s)
    summary["long_pauses"] = pauses
    summary["rescored_words"] = sum(1 for e in entries if e["method"] == MISS)
    summary["forced_scoring"] = bool(scored_segments)
    summary["miscue_threshold"] = threshold
    summary["added_word_threshold"] = added
    summary["omission_threshold"] = limits["delete"]
    summary["repeat_threshold"] = limits["repeat"]
    summary["onset_added_threshold"] = limits["onset"]
    summary["onset_omission_threshold"] = limits["onset_delete"]
    summary["prior_weight"] = prior_weight
    return {"errors": errors, "report": {"words": entries, "summary": summary}}


def heard_twice(spoken: list[SpokenWord], said_at: dict[int, int]) -> set[int]:
    """Reference words the free transcript wrote twice in a row, the same spelling both times
    (*round round* for "brown", *snore snore* for "snow"): however the recogniser spelt the
    word, it heard one sound said twice. A false start sounds like the word but not the same,
    and the recogniser rarely spells the two alike; a word said twice it does."""
    twice: set[int] = set()
    for j, i in said_at.items():
        here = spoken[i]
        for k in (i - 1, i + 1):
            if 0 <= k < len(spoken) and spoken[k].segment == here.segment and spoken[k].token.norm == here.token.norm:
                twice.add(j)
    return twice


def _repetitions(entries: list[dict[str, Any]], false_start_logprob: float | None = None,
                 false_start_echo: float | None = None, twice: set[int] | None = None) -> None:
    """An inserted word that repeats the word before or after it is a repetition of that
    word; one that sounds like a false start of the next word, a self-correction of it.

    A repetition whose first copy the audio holds poorly (its forced log-probability in the
    repeated reading below ``false_start_logprob``) was a false start that sounds like the
    word (a confusable word, then the right one): a self-correction.

    "Sounds like" is read twice: from the spelling the recogniser gave the added word (its
    phonemes against the next word's), and, with ``false_start_echo``, from the audio itself:
    the added word's stretch sounds closer to the next word's than to the previous word's by
    at least ``-false_start_echo`` (the aligner's ``echo``: log-mel distances to the words
    around it, see :func:`percept.reading.forced.span_distance`). The recogniser often spells a
    false start as an unrelated word (*odd* for *bug* before *bag*); an added word that is not
    a false start has no reason to sound more like the word after it than the one before.

    ``twice`` (see :func:`heard_twice`): reference words the free transcript wrote twice in a
    row; an added word next to one is a repetition of it, never a false start."""

    twice = twice or set()
    k = 0
    while k < len(entries):
        entry = entries[k]
        if entry["status"] != "insertion":
            k += 1
            continue
        said = normalise_word(entry["spoken"])
        nxt = next((e for e in entries[k + 1:] if e["index"] is not None), None)
        prev = next((e for e in reversed(entries[:k]) if e["index"] is not None), None)
        target, status = None, None
        logprobs = entry.get("_logprobs") or [None, None, None]
        first_copy: float | None = None
        if nxt is not None and nxt["status"] == "correct" and said == nxt["word"]:
            target, status, first_copy = nxt, "repetition", logprobs[1]
        elif prev is not None and prev["status"] == "correct" and said == prev["word"]:
            target, status, first_copy = prev, "repetition", logprobs[0]
        if status == "repetition" and false_start_logprob is not None and first_copy is not None \
                and float(first_copy) < false_start_logprob and (target or {}).get("index") not in twice:
            status = "self_correction"
        if status is None and nxt is not None and nxt["status"] == "correct" and nxt["index"] in twice:
            # the recogniser wrote the word twice: a repetition, whatever the added word's spelling
            target, status = nxt, "repetition"
        elif status is None and prev is not None and prev["status"] == "correct" and prev["index"] in twice:
            target, status = prev, "repetition"
        if status is None and nxt is not None and nxt["status"] == "correct" and false_start_of(
                said, nxt["word"], entry.get("_echo"), false_start_echo):
            target, status = nxt, "self_correction"
        if target is None:
            k += 1
            continue
        target["status"] = status
        target["method"] = target["method"] + RULE
        first, second = (entry, target) if target is nxt else (target, entry)
        target["spoken"] = f"{first['spoken']} {second['spoken']}"
        target["evidence"] = entry.get("evidence")
        target["confidence"] = entry.get("confidence")
        if first.get("start") is not None:
            target["start"] = first["start"]
        if second.get("end") is not None:
            target["end"] = second["end"]
        del entries[k]
    for entry in entries:
        entry.pop("_logprobs", None)
        entry.pop("_echo", None)


def _errors(entries: list[dict[str, Any]], segments: list[dict[str, Any]], spoken: list[SpokenWord],
            said_at: dict[int, int], reference: list[Token]) -> list[dict[str, Any]]:
    """The contract's errors from the verdicts: each placed in the segment text where the
    transcript has the word (or where it would have been)."""
    if not segments:
        return [{"audio_segment": None, "at_char": 0, "found": "", "expected": t.norm} for t in reference]
    errors: list[dict[str, Any]] = []

    def place(j: int | None, after: bool = False) -> tuple[int, int]:
        """(segment, char) of reference word ``j`` in the transcript, or where it would be."""
        if j is not None and j in said_at:
            word = spoken[said_at[j]]
            return word.segment, word.token.end if after else word.token.start
        later = [i for jj, i in said_at.items() if j is None or jj > j]
        if later:
            word = spoken[min(later)]
            return word.segment, word.token.start
        if spoken:
            word = spoken[-1]
            return word.segment, word.token.end
        return 0, 0

    for entry in entries:
        status, j = entry["status"], entry["index"]
        if status == "correct":
            continue
        if status == "insertion":
            seg, at = place(entry.get("at_index"))
            found, expected = entry["spoken"], ""
        elif status in ("repetition", "self_correction"):
            extra = entry["spoken"].split(" ")[0 if status == "self_correction" else -1]
            seg, at = place(j, after=status == "repetition")
            found, expected = extra, ""
        elif status == "substitution":
            seg, at = place(j)
            if j in said_at and spoken[said_at[j]].token.norm == normalise_word(entry["spoken"]):
                found = segments[seg]["text"][at : at + len(spoken[said_at[j]].token.text)]
            else:
                found = entry["spoken"]
            expected = entry["word"]
        else:
            seg, at = place(j)
            found, expected = "", entry["word"]
        seg = min(max(seg, 0), len(segments) - 1)
        errors.append({"audio_segment": _segment_ref(segments[seg]), "at_char": at, "found": found,
                       "expected": expected})
    return errors


def _pauses(segments: list[dict[str, Any]], assessed: list[dict[str, Any] | None], entries: list[dict[str, Any]],
            long_pause_s: float) -> list[dict[str, Any]]:
    """Long pauses (quiet stretches inside a segment, gaps between segments), each given to
    the word read right after it (``pause_before`` on that word; its start moves to the end
    of the pause)."""
    stretches: list[tuple[float, float]] = []
    for s, seg in enumerate(segments):
        answer = assessed[s] if s < len(assessed) else None
        offset = float(seg.get("start", 0.0))
        for a, b in (answer or {}).get("pauses", []) or []:
            stretches.append((offset + float(a), offset + float(b)))
        if s + 1 < len(segments):
            gap_a, gap_b = float(seg.get("end", 0.0)) - BUFFER_S, float(segments[s + 1].get("start", 0.0)) + BUFFER_S
            if gap_b - gap_a >= long_pause_s:
                stretches.append((gap_a, gap_b))
    timed = sorted((e for e in entries if e.get("start") is not None), key=lambda e: (e["start"], e["end"]))
    result: list[dict[str, Any]] = []
    for a, b in sorted(stretches):
        probe = b + 0.08
        after = next((e for e in timed if e["start"] <= probe < e["end"]), None) or next(
            (e for e in timed if e["start"] >= probe), None)
        if after is None:
            continue
        before = None
        for e in timed:
            if e is after:
                break
            before = e
        after["pause_before"] = round(b - a, 3)
        after["start"] = round(max(after["start"], b), 3)
        if before is not None and before["end"] is not None and before["end"] > a:
            before["end"] = round(max(before["start"] or a, a), 3)
        result.append({"after": before["spoken"] if before else "", "before": after["spoken"], "start": round(a, 3),
                       "end": round(b, 3), "duration": round(b - a, 3), "index": after["index"]})
    return result
