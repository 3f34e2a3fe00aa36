"""Reading assessment benchmark: miscue detection on unseen readings, beside transcript diffing.

The suite (``tests/synthetic/reading.py``): passages of whole sentences spoken by espeak-ng
as one utterance (word start times exact, from espeak-ng's word events), across the
installed English voices and variants, 110-220 words per minute, with added noise, room
reverb (sox) and MP3 compression, about a third read perfectly and the others with
miscues of every kind: substitution (a confusable or an unrelated word), omission,
insertion, repetition, self-correction, long pause.

It is split in two parts that share no sentence, voice, variant or speaking rate: the
operating threshold (``miscue_threshold``) is chosen on the **tuning** part, every figure
is reported on the **held-out** part. The pipeline is the service's, Ray-free: MP3
conversion, silence split, faster-whisper per segment, phonetic alignment, likelihood
ratios of the candidate readings, verdicts.

Printed (held-out part, tuning part in brackets where useful):
* miscue detection P/R/F1 (per reference word, any kind) and per kind, ours vs transcript
  diffing (the original's method) on the same transcripts; per voice; per condition;
* the share of perfectly read passages with at least one reported miscue;
* ASR word error rate against the words actually said;
* median word start-time error (ours, the transcript's word times, the original's segment);
* end-to-end real-time factor on this machine.

Run from the repository root: ``python -m benchmarks.reading_miscues [--passages 120]``
(synthesized audio and recognition results are cached in ``--cache``; ``--fresh`` redoes
the recognition and scoring, as the reported figures are).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from percept.reading.core import ReadingCore  # noqa: E402
from percept.reading.forced import PRIOR_FLOOR, ForcedAligner  # noqa: E402
from percept.reading.report import assess_reading, prepare_assessment, spoken_words  # noqa: E402
from percept.reading.settings import ReadingSettings  # noqa: E402
from percept.reading.text import align_words, tokenize  # noqa: E402
from percept.reading.verdict import FEATURES, evidence_features, phonetic_align  # noqa: E402
from percept.reading.workflow import assemble_segment  # noqa: E402
from percept.storage import BlobStore  # noqa: E402
from tests.synthetic.reading import KINDS, SuiteReading, plan_suite, render, wav_bytes  # noqa: E402

# Thresholds tried on the tuning part (nats); up to +16 so that the replaced-word point (+12 in
# the sixth round, the grid's top then) is chosen inside the grid, not at its edge.
GRID = [float(t) for t in range(-10, 17)]
SWEEP_PASSES = 4  # coordinate-ascent passes over the per-kind points, at most (stops when one changes nothing)
FALSE_START_GRID: list[float | None] = [None, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -8.0, -10.0]
ECHO_GRID: list[float | None] = [None] + [round(-0.4 + 0.025 * k, 3) for k in range(21)]  # false_start_echo
LOGIT_GRID = [t / 4 for t in range(-16, 25)]  # thresholds on the evidence model's log-odds
ASSESS_VERSION = b"assess-9"  # bump when the aligner's answers change (the probe, when on, adds its own key; 9: nuclei)


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its finished children (ffmpeg)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def report_flags(report: dict[str, Any], n_ref: int, long_pause_s: float) -> dict[int, set[str]]:
    """Reference index -> miscue kinds the report gives it (insertions go to the next word)."""
    flags: dict[int, set[str]] = defaultdict(set)
    for word in report["words"]:
        j = word["index"]
        if j is None:
            flags[min(word.get("at_index", n_ref - 1), n_ref - 1)].add("insertion")
            continue
        if word["status"] != "correct":
            flags[j].add(word["status"])
        if (word.get("pause_before") or 0) >= long_pause_s:
            flags[j].add("long_pause")
    return flags


def diff_flags(segments: list[dict[str, Any]], reference: str) -> dict[int, set[str]]:
    """The original's method: diff the free transcript against the text, word by word."""
    spoken = [t.norm for s in segments for t in tokenize(s["text"])]
    ref = [t.norm for t in tokenize(reference)]
    flags: dict[int, set[str]] = defaultdict(set)
    ops = align_words(spoken, ref)
    for k, (op, _i, j) in enumerate(ops):
        if op == "replace" and j is not None:
            flags[j].add("substitution")
        elif op == "delete" and j is not None:
            flags[j].add("omission")
        elif op == "insert":
            nxt = next((jj for _, _, jj in ops[k:] if jj is not None), len(ref) - 1)
            flags[min(nxt, len(ref) - 1)].add("insertion")
    return flags


class Tally:
    """Counts of one method on one group of readings."""

    def __init__(self) -> None:
        self.any = [0, 0, 0]
        self.kind: dict[str, list[int]] = {k: [0, 0, 0] for k in KINDS}
        self.subtype: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.clean = [0, 0]  # flagged clean readings, clean readings

    def add(self, reading: SuiteReading, flags: dict[int, set[str]]) -> None:
        truth = reading.truth
        flagged = {j for j, kinds in flags.items() if kinds}
        self.any[0] += len(flagged & set(truth))
        self.any[1] += len(flagged - set(truth))
        self.any[2] += len(set(truth) - flagged)
        for kind in KINDS:
            hit = {j for j, kinds in flags.items() if kind in kinds}
            want = {j for j, k in truth.items() if k == kind}
            self.kind[kind][0] += len(hit & want)
            self.kind[kind][1] += len(hit - want)
            self.kind[kind][2] += len(want - hit)
        for j, sub in reading.subtype.items():
            self.subtype[sub][0] += "substitution" in flags.get(j, set())
            self.subtype[sub][1] += 1
        if reading.clean:
            self.clean[0] += bool(flagged)
            self.clean[1] += 1

    def f1(self) -> float:
        return prf(*self.any)[2]

    def clean_share(self) -> float:
        return self.clean[0] / self.clean[1] if self.clean[1] else 0.0


