"""Acoustic verdicts: was a reference word read as written?

A free transcript disagrees with the page for two reasons: the reader misread, or the
recogniser misheard. Three steps tell them apart:

1. **Phonetic alignment.** The transcript is aligned to the reference by how words *sound*
   (espeak-ng phonemes, :mod:`percept.reading.phonetic`): homophones, spelling variants,
   numbers written as digits and words split or merged ("some thing" / "something") are the
   same reading, not a miscue.
2. **Candidate readings.** Every remaining difference (a substituted, skipped or added word)
   becomes one candidate: the reference of the segment with only that difference applied.
3. **Likelihood ratio.** Whisper scores the reference and each candidate against the audio
   with teacher forcing (:meth:`percept.reading.forced.ForcedAligner.score`). The difference
   of log-likelihoods (nats) is the evidence that the reader said the candidate rather than
   the text: ``llr > threshold`` keeps the miscue, otherwise the word was read as written
   and the transcript's difference was recognition noise. The threshold is a setting
   (``miscue_threshold``), chosen on the tuning half of ``benchmarks/reading_miscues.py``.

The per-word confidence of the report is ``sigmoid(|llr - threshold|)``: 0.5 at the
operating point, close to 1 when the evidence is clear.
"""

from __future__ import annotations

import math
from typing import Any

from percept.reading.phonetic import coarse, distance
from percept.reading.text import Op, Token, normalise_word, tokenize

INSERT_COST = 1.0


def _sub_cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    d = distance(a, b)
    return 0.0 if d == 0.0 else 0.5 + d


def phonetic_align(spoken: list[str], reference: list[str]) -> list[Op]:
    """Edit alignment of spoken words to reference words by sound.

    Ops as :func:`percept.reading.text.align_words` (``equal``, ``replace``, ``insert``,
    ``delete``); two spoken words that together sound like one reference word (or the other
    way round) are ``equal`` to it (the second spoken word of such a pair is left out of the
    ops; the spoken word of a split reference word appears twice).
    """
    n, m = len(spoken), len(reference)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int, str] | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            here = cost[i][j]
            if here == inf:
                continue
            moves: list[tuple[int, int, float, str]] = []
            if i < n and j < m:
                c = _sub_cost(spoken[i], reference[j])
                moves.append((i + 1, j + 1, c, "equal" if c == 0.0 else "replace"))
            if i < n:
                moves.append((i + 1, j, INSERT_COST, "insert"))
            if j < m:
                moves.append((i, j + 1, INSERT_COST, "delete"))
            # Two words heard as one (or one as two) only when they sound the same but for the
            # weak vowels of compounds ("any way" /EniweI/, "anyway" /EnI2weI/).
            if i + 1 < n and j < m and coarse(spoken[i] + " " + spoken[i + 1]) == coarse(reference[j]):
                moves.append((i + 2, j + 1, 0.0, "merge"))
            if i < n and j + 1 < m and coarse(spoken[i]) == coarse(reference[j] + " " + reference[j + 1]):
                moves.append((i + 1, j + 2, 0.0, "split"))
            for a, b, c, kind in moves:
                if here + c < cost[a][b] - 1e-9:
                    cost[a][b] = here + c
                    back[a][b] = (i, j, kind)
    ops: list[Op] = []
    i, j = n, m
    while i > 0 or j > 0:
        step = back[i][j]
        assert step is not None
        pi, pj, kind = step
        if kind == "merge":
            ops.append(("equal", pi, pj))
        elif kind == "split":
            ops.extend([("equal", pi, pj + 1), ("equal", pi, pj)])
        elif kind == "insert":
            ops.append(("insert", pi, None))
        elif kind == "delete":
            ops.append(("delete", None, pj))
        else:
            ops.append((kind, pi, pj))
        i, j = pi, pj
    ops.reverse()
    return ops


def written_words(reference: list[Token]) -> list[str]:
    """Words as Whisper should see them: as written (case kept), digits as their words."""
    return [t.norm if any(ch.isdigit() for ch in t.text) else t.text for t in reference]


