"""The spec's text algorithms: match_words, match_phrases, find_phrases (and edge inputs)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from percept.reading.text import align_words, find_phrases, match_phrases, match_words, number_words, tokenize


def test_contract_example() -> None:
    assert match_phrases([" I red the book"], "I read the book.") == [[(3, "red", "read")]]


def test_skipped_and_added_words() -> None:
    result = match_phrases([" I the book", " and then then some"], "I read the book and then some more.")
    assert result == [[(3, "", "read")], [(5, "then", ""), (19, "", "more")]]


def test_errors_are_reported_in_their_own_phrase() -> None:
    result = match_phrases([" the little dig", " ran to the pork"], "The little dog ran to the park.")
    assert result == [[(12, "dig", "dog")], [(12, "pork", "park")]]


def test_found_keeps_spelling_and_expected_is_normalised() -> None:
    assert match_phrases([" The CAT sat"], "The Cut, sat!") == [[(5, "CAT", "cut")]]


def test_edge_inputs_never_crash() -> None:
    assert match_phrases([], "some text") == []
    assert match_phrases([""], "a b") == [[(0, "", "a"), (0, "", "b")]]
    assert match_phrases(["a b"], "") == [[(0, "a", ""), (2, "b", "")]]
    assert match_phrases([" the cat"], "the cat sat on the mat") == [[(8, "", w) for w in ("sat", "on", "the", "mat")]]
    assert match_phrases(["", ""], "") == [[], []]


def test_digits_match_their_spoken_form() -> None:
    assert match_phrases([" I have three cats"], "I have 3 cats.") == [[]]
    assert match_phrases([" it costs 25 dollars"], "It costs twenty five dollars") == [[]]
    assert number_words(1204) == ["one", "thousand", "two", "hundred", "four"]


def test_punctuation_and_apostrophes() -> None:
    assert [t.norm for t in tokenize("Don't stop -- it's 5 o'clock!")] == ["dont", "stop", "its", "five", "oclock"]


def test_match_words_merges_neighbouring_changes() -> None:
    assert match_words("I red the the book", "I read the book") == [(2, "red the", "read")]
    assert match_words("", "") == []
    assert match_words("a b c", "a c") == [(2, "b", "")]


def test_find_phrases() -> None:
    segments = [" the little dog", " ran to the park.", " It was sunny"]
    assert find_phrases(segments, "dog ran") == [0, 1]
    assert find_phrases(segments, "to the park") == [1]
    assert find_phrases(segments, "an elephant flew") == []
    assert find_phrases(segments, "") == []
    assert find_phrases([], "dog") == []
    assert find_phrases(segments, "!!!") == []


words = st.lists(st.sampled_from(["a", "cat", "sat", "on", "the", "mat", "red", "read"]), max_size=12)


@given(words, words)
def test_alignment_covers_both_texts(first: list[str], second: list[str]) -> None:
    ops = align_words(first, second)
    assert [i for _, i, _ in ops if i is not None] == list(range(len(first)))
    assert [j for _, _, j in ops if j is not None] == list(range(len(second)))
    assert all((op == "equal") == (i is not None and j is not None and first[i] == second[j]) for op, i, j in ops)


@given(words)
def test_identical_texts_have_no_errors(spoken: list[str]) -> None:
    text = " ".join(spoken)
    assert match_phrases([" " + text], text) == [[]]