class Pipeline:
    """The service's reading comparison, Ray-free."""

    def __init__(self, cache: Path, config: ReadingSettings) -> None:
        from faster_whisper_plugin import FasterWhisperPlugin

        self.plugin = FasterWhisperPlugin
        self.cache = cache
        self.config = config
        self.blobs = BlobStore(str(Path(tempfile.mkdtemp(prefix="reading-bench-")) / "blobs"))
        self.core = ReadingCore(self.blobs, config)
        started = time.perf_counter()
        FasterWhisperPlugin.load()
        self.aligner = ForcedAligner(context_pad_s=config.aligner_context_pad_s, probe_words=config.probe_words,
                                     probe_margin=config.probe_margin)
        self.load_s = time.perf_counter() - started

    def run(self, reading: SuiteReading, fresh: bool, cache: Path | None = None) -> dict[str, Any]:
        """Segments and the aligner's answers of one reading (cached apart: a change of the
        aligner redoes only its part), with the time taken; ``cache``: another suite's folder."""
        audio = wav_bytes(reading)
        folder = cache or self.cache
        # the settings the plugin was loaded with (not the environment now)
        pad_s = self.plugin.loaded_pad_s
        window = f"-pad{pad_s}".encode() if pad_s is not None else b""  # the plugin's encoder window
        per_s = self.plugin.loaded_tokens_per_s
        window += f"-tok{per_s}".encode() if per_s is not None else b""  # the plugin's decode cap
        asr_key = hashlib.sha1(audio + self.plugin.size.encode() + b"v9" + window).hexdigest()[:20]
        asr_path = folder / f"{reading.name}-{asr_key}.json"
        pad = self.aligner.context_pad_s
        version = ASSESS_VERSION + (f"-pad{pad}".encode() if pad is not None else b"")
        if self.aligner.probe_words:  # the words the probe offers (round 16; off: the answers of before)
            # ("-w": words only, punctuation around them not forced, review M2)
            version += f"-probe{self.aligner.probe_words}:{self.aligner.probe_margin}-w".encode()
        # the aligner's answers depend on the transcript too
        key = hashlib.sha1(audio + self.plugin.size.encode() + version + window + asr_key.encode()).hexdigest()[:20]
        path = folder / f"{reading.name}-{key}-assess.json"
        if path.exists() and asr_path.exists() and not fresh:
            cached: dict[str, Any] = json.loads(asr_path.read_text())
            cached.update(json.loads(path.read_text()))
            return cached
        t0, c0 = time.perf_counter(), cpu_seconds()
        blob = f"reading/bench/audio/{reading.name}.mp3"
        self.core.convert_audio(audio, blob)
        pieces = self.core.split(blob, "bench")
        t_split = time.perf_counter() - t0
        if asr_path.exists() and not fresh:
            asr: dict[str, Any] = json.loads(asr_path.read_text())
            segments = asr["segments"]
        else:
            segments = []
            for piece in pieces:
                with self.blobs.local_path(piece["key"]) as local:
                    result = self.plugin.process_audio(str(local)).model_dump()
                segments.append(assemble_segment(piece, result))
            asr = {"segments": segments, "asr_seconds": time.perf_counter() - t0 - t_split,
                   "split_seconds": t_split, "audio_seconds": len(reading.samples) / reading.rate_hz}
            asr_path.write_text(json.dumps(asr))
        t1 = time.perf_counter()
        prepared = prepare_assessment(segments, reading.reference)
        assessed: list[dict[str, Any] | None] = []
        for piece, ask in zip(pieces, prepared.requests(), strict=True):
            with self.blobs.local_path(piece["key"]) as local:
                assessed.append(self.aligner.assess(str(local), ask["reference"], ask["transcript"],
                                                    self.config.long_pause_s))
        assess_reading(segments, reading.reference, assessed, self.config.miscue_threshold,
                       self.config.long_pause_s, prepared)
        t_assess = time.perf_counter() - t1
        split_s = float(asr.get("split_seconds", t_split))
        scored = {"assessed": assessed, "assess_seconds": t_assess,
                  "seconds": split_s + float(asr["asr_seconds"]) + t_assess,
                  "cpu_seconds": cpu_seconds() - c0 if fresh else None}
        path.write_text(json.dumps(scored))
        return {**asr, **scored}


def pick_point(tried: list[tuple[float, float, float]], cap: float) -> tuple[float, float]:
    """The operating point among ``(value, F1, share of clean passages flagged)``: the best F1
    with at most ``cap`` of the clean passages flagged (all of them when none is), ties to
    fewer flagged clean passages, then to the larger value (fewer alarms). Returns the value
    and its F1."""
    ok = [t for t in tried if t[2] <= cap] or tried
    value, f1, _ = max(ok, key=lambda t: (round(t[1], 4), -round(t[2], 6), t[0]))
    return value, f1


