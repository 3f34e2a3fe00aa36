"""Debug routes, served only with ``debug_routes: true`` and only to ``admins``.

``/platform/echo`` (a no-op at the ingress) and ``/platform/echo/hop`` (one round trip to the
echo deployment) are the two ends of the hop benchmark (``benchmarks/platform_hop.py``);
``/platform/tasks/selftest`` counts down on the echo deployment to check the task store,
runner and progress streams end to end. Off by default: an open countdown route would let
any caller queue long tasks on the single echo replica.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from percept.api.deps import AnyPrincipal, ServicesDep
from percept.auth import Principal
from percept.errors import Forbidden
from percept.tasks import ProgressReporter


def admin(principal: AnyPrincipal, services: ServicesDep) -> Principal:
    """The caller, if its principal id is in ``args.admins`` (403 otherwise)."""
    if principal.id not in services.args.admins:
        raise Forbidden("debug routes are for the admins named in the application's config")
    return principal


Admin = Annotated[Principal, Depends(admin)]
router = APIRouter(tags=["debug"], dependencies=[Depends(admin)])


@router.get("/platform/echo")
def echo() -> dict[str, str]:
    """A no-op at the ingress (baseline of the hop benchmark)."""
    return {"echo": "ok"}


@router.get("/platform/echo/hop")
async def echo_hop(services: ServicesDep) -> dict[str, str]:
    """One ingress → model deployment round trip doing nothing."""
    return {"echo": await services.debug.echo.ping.remote()}


@router.post("/platform/tasks/selftest", status_code=202)
async def selftest_task(
    services: ServicesDep,
    principal: Admin,
    steps: Annotated[int, Query(ge=1, le=100)] = 5,
    step_s: Annotated[float, Query(ge=0, le=5)] = 0.2,
) -> dict[str, Any]:
    """A task that counts down on the echo deployment: checks store, runner and progress end to end."""
    echo = services.debug.echo

    async def work(reporter: ProgressReporter) -> Any:
        return await echo.countdown.remote(steps, step_s, reporter)

    record = services.runner.submit("platform.selftest", principal.id, work, {"steps": steps})
    return {"task_id": record.id, "status": record.status.value}
