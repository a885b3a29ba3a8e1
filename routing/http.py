"""HTTP routes of the routing package: the metrics API."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from hub.clock import utcnow
from hub.http import query_int
from hub.permissions import Permission
from hub.settings import Settings
from hub.staff_auth import require_permission, staff_from_request
from hub.storage.database import Database
from routing.metrics import compute_metrics


class MetricsRoutes:
    """`GET /api/metrics?days=7`: FRT, ASA, SLA, AHT, FCR, containment, abandonment.

    For supervisors and admins (a session token, or the admin token for automation).
    """

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    def register(self, app: web.Application) -> None:
        app.router.add_get("/api/metrics", self.metrics)

    async def metrics(self, request: web.Request) -> web.Response:
        staff = await staff_from_request(request, self.database, self.settings.admin_token)
        require_permission(staff, Permission.WALLBOARD)
        days = query_int(request, "days", 7, 1, 366)
        async with self.database.read(scan=True) as session:
            body = await compute_metrics(session, utcnow() - timedelta(days=days))
        return web.json_response(body)