def changes_between(words: list[str], reference: list[str]) -> list[dict[str, Any]]:
    """The differences of a transcript from the reference (both word lists), by sound.

    Each change: ``kind`` (``replace``, ``delete``, ``insert``), ``ref`` (the reference word
    replaced or skipped; for an insertion, the reference word it comes before, possibly
    ``len(reference)``), ``word`` (what was said, as written) and ``norm``.
    """
    tokens = tokenize(" ".join(words))
    said = written_words(tokens)
    ref_norm = [normalise_word(w) or w.lower() for w in reference]
    ops = phonetic_align([t.norm for t in tokens], ref_norm)
    changes: list[dict[str, Any]] = []
    next_ref = [len(reference)] * (len(ops) + 1)
    for k in range(len(ops) - 1, -1, -1):
        j = ops[k][2]
        next_ref[k] = j if j is not None else next_ref[k + 1]
    for k, (kind, i, j) in enumerate(ops):
        if kind == "replace":
            assert i is not None and j is not None
            changes.append({"kind": "replace", "ref": j, "word": said[i], "norm": tokens[i].norm})
        elif kind == "delete":
            assert j is not None
            changes.append({"kind": "delete", "ref": j, "word": "", "norm": ""})
        elif kind == "insert":
            assert i is not None
            changes.append({"kind": "insert", "ref": next_ref[k], "word": said[i], "norm": tokens[i].norm})
    return changes


def apply_change(reference: list[str], change: dict[str, Any]) -> tuple[list[str], int | None]:
    """The reference with one change applied, and where the changed word now is."""
    words = list(reference)
    j = int(change["ref"])
    word = str(change["word"])
    if change["kind"] == "replace":
        words[j] = word[:1].upper() + word[1:] if reference[j][:1].isupper() else word
        return words, j
    if change["kind"] == "delete":
        del words[j]
        if j == 0 and words and reference[0][:1].isupper():
            words[0] = words[0][:1].upper() + words[0][1:]
        return words, None
    if j == 0 and words and words[0][:1].isupper() and not words[0][1:2].isupper():
        word = word[:1].upper() + word[1:]
        words[0] = words[0][:1].lower() + words[0][1:] if words[0] not in ("I",) else words[0]
    words.insert(j, word)
    return words, j


def confidence(llr: float | None, threshold: float) -> float | None:
    """How sure a verdict is, from the distance of its evidence to the operating point."""
    if llr is None:
        return None
    return round(1.0 / (1.0 + math.exp(-abs(llr - threshold))), 3)


# -- one score per candidate reading: the evidence combined -----------------------------------

# What the verdict of a candidate reading is made of (all from the aligner's answer):
# its kind (replace is the base case), the log-likelihood ratio over the text without
# context and with the page as context, the goodness of pronunciation (GOP) of the reference
# word it touches — the forced log-probability of that word on its span, low when the audio
# does not hold it — and of the word before it, and how far the candidate word sounds from
# the reference word (1 for an added or skipped word).
FEATURES = ("bias", "delete", "insert", "repeat", "llr_free", "llr_context", "gop", "gop_prev", "distance")


def evidence_features(cand: dict[str, Any], base: list[dict[str, Any]], reference: list[str]) -> list[float]:
    """The features of one candidate (``FEATURES``, in order). ``base``: the aligner's per
    reference word scores of the segment; ``reference``: the segment's words as written;
    ``cand["ref"]`` is relative to the segment."""
    r = int(cand["ref"])
    n = len(reference)
    kind = str(cand["kind"])
    repeat = kind == "insert" and cand.get("source") == "repeat"

    def gop(k: int) -> float:
        return float(base[k]["logprob"]) if 0 <= k < len(base) else 0.0

    llr_free = float(cand.get("llr_free", cand.get("llr", 0.0)))
    llr_context = float(cand.get("llr_context", llr_free))
    here = min(r, n - 1) if n else 0
    if kind == "replace" and r < n:
        far = distance(normalise_word(reference[r]) or reference[r].lower(), str(cand["norm"]))
    elif kind == "insert" and r < n and not repeat:
        far = distance(normalise_word(reference[r]) or reference[r].lower(), str(cand["norm"]))
    else:
        far = 1.0
    return [1.0, float(kind == "delete"), float(kind == "insert" and not repeat), float(repeat),
            max(-30.0, llr_free), max(-30.0, llr_context), max(-20.0, gop(here)), max(-20.0, gop(here - 1)), far]


def evidence_score(features: list[float], weights: dict[str, float]) -> float:
    """The log-odds that the candidate is what the reader said: a linear model over
    ``FEATURES`` (``benchmarks/reading_miscues.py --evidence fit`` fits one on the tuning half)."""
    return round(sum(weights.get(name, 0.0) * value for name, value in zip(FEATURES, features, strict=True)), 3)
