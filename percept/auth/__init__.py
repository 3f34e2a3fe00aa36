"""Users, API clients, tokens and rate limits."""

from percept.auth.core import (
    ClientStore,
    Principal,
    TokenError,
    TokenIssuer,
    UserStore,
    hash_secret,
    verify_secret,
)
from percept.auth.ratelimit import RateLimiter

__all__ = [
    "ClientStore",
    "Principal",
    "RateLimiter",
    "TokenError",
    "TokenIssuer",
    "UserStore",
    "hash_secret",
    "verify_secret",
]
