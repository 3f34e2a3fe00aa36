"""Storage behind two small interfaces: the state store and the blob store."""

from percept.storage.blobs import BlobStore, InvalidKey, check_key, owner_prefix
from percept.storage.state import (
    RedisStateStore,
    SqliteStateStore,
    StateStore,
    open_state_store,
)

__all__ = [
    "BlobStore",
    "InvalidKey",
    "RedisStateStore",
    "SqliteStateStore",
    "StateStore",
    "check_key",
    "open_state_store",
    "owner_prefix",
]
