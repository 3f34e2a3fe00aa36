"""Text algorithms of the reading contract (docs/reading.md): ``match_words``, ``match_phrases``, ``find_phrases``.

Texts are compared word by word after normalisation (lower case, letters only). Numbers
written with digits are compared in their spoken form ("3" ~ "three"), because a speech
model may write either. Every function accepts empty inputs and returns an empty answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(value: int) -> list[str]:
    """Spoken English words of a non-negative integer (digit by digit past 999 999)."""
    if value < 20:
        return [_ONES[value]]
    if value < 100:
        tens, ones = divmod(value, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if value < 1000:
        hundreds, rest = divmod(value, 100)
        return [_ONES[hundreds], "hundred"] + (number_words(rest) if rest else [])
    if value < 1_000_000:
        thousands, rest = divmod(value, 1000)
        return number_words(thousands) + ["thousand"] + (number_words(rest) if rest else [])
    return [_ONES[int(d)] for d in str(value)]


@dataclass(frozen=True)
class Token:
    """One comparable word: its normalised form and where it came from in the text."""

    norm: str
    start: int
    end: int
    text: str


def normalise_word(word: str) -> str:
    """Lower case, letters only ("Don't," -> "dont")."""
    return "".join(ch for ch in word.lower() if ch.isalpha())


def tokenize(text: str) -> list[Token]:
    """Words of ``text`` with character spans; digit runs become their spoken words."""
    tokens: list[Token] = []
    for match in _WORD.finditer(text or ""):
        raw = match.group(0)
        # "3rd" or "a1" mix letters and digits: split into letter and digit runs.
        for part in re.finditer(r"\d+|[^\W\d_]+(?:['’][^\W\d_]+)*", raw):
            piece = part.group(0)
            start, end = match.start() + part.start(), match.start() + part.end()
            if piece.isdigit():
                for word in number_words(int(piece)):
                    tokens.append(Token(word, start, end, piece))
            else:
                norm = normalise_word(piece)
                if norm:
                    tokens.append(Token(norm, start, end, piece))
    return tokens


def word_similarity(a: str, b: str) -> float:
    """Normalised character similarity of two words in [0, 1]."""
    if a == b:
        return 1.0
    return float(Levenshtein.normalized_similarity(a, b))


def align_words(first: list[str], second: list[str]) -> list[tuple[str, int | None, int | None]]:
    """Word-level edit alignment: ops ("equal"|"replace"|"insert"|"delete", i, j).

    ``insert`` is a word only in ``first`` (the spoken text), ``delete`` one only in
    ``second`` (the reference). A substitution costs less the more alike the two words
    are, so "red" pairs with "read" rather than being an insertion plus an omission.
    """
    n, m = len(first), len(second)
    cost = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = float(i)
    for j in range(1, m + 1):
        cost[0][j] = float(j)
    for i in range(1, n + 1):
        a = first[i - 1]
        row, prev = cost[i], cost[i - 1]
        for j in range(1, m + 1):
            b = second[j - 1]
            sub = 0.0 if a == b else 0.9 + 0.6 * (1.0 - word_similarity(a, b))
            row[j] = min(prev[j - 1] + sub, prev[j] + 1.0, row[j - 1] + 1.0)
    ops: list[tuple[str, int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            a, b = first[i - 1], second[j - 1]
            sub = 0.0 if a == b else 0.9 + 0.6 * (1.0 - word_similarity(a, b))
            if math.isclose(cost[i][j], cost[i - 1][j - 1] + sub):
                ops.append(("equal" if a == b else "replace", i - 1, j - 1))
                i, j = i - 1, j - 1
                continue
        if i > 0 and math.isclose(cost[i][j], cost[i - 1][j] + 1.0):
            ops.append(("insert", i - 1, None))
            i -= 1
        else:
            ops.append(("delete", None, j - 1))
            j -= 1
    ops.reverse()
    return ops


def match_words(first: str, second: str) -> list[tuple[int, str, str]]:
    """Changes turning ``first`` into ``second``, word by word.

    Each change is ``(index in first where it happens, the segment of first to remove,
    the normalised segment of second to put in)``; neighbouring changes are merged into one.
    """
    left, right = tokenize(first), tokenize(second)
    ops = align_words([t.norm for t in left], [t.norm for t in right])
    changes: list[tuple[int, str, str]] = []
    run: list[tuple[str, int | None, int | None]] = []

    def flush(next_left: int | None) -> None:
        if not run:
            return
        lefts = [left[i] for _, i, _ in run if i is not None]
        rights = [right[j].norm for _, _, j in run if j is not None]
        if lefts:
            at, removed = lefts[0].start, first[lefts[0].start : lefts[-1].end]
        else:
            at = next_left if next_left is not None else len(first)
            removed = ""
        changes.append((at, removed, " ".join(rights)))
        run.clear()

    for op in ops:
        if op[0] == "equal":
            flush(left[op[1]].start if op[1] is not None else None)
        else:
            run.append(op)
    flush(None)
    return changes


@dataclass(frozen=True)
class PhraseError:
    """One difference inside a phrase: where, what was said and what was expected."""

    phrase: int
    at_char: int
    found: str
    expected: str


def match_phrases(phrases: list[str], text: str) -> list[list[tuple[int, str, str]]]:
    """Per phrase, the errors ``(at_char, found, expected)`` against the correct ``text``.

    The phrases are compared together with ``text`` (so a word split across two phrases
    still matches); each error is reported in the phrase where the reader made it, with
    ``at_char`` the offset in that phrase's own text. A skipped word is reported in the
    phrase where it should have been read with ``found == ""``, an added one with
    ``expected == ""``. Reference words after the last spoken word count as skipped.
    Errors are word by word (a digit run said as several words is one found string).
    """
    errors = phrase_errors(phrases, text)
    result: list[list[tuple[int, str, str]]] = [[] for _ in phrases]
    for err in errors:
        result[err.phrase].append((err.at_char, err.found, err.expected))
    return result


def phrase_errors(phrases: list[str], text: str) -> list[PhraseError]:
    """:func:`match_phrases` as a flat list of :class:`PhraseError` in reading order."""
    spoken: list[tuple[int, Token]] = [(p, t) for p, phrase in enumerate(phrases) for t in tokenize(phrase)]
    reference = tokenize(text)
    ops = align_words([t.norm for _, t in spoken], [t.norm for t in reference])
    return errors_from_ops(phrases, spoken, reference, ops)


Op = tuple[str, int | None, int | None]


def errors_from_ops(
    phrases: list[str], spoken: list[tuple[int, Token]], reference: list[Token], ops: list[Op]
) -> list[PhraseError]:
    """The contract's errors from an alignment of spoken words against the reference."""
    errors: list[PhraseError] = []

    def anchor(position: int) -> tuple[int, int]:
        """Where a skipped word goes: before the next spoken word of the same phrase, else
        after the previous spoken word."""
        if position < len(spoken) and (position == 0 or spoken[position][0] == spoken[position - 1][0]):
            p, tok = spoken[position]
            return p, tok.start
        if position > 0:
            p, tok = spoken[position - 1]
            return p, tok.end
        return 0, 0

    position = 0
    for op, i, j in ops:
        if op == "equal":
            if i is not None:  # a word read as written that the transcript missed has no spoken word
                position = i + 1
            continue
        # One error per word (the reading report needs word-level verdicts).
        if i is not None:
            p, tok = spoken[i]
            errors.append(PhraseError(p, tok.start, phrases[p][tok.start : tok.end],
                                      reference[j].norm if j is not None else ""))
            position = i + 1
        else:
            assert j is not None
            p, at = anchor(position)
            errors.append(PhraseError(p, at, "", reference[j].norm))
    return [e for e in errors if e.phrase < len(phrases)] if phrases else []


