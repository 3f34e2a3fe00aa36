"""The correction service's deployment: runs image-correction jobs off the ingress.

``CorrectionDeployment.run_job`` drives one job: the per-image work fans out on Ray Data
(``pipelines.correction``) from this replica, the dataset-level analysis runs here, corrected
images and the report go to the blob store under ``correction/<owner>/<job id>/``, and the
full output JSON is stored there as ``result.json`` (the task record keeps a summary).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ray import serve

from deployments.base import ModelDeployment, bind_group
from percept.config import AppArgs
from percept.correction.events import SocketEvents
from percept.correction.features import path_allowed
from percept.correction.images import ImageDecodeError, metadata
from percept.correction.job import Executor, run_job
from percept.correction.settings import JobDefaults
from percept.correction.sinks import BlobSink
from percept.errors import BadRequest, Forbidden, NotFound
from percept.handles import CorrectionHandles
from percept.registry import CORRECTION
from percept.schemas.correction import CorrectionJobSummary, TaskSummary
from percept.storage import BlobStore, owner_prefix

logger = logging.getLogger(__name__)


def job_prefix(owner: str, job_id: str) -> str:
    return f"{owner_prefix('correction', owner)}/{job_id}"


class JobPolicy:
    """Where jobs may read from and the ``config_params`` they get by default."""

    def __init__(self, args: AppArgs) -> None:
        settings = CORRECTION.load_settings(args)
        self.allowed_roots = settings.roots(args.data_dir)
        self.models_path = str(args.models_path)
        self.defaults = settings.defaults


@serve.deployment(name="CorrectionDeployment")
class CorrectionDeployment(ModelDeployment[JobPolicy]):
    """Runs jobs and metadata look-ups; one replica can run several jobs at once."""

    model_label = "correction"

    def __init__(self, args: AppArgs, executor: Executor | None = None) -> None:
        super().__init__(args)
        # Ray Data by default; tests inject the in-process executor.
        self.executor = executor
        self.blobs = BlobStore(str(args.blob_url))
        self.load(lambda: JobPolicy(args))

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """``user_config`` keys ``batch_size``, ``concurrency``, ``num_cpus``: the job defaults, live."""
        policy = self.require()
        policy.defaults = JobDefaults.model_validate({**policy.defaults.model_dump(), **(user_config or {})})

    def _prepare(self, request: dict[str, Any]) -> dict[str, Any]:
        policy = self.require()
        params: dict[str, Any] = policy.defaults.model_dump()
        params.update({k: v for k, v in (request.get("config_params") or {}).items() if v is not None})
        params.pop("output_dir", None)  # over HTTP outputs always go to the blob store
        models = params.get("models_path")
        if models and not path_allowed(str(models), policy.allowed_roots + [policy.models_path]):
            raise Forbidden("config_params.models_path is outside the allowed roots")
        params["models_path"] = models or policy.models_path
        return {**request, "config_params": params}

    async def run_job(self, job_id: str, owner: str, request: dict[str, Any], reporter: Any,
                      sock_addr: str = "") -> CorrectionJobSummary:
        """Run one job; returns the summary kept in the task record."""
        from pipelines.correction import ray_data_executor

        executor = self.executor or ray_data_executor
        settings = self.require()
        body = self._prepare(request)
        prefix = job_prefix(owner, job_id)
        events = SocketEvents(sock_addr, job_id, owner)

        def emit(percent: float, message: str) -> None:
            reporter(percent, message)
            events.progress(percent, message)

        def work() -> dict[str, Any]:
            return run_job(body, job_id=job_id, sink=BlobSink(self.blobs, prefix),
                           executor=executor, emit=emit, allowed_roots=settings.allowed_roots)

        try:
            output = await asyncio.to_thread(work)
        except Exception as exc:
            events.finished(False, str(exc))
            raise
        key = await asyncio.to_thread(self.blobs.put_bytes, f"{prefix}/result.json", json.dumps(output).encode())
        events.finished(True)
        return CorrectionJobSummary(
            result_key=key,
            report_key=output["job"]["report"],
            images=output["job"]["images"],
            failed_images=output["job"]["failed_images"],
            tasks=[TaskSummary(name=t["name"], error=t.get("error"),
                               **{k: len(t[k]) for k in ("outliers", "removed", "corrected")
                                  if isinstance(t.get(k), list)})
                   for t in output["tasks"]],
        )

    async def image_metadata(self, path: str) -> dict[str, Any]:
        """``get_image_metadata`` for a server-side path inside the allowed roots."""
        settings = self.require()
        if not path_allowed(path, settings.allowed_roots):
            raise Forbidden("path is outside the allowed roots")
        try:
            return await asyncio.to_thread(metadata, path)
        except ImageDecodeError as exc:
            text = str(exc)
            raise (NotFound if "not found" in text or "not a file" in text else BadRequest)(text) from None


def bind(args: AppArgs, gpu: bool) -> CorrectionHandles:
    """The job runner; its Ray Data actors take their own CPUs (``num_cpus`` per actor)."""
    return bind_group(CorrectionHandles, args, gpu, correction=CorrectionDeployment)
