"""The services container every router reads through ``percept.api.deps.get_services``.

Built once per ingress replica by :func:`build_services` (tests build one on a temp dir with
fake handles). Holds the stores, auth, tasks, plugin list and the deployment handles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from percept.auth import ClientStore, RateLimiter, TokenIssuer, UserStore
from percept.config import AppArgs
from percept.errors import ServiceUnavailable
from percept.plugins import PluginError, PluginInfo
from percept.storage import BlobStore, StateStore, open_state_store
from percept.tasks import TaskManager, TaskRunner

logger = logging.getLogger(__name__)


@dataclass
class Services:
    args: AppArgs
    state: StateStore
    blobs: BlobStore
    tasks: TaskManager
    runner: TaskRunner
    users: UserStore
    clients: ClientStore
    tokens: TokenIssuer
    limiter: RateLimiter
    handles: dict[str, Any] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    plugin_errors: list[PluginError] = field(default_factory=list)
    # Per-service objects a router keeps for the life of the replica (caches, indexes).
    extras: dict[str, Any] = field(default_factory=dict)

    def handle(self, name: str) -> Any:
        """The handle of a deployment by its key; 503 when it is not part of this app."""
        try:
            return self.handles[name]
        except KeyError:
            raise ServiceUnavailable(f"unavailable: deployment {name!r} is not running in this application") from None

    def plugin_handle(self, plugin: str) -> Any:
        return self.handle(f"plugin:{plugin}")

    @property
    def state_url(self) -> str:
        assert self.args.state_url is not None
        return self.args.state_url


def build_services(
    args: AppArgs,
    handles: dict[str, Any] | None = None,
    plugins: list[dict[str, Any]] | None = None,
    plugin_errors: list[dict[str, Any]] | None = None,
) -> Services:
    """Open the stores named by ``args`` (already resolved) and wire everything together."""
    if args.state_url is None or args.blob_url is None:
        args = args.resolved()
    assert args.state_url is not None and args.blob_url is not None
    state = open_state_store(args.state_url)
    blobs = BlobStore(args.blob_url)
    tasks = TaskManager(state)
    return Services(
        args=args,
        state=state,
        blobs=blobs,
        tasks=tasks,
        runner=TaskRunner(tasks, args.state_url),
        users=UserStore(state),
        clients=ClientStore(state),
        tokens=TokenIssuer(state),
        limiter=RateLimiter(state, args.rate_limit_per_minute),
        handles=dict(handles or {}),
        plugins={p["name"]: PluginInfo.model_validate(p) for p in plugins or []},
        plugin_errors=[PluginError.model_validate(e) for e in plugin_errors or []],
    )
