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
from typing import Any

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


# ---------------------------------------------------------------------------------------------
# The miscue suite: whole sentences spoken as one utterance, with known word start times.
# ---------------------------------------------------------------------------------------------

# Two pools of sentences, never mixed: passages of the tuning part come from the first, those
# of the held-out part from the second.
TUNE_SENTENCES = [
    "The little dog ran to the park.", "My cat likes to sleep in the warm sun.",
    "We went for a long walk by the river.", "She drank a cup of cold milk.",
    "A small bird sat on the green hill.", "He read a book about a fish.",
    "Our house has a red door and a big window.", "They were happy all day long.",
    "The boat floated down the quiet river.", "Mom baked 3 loaves of bread this morning.",
    "The children played a game in the yard.", "A brown horse ate the sweet hay.",
    "Dad put the keys on the kitchen table.", "The rain fell on the roof all night.",
    "I found a shiny coin under the bed.", "The farmer planted corn in the field.",
    "My sister wrote a letter to her friend.", "The wind blew the hat off his head.",
    "We saw 5 ducks swimming in the pond.", "The teacher told us a funny story.",
    "A tall tree stood near the old barn.", "The baby laughed at the silly clown.",
    "Tom kicked the ball over the fence.", "The moon was bright in the dark sky.",
    "She wore a warm coat in the snow.", "The train left the station at noon.",
    "Grandma knitted a blue scarf for me.", "The puppy chewed on a red shoe.",
    "We ate pizza and salad for dinner.", "The frog jumped into the cool water.",
    "Ben lost his bag on the way home.", "The bees made honey in the hive.",
]
HELDOUT_SENTENCES = [
    "The girl rode her bike down the hill.", "A fox ran across the snowy field.",
    "My brother likes to paint pictures of boats.", "The cook made soup with fresh carrots.",
    "We planted 4 roses in the garden.", "The old man walked his dog every morning.",
    "A gray cloud covered the sun.", "The kids built a castle of sand at the beach.",
    "She found a lost kitten near the gate.", "The bus stopped in front of the school.",
    "He likes to fish with his uncle.", "The clock on the wall said ten.",
    "Our class went on a trip to the farm.", "The mouse hid behind a box of apples.",
    "Dad fixed the broken chair with glue.", "The stars came out after the storm.",
    "Lily wore a pink dress to the party.", "The cow gave us milk for the cake.",
    "A green frog sat on a wet log.", "The boy climbed up the tall ladder.",
    "We heard a loud noise in the night.", "The bakery sells warm bread and pies.",
    "My aunt lives in a small town by the sea.", "The ship sailed across the wide ocean.",
    "Sam shared his lunch with a new friend.", "The leaves turned red and gold in the fall.",
    "A rabbit dug a hole under the fence.", "The nurse helped the sick child.",
    "Jane counted 8 birds on the wire.", "The pig rolled in the soft mud.",
    "We drank hot cocoa by the fire.", "The king wore a crown of gold.",
]
# Confusable readings (a real word that sounds close), for substitutions and self-corrections.
CONFUSABLE = {
    "dog": "dug", "ran": "run", "park": "pork", "cat": "cut", "sleep": "slip", "warm": "worm",
    "sun": "son", "walk": "work", "river": "liver", "drank": "drink", "cup": "cap", "cold": "could",
    "milk": "mink", "bird": "bed", "sat": "set", "green": "grin", "hill": "hall", "read": "ride",
    "book": "back", "fish": "dish", "house": "horse", "red": "rod", "door": "deer", "big": "bag",
    "happy": "hoppy", "day": "die", "boat": "bought", "quiet": "quite", "bread": "bride",
    "game": "came", "yard": "yarn", "horse": "house", "hay": "hey", "keys": "kiss", "table": "cable",
    "rain": "ran", "roof": "roll", "coin": "corn", "bed": "bad", "corn": "cone", "field": "feel",
    "letter": "ladder", "wind": "wand", "hat": "hut", "head": "had", "ducks": "docks", "pond": "pound",
    "story": "starry", "tall": "tell", "tree": "three", "barn": "burn", "baby": "bobby",
    "ball": "bell", "fence": "fans", "moon": "man", "dark": "duck", "coat": "cot", "snow": "slow",
    "train": "drain", "noon": "none", "blue": "blow", "shoe": "show", "pizza": "pasta",
    "frog": "fog", "water": "waiter", "bag": "bug", "home": "hum", "bees": "boys", "hive": "hike",
    "girl": "goal", "bike": "bake", "fox": "box", "field_": "", "paint": "pint", "boats": "bats",
    "soup": "soap", "roses": "noses", "garden": "golden", "cloud": "clown", "sun_": "",
    "castle": "cattle", "sand": "send", "beach": "bench", "kitten": "kitchen", "gate": "goat",
    "bus": "boss", "school": "skull", "uncle": "ankle", "clock": "click", "wall": "well",
    "trip": "trap", "farm": "firm", "mouse": "moose", "box": "books", "chair": "cheer",
    "glue": "glow", "stars": "stairs", "storm": "store", "dress": "dirt", "cow": "car",
    "cake": "cook", "log": "leg", "ladder": "letter", "loud": "load", "night": "net",
    "pies": "pails", "town": "tone", "sea": "sue", "ship": "sheep", "lunch": "lamp",
    "leaves": "lives", "gold": "goal", "hole": "hall", "sick": "sock", "child": "chilled",
    "birds": "beards", "wire": "war", "pig": "peg", "mud": "mad", "hot": "hat", "fire": "fair",
    "king": "kick", "crown": "clown", "kids": "cards", "oldest": "",
}
UNRELATED = ["window", "pencil", "orange", "jacket", "rocket", "basket", "forest", "tiger", "carpet",
             "garage", "ticket", "lemon", "button", "candle", "wagon", "marble", "spider", "puzzle"]