def parse_pool(text: str) -> list[tuple[int, Path]]:
    """``--tune-pool``: "SEED:FOLDER,SEED:FOLDER" -> [(seed, folder)]."""
    pool = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        seed, _, folder = item.partition(":")
        if not folder:
            raise SystemExit(f"--tune-pool: {item!r} is not SEED:FOLDER")
        pool.append((int(seed), Path(folder)))
    return pool


def candidate_label(cand: dict[str, Any], j: int, truth: dict[int, str], ref: list[str]) -> bool:
    """Whether one candidate reading (at global reference index ``j``) is a true miscue."""
    kind = truth.get(j)
    if cand["kind"] == "replace":
        return kind == "substitution"
    if cand["kind"] == "delete":
        return kind == "omission"
    if kind in ("insertion", "self_correction"):
        return True
    if kind == "repetition" and j < len(ref) and cand["norm"] == ref[j]:
        return True
    return truth.get(j - 1) == "repetition" and cand["norm"] == ref[j - 1]


def fit_weights(results: list[tuple[SuiteReading, dict[str, Any]]],
                use: tuple[str, ...] = FEATURES) -> dict[str, float]:
    """The evidence model's weights (``percept.reading.verdict.FEATURES``): an L2-regularised
    logistic regression of "this candidate is a true miscue" on the given readings."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rows, labels = [], []
    for reading, res in results:
        state = prepare_assessment(res["segments"], reading.reference)
        ref = [t.norm for t in state.reference]
        for s, answer in enumerate(res["assessed"]):
            if not answer:
                continue
            a, b = state.plan[s]
            for cand in answer["candidates"]:
                values = evidence_features(cand, answer["base"], state.words[a:b])
                rows.append([v if name in use else 0.0 for name, v in zip(FEATURES, values, strict=True)])
                labels.append(candidate_label(cand, a + int(cand["ref"]), reading.truth, ref))
    model = LogisticRegression(C=1.0, fit_intercept=False, max_iter=2000)
    model.fit(np.asarray(rows), np.asarray(labels))
    print(f"  fitted on {len(rows)} candidates ({sum(labels)} true miscues)")
    return {name: round(float(w), 4) for name, w in zip(FEATURES, model.coef_[0], strict=True)}


def same_tuning(saved: dict[str, Any], here: list[str], path: str) -> None:
    """A saved operating point (--point-file) is only reused on the tuning parts it was chosen
    on: a file from another pool would be reported as if chosen on this run's."""
    if saved.get("tuning") != here:
        raise SystemExit(f"{path} was chosen on {saved.get('tuning')}, this run tunes on {here}: "
                         "choose the point again (another --point-file)")


def table(title: str, rows: list[tuple[str, Tally, Tally]]) -> None:
    print(f"\n== {title} ==")
    print(f"  {'':28s} {'ours P / R / F1':>22s}   {'transcript diffing P / R / F1':>30s}")
    for name, ours, base in rows:
        a, b = prf(*ours.any), prf(*base.any)
        print(f"  {name:28s} {a[0]:6.3f} {a[1]:6.3f} {a[2]:6.3f}   {b[0]:9.3f} {b[1]:6.3f} {b[2]:6.3f}"
              f"   (n={ours.any[0] + ours.any[2]})")


def ocr_pages(readings: list[SuiteReading]) -> None:
    """The page side of the audio-vs-image comparison: its reference is the OCR's words."""
    import shutil

    if shutil.which("tesseract") is None:
        print("\n== OCR: tesseract is not installed, skipped ==")
        return
    from percept.plugins import discover_plugins
    from tests.synthetic.reading import render_page

    plugin: Any = discover_plugins(ROOT / "plugins").classes["tesseract"]  # the class: process_image is static
    errors = total = same = 0
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="reading-pages-"))
    for n, reading in enumerate(readings):
        words = reading.reference.split()
        lines = [" ".join(words[k : k + 8]) for k in range(0, len(words), 8)]
        page = folder / f"{n}.png"
        page.write_bytes(render_page(lines))
        read = [t.norm for t in tokenize(plugin.process_image(str(page)).text)]
        truth = [t.norm for t in tokenize(reading.reference)]
        errors += sum(1 for op, _, _ in align_words(read, truth) if op != "equal")
        total += len(truth)
        same += read == truth
    print(f"\n== OCR of the held-out passages rendered as pages (Tesseract, {len(readings)} pages, "
          f"{(time.perf_counter() - started) / max(1, len(readings)):.2f} s a page) ==")
    print(f"  word error rate {errors / max(1, total):.3f} ({errors}/{total}); pages read exactly: {same}/{len(readings)} "
          "(on those, the audio-vs-image comparison equals the audio-vs-text one above)")


