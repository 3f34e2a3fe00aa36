"""Structured logging for the ``percept`` loggers (JSON lines on stderr by default).

Ray captures each replica's stderr into its log files and the dashboard; Serve's own
``ray.serve`` logger is left as Serve configures it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from percept.settings import get_settings

_RESERVED = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": os.getpid(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str | None = None, json_lines: bool | None = None) -> None:
    """Idempotent: one stderr handler on the ``percept`` logger."""
    settings = get_settings()
    logger = logging.getLogger("percept")
    logger.setLevel((level or settings.log_level).upper())
    if any(getattr(h, "_percept", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler._percept = True  # type: ignore[attr-defined]
    use_json = settings.log_json if json_lines is None else json_lines
    handler.setFormatter(
        JsonFormatter() if use_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logger.addHandler(handler)
    logger.propagate = False
