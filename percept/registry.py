"""The services of the application, declared once.

Each :class:`ServiceSpec` names everything the wiring needs of one service:

* ``handles`` — its typed group of deployment handles (:mod:`percept.handles`);
* ``settings`` — its settings model, validated from ``service_config.<name>``;
* ``router`` — the module under ``percept.api`` whose ``include(app)`` adds its routes;
* ``deployments`` — the module under ``deployments/`` whose ``bind(args, gpu)`` returns the
  handle group filled with bound deployments (imported by ``build_app`` only, so this
  package stays Ray-free).

``build_app`` binds the deployments of ``args.services``, the ingress builds the
:class:`~percept.services.Services` container from them, and ``create_app`` includes the
routers: all three walk :data:`SERVICES`. Adding a service is one entry here, one typed field
on ``Services`` (a test checks the two agree), a handle group, a settings model, a router
and a deployments module.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from percept.correction.settings import CorrectionSettings
from percept.handles import (
    CorrectionHandles,
    DebugHandles,
    HandleGroup,
    InspectionHandles,
    ReadingHandles,
    SearchHandles,
    TaggerHandles,
)
from percept.inspection.settings import InspectionSettings
from percept.reading.settings import ReadingSettings
from percept.search.settings import SearchSettings
from percept.settings import ServiceSettings
from percept.tagger.settings import TaggerSettings

if TYPE_CHECKING:  # percept.config imports this module for the names it accepts
    from percept.config import AppArgs

H = TypeVar("H", bound=HandleGroup)
S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True)
class ServiceSpec(Generic[H, S]):
    """One service: its name, handle group, settings model, router and deployments."""

    name: str
    handles: type[H]
    settings: type[S]
    router: str
    deployments: str

    def load_settings(self, args: AppArgs) -> S:
        """``service_config.<name>`` validated (a wrong section fails here, with its field)."""
        return self.settings.from_section(args.service_section(self.name))


@dataclass
class Wired(Generic[H, S]):
    """A service inside the ingress: its deployment handles and its validated settings."""

    handles: H
    settings: S


READING = ServiceSpec("reading", ReadingHandles, ReadingSettings, "percept.api.reading", "deployments.reading")
INSPECTION = ServiceSpec(
    "inspection", InspectionHandles, InspectionSettings, "percept.api.inspection", "deployments.inspection"
)
TAGGER = ServiceSpec("tagger", TaggerHandles, TaggerSettings, "percept.api.tagger", "deployments.tagger")
SEARCH = ServiceSpec("search", SearchHandles, SearchSettings, "percept.api.search", "deployments.search")
CORRECTION = ServiceSpec(
    "correction", CorrectionHandles, CorrectionSettings, "percept.api.correction", "deployments.correction"
)

SERVICES: tuple[ServiceSpec[Any, Any], ...] = (READING, INSPECTION, TAGGER, SEARCH, CORRECTION)
SERVICE_NAMES = tuple(spec.name for spec in SERVICES)
# Every deployment key (``args.deployments.<key>``): the fields of the handle groups.
DEPLOYMENT_KEYS = tuple(f.name for group in (*(spec.handles for spec in SERVICES), DebugHandles) for f in fields(group))


def spec_of(name: str) -> ServiceSpec[Any, Any]:
    """The spec of a service by its name (``AppArgs`` has already refused unknown names)."""
    return next(spec for spec in SERVICES if spec.name == name)
