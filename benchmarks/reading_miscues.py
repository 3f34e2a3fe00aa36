"""Reading assessment benchmark: miscue detection of the reading report vs transcript diffing.

Generated set: passages from a small story vocabulary, rendered on a page (Pillow, DejaVu)
and read by espeak-ng word by word with known gaps, with two injected miscues each
(substitution, omission, insertion, repetition). The same pipeline as the service runs
Ray-free: MP3 conversion, silence split, faster-whisper (tiny.en unless a larger model is in
the models directory) per segment, forced scoring, comparison.

Figures printed:
* OCR word error rate of the shipped OCR plugins on the rendered pages;
* miscue detection precision / recall / F1 (per reference word, any miscue kind):
  the reading report (ours), the report without forced re-scoring (ablation), and plain
  transcript diffing of the segment texts — the original's method — on the same transcripts;
* median word start-time error of the report vs the original's segment-level times;
* end-to-end real-time factor on this machine.

Run: ``python benchmarks/reading_miscues.py [--passages 30] [--words 12] [--ocr tesseract,rapidocr]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))

from percept.reading.config import ReadingConfig  # noqa: E402
from percept.reading.core import ReadingCore  # noqa: E402
from percept.reading.forced import ForcedAligner  # noqa: E402
from percept.reading.report import compare_reading  # noqa: E402
from percept.reading.synth import inject_miscues, passages, render_page, speak_words  # noqa: E402
from percept.reading.text import align_words, tokenize  # noqa: E402
from percept.reading.workflow import assemble_segment  # noqa: E402
from percept.storage import BlobStore  # noqa: E402

KINDS = ["substitution", "omission", "insertion", "repetition"]
SWEEP = (0.05, 0.1, 0.2, 0.3, 0.5)  # accept_substitution values shown (sensitivity, not tuning)


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    ref = [t.norm for t in tokenize(reference)]
    ops = align_words([t.norm for t in tokenize(hypothesis)], ref)
    return sum(1 for op, _, _ in ops if op != "equal"), len(ref)


def transcript_diff_flags(segments: list[dict[str, Any]], reference: str) -> set[int]:
    """The original's method: diff the free transcript against the text, word by word."""
    spoken = [t.norm for s in segments for t in tokenize(s["text"])]
    ref = [t.norm for t in tokenize(reference)]
    flags: set[int] = set()
    position = 0
    for op, _i, j in align_words(spoken, ref):
        if j is not None:
            position = j + 1
        if op in ("replace", "delete") and j is not None:
            flags.add(j)
        elif op == "insert":
            flags.add(min(position, len(ref) - 1))
    return flags


