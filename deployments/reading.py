"""The reading service's deployments: ``ReadingTools`` and the forced aligner.

Upload conversion (ffmpeg, Pillow), the page view and the work of every reading task
(cutting on silence, recognition on the plugin deployments, forced scoring on
``ReadingAligner``, comparison) run on ``ReadingTools``
(:class:`percept.reading.workflow.ReadingTools`), off the ingress. Speech and OCR run on
the plugin deployments (``plugin:faster_whisper``, ``plugin:rapidocr``, ``plugin:tesseract``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from ray import serve

from deployments.base import ModelDeployment, bind_group
from deployments.plugin import plugin_deployment_name
from percept.config import AppArgs
from percept.handles import Handle, ReadingHandles, is_running
from percept.reading.core import ReadingCore
from percept.reading.files import ReadingFiles
from percept.reading.forced import ForcedAligner
from percept.reading.workflow import ReadingTools
from percept.registry import READING
from percept.retry import RetryingHandle, retry_idempotent
from percept.storage import BlobStore, open_state_store

logger = logging.getLogger(__name__)


@serve.deployment(name="ReadingTools")
# The core needs no weights, so it is always loaded: ModelDeployment's ``core`` (optional)
# and ReadingTools' ``core`` are the same object.
class ReadingToolsDeployment(ModelDeployment[ReadingCore], ReadingTools):  # type: ignore[misc]
    """Serves :class:`ReadingTools` as it is: one call per upload conversion, per task and per
    page view (``convert_audio``, ``convert_image``, ``view``, ``process_audio``,
    ``process_image``, ``extract``, ``compare_text``, ``compare_image``).

    A task's work runs here and calls the plugin deployments (looked up by name in this
    application) and the aligner; the ingress only waits for the result.
    """

    model_label = "reading tools"

    def __init__(self, args: AppArgs, aligner: Handle) -> None:
        ModelDeployment.__init__(self, args)
        assert args.state_url is not None
        blobs = BlobStore(args.blob_url or str(args.data_dir / "blobs"))
        self.load(lambda: ReadingCore(blobs, READING.load_settings(args)))
        self._plugins: dict[str, Handle] = {}
        if is_running(aligner):  # scoring is idempotent: sent once more if the aligner replica dies
            aligner = retry_idempotent(ReadingHandles(reading_aligner=aligner)).reading_aligner
        ReadingTools.__init__(self, self.require(), aligner, self.plugin,
                              ReadingFiles(open_state_store(args.state_url), blobs))

    def plugin(self, name: str) -> Handle:
        """The deployment of plugin ``name`` in this application."""
        if name not in self._plugins:
            app = serve.get_replica_context().app_name
            handle = serve.get_deployment_handle(plugin_deployment_name(name), app_name=app)
            # recognising a stored file is idempotent: sent once more if the plugin replica dies
            self._plugins[name] = cast(Handle, RetryingHandle(handle, frozenset({"process"})))
        return self._plugins[name]


@serve.deployment(name="ReadingAligner")
class ReadingAlignerDeployment(ModelDeployment[ForcedAligner]):
    """Forced scoring of reference words with Whisper (GPU when the replica has one)."""

    model_label = "whisper forced aligner"

    def __init__(self, args: AppArgs) -> None:
        super().__init__(args)
        self.blobs = BlobStore(args.blob_url or str(args.data_dir / "blobs"))
        settings = READING.load_settings(args)
        self.load(lambda: ForcedAligner(self.models_path, context_pad_s=settings.aligner_context_pad_s,
                                        score_prior=settings.prior_weight > 0, probe_words=settings.probe_words,
                                        probe_margin=settings.probe_margin))

    def _assess(self, key: str, reference: list[str], transcript: list[str], long_pause_s: float) -> dict[str, Any]:
        with self.blobs.local_path(key) as path:
            return self.require().assess(str(path), reference, transcript, long_pause_s)

    async def assess(self, key: str, reference: list[str], transcript: list[str],
                     long_pause_s: float) -> dict[str, Any]:
        """The acoustic evidence about one stored segment (:meth:`ForcedAligner.assess`)."""
        self.require()
        return await asyncio.to_thread(self._assess, key, reference, transcript, long_pause_s)


def bind(args: AppArgs, gpu: bool) -> ReadingHandles:
    """The reading tools and the forced aligner (resources from serve_config.yaml)."""
    return bind_group(ReadingHandles, args, gpu, reading_aligner=ReadingAlignerDeployment,
                      reading=(ReadingToolsDeployment, lambda group: (group.reading_aligner,)))