INSERTS = ["very", "then", "really", "just", "also", "big", "and", "so", "little", "now"]
KINDS = ("substitution", "omission", "insertion", "repetition", "self_correction", "long_pause")
TUNE_VOICES = ["en-us", "en", "en-gb-x-rp", "en-029"]
HELDOUT_VOICES = ["en-us-nyc", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
TUNE_VARIANTS = ["", "m1", "m3", "f2", "f4", "m5", "klatt"]
HELDOUT_VARIANTS = ["", "m2", "m4", "f1", "f3", "f5", "m7", "klatt2"]
TUNE_RATES = [115, 135, 155, 175, 195, 215]
HELDOUT_RATES = [110, 125, 145, 165, 185, 205, 220]
CONDITIONS = ("clean", "noise", "reverb", "reverb+noise", "mp3", "noise+mp3")


@dataclass
class SuiteReading:
    """One reading of the suite: what was on the page, what was said, and the truth."""

    name: str
    part: str  # "tune" or "heldout"
    reference: str
    voice: str
    rate: int
    condition: str
    spoken: list[str]  # the words said, in order
    truth: dict[int, str]  # reference word index -> miscue kind
    subtype: dict[int, str]  # reference word index -> "confusable" / "unrelated" (substitutions)
    starts: dict[int, float]  # reference word index read as written -> true start (s)
    samples: Any = None  # int16 mono at ``rate_hz`` (filled by ``render``)
    rate_hz: int = 16000
    # what the synthesiser is given: (reference index read as written or None, spoken text)
    # per spoken word, and the SSML pieces
    said: list[tuple[int | None, str]] = field(default_factory=list, repr=False)
    ssml: list[str] = field(default_factory=list, repr=False)

    @property
    def clean(self) -> bool:
        return not self.truth


class Espeak:
    """libespeak-ng through ctypes: synthesis with word events (exact word start times) and
    phoneme strings. One instance per process (the library has global state)."""

    _instance: Espeak | None = None

    def __init__(self) -> None:
        import ctypes

        class _Id(ctypes.Union):
            _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

        class _Event(ctypes.Structure):
            _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                        ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                        ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                        ("user_data", ctypes.c_void_p), ("id", _Id)]

        self.ctypes = ctypes
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        self.sample_rate = int(self.lib.espeak_Initialize(2, 0, None, 0))  # AUDIO_OUTPUT_SYNCHRONOUS
        self._chunks: list[Any] = []
        self._events: list[tuple[int, int]] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                         ctypes.POINTER(_Event))

        def collect(wav: Any, count: int, events: Any) -> int:
            import numpy as np

            if count > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
            k = 0
            while events[k].type != 0:
                if events[k].type == 1:  # espeakEVENT_WORD
                    self._events.append((events[k].text_position, events[k].sample))
                k += 1
            return 0

        self._callback = callback_type(collect)
        self.lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> Espeak:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def synthesize(self, ssml: str, voice: str, wpm: int) -> tuple[Any, list[tuple[int, float]]]:
        """int16 samples at ``sample_rate`` and ``(character offset, start s)`` per word."""
        import numpy as np

        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng voice {voice!r} is not installed")
        self.lib.espeak_SetParameter(1, int(wpm), 0)  # espeakRATE
        self._chunks, self._events = [], []
        data = ssml.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1 | 0x10, None, None)  # UTF-8 | SSML
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        return audio, [(pos - 1, sample / self.sample_rate) for pos, sample in self._events]


def _sentence_words(text: str) -> list[str]:
    return text.split()


