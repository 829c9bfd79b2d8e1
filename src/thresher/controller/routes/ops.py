"""Operations: `/metrics` in the Prometheus text format (a wrangler's or an admin's token)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from thresher.controller.auth import Caller
from thresher.controller.metrics import CONTENT_TYPE
from thresher.controller.routes.deps import CallerDep, FarmDep

router = APIRouter(tags=["operations"])

#: Roles whose tokens may read /metrics (give a Prometheus server a wrangler's token).
METRICS_ROLES = ("admin", "wrangler")


def _allowed(caller: Caller) -> None:
    caller.require(*METRICS_ROLES)


@router.get("/metrics", response_class=Response)
async def metrics(farm: FarmDep, caller: CallerDep) -> Response:
    """This controller's metrics and the farm's jobs, tasks and workers by state."""
    _allowed(caller)
    body = await farm.call(farm.metrics.render)  # reads the database: on the farm thread
    return Response(content=body, media_type=CONTENT_TYPE)
