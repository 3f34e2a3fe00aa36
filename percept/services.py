"""The services container every router reads through ``percept.api.deps.get_services``.

Built once per ingress replica by :func:`build_services` (tests build one on a temp dir
with :func:`percept.testing.make_services`). Holds the platform (stores, auth, tasks,
plugins) and one typed field per service of :mod:`percept.registry`: its deployment handles
and its validated settings, e.g. ``services.tagger.handles.tagger_classifier`` and
``services.tagger.settings.max_documents``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from percept.auth import ClientStore, RateLimiter, TokenIssuer, UserStore
from percept.config import AppArgs
from percept.correction.settings import CorrectionSettings
from percept.handles import (
    Absent,
    CorrectionHandles,
    DebugHandles,
    Handle,
    HandleGroup,
    InspectionHandles,
    ReadingHandles,
    SearchHandles,
    TaggerHandles,
)
from percept.inspection.settings import InspectionSettings
from percept.plugins import PluginError, PluginInfo
from percept.reading.settings import ReadingSettings
from percept.registry import CORRECTION, INSPECTION, READING, SEARCH, TAGGER, H, S, ServiceSpec, Wired
from percept.search.settings import SearchSettings
from percept.storage import BlobStore, StateStore, open_state_store
from percept.tagger.jobs import JobLog
from percept.tagger.settings import TaggerSettings
from percept.tasks import TaskManager, TaskRunner

logger = logging.getLogger(__name__)

PLUGIN_PREFIX = "plugin:"


@dataclass(eq=False)
class TaggerWired(Wired[TaggerHandles, TaggerSettings]):
    """The tagger also keeps its job log (one per replica, so eviction counts every job)."""

    jobs: JobLog = field(kw_only=True)


@dataclass(eq=False)
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
    reading: Wired[ReadingHandles, ReadingSettings]
    inspection: Wired[InspectionHandles, InspectionSettings]
    tagger: TaggerWired
    search: Wired[SearchHandles, SearchSettings]
    correction: Wired[CorrectionHandles, CorrectionSettings]
    debug: DebugHandles = field(default_factory=DebugHandles)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    plugin_errors: list[PluginError] = field(default_factory=list)
    plugin_handles: dict[str, Handle] = field(default_factory=dict)

    def plugin_handle(self, plugin: str) -> Handle:
        """The deployment of a plugin by its name; 503 on any call when it is not running."""
        return self.plugin_handles.get(plugin) or Absent(PLUGIN_PREFIX + plugin)

    def deployments(self) -> Iterator[tuple[str, Handle]]:
        """``(key, handle)`` of every deployment running behind this ingress."""
        for wired in (self.reading, self.inspection, self.tagger, self.search, self.correction):
            yield from wired.handles.items()
        yield from self.debug.items()
        for name, handle in self.plugin_handles.items():
            yield PLUGIN_PREFIX + name, handle

    @property
    def state_url(self) -> str:
        assert self.args.state_url is not None
        return self.args.state_url


def build_services(
    args: AppArgs,
    handles: Iterable[HandleGroup] = (),
    plugins: list[dict[str, Any]] | None = None,
    plugin_errors: list[dict[str, Any]] | None = None,
    plugin_handles: dict[str, Handle] | None = None,
) -> Services:
    """Open the stores named by ``args``, validate each service's settings, wire the handles.

    ``handles`` are the groups ``build_app`` bound (one per service in ``args.services``,
    plus :class:`DebugHandles` with ``debug_routes``); a service without one gets a group of
    absent handles, so its calls answer 503.
    """
    if args.state_url is None or args.blob_url is None:
        args = args.resolved()
    assert args.state_url is not None and args.blob_url is not None
    state = open_state_store(args.state_url)
    blobs = BlobStore(args.blob_url)
    tasks = TaskManager(state)
    given = {type(group): group for group in handles}

    def wire(spec: ServiceSpec[H, S]) -> Wired[H, S]:
        group = given.get(spec.handles)
        return Wired(group if isinstance(group, spec.handles) else spec.handles(), spec.load_settings(args))

    tagger = wire(TAGGER)
    debug = given.get(DebugHandles)
    return Services(
        args=args,
        state=state,
        blobs=blobs,
        tasks=tasks,
        runner=TaskRunner(tasks, args.state_url, args.task_quotas),
        users=UserStore(state),
        clients=ClientStore(state),
        tokens=TokenIssuer(state),
        limiter=RateLimiter(state, args.rate_limit_per_minute),
        reading=wire(READING),
        inspection=wire(INSPECTION),
        tagger=TaggerWired(tagger.handles, tagger.settings,
                           jobs=JobLog(state, tagger.settings.max_jobs, tagger.settings.job_ttl_s)),
        search=wire(SEARCH),
        correction=wire(CORRECTION),
        debug=debug if isinstance(debug, DebugHandles) else DebugHandles(),
        plugins={p["name"]: PluginInfo.model_validate(p) for p in plugins or []},
        plugin_errors=[PluginError.model_validate(e) for e in plugin_errors or []],
        plugin_handles=dict(plugin_handles or {}),
    )
