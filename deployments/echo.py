"""A deployment that does nothing: the far end of the hop benchmark and of the task self-test.

Bound only with ``debug_routes: true`` (``serve_config.yaml`` key ``deployments.echo``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ray import serve

from percept.tasks import ProgressReporter


class Echo:
    """Ray-free: answers pings and runs a countdown that reports progress."""

    def __init__(self, args: object = None) -> None:
        """``args`` (the application's) is accepted like every deployment's, and unused."""

    def ping(self) -> str:
        return "ok"

    async def countdown(self, steps: int, step_s: float, reporter: ProgressReporter) -> dict[str, Any]:
        for i in range(steps):
            await asyncio.sleep(step_s)
            await asyncio.to_thread(reporter, 100.0 * (i + 1) / steps, f"step {i + 1} of {steps}")
        return {"steps": steps, "pid": os.getpid()}

    def status(self) -> dict[str, Any]:
        return {"name": "echo", "available": True, "message": "ready", "device": "cpu", "pid": os.getpid()}


@serve.deployment(name="EchoDeployment")
class EchoDeployment(Echo):
    pass
