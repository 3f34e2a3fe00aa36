"""How words sound: espeak-ng phonemes and a phonetic distance between words.

A speech model writes what it heard in its own spelling: "their" for "there", "some thing"
for "something", "colour" for "color", "3" for "three". Comparing the *sounds* of the
reference word and the recognised word (espeak-ng's phonemes, the same ones ``espeak-ng -q
-x`` prints) tells such recognition noise apart from a word read differently.

libespeak-ng is called through ctypes (``espeak_TextToPhonemes``; Debian ``libespeak-ng1``,
installed with ``espeak-ng``). Without it, words are compared by their letters.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from functools import lru_cache
from typing import Any

from rapidfuzz.distance import Levenshtein

logger = logging.getLogger(__name__)
_LOCK = threading.Lock()
_STATE: dict[str, Any] = {}
_STRESS = str.maketrans("", "", "'\",%=_|")


def library() -> Any | None:
    """The initialised libespeak-ng (``None`` when it is not installed). One per process."""
    with _LOCK:
        if "lib" not in _STATE:
            try:
                lib = ctypes.CDLL("libespeak-ng.so.1")
                rate = lib.espeak_Initialize(2, 0, None, 0)  # AUDIO_OUTPUT_SYNCHRONOUS, no playback
                if rate <= 0:
                    raise OSError(f"espeak_Initialize returned {rate}")
                lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
                _STATE["lib"] = lib
                _STATE["rate"] = int(rate)
            except OSError as exc:
                logger.warning("libespeak-ng unavailable (%s): words are compared by spelling", exc)
                _STATE["lib"] = None
        return _STATE["lib"]


@lru_cache(maxsize=50_000)
def phonemes(text: str) -> str:
    """espeak-ng's phonemes (US English, ASCII mnemonics, stress marks removed) of ``text``;
    several words are joined without spaces. Without libespeak-ng: the lower-case letters."""
    text = text.strip()
    lib = library()
    if lib is None or not text:
        return "".join(ch for ch in text.lower() if ch.isalnum())
    with _LOCK:
        lib.espeak_SetVoiceByName(b"en-us")
        buffer = ctypes.create_string_buffer(text.encode())
        pointer = ctypes.c_char_p(ctypes.addressof(buffer))
        parts: list[str] = []
        while pointer.value:
            out = lib.espeak_TextToPhonemes(ctypes.cast(ctypes.pointer(pointer), ctypes.POINTER(ctypes.c_void_p)),
                                            1, 0)  # espeakCHARS_UTF8, espeak mnemonics
            if out is None:
                break
            parts.append(out.decode(errors="ignore"))
    return "".join(parts).replace(" ", "").translate(_STRESS)


def distance(a: str, b: str) -> float:
    """Phonetic distance of two words (or word groups) in [0, 1]: 0 sounds the same."""
    if a == b:
        return 0.0
    pa, pb = phonemes(a), phonemes(b)
    if pa == pb:
        return 0.0
    return float(Levenshtein.normalized_distance(pa, pb))


_VOWELS = re.compile(r"[aeiouAEIOU@3V0]+")


def syllables(word: str) -> int:
    """How many syllables ``word`` has: the runs of vowel phonemes in espeak-ng's mnemonics (a
    diphthong, "aI", is one run), at least 1."""
    return max(1, len(_VOWELS.findall(phonemes(word))))


def coarse(text: str) -> str:
    """The phonemes with vowel quality, length and stress detail dropped (espeak writes the weak
    vowels of compounds differently from the same vowels in separate words)."""
    return "".join(ch for ch in phonemes(text).lower() if ch.isalpha())


def sounds_same(a: str, b: str) -> bool:
    """Homophones ("there"/"their", "hay"/"hey", "3"/"three", "some thing"/"something")."""
    return distance(a, b) == 0.0