def report_flags(report: dict[str, Any], n_ref: int) -> set[int]:
    flags: set[int] = set()
    for word in report["words"]:
        if word["index"] is not None and word["status"] != "correct":
            flags.add(word["index"])
        elif word["index"] is None:
            flags.add(min(word.get("at_index", n_ref - 1), n_ref - 1))
    return flags


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main() -> None:  # noqa: C901 - one linear script
    parser = argparse.ArgumentParser()
    parser.add_argument("--passages", type=int, default=30)
    parser.add_argument("--words", type=int, default=12)
    parser.add_argument("--ocr", default="tesseract,rapidocr")
    parser.add_argument("--ocr-pages", type=int, default=5, help="pages per OCR model (rapidocr is slow on CPU)")
    parser.add_argument("--seed", type=int, default=3)
    opts = parser.parse_args()

    from faster_whisper_plugin import FasterWhisperPlugin

    from percept.plugins import discover_plugins

    rng = random.Random(opts.seed)
    tmp = Path(tempfile.mkdtemp(prefix="reading-bench-"))
    blobs = BlobStore(str(tmp / "blobs"))
    config = ReadingConfig()
    core = ReadingCore(blobs, config)
    started = time.perf_counter()
    FasterWhisperPlugin.load()
    aligner = ForcedAligner()
    print(f"models: whisper {FasterWhisperPlugin.size} on {FasterWhisperPlugin.device}; "
          f"load {time.perf_counter() - started:.1f} s")

    found = discover_plugins(ROOT / "plugins")
    ocr = {name: found.classes[name] for name in opts.ocr.split(",") if name in found.classes}
    for cls in ocr.values():
        cls.load()
    ocr_errors = {name: [0, 0] for name in ocr}
    ocr_time = {name: 0.0 for name in ocr}

    counts = {"ours": [0, 0, 0], "no_rescoring": [0, 0, 0], "transcript_diff": [0, 0, 0]}
    per_kind = {k: [0, 0] for k in KINDS}  # detected, total (ours)
    per_kind_base = {k: [0, 0] for k in KINDS}
    sweep = {t: [0, 0, 0] for t in SWEEP}
    time_errors: list[float] = []
    base_time_errors: list[float] = []
    audio_s = 0.0
    work_s = 0.0
    for n, words in enumerate(passages(opts.passages, opts.words, seed=opts.seed)):
        reference = " ".join(words).capitalize() + "."
        kinds = rng.sample(KINDS, 2)
        said, truth, position = inject_miscues(words, rng, kinds)
        speech, times = speak_words(said)
        audio_s += len(speech) / 1000.0

        page = tmp / f"page{n}.png"
        lines = [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])]
        page.write_bytes(render_page([lines[0].capitalize(), lines[1] + "."]))
        for name, cls in ocr.items() if n < opts.ocr_pages else ():
            t0 = time.perf_counter()
            text = cls.process_image(str(page)).text
            ocr_time[name] += time.perf_counter() - t0
            e, total = wer(reference, text)
            ocr_errors[name][0] += e
            ocr_errors[name][1] += total

        t0 = time.perf_counter()
        key = f"reading/bench/audio/{n}.mp3"
        core.convert_audio(speech.export(format="wav").read(), key)
        pieces = core.split(key, "bench")
        segments = []
        for piece in pieces:
            with blobs.local_path(piece["key"]) as path:
                result = FasterWhisperPlugin.process_audio(str(path)).model_dump()
            segments.append(assemble_segment(piece, result))
        forced: dict[int, dict[str, Any]] = {}
        for seg, part, piece in zip(segments, core.plan(segments, reference), pieces, strict=True):
            if part["words"]:
                with blobs.local_path(piece["key"]) as path:
                    for k, w in enumerate(aligner.align(str(path), part["words"])):
                        forced[part["first"] + k] = {"probability": w["probability"],
                                                     "start": seg["start"] + w["start"], "end": seg["start"] + w["end"]}
        ours = core.compare(segments, reference, forced)
        work_s += time.perf_counter() - t0
        plain = core.compare(segments, reference, None)

        n_ref = len(words)
        truth_set = set(truth)
        for name, flags in (("ours", report_flags(ours["report"], n_ref)),
                            ("no_rescoring", report_flags(plain["report"], n_ref)),
                            ("transcript_diff", transcript_diff_flags(segments, reference))):
            counts[name][0] += len(flags & truth_set)
            counts[name][1] += len(flags - truth_set)
            counts[name][2] += len(truth_set - flags)
            if name in ("ours", "transcript_diff"):
                table = per_kind if name == "ours" else per_kind_base
                for index, kind in truth.items():
                    table[kind][0] += index in flags
                    table[kind][1] += 1
        for threshold in SWEEP:
            variant = compare_reading(segments, reference, config.long_pause_s, forced, threshold,
                                      config.accept_omission)
            flags = report_flags(variant["report"], n_ref)
            sweep[threshold][0] += len(flags & truth_set)
            sweep[threshold][1] += len(flags - truth_set)
            sweep[threshold][2] += len(truth_set - flags)
        # The converted recording starts with the same lead as the speech (MP3 keeps times).
        for word in ours["report"]["words"]:
            j = word["index"]
            if j is None or word["status"] != "correct" or j in truth or j not in position or word["start"] is None:
                continue
            true_start = times[position[j]][0]
            time_errors.append(abs(word["start"] - true_start))
            seg = segments[word["segment"]] if word["segment"] is not None else None
            if seg is not None:
                base_time_errors.append(abs(seg["start"] - true_start))
        print(f"passage {n + 1:2d}/{opts.passages}: {' '.join(said)!r} -> {segments[0]['text'] if segments else ''!r}",
              flush=True)

    print("\n== OCR word error rate (rendered pages) ==")
    for name, (e, total) in ocr_errors.items():
        print(f"  {name:10s} WER {e / max(1, total):.3f}  ({e}/{total} words, {ocr_time[name] / max(1, min(opts.ocr_pages, opts.passages)):.2f} s/page)")
    print("\n== Miscue detection (per reference word, any kind) ==")
    labels = {"ours": "reading report (alignment + forced re-scoring)",
              "no_rescoring": "reading report without re-scoring (ablation)",
              "transcript_diff": "transcript diffing (the original's method, same transcripts)"}
    for name, (tp, fp, fn) in counts.items():
        p, r, f = prf(tp, fp, fn)
        print(f"  {labels[name]:62s} P {p:.3f}  R {r:.3f}  F1 {f:.3f}  (tp {tp}, fp {fp}, fn {fn})")
    print(f"  F1 by accept_substitution (default {config.accept_substitution}): " + ", ".join(
        f"{t}: {prf(*sweep[t])[2]:.3f}" for t in SWEEP))
    print("  recall per kind (ours / transcript diffing): " + ", ".join(
        f"{k} {per_kind[k][0]}/{per_kind[k][1]} vs {per_kind_base[k][0]}/{per_kind_base[k][1]}" for k in KINDS))
    print("\n== Word start-time error (words read correctly) ==")
    if time_errors:
        print(f"  reading report (word timestamps): median {statistics.median(time_errors) * 1000:.0f} ms "
              f"over {len(time_errors)} words")
        print(f"  original (segment times only):    median {statistics.median(base_time_errors) * 1000:.0f} ms")
    print("\n== End-to-end speed (convert, split, ASR, forced scoring, compare; this machine) ==")
    print(f"  {audio_s:.1f} s of speech in {work_s:.1f} s: real-time factor {work_s / max(audio_s, 1e-9):.2f}")


if __name__ == "__main__":
    main()
