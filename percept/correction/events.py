"""Progress events to ``sock_addr``: newline-delimited JSON over a Unix stream socket.

``sock_addr`` is the path of a Unix socket that some listener (the caller's websocket
bridge) has bound. Each event is one line of UTF-8 JSON::

    {"event": "progress", "job_id": "...", "user": "...", "status": "running",
     "progress": 42.5, "message": "measured 500/1000 images", "time": 1700000000.0}

The last event has ``"event": "status"`` and ``status`` ``completed`` or ``failed`` (with
``error``). An empty ``sock_addr`` sends nothing; a listener that is gone is logged once
and the job goes on (progress is advisory).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)


class SocketEvents:
    """Sends job events to a Unix socket path (or nowhere when the path is empty)."""

    def __init__(self, sock_addr: str, job_id: str, user: str) -> None:
        self.sock_addr = sock_addr or ""
        self.job_id = job_id
        self.user = user
        self._sock: socket.socket | None = None
        self._broken = False
        self._lock = threading.Lock()
        self.last_progress = 0.0

    def _connect(self) -> socket.socket | None:
        if not self.sock_addr or self._broken:
            return None
        if self._sock is None:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(2.0)
                sock.connect(self.sock_addr)
                self._sock = sock
            except OSError as exc:
                logger.warning("progress socket %s unavailable: %s", self.sock_addr, exc)
                self._broken = True
                return None
        return self._sock

    def send(self, event: dict[str, Any]) -> None:
        """Write one event line (thread-safe; never raises)."""
        line = json.dumps({"job_id": self.job_id, "user": self.user, "time": time.time(), **event}) + "\n"
        with self._lock:
            sock = self._connect()
            if sock is None:
                return
            try:
                sock.sendall(line.encode())
            except OSError as exc:
                logger.warning("progress socket %s closed: %s", self.sock_addr, exc)
                self._broken = True
                self.close_quietly()

    def progress(self, percent: float, message: str = "") -> None:
        self.last_progress = float(percent)
        self.send({"event": "progress", "status": "running", "progress": round(float(percent), 2),
                   "message": message})

    def finished(self, ok: bool, error: str | None = None) -> None:
        event: dict[str, Any] = {"event": "status", "status": "completed" if ok else "failed",
                                 "progress": 100.0 if ok else self.last_progress}
        if error:
            event["error"] = error
        self.send(event)
        self.close_quietly()

    def close_quietly(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
