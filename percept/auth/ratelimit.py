"""Fixed-window rate limiting per authenticated principal and path.

Counters live in the state store (Redis when Redis is the store, so every replica shares
them). Keyed by the principal the token proves, never by a header a client can forge.
"""

from __future__ import annotations

import math

from percept.errors import TooManyRequests
from percept.storage.state import StateStore


class RateLimiter:
    def __init__(self, store: StateStore, limit: int, window_s: float = 60.0) -> None:
        self._store = store
        self.limit = limit
        self.window_s = window_s

    def hit(self, principal_id: str, path: str, limit: int | None = None) -> None:
        """Count one request; raise 429 with ``Retry-After`` past the limit."""
        allowed = limit or self.limit
        window = int(self.window_s)
        hits, reset_in = self._store.incr(f"rl:{principal_id}:{path}:{window}", self.window_s)
        if hits > allowed:
            raise TooManyRequests(
                f"Rate limit exceeded: {allowed} requests per {window} seconds",
                headers={"Retry-After": str(max(1, math.ceil(reset_in)))},
            )
