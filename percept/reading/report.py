"""The reading report: every reference word's verdict, with its time in the recording.

The spoken words (with the timestamps the speech model gave each word) are aligned to the
reference text word by word, with a substitution cost that falls with spelling
similarity. The alignment gives the contract's ``errors`` and, per reference word, a
verdict: ``correct``, ``substitution``, ``omission``, ``repetition``, ``self_correction``;
spoken words matching no reference word are ``insertion`` entries. Each verdict says which
method produced it, and the summary gives accuracy, words correct per minute (WCPM),
reading rate and long pauses.

Re-scoring: a free transcript turns many recognition slips into false "misreadings". When
forced scores of the reference words are given (:mod:`percept.reading.forced`), a word the
transcript calls a substitution but whose reference form the audio supports (probability
at least ``accept_substitution``) is judged correct, and likewise a skipped word with
probability at least ``accept_omission``; those verdicts say ``forced_rescoring``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from percept.reading.text import Op, Token, align_words, errors_from_ops, tokenize, word_similarity

WORD_TIMES = "word_alignment"  # alignment over the speech model's word timestamps
INTERPOLATED = "text_alignment_interpolated_times"  # the model gave no word times
RULE = "+rule"
RESCORED = "forced_rescoring"
LOW_CONFIDENCE = 0.5


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


def rescore(entries: list[dict[str, Any]], forced: dict[int, dict[str, Any]], accept_substitution: float,
            accept_omission: float) -> set[int]:
    """Turn transcript verdicts that the audio contradicts into ``correct``; their indexes."""
    rescued: set[int] = set()
    for entry in entries:
        index = entry["index"]
        score = forced.get(index) if index is not None else None
        if score is None:
            continue
        entry["forced_probability"] = score["probability"]
        limit = {"substitution": accept_substitution, "omission": accept_omission}.get(entry["status"])
        if limit is not None and score["probability"] >= limit:
            entry.update(status="correct", method=RESCORED, transcript=entry["spoken"],
                         start=score["start"], end=score["end"])
            entry["spoken"] = entry["word"]
            rescued.add(index)
    return rescued


def compare_reading(segments: list[dict[str, Any]], reference_text: str, long_pause_s: float = 1.0,
                    forced: dict[int, dict[str, Any]] | None = None, accept_substitution: float = 0.2,
                    accept_omission: float = 0.5) -> dict[str, Any]:
    """The contract's ``errors`` and the word-level ``report`` of a reading against a text.

    ``forced`` maps reference word indexes to their forced score (``probability``, absolute
    ``start``/``end``); without it the verdicts are the transcript alignment's.
    """
    spoken = spoken_words(segments)
    reference = tokenize(reference_text)
    ops = align_words([w.token.norm for w in spoken], [t.norm for t in reference])
    entries = classify(spoken, reference, ops)
    rescued = rescore(entries, forced, accept_substitution, accept_omission) if forced else set()
    kept: list[Op] = []
    for kind, i, j in ops:
        if j is not None and j in rescued:
            if kind == "replace":
                kept.append(("equal", i, j))
            continue
        kept.append((kind, i, j))
    phrases = [str(s.get("text", "")) for s in segments]
    errors: list[dict[str, Any]] = []
    if not segments:  # nothing was said: every reference word was skipped
        errors = [{"audio_segment": None, "at_char": 0, "found": "", "expected": t.norm} for t in reference]
    for err in errors_from_ops(phrases, [(w.segment, w.token) for w in spoken], reference, kept):
        errors.append({
            "audio_segment": _segment_ref(segments[err.phrase]),
            "at_char": err.at_char,
            "found": err.found,
            "expected": err.expected,
        })
    summary = summarise(entries, spoken, long_pause_s)
    summary["rescored_words"] = len(rescued)
    summary["forced_scoring"] = forced is not None
    return {"errors": errors, "report": {"words": entries, "summary": summary}}
