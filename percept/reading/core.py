"""``ReadingCore``: the reading service's CPU work, Ray-free (the deployment wraps it).

Upload conversion, cutting a recording into segments, the comparison of a reading with a
reference text, phrase extraction and the highlighted page view.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from percept.reading.audio import convert_to_mp3, load_audio, split_audio, split_silence
from percept.reading.files import blob_key
from percept.reading.images import convert_to_png, render_view
from percept.reading.report import Assessment, assess_reading, compare_reading
from percept.reading.settings import ReadingSettings
from percept.reading.text import find_phrases, tokenize
from percept.storage import BlobStore

logger = logging.getLogger(__name__)


class ReadingCore:
    """Conversion, segmentation and comparison over the blob store."""

    def __init__(self, blobs: BlobStore, config: ReadingSettings) -> None:
        self.blobs = blobs
        self.config = config

    def convert_audio(self, data: bytes, key: str) -> dict[str, Any]:
        """Store ``data`` as MP3 under ``key``; its duration. 422 when undecodable or too long."""
        mp3, duration = convert_to_mp3(data, self.config.max_audio_duration_s)
        self.blobs.put_bytes(key, mp3)
        return {"duration": duration, "bytes": len(mp3)}

    def convert_image(self, data: bytes, key: str) -> dict[str, Any]:
        """Store ``data`` as PNG under ``key``; its size. 422 when undecodable or too large."""
        png, width, height = convert_to_png(data, self.config.max_image_pixels)
        self.blobs.put_bytes(key, png)
        return {"width": width, "height": height, "bytes": len(png)}

    def split(self, key: str, owner: str) -> list[dict[str, Any]]:
        """Cut a stored recording on silence; each piece stored as MP3 under a new id."""
        pieces: list[dict[str, Any]] = []

        def save(data: bytes) -> str:
            file_id = str(uuid.uuid4())
            piece_key = blob_key("audio", owner, file_id)
            self.blobs.put_bytes(piece_key, data)
            pieces.append({"file": file_id, "key": piece_key})
            return file_id

        with self.blobs.local_path(key) as path:
            audio = load_audio(path, mp3=True)  # stored recordings are MP3 (convert_audio)
            _, intervals = split_silence(audio, self.config.segment_max_s, self.config.silence_percent, save)
        for piece, (start, end) in zip(pieces, intervals, strict=True):
            piece.update(start=round(start, 3), end=round(end, 3))
        return pieces

    def cut(self, key: str, owner: str, file_id: str, start: float, end: float) -> str:
        """Store the ``[start, end]`` part of a stored recording under ``file_id``; its key."""
        piece_key = blob_key("audio", owner, file_id)
        with self.blobs.local_path(key) as path:
            split_audio(load_audio(path, mp3=True), [(start, end)], lambda data: self.blobs.put_bytes(piece_key, data))
        return piece_key

    def compare(self, segments: list[dict[str, Any]], reference: str) -> dict[str, Any]:
        """The contract's errors and the word-level report from the transcript alone (see
        :mod:`percept.reading.report`)."""
        return compare_reading(segments, reference, self.config.long_pause_s)

    def assess(self, segments: list[dict[str, Any]], reference: str,
               assessed: list[dict[str, Any] | None], prepared: Assessment | None = None) -> dict[str, Any]:
        """Errors and report from the aligner's acoustic evidence (:mod:`percept.reading.verdict`);
        ``prepared``: the transcript's alignment when the caller already made it."""
        return assess_reading(segments, reference, assessed, self.config.miscue_threshold, self.config.long_pause_s,
                              prepared,
                              time_shift=self.config.word_time_shift_s,
                              added_threshold=self.config.added_word_threshold,
                              weights=self.config.evidence_weights or None,
                              false_start_logprob=self.config.false_start_logprob,
                              omission_threshold=self.config.omission_threshold,
                              repeat_threshold=self.config.repeat_threshold,
                              prior_weight=self.config.prior_weight,
                              onset_added_threshold=self.config.onset_added_threshold,
                              false_start_echo=self.config.false_start_echo,
                              onset_omission_threshold=self.config.onset_omission_threshold,
                              next_word_logprob=self.config.next_word_logprob,
                              repeat_syllable_weight=self.config.repeat_syllable_weight)

    def extract(self, segments: list[dict[str, Any]], phrases: list[str]) -> list[dict[str, Any]]:
        """Per phrase: found or not, the segments holding it and the time span of its words."""
        texts = [str(s.get("text", "")) for s in segments]
        result: list[dict[str, Any]] = []
        for phrase in phrases:
            indices = find_phrases(texts, phrase) if tokenize(phrase) else []
            item: dict[str, Any] = {"phrase": phrase, "found": bool(indices), "segments": indices}
            result.append(item)
        return result

    def view(self, image_key: str, boxes: list[dict[str, Any]], words: list[dict[str, Any]],
             box_of_word: list[int | None]) -> bytes:
        """The page PNG with each box coloured by the verdict of the words it holds."""
        rank = {"substitution": 4, "omission": 3, "self_correction": 2, "repetition": 1}
        verdicts: list[str | None] = [None] * len(boxes)
        for entry in words:
            index = entry.get("index")
            if index is None or index >= len(box_of_word):
                continue
            box = box_of_word[index]
            if box is None:
                continue
            status = entry["status"]
            if rank.get(status, 0) > rank.get(verdicts[box] or "", 0):
                verdicts[box] = status
        return render_view(self.blobs.get_bytes(image_key), boxes, verdicts)
