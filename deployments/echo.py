"""A deployment that does nothing: the far end of the ingress → model hop benchmark."""

from __future__ import annotations

import os
from typing import Any

from ray import serve


@serve.deployment(name="EchoDeployment")
class EchoDeployment:
    def ping(self) -> str:
        return "ok"

    def status(self) -> dict[str, Any]:
        return {"name": "echo", "available": True, "message": "ready", "device": "cpu", "pid": os.getpid()}
