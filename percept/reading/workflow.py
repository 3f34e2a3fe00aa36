"""The reading service's work, Ray-free: :class:`ReadingTools`, served by the ``reading``
deployment, orchestrates every task over the model deployments.

A recording is cut on silence into segments, every segment goes to the audio plugin at
once (so the plugin deployment batches them), and the pieces are assembled with absolute
times. Comparisons run the audio (and the image) model concurrently, score the reference
words on the forced aligner, and compare. The ingress makes one call per task.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from percept.handles import Handle, is_running
from percept.reading.core import ReadingCore
from percept.reading.files import ReadingFiles, blob_key
from percept.reading.report import Assessment, prepare_assessment
from percept.reading.text import tokenize
from percept.tasks import ProgressReporter

logger = logging.getLogger(__name__)


def _round(value: float) -> float:
    return round(float(value), 3)


def assemble_segment(piece: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """One contract segment from a cut piece and the plugin's result on it.

    Times of words are made absolute. The text is the words' concatenation when the
    plugin gave words (so ``at_char`` offsets and word times agree), else its text.
    """
    offset = float(piece["start"])
    words = [
        {"word": str(w["word"]), "start": _round(offset + float(w["start"])),
         "end": _round(offset + float(w["end"])), "probability": w.get("probability")}
        for seg in result.get("segments", []) for w in seg.get("words", []) or []
    ]
    if words:
        text = "".join(w["word"] for w in words)
    else:
        parts = [str(seg.get("text", "")) for seg in result.get("segments", [])]
        text = "".join(parts) if parts else str(result.get("text", ""))
        if text and not text.startswith(" "):
            text = " " + text  # the original's segments start with a space; at_char counts it
    return {"start": _round(piece["start"]), "end": _round(piece["end"]), "text": text,
            "file": piece["file"], "words": words}


class ReadingTools:
    """What the ``reading`` deployment serves: each upload conversion, each task of the
    service and the page view is one call, and the work of a task runs here.

    A task calls out only to the models: the audio/image plugin (``plugins(name)``, 503 on
    use when not running) and the forced aligner; the segments never travel back and forth.
    Every blocking step of the core runs in a thread.
    """

    def __init__(self, core: ReadingCore, aligner: Handle, plugins: Callable[[str], Handle],
                 files: ReadingFiles) -> None:
        self.core = core
        self.aligner = aligner
        self.plugins = plugins
        self.files = files

    async def convert_audio(self, data: bytes, key: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.core.convert_audio, data, key)

    async def convert_image(self, data: bytes, key: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.core.convert_image, data, key)

    async def split(self, key: str, owner: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.core.split, key, owner)

    async def cut(self, key: str, owner: str, file_id: str, start: float, end: float) -> str:
        return await asyncio.to_thread(self.core.cut, key, owner, file_id, start, end)

    async def extract_phrases(self, segments: list[dict[str, Any]], phrases: list[str]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.core.extract, segments, phrases)

    async def view(self, image_key: str, boxes: list[dict[str, Any]], words: list[dict[str, Any]],
                   box_of_word: list[int | None]) -> bytes:
        return await asyncio.to_thread(self.core.view, image_key, boxes, words, box_of_word)

    async def compare(self, owner: str, segments: list[dict[str, Any]], reference: str) -> dict[str, Any]:
        """The contract's errors and the word-level report: verdicts from the aligner's
        acoustic evidence when it is available, else from the transcript alone."""
        assessed = await self.assess(owner, segments, reference)
        if assessed is not None:
            state, answers = assessed
            return await asyncio.to_thread(self.core.assess, segments, reference, answers, state)
        return await asyncio.to_thread(self.core.compare, segments, reference)

    async def assess(self, owner: str, segments: list[dict[str, Any]],
                     reference: str) -> tuple[Assessment, list[dict[str, Any] | None]] | None:
        """The transcript's alignment to the reference (reused by the verdicts) and the aligner's
        evidence per segment (see :meth:`ForcedAligner.assess`); ``None`` when the aligner is
        not deployed, turned off (``forced_scoring: false``) or failing."""
        if not self.core.config.forced_scoring or not segments or not is_running(self.aligner):
            return None
        try:
            state = await asyncio.to_thread(prepare_assessment, segments, reference)
            asks = state.requests()
            jobs = [(s, seg, ask) for s, (seg, ask) in enumerate(zip(segments, asks, strict=True)) if ask["reference"]]
            answers = await asyncio.gather(*(
                self.aligner.assess.remote(blob_key("audio", owner, seg["file"]), ask["reference"], ask["transcript"],
                                           self.core.config.long_pause_s)
                for _, seg, ask in jobs
            ))
        except Exception as exc:  # the report is still useful from the transcript alone
            logger.warning("acoustic assessment skipped: %s", exc)
            return None
        assessed: list[dict[str, Any] | None] = [None] * len(segments)
        for (s, _, _), answer in zip(jobs, answers, strict=True):
            assessed[s] = answer
        return state, assessed

    async def _report(self, reporter: ProgressReporter, percent: float, message: str) -> None:
        await asyncio.to_thread(reporter, percent, message)

    async def process_audio(self, owner: str, key: str, model: str, reporter: ProgressReporter) -> dict[str, Any]:
        """Text and timed segments of a stored recording (each segment a downloadable MP3)."""
        plugin = self.plugins(model)
        await self._report(reporter, 2, "cutting the recording on silence")
        pieces = await self.split(key, owner)
        for piece in pieces:
            await asyncio.to_thread(self.files.register, "audio", owner, piece["file"], piece["key"],
                                    duration=piece["end"] - piece["start"], generated=True)
        await self._report(reporter, 10, f"recognising {len(pieces)} segments")
        done = 0

        async def run(piece: dict[str, Any]) -> dict[str, Any]:
            nonlocal done
            result: dict[str, Any] = await plugin.process.remote(piece["key"])
            done += 1
            await self._report(reporter, 10 + 80 * done / max(1, len(pieces)), f"recognised {done}/{len(pieces)}")
            return result

        results = await asyncio.gather(*(run(p) for p in pieces))
        segments = [assemble_segment(p, r) for p, r in zip(pieces, results, strict=True)]
        text = " ".join(s["text"].strip() for s in segments if s["text"].strip())
        return {"text": text, "segments": segments}

    async def process_image(self, key: str, model: str, reporter: ProgressReporter) -> dict[str, Any]:
        """Text and word boxes of a stored page image."""
        await self._report(reporter, 5, "recognising text")
        result: dict[str, Any] = await self.plugins(model).process.remote(key)
        return {"text": str(result.get("text", "")), "boxes": list(result.get("boxes", []))}

    async def extract(self, owner: str, key: str, model: str, phrases: list[str],
                      reporter: ProgressReporter) -> dict[str, Any]:
        """For each phrase: whether it was read, and the audio segment where it was."""
        audio = await self.process_audio(owner, key, model, reporter.scaled(0, 90))
        segments = audio["segments"]
        found = await self.extract_phrases(segments, phrases)
        data: list[dict[str, Any]] = []
        for item in found:
            chunk: dict[str, Any] | None = None
            indices: list[int] = item["segments"]
            if len(indices) == 1:
                chunk = _contract_chunk(segments[indices[0]])
            elif indices:
                # The phrase spans several segments: cut the span into a file of its own.
                first, last = segments[indices[0]], segments[indices[-1]]
                file_id = str(uuid.uuid4())
                piece_key = await self.cut(key, owner, file_id, first["start"], last["end"])
                await asyncio.to_thread(self.files.register, "audio", owner, file_id, piece_key,
                                        duration=last["end"] - first["start"], generated=True)
                text = "".join(segments[i]["text"] for i in range(indices[0], indices[-1] + 1))
                chunk = {"start": first["start"], "end": last["end"], "text": text, "file": file_id}
            data.append({"audio_segment": chunk, "found": item["found"], "phrase": item["phrase"]})
        return {"data": data}

    async def compare_text(self, owner: str, key: str, model: str, text: list[str],
                           reporter: ProgressReporter) -> dict[str, Any]:
        """The reading against a reference text: errors and the word-level report."""
        audio = await self.process_audio(owner, key, model, reporter.scaled(0, 90))
        compared = await self.compare(owner, audio["segments"], " ".join(text))
        return {"audio": audio, **compared}

    async def compare_image(self, owner: str, audio_key: str, audio_model: str, image_key: str,
                            image_model: str, reporter: ProgressReporter) -> dict[str, Any]:
        """The reading against the text of a page photo; each word knows its OCR box."""
        image, audio = await asyncio.gather(
            self.process_image(image_key, image_model, reporter.scaled(0, 10)),
            self.process_audio(owner, audio_key, audio_model, reporter.scaled(10, 90)),
        )
        boxes = image["boxes"]
        reference = " ".join(str(b.get("text", "")) for b in boxes) if boxes else image["text"]
        box_of_word = [i for i, b in enumerate(boxes) for _ in tokenize(str(b.get("text", "")))]
        compared = await self.compare(owner, audio["segments"], reference)
        for entry in compared["report"]["words"]:
            index = entry.get("index")
            entry["box"] = box_of_word[index] if index is not None and index < len(box_of_word) else None
        return {"image": image, "audio": audio, **compared}


def _contract_chunk(segment: dict[str, Any]) -> dict[str, Any]:
    return {k: segment[k] for k in ("start", "end", "text", "file")}