def _prep(text: str) -> str:
    return " ".join(t.norm for t in tokenize(text))


def find_phrases(phrases: list[str], to_find: str, margin: float = 1.05,
                 threshold: float = 0.8) -> list[int]:
    """Indices of the ``phrases`` in which ``to_find`` was said; ``[]`` when it was not.

    Slides a window of about the length of ``to_find`` (up to ``margin`` times longer, in
    words) over the normalised words of all phrases and keeps the best window by character
    similarity; below ``threshold`` the text counts as not found.
    """
    target = _prep(to_find)
    if not target:
        return []
    words: list[tuple[int, str]] = [(p, t.norm) for p, phrase in enumerate(phrases) for t in tokenize(phrase)]
    if not words:
        return []
    n = len(target.split())
    extra = max(1, math.ceil(n * (margin - 1.0)))
    best, best_span = 0.0, (0, 0)
    for size in range(max(1, n - extra), n + extra + 1):
        for start in range(0, max(1, len(words) - size + 1)):
            window = " ".join(w for _, w in words[start : start + size])
            score = float(Levenshtein.normalized_similarity(window, target))
            if score > best + 1e-9:
                best, best_span = score, (start, min(len(words), start + size))
    if best < threshold:
        return []
    return sorted({p for p, _ in words[best_span[0] : best_span[1]]})