def _plain(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def plan_suite(count: int, seed: int = 11, clean_share: float = 0.35) -> list[SuiteReading]:
    """``count`` readings (half tuning, half held-out: disjoint sentences, voices, variants
    and rates), at least ``clean_share`` of them read perfectly, every miscue kind present."""
    rng = random.Random(seed)
    readings: list[SuiteReading] = []
    turn = {"tune": 0, "heldout": 0}
    for n in range(count):
        part = "tune" if n % 2 == 0 else "heldout"
        pool = TUNE_SENTENCES if part == "tune" else HELDOUT_SENTENCES
        voices, variants = (TUNE_VOICES, TUNE_VARIANTS) if part == "tune" else (HELDOUT_VOICES, HELDOUT_VARIANTS)
        rates = TUNE_RATES if part == "tune" else HELDOUT_RATES
        first = rng.randrange(len(pool))
        reference = " ".join(pool[(first + k) % len(pool)] for k in range(rng.choice((1, 2, 2, 3))))
        variant = rng.choice(variants)
        voice = voices[(n // 2) % len(voices)] + (f"+{variant}" if variant else "")
        rate = rng.choice(rates)
        condition = rng.choice(CONDITIONS) if n >= 2 else "clean"  # independent of the miscues
        clean = (n // 2) % 3 == 0 or rng.random() < clean_share - 1 / 3
        kinds: list[str] = []
        if not clean:
            # Every kind in turn, plus one or two more at random.
            kinds = [KINDS[turn[part] % len(KINDS)]] + rng.sample(KINDS, rng.choice((0, 1, 1, 2)))
            turn[part] += 1
        readings.append(_make_reading(f"{part}-{n // 2:03d}", part, reference, voice, rate, condition, kinds, rng))
    return readings


def _confusable(word: str) -> str:
    """A real word that sounds close to ``word`` but not the same ("" when there is none)."""
    from percept.reading.phonetic import sounds_same

    other = CONFUSABLE.get(word, "")
    return other if other and other.isalpha() and not sounds_same(other, word) else ""


def _make_reading(name: str, part: str, reference: str, voice: str, rate: int, condition: str,
                  kinds: list[str], rng: random.Random) -> SuiteReading:
    words = _sentence_words(reference)
    plain = [_plain(w) for w in words]
    plan: dict[int, str] = {}
    subtype: dict[int, str] = {}
    for kind in kinds:
        slots = list(range(len(words)))
        rng.shuffle(slots)
        for slot in slots:
            if any(s in plan for s in (slot - 1, slot, slot + 1)):
                continue
            if kind == "long_pause" and slot == 0:
                continue
            if kind in ("substitution", "self_correction") and not plain[slot].isalpha():
                continue
            if kind == "substitution":
                confusable = _confusable(plain[slot])
                if confusable and rng.random() < 0.6:
                    subtype[slot] = "confusable"
                elif len(plain[slot]) >= 3:
                    subtype[slot] = "unrelated"
                else:
                    continue
            if kind == "self_correction" and not _confusable(plain[slot]):
                continue  # a false start sounds like the word it starts
            plan[slot] = kind
            break
    ssml: list[str] = []
    said: list[tuple[int | None, str]] = []  # (reference index read as written, spoken text)
    for index, word in enumerate(words):
        said_as = plan.get(index)
        trail = word[len(word.rstrip(".,!?;:")):]
        bare = word[: len(word) - len(trail)] if trail else word
        if said_as == "omission":
            if trail and ssml:
                ssml[-1] += trail
            continue
        if said_as == "long_pause":
            ssml.append(f'<break time="{rng.randrange(1500, 2600, 100)}ms"/>')
        if said_as == "insertion":
            extra = rng.choice(INSERTS)
            ssml.append(extra)
            said.append((None, extra))
        if said_as == "self_correction":
            wrong = _confusable(plain[index])
            ssml.append(wrong)
            said.append((None, wrong))
        if said_as == "substitution":
            other = CONFUSABLE[plain[index]] if subtype[index] == "confusable" else rng.choice(
                [u for u in UNRELATED if u != plain[index]])
            ssml.append(other + trail)
            said.append((None, other))
            continue
        if said_as == "repetition":
            ssml.append(bare)
            said.append((None, bare))
        ssml.append(word)
        said.append((index, bare))
    return SuiteReading(name, part, reference, voice, rate, condition, [s for _, s in said],
                        dict(plan), subtype, {}, None, said=said, ssml=ssml)


def render(reading: SuiteReading, cache: str | None = None, rate_hz: int = 16000) -> SuiteReading:
    """Synthesize (or load from ``cache``) the reading's audio with its condition applied,
    and fill the true start time of every reference word read as written."""
    import hashlib
    import json
    import os
    import tempfile

    import numpy as np

    key = hashlib.sha1(json.dumps([reading.name, reading.voice, reading.rate, reading.condition,
                                   reading.ssml, rate_hz, 4]).encode()).hexdigest()[:16]
    folder = cache or os.path.join(tempfile.gettempdir(), "percept-reading-suite")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{reading.name}-{key}.npz")
    if os.path.exists(path):
        data = np.load(path)
        reading.samples = data["samples"]
        reading.starts = {int(k): float(v) for k, v in zip(data["idx"], data["start"], strict=True)}
        reading.rate_hz = rate_hz
        return reading
    engine = Espeak.get()
    text = ""
    offsets: list[int] = []
    for part in reading.ssml:
        if text:
            text += " "
        if not part.startswith("<"):
            offsets.append(len(text))
        text += part
    audio, events = engine.synthesize(text, reading.voice, reading.rate)
    event_at = dict(events)
    lead = 0.35
    starts: dict[int, float] = {}
    for (index, _word), offset in zip(reading.said, offsets, strict=True):
        if index is not None and offset in event_at:
            starts[index] = round(event_at[offset] + lead, 4)
    wave = np.concatenate([np.zeros(int(lead * engine.sample_rate)), audio.astype(np.float64),
                           np.zeros(int(0.4 * engine.sample_rate))])
    wave = _apply_condition(wave, engine.sample_rate, reading.condition, random.Random(key))
    if engine.sample_rate != rate_hz:
        from scipy.signal import resample_poly

        wave = resample_poly(wave, rate_hz, engine.sample_rate)
    samples = np.clip(wave, -32768, 32767).astype(np.int16)
    if "mp3" in reading.condition:
        samples = _mp3_roundtrip(samples, rate_hz)
    np.savez(path, samples=samples, idx=np.array(list(starts), dtype=np.int64),
             start=np.array(list(starts.values())))
    reading.samples, reading.starts, reading.rate_hz = samples, starts, rate_hz
    return reading


def _apply_condition(wave: Any, rate: int, condition: str, rng: random.Random) -> Any:
    import numpy as np

    if "reverb" in condition:
        wave = _sox(wave, rate, ["reverb", str(rng.randrange(30, 70)), "50", str(rng.randrange(30, 80))])
    if "noise" in condition:
        snr_db = rng.uniform(15, 30)
        noise = np.random.default_rng(rng.randrange(1 << 30)).standard_normal(len(wave))
        # pinkish: a moving average keeps more low-frequency energy, like room noise
        noise = np.convolve(noise, np.ones(4) / 4, mode="same")
        power = float(np.mean(wave.astype(np.float64) ** 2)) or 1.0
        noise *= np.sqrt(power / (10 ** (snr_db / 10)) / float(np.mean(noise ** 2)))
        wave = wave + noise
    return wave


def _sox(wave: Any, rate: int, effect: list[str]) -> Any:
    import numpy as np

    raw = np.clip(wave, -32768, 32767).astype(np.int16).tobytes()
    fmt = ["-t", "raw", "-r", str(rate), "-e", "signed", "-b", "16", "-c", "1"]
    # -R: sox's dither (and any other randomness) seeded the same on every run, so that a reading
    # renders to the same samples in every process (without it two runs differ by its dither).
    out = subprocess.run(["sox", "-R", *fmt, "-", *fmt, "-", *effect], input=raw, capture_output=True, check=True,
                         timeout=60).stdout
    result = np.frombuffer(out, dtype=np.int16).astype(np.float64)
    return result[: len(wave)] if len(result) >= len(wave) else np.pad(result, (0, len(wave) - len(result)))


def _mp3_roundtrip(samples: Any, rate: int) -> Any:
    import numpy as np

    audio = AudioSegment(samples.tobytes(), frame_rate=rate, sample_width=2, channels=1)
    buffer = io.BytesIO()
    audio.export(buffer, format="mp3", bitrate="48k")
    back = AudioSegment.from_file(io.BytesIO(buffer.getvalue()), format="mp3").set_frame_rate(rate).set_channels(1)
    decoded = np.frombuffer(back.raw_data, dtype=np.int16)
    return decoded[: len(samples)] if len(decoded) >= len(samples) else np.pad(decoded, (0, len(samples) - len(decoded)))


def wav_bytes(reading: SuiteReading) -> bytes:
    """The rendered reading as a WAV file."""
    audio = AudioSegment(reading.samples.tobytes(), frame_rate=reading.rate_hz, sample_width=2, channels=1)
    out = io.BytesIO()
    audio.export(out, format="wav")
    return out.getvalue()
