"""The reading service's deployments: ``ReadingTools`` and the forced aligner.

Upload conversion (ffmpeg, Pillow), cutting recordings on silence, comparison of readings
with reference texts (forced scoring on ``ReadingAligner``) and the page view run on
``ReadingTools`` (:class:`percept.reading.workflow.ReadingTools`), off the ingress. Speech and OCR run on
the plugin deployments (``plugin:faster_whisper``, ``plugin:rapidocr``, ``plugin:tesseract``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray import serve

from deployments.base import ModelDeployment, bind_group
from percept.config import AppArgs
from percept.handles import Handle, ReadingHandles
from percept.reading.core import ReadingCore
from percept.reading.forced import ForcedAligner
from percept.reading.workflow import ReadingTools
from percept.registry import READING
from percept.storage import BlobStore

logger = logging.getLogger(__name__)


@serve.deployment(name="ReadingTools")
class ReadingToolsDeployment(ModelDeployment[ReadingTools]):
    """Serves :class:`ReadingTools` (conversion, cutting, comparison with forced scoring).

    Its methods are the tools' methods: ``convert_audio``, ``convert_image``, ``split``,
    ``cut``, ``extract``, ``view`` and ``compare(owner, segments, reference)``, which calls
    the aligner deployment itself.
    """

    model_label = "reading tools"

    def __init__(self, args: AppArgs, aligner: Handle) -> None:
        super().__init__(args)
        blobs = BlobStore(args.blob_url or str(args.data_dir / "blobs"))
        self.load(lambda: ReadingTools(ReadingCore(blobs, READING.load_settings(args)), aligner))

    async def convert_audio(self, data: bytes, key: str) -> dict[str, Any]:
        return await self.require().convert_audio(data, key)

    async def convert_image(self, data: bytes, key: str) -> dict[str, Any]:
        return await self.require().convert_image(data, key)

    async def split(self, key: str, owner: str) -> list[dict[str, Any]]:
        return await self.require().split(key, owner)

    async def cut(self, key: str, owner: str, file_id: str, start: float, end: float) -> str:
        return await self.require().cut(key, owner, file_id, start, end)

    async def compare(self, owner: str, segments: list[dict[str, Any]], reference: str) -> dict[str, Any]:
        return await self.require().compare(owner, segments, reference)

    async def extract(self, segments: list[dict[str, Any]], phrases: list[str]) -> list[dict[str, Any]]:
        return await self.require().extract(segments, phrases)

    async def view(self, image_key: str, boxes: list[dict[str, Any]], words: list[dict[str, Any]],
                   box_of_word: list[int | None]) -> bytes:
        return await self.require().view(image_key, boxes, words, box_of_word)


@serve.deployment(name="ReadingAligner")
class ReadingAlignerDeployment(ModelDeployment[ForcedAligner]):
    """Forced scoring of reference words with Whisper (GPU when the replica has one)."""

    model_label = "whisper forced aligner"

    def __init__(self, args: AppArgs) -> None:
        super().__init__(args)
        self.blobs = BlobStore(args.blob_url or str(args.data_dir / "blobs"))
        self.load(lambda: ForcedAligner(self.models_path))

    def _align(self, key: str, words: list[str]) -> list[dict[str, Any]]:
        with self.blobs.local_path(key) as path:
            return self.require().align(str(path), words)

    async def align(self, key: str, words: list[str]) -> list[dict[str, Any]]:
        """Per word ``{word, start, end, probability}`` in a stored recording piece."""
        self.require()
        return await asyncio.to_thread(self._align, key, words)


def bind(args: AppArgs, gpu: bool) -> ReadingHandles:
    """The reading tools and the forced aligner (resources from serve_config.yaml)."""
    return bind_group(ReadingHandles, args, gpu, reading_aligner=ReadingAlignerDeployment,
                      reading=(ReadingToolsDeployment, lambda group: (group.reading_aligner,)))
