"""Test and benchmark data: pages rendered with Pillow, readings spoken by espeak-ng.

Speech is made word by word with known gaps, so the true time of every spoken word is
known. Readings carry injected miscues (substitution, omission, insertion, repetition)
with the truth per reference word. Nothing here is used by the service itself.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont
from pydub import AudioSegment
from pydub.silence import detect_nonsilent

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SUBSTITUTES = {
    "house": "horse", "read": "red", "cat": "cut", "dog": "dig", "went": "want", "big": "bag",
    "little": "later", "park": "pork", "ran": "run", "sun": "son", "tree": "three", "book": "back",
    "boat": "bought", "bird": "bread", "green": "grin", "fish": "fresh", "hill": "hall", "milk": "mail",
    "river": "over", "water": "winter", "cold": "could", "happy": "hippo", "sleep": "slip", "walk": "work",
}
FILLERS = ["very", "then", "really", "just", "also"]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, speed: int = 140, voice: str = "en-us") -> AudioSegment:
    """espeak-ng's rendering of ``text``, with leading and trailing silence trimmed."""
    wav = subprocess.run(["espeak-ng", "--stdout", "-s", str(speed), "-v", voice, text],
                         check=True, capture_output=True, timeout=30).stdout
    audio = AudioSegment.from_file(io.BytesIO(wav), format="wav")
    voiced = detect_nonsilent(audio, min_silence_len=50, silence_thresh=audio.max_dBFS - 35)
    if voiced:
        audio = audio[voiced[0][0] : voiced[-1][1]]
    return audio


@dataclass
class Reading:
    """A spoken reading and its truth."""

    audio: AudioSegment
    spoken: list[str]
    times: list[tuple[float, float]]
    truth: dict[int, str] = field(default_factory=dict)  # reference index -> miscue kind
    inserted: int = 0

    def wav(self) -> bytes:
        out = io.BytesIO()
        self.audio.export(out, format="wav")
        return out.getvalue()


def speak_words(words: list[str], gap_ms: int = 180, lead_ms: int = 300, speed: int = 140) -> tuple[
        AudioSegment, list[tuple[float, float]]]:
    """Words spoken one by one with ``gap_ms`` between them; each word's (start, end)."""
    audio = AudioSegment.silent(duration=lead_ms, frame_rate=22050)
    times: list[tuple[float, float]] = []
    for word in words:
        piece = speak(word, speed).set_frame_rate(22050)
        start = len(audio)
        audio += piece
        times.append((start / 1000.0, len(audio) / 1000.0))
        audio += AudioSegment.silent(duration=gap_ms, frame_rate=22050)
    return audio, times


def inject_miscues(reference: list[str], rng: random.Random,
                   kinds: list[str]) -> tuple[list[str], dict[int, str], dict[int, int]]:
    """The words a reader says with one miscue of each kind in ``kinds`` at distinct places.

    Returns the spoken words, the miscue per reference index (an insertion is filed under
    the word it precedes) and, per reference index read, the position of its spoken word.
    """
    slots = list(range(1, max(2, len(reference) - 1)))
    rng.shuffle(slots)
    plan: dict[int, str] = {}
    for kind in kinds:
        for slot in slots:
            if slot in plan or slot - 1 in plan or slot + 1 in plan:
                continue
            if kind == "substitution" and reference[slot].lower() not in SUBSTITUTES:
                continue
            plan[slot] = kind
            break
    spoken: list[str] = []
    position: dict[int, int] = {}
    for index, word in enumerate(reference):
        miscue = plan.get(index)
        if miscue == "omission":
            continue
        if miscue == "insertion":
            spoken.append(rng.choice(FILLERS))
        position[index] = len(spoken)
        spoken.append(SUBSTITUTES[word.lower()] if miscue == "substitution" else word)
        if miscue == "repetition":
            spoken.append(word)
    return spoken, plan, position


def render_page(lines: list[str], width: int = 1000, size: int = 34) -> bytes:
    """A white page with the lines in black DejaVu Sans (PNG bytes)."""
    font = ImageFont.truetype(FONT, size)
    height = 40 + len(lines) * int(size * 1.8)
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    for n, line in enumerate(lines):
        draw.text((30, 20 + n * int(size * 1.8)), line, font=font, fill="black")
    out = io.BytesIO()
    page.save(out, format="PNG")
    return out.getvalue()


PASSAGE_WORDS = [
    "the", "little", "dog", "ran", "to", "the", "park", "and", "saw", "a", "big", "green", "tree",
    "my", "cat", "likes", "to", "sleep", "in", "the", "sun", "we", "went", "for", "a", "walk", "by",
    "the", "river", "she", "drank", "cold", "milk", "from", "a", "cup", "a", "bird", "sat", "on",
    "the", "hill", "he", "read", "a", "book", "about", "a", "fish", "in", "the", "water", "our",
    "house", "has", "a", "red", "boat", "they", "were", "happy", "all", "day",
]


def passages(count: int, length: int, seed: int = 7) -> list[list[str]]:
    """``count`` passages of ``length`` words cut from a small story vocabulary."""
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        start = rng.randrange(0, len(PASSAGE_WORDS) - length)
        result.append(PASSAGE_WORDS[start : start + length])
    return result