def main() -> None:  # noqa: C901 - one linear script
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, default=120, help="readings in all (half tuning, half held-out)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "percept-reading-suite"))
    parser.add_argument("--fresh", action="store_true", help="redo recognition and scoring (no result cache)")
    parser.add_argument("--parts", default="tune,heldout",
                        help="parts to report (develop with 'tune'; the held-out part is for the final figures)")
    parser.add_argument("--evidence", choices=("fit", "llr"), default="llr",
                        help="llr: the likelihood ratio (the service's default); fit: an evidence model "
                             "(likelihood ratios, pronunciation scores, phonetic distance) fitted on the tuning part")
    parser.add_argument("--context-pad", type=float, default=None,
                        help="the aligner's aligner_context_pad_s (default: the settings'; negative: the 30 s window)")
    parser.add_argument("--probe-words", type=int, default=None,
                        help="the aligner's probe_words (default: the settings'; 0: off, the candidates of round 15)")
    parser.add_argument("--repeat-syllables", type=float, default=None,
                        help="the settings' repeat_syllable_weight (default: the settings'; negative: off)")
    parser.add_argument("--prior-weights", default="0,0.25,0.5,0.75,1",
                        help="shares of the language model's opinion taken out of the evidence, tried on the tuning part")
    parser.add_argument("--clean-cap", type=float, default=0.05,
                        help="the operating point flags at most this share of the tuning part's clean passages "
                             "(below the goal's 10 %%: the held-out voices flag more than the tuning ones)")
    parser.add_argument("--tune-pool", default="",
                        help="SEED:CACHE,... other suites whose tuning parts join this one's tuning part (more "
                             "clean passages: the clean cap can tell operating points apart); their held-out "
                             "parts are never loaded")
    parser.add_argument("--pool-passages", type=int, default=None,
                        help="readings per pooled suite (default: --passages): a larger fresh held-out part "
                             "(--passages 240) still pools the other suites' usual 120-reading tuning parts")
    parser.add_argument("--also-heldout", default="",
                        help="SEED:CACHE[:PASSAGES],... other suites' held-out parts, reported apart at the same "
                             "operating point (one sweep for several held-out parts; their tuning parts are never "
                             "loaded)")
    parser.add_argument("--point-file", default="",
                        help="JSON file of the operating point: written after choosing it on the tuning part, "
                             "read instead of choosing it when it exists (the same tuning parts: one sweep for "
                             "a tuning run and a held-out run)")
    parser.add_argument("--at-defaults", action="store_true",
                        help="no sweep: report the parts asked for at the settings' defaults (the shipped service; "
                             "their point was chosen on tuning parts before, see docs/reading.md); loads no tuning "
                             "part unless --parts names it")
    parser.add_argument("--ocr-pages", type=int, default=10,
                        help="held-out passages rendered as pages and read by Tesseract (0: skip)")
    opts = parser.parse_args()

    config = ReadingSettings()
    if opts.context_pad is not None:
        config = ReadingSettings(aligner_context_pad_s=opts.context_pad if opts.context_pad >= 0 else None)
    if opts.probe_words is not None:
        config = config.model_copy(update={"probe_words": opts.probe_words})
    if opts.repeat_syllables is not None:
        weight = opts.repeat_syllables if opts.repeat_syllables >= 0 else None
        config = config.model_copy(update={"repeat_syllable_weight": weight})
    cache = Path(opts.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    parts = opts.parts.split(",")
    # Every reading with its cache folder: this seed's parts, then the pooled suites' tuning parts.
    # The operating point is chosen on the tuning part: this seed's is loaded even when not
    # reported, unless a pool is given and it is not asked for (--parts heldout --tune-pool ...:
    # the point is chosen on the pool alone, the same as a run on the default seed with that pool).
    pool = parse_pool(opts.tune_pool)
    if opts.at_defaults and (pool or opts.point_file or opts.evidence != "llr"):
        raise SystemExit("--at-defaults chooses nothing: no --tune-pool, --point-file or --evidence fit with it")
    own = tuple(parts) if pool or opts.at_defaults else ("tune", *parts)
    pool_count = opts.pool_passages or opts.passages
    suites = [(opts.seed, cache, own, opts.passages)] + [(seed, folder, ("tune",), pool_count) for seed, folder in pool]
    extra_parts: list[str] = []
    for item in filter(None, (p.strip() for p in opts.also_heldout.split(","))):
        seed_text, folder_text, *count_text = item.split(":")
        suites.append((int(seed_text), Path(folder_text), ("heldout",), int(count_text[0]) if count_text else 120))
        extra_parts.append(f"heldout-seed{int(seed_text)}")
    loaded: list[tuple[SuiteReading, Path]] = []
    for k, (seed, folder, wanted, count) in enumerate(suites):
        folder.mkdir(parents=True, exist_ok=True)
        mine = [render(r, str(folder)) for r in plan_suite(count, seed) if r.part in wanted]
        if k > len(pool):  # an --also-heldout suite: its held-out part, reported apart
            for r in mine:
                r.part = f"heldout-seed{seed}"
        loaded += [(r, folder) for r in mine]
        print(f"suite seed {seed} ({folder}): {len(mine)} readings, parts {'/'.join(sorted(set(wanted)))}, "
              f"tuning {sum(r.part == 'tune' for r in mine)} ({sum(r.clean for r in mine if r.part == 'tune')} "
              f"read perfectly), held-out {sum(r.part.startswith('heldout') for r in mine)} "
              f"({sum(r.clean for r in mine if r.part.startswith('heldout'))} read perfectly)")
    readings = [r for r, _ in loaded]
    print(f"suite: {len(readings)} readings ({sum(r.clean for r in readings)} read perfectly), "
          f"synthesized in {time.perf_counter() - t0:.1f} s")
    pipe = Pipeline(cache, config)
    print(f"models: whisper {pipe.plugin.size} on {pipe.plugin.device}; load {pipe.load_s:.1f} s; "
          f"default miscue_threshold {config.miscue_threshold}")

    results: list[tuple[SuiteReading, dict[str, Any]]] = []
    for n, (reading, folder) in enumerate(loaded):
        results.append((reading, pipe.run(reading, opts.fresh, folder)))
        if (n + 1) % 20 == 0:
            print(f"  {n + 1}/{len(readings)} readings", flush=True)

    prepared: dict[int, Any] = {}

    def evaluate(part: str, threshold: float, added: float, shift: float = 0.0,
                 detail: bool = False, false_start: float | None = None, omission: float | None = None,
                 repeat: float | None = None, onset: float | None = None,
                 echo: float | None = None,
                 onset_omission: float | None = None) -> tuple[Tally, Tally, dict[str, Any]]:
        ours, base = Tally(), Tally()
        groups: dict[str, dict[str, Tally]] = {"voice": defaultdict(Tally), "voice_base": defaultdict(Tally),
                                                "condition": defaultdict(Tally), "condition_base": defaultdict(Tally)}
        errs: dict[str, list[float]] = {"ours": [], "transcript": [], "segment": [], "signed": []}
        wer = [0, 0, 0, 0, 0, 0]  # free errors, words; primed errors; on clean passages: free, primed, words
        for reading, res in results:
            if reading.part != part:
                continue
            segs = res["segments"]
            if id(reading) not in prepared:  # names repeat across pooled suites
                prepared[id(reading)] = prepare_assessment(segs, reading.reference)
            out = assess_reading(segs, reading.reference, res["assessed"], threshold, config.long_pause_s,
                                 prepared[id(reading)], time_shift=shift, added_threshold=added, weights=weights,
                                 false_start_logprob=false_start, omission_threshold=omission,
                                 repeat_threshold=repeat, prior_weight=knobs["prior"], onset_added_threshold=onset,
                                 false_start_echo=echo, onset_omission_threshold=onset_omission,
                                 next_word_logprob=config.next_word_logprob,
                                 repeat_syllable_weight=config.repeat_syllable_weight)
            n_ref = len(tokenize(reading.reference))
            flags = report_flags(out["report"], n_ref, config.long_pause_s)
            baseline = diff_flags(segs, reading.reference)
            ours.add(reading, flags)
            base.add(reading, baseline)
            voice = reading.voice.split("+")[0]
            groups["voice"][voice].add(reading, flags)
            groups["voice_base"][voice].add(reading, baseline)
            groups["condition"][reading.condition].add(reading, flags)
            groups["condition_base"][reading.condition].add(reading, baseline)
            if not detail:
                continue
            said = " ".join(reading.spoken)
            heard = [w.token.norm for w in spoken_words(segs)]
            truth_words = [t.norm for t in tokenize(said)]
            wer[0] += sum(1 for op, _, _ in align_words(heard, truth_words) if op != "equal")
            wer[1] += len(truth_words)
            # The aligner's second decode, with the page as Whisper's previous text.
            primed = [t.norm for a in res["assessed"] if a for t in tokenize(a.get("prompted", ""))]
            wer[2] += sum(1 for op, _, _ in align_words(primed, truth_words) if op != "equal")
            if reading.clean:
                wer[3] += sum(1 for op, _, _ in align_words(heard, truth_words) if op != "equal")
                wer[4] += sum(1 for op, _, _ in align_words(primed, truth_words) if op != "equal")
                wer[5] += len(truth_words)
            # Word start times of words read as written (not next to a miscue).
            free = spoken_words(segs)
            free_ops = phonetic_align([w.token.norm for w in free], [t.norm for t in tokenize(reading.reference)])
            free_start = {j: free[i].start for op, i, j in free_ops if op == "equal" and i is not None and j is not None}
            for word in out["report"]["words"]:
                j = word["index"]
                if j is None or j not in reading.starts or any(k in reading.truth for k in (j - 1, j, j + 1)):
                    continue
                if word["status"] == "correct" and word["start"] is not None:
                    errs["ours"].append(abs(word["start"] - reading.starts[j]))
                    if not word.get("pause_before"):
                        errs["signed"].append(word["start"] - reading.starts[j])
                    if j in free_start:
                        errs["transcript"].append(abs(free_start[j] - reading.starts[j]))
                    if word["segment"] is not None:
                        errs["segment"].append(abs(segs[word["segment"]]["start"] - reading.starts[j]))
        return ours, base, {"groups": groups, "errs": errs, "wer": wer, "signed": errs["signed"]}

    # The evidence model: a logistic regression over the candidates' features, fitted on the
    # tuning part only (each candidate labelled by whether it is a true miscue there).
    weights: dict[str, float] | None = None
    grid = GRID
    if opts.evidence != "llr":
        weights = fit_weights([(r, res) for r, res in results if r.part == "tune"])
        print("\n== Evidence model fitted on the tuning part (log-odds of a miscue per candidate) ==")
        print("  " + ", ".join(f"{k} {v:+.3f}" for k, v in weights.items()))
        print(f"  settings default: {config.evidence_weights}")
        grid = LOGIT_GRID
    # Choose the operating point on the tuning part: the best F1 with at most --clean-cap of the
    # clean passages flagged (ties: the larger thresholds, fewer alarms); per share of the
    # language model taken out of the evidence (prior_weight), then the best of those.
    def select(prior: float) -> tuple[dict[str, float], float, list[str]]:
        lines: list[str] = []
        knobs["prior"] = prior
        sweep = []
        for threshold in grid:
            for added in grid:
                ours, _, _ = evaluate("tune", threshold, added)
                sweep.append((threshold, added, ours.f1(), ours.clean_share()))
        allowed = [s for s in sweep if s[3] <= opts.clean_cap] or sweep
        chosen, added = max(allowed, key=lambda s: (round(s[2], 4), -round(s[3], 6), s[0], s[1]))[:2]
        lines.append(f"  miscue_threshold (replaced, skipped words; added words at {added:+.1f}): " + ", ".join(
            f"{t:+.1f}: {f:.3f}/{c:.2f}" for t, a, f, c in sweep if a == added))
        lines.append(f"  added_word_threshold (miscue_threshold at {chosen:+.1f}): " + ", ".join(
            f"{a:+.1f}: {f:.3f}/{c:.2f}" for t, a, f, c in sweep if t == chosen))
        # Each kind's own operating point (skipped words; the repetition every word is tested
        # for), then the two shared ones again with those fixed: coordinate ascent, repeated until
        # a whole pass leaves the point unchanged (at most SWEEP_PASSES passes: a single pass chose
        # the onset points before the others were set). Tuning parts only.
        # (the onset omission point follows the omission point until its own turn)
        point: dict[str, Any] = {"threshold": chosen, "added": added, "omission": chosen, "repeat": added,
                                 "onset": added, "onset_omission": None}
        f1 = 0.0
        for sweep_pass in range(1, SWEEP_PASSES + 1):
            before = dict(point)
            for name in ("omission", "repeat", "onset", "onset_omission", "threshold", "added"):
                tried = []
                # The aligner skips silence-scoring repetition hypotheses below PRIOR_FLOOR: a repeat
                # point near or under it would compare prior-corrected and raw evidence.
                floor = PRIOR_FLOOR + 4 if name == "repeat" and weights is None else -math.inf
                for value in [v for v in grid if v >= floor]:
                    at = {**point, name: value}
                    ours, _, _ = evaluate("tune", at["threshold"], at["added"], omission=at["omission"],
                                          repeat=at["repeat"], onset=at["onset"], onset_omission=at["onset_omission"])
                    tried.append((value, ours.f1(), ours.clean_share()))
                point[name], f1 = pick_point(tried, opts.clean_cap)
                if name in ("onset", "onset_omission"):
                    # Few tuning cases decide the onset points (an added word before a segment's first, its
                    # first word skipped):
                    # the middle of the best plateau (best F1, fewest clean alarms), not its top, keeps
                    # a margin on both sides.
                    ok = [t for t in tried if t[2] <= opts.clean_cap] or tried
                    top = [t for t in ok if round(t[1], 4) == round(f1, 4)]
                    least = min(round(c, 6) for _, _, c in top)
                    point[name] = statistics.median_low([v for v, _, c in top if round(c, 6) == least])
                lines.append(f"  {name}: " + ", ".join(f"{v:+.1f}: {f:.3f}/{c:.2f}" for v, f, c in tried)
                             + f"; chosen {point[name]:+.1f} (pass {sweep_pass})")
            if point == before:
                lines.append(f"  coordinate ascent converged: pass {sweep_pass} changed nothing")
                break
        else:
            lines.append(f"  coordinate ascent stopped after {SWEEP_PASSES} passes, the point still changing")
        return point, f1, lines

    saved = json.loads(Path(opts.point_file).read_text()) if opts.point_file and Path(opts.point_file).exists() else None
    tuning_parts = [f"seed {s}: {f}" for s, f, w, _ in suites if "tune" in w]  # what a saved point was chosen on
    if opts.at_defaults:
        # The shipped service as it is: the settings' defaults, nothing chosen in this run.
        knobs = {"prior": config.prior_weight}
        chosen, added, omission, repeat = (config.miscue_threshold, config.added_word_threshold,
                                           config.omission_threshold, config.repeat_threshold)
        onset, onset_omission = config.onset_added_threshold, config.onset_omission_threshold
        false_start, echo, shift = config.false_start_logprob, config.false_start_echo, config.word_time_shift_s
        print(f"\n== Operating point: the settings' defaults (--at-defaults; nothing chosen in this run) ==\n  "
              f"prior_weight {knobs['prior']}, miscue_threshold {chosen}, added_word_threshold {added}, omission_threshold "
              f"{omission}, repeat_threshold {repeat}, onset_added_threshold {onset}, onset_omission_threshold "
              f"{onset_omission}, false_start_logprob {false_start}, false_start_echo {echo}, word_time_shift_s {shift}")
    elif saved is None:
        knobs: dict[str, float] = {"prior": 0.0}
        print("\n== Operating point on the tuning part: F1 / clean passages flagged ==")
        best_prior: tuple[float, dict[str, float], float, list[str]] | None = None
        for prior in [float(w) for w in opts.prior_weights.split(",")]:
            point, f1, lines = select(prior)
            print(f"  prior_weight {prior:.2f}: F1 {f1:.3f} at " + ", ".join(f"{k} {v:+.1f}" for k, v in point.items()))
            if best_prior is None or round(f1, 4) > round(best_prior[2], 4):
                best_prior = (prior, point, f1, lines)
        assert best_prior is not None
        knobs["prior"], point, _, lines = best_prior
        print("\n".join(lines))
        chosen, added, omission, repeat = point["threshold"], point["added"], point["omission"], point["repeat"]
        onset, onset_omission = point["onset"], point["onset_omission"]
        print(f"  chosen: prior_weight {knobs['prior']:.2f}, miscue_threshold {chosen:+.1f}, added_word_threshold "
              f"{added:+.1f}, omission_threshold {omission:+.1f}, repeat_threshold {repeat:+.1f}, onset_added_threshold "
              f"{onset:+.1f}, onset_omission_threshold {onset_omission:+.1f} (settings defaults "
              f"{config.prior_weight:.2f}, {config.miscue_threshold:+.1f}, {config.added_word_threshold:+.1f}, "
              f"{config.omission_threshold}, {config.repeat_threshold}, {config.onset_added_threshold}, "
              f"{config.onset_omission_threshold})")

        # A repetition whose first copy the audio holds poorly was a false start: the level is
        # chosen on the tuning part (best repetition + self-correction F1; these kinds only).
        kinds_f1 = []
        for level in FALSE_START_GRID:
            ours, _, _ = evaluate("tune", chosen, added, false_start=level, omission=omission, repeat=repeat, onset=onset,
                                  onset_omission=onset_omission)
            kinds_f1.append((prf(*ours.kind["repetition"])[2] + prf(*ours.kind["self_correction"])[2], level))
        false_start = max(kinds_f1, key=lambda x: (round(x[0], 4), x[1] is None, -(x[1] or 0)))[1]
        print("  false_start_logprob (repetition F1 + self-correction F1): " + ", ".join(
            f"{lvl}: {f:.3f}" for f, lvl in kinds_f1) + f"; chosen {false_start} "
            f"(settings default {config.false_start_logprob})")

        # An added word whose audio sounds like the next word's is a false start of it: the level is
        # chosen on the tuning part (best insertion + self-correction F1, the two kinds it moves).
        echo_f1 = []
        for level in ECHO_GRID:
            ours, _, _ = evaluate("tune", chosen, added, false_start=false_start, omission=omission, repeat=repeat,
                                  onset=onset, echo=level, onset_omission=onset_omission)
            echo_f1.append((prf(*ours.kind["insertion"])[2] + prf(*ours.kind["self_correction"])[2], level))
        # Few tuning cases decide it: the level whose neighbourhood (it and the grid's levels on either
        # side) scores best on average, not a lone peak next to a drop; off unless that beats off.
        levels = [(f, lvl) for f, lvl in echo_f1 if lvl is not None]
        smooth = [(statistics.mean(f for f, _ in levels[max(0, k - 1): k + 2]), lvl) for k, (_, lvl) in enumerate(levels)]
        best_f, best_level = max(smooth, key=lambda x: (round(x[0], 4), -x[1]))
        echo = best_level if round(best_f, 4) > round(echo_f1[0][0], 4) else None
        print("  false_start_echo (insertion F1 + self-correction F1): " + ", ".join(
            f"{lvl}: {f:.3f}" for f, lvl in echo_f1) + f"; chosen {echo} (settings default {config.false_start_echo})")

        # The time shift of Whisper's forced word times, measured on the tuning part.
        _, _, tuned = evaluate("tune", chosen, added, detail=True, false_start=false_start, omission=omission,
                               repeat=repeat, onset=onset, echo=echo, onset_omission=onset_omission)
        lags = list(tuned["signed"])
        shift = -round(statistics.median(lags), 2) if lags else 0.0
        print(f"  word times lag the speech by a median {-shift * 1000:.0f} ms on the tuning part: "
              f"word_time_shift_s {shift:+.2f} (settings default {config.word_time_shift_s:+.2f})")
    else:
        # The operating point chosen by an earlier run of this script on the same tuning parts
        # (--point-file): the selection above is deterministic, so only the reporting is redone.
        knobs = {"prior": float(saved["prior"])}
        chosen, added, omission, repeat = saved["threshold"], saved["added"], saved["omission"], saved["repeat"]
        onset, onset_omission = saved["onset"], saved["onset_omission"]
        false_start, echo, shift = saved["false_start"], saved["echo"], saved["shift"]
        print(f"\n== Operating point from {opts.point_file} (chosen on {saved['tuning']}) ==\n  {saved}")
        same_tuning(saved, tuning_parts, opts.point_file)
    if opts.point_file and saved is None and not opts.at_defaults:
        Path(opts.point_file).write_text(json.dumps({
            "prior": knobs["prior"], "threshold": chosen, "added": added, "omission": omission, "repeat": repeat,
            "onset": onset, "onset_omission": onset_omission, "false_start": false_start, "echo": echo,
            "shift": shift, "tuning": tuning_parts}))

    for part in [p for p in ("tune", "heldout") if p in parts] + extra_parts:
        ours, base, extra = evaluate(part, chosen, added, shift, detail=True, false_start=false_start,
                                     omission=omission, repeat=repeat, onset=onset, echo=echo,
                                     onset_omission=onset_omission)
        label = ("TUNING part" + ("" if opts.at_defaults else " (the threshold was chosen here)")) if part == "tune" else (
            "HELD-OUT part" if part == "heldout" else f"HELD-OUT part of {part[len('heldout-'):]}")
        n = sum(1 for r, _ in results if r.part == part)
        print(f"\n######## {label}: {n} readings ########")
        table("Miscue detection, per reference word, any kind", [("all readings", ours, base)])
        print(f"  clean passages with at least one reported miscue: ours {ours.clean[0]}/{ours.clean[1]} "
              f"({ours.clean_share():.0%}), transcript diffing {base.clean[0]}/{base.clean[1]} ({base.clean_share():.0%})")
        if weights is None:
            # The service runs at the settings' defaults, which need not be the point chosen above:
            # the same part at those too, so that a reported figure says which one it belongs to.
            chosen_prior, knobs["prior"] = knobs["prior"], config.prior_weight
            shipped, _, _ = evaluate(part, config.miscue_threshold, config.added_word_threshold,
                                     config.word_time_shift_s, false_start=config.false_start_logprob,
                                     omission=config.omission_threshold, repeat=config.repeat_threshold,
                                     onset=config.onset_added_threshold, echo=config.false_start_echo,
                                     onset_omission=config.onset_omission_threshold)
            knobs["prior"] = chosen_prior
            sp, sr, sf = prf(*shipped.any)
            print(f"  at the settings' defaults (the shipped service: prior {config.prior_weight}, miscue "
                  f"{config.miscue_threshold}, added {config.added_word_threshold}, omission {config.omission_threshold}, "
                  f"repeat {config.repeat_threshold}, onset {config.onset_added_threshold}, onset omission "
                  f"{config.onset_omission_threshold}, false start {config.false_start_logprob}, echo "
                  f"{config.false_start_echo}, repeat syllables {config.repeat_syllable_weight}): P {sp:.3f} R {sr:.3f} F1 {sf:.3f}, clean {shipped.clean[0]}/"
                  f"{shipped.clean[1]}; per kind F1 " + ", ".join(
                      f"{kind} {prf(*shipped.kind[kind])[2]:.3f}" for kind in KINDS))
        print("\n== Per kind (kind must match) ==")
        for kind in KINDS:
            a, b = prf(*ours.kind[kind]), prf(*base.kind[kind])
            print(f"  {kind:16s} ours P {a[0]:.3f} R {a[1]:.3f} F1 {a[2]:.3f}   "
                  f"diffing P {b[0]:.3f} R {b[1]:.3f} F1 {b[2]:.3f}   (n={ours.kind[kind][0] + ours.kind[kind][2]})")
        for sub, (hit, total) in sorted(ours.subtype.items()):
            print(f"    substitution by a {sub} word: recall ours {hit}/{total}, "
                  f"diffing {base.subtype[sub][0]}/{base.subtype[sub][1]}")
        groups = extra["groups"]
        table("Per voice", [(v, groups["voice"][v], groups["voice_base"][v]) for v in sorted(groups["voice"])])
        table("Per condition", [(c, groups["condition"][c], groups["condition_base"][c])
                                for c in sorted(groups["condition"])])
        wer = extra["wer"]
        print(f"\n== ASR (whisper {pipe.plugin.size}) word error rate against the words said: "
              f"{wer[0] / max(1, wer[1]):.3f} ({wer[0]}/{wer[1]}) ==")
        print(f"   with the page as context (the aligner's second decode): {wer[2] / max(1, wer[1]):.3f}; "
              f"clean passages only: free {wer[3] / max(1, wer[5]):.3f}, with the page {wer[4] / max(1, wer[5]):.3f} "
              "(on a clean passage the page is what was said: that figure flatters the context)")
        errs = extra["errs"]
        if errs["ours"]:
            print("== Word start-time error, words read correctly (median) ==")
            print(f"  ours (forced alignment, shifted, pause-refined): {statistics.median(errs['ours']) * 1000:.0f} ms "
                  f"over {len(errs['ours'])} words")
            if errs["transcript"]:
                print(f"  transcript word times:                           {statistics.median(errs['transcript']) * 1000:.0f} ms")
            if errs["segment"]:
                print(f"  original (segment start only):                   {statistics.median(errs['segment']) * 1000:.0f} ms")
    if opts.ocr_pages and "heldout" in parts:
        ocr_pages([r for r, _ in results if r.part == "heldout"][: opts.ocr_pages])
    audio = sum(res["audio_seconds"] for _, res in results)
    work = sum(res["seconds"] for _, res in results)
    asr = sum(res["asr_seconds"] for _, res in results)
    print("\n== End-to-end speed (convert, split, ASR, candidate scoring, verdicts; this machine) ==")
    print(f"  {audio:.1f} s of speech in {work:.1f} s: real-time factor {work / max(audio, 1e-9):.3f} "
          f"(ASR alone {asr / max(audio, 1e-9):.3f}){'' if opts.fresh else ' [from the runs that filled the cache]'}")
    cpu = [float(res["cpu_seconds"]) for _, res in results if res.get("cpu_seconds") is not None]
    if cpu and len(cpu) == len(results):
        print(f"  CPU time (all threads, ffmpeg included): {sum(cpu):.1f} s, {sum(cpu) / max(audio, 1e-9):.3f} CPU-s "
              f"per second of speech; load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
