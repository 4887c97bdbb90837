"""JSON API and metrics, served by every worker's Faust web server."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View

from streams.agents.ingest import scope_summary
from streams.app import app, metrics, settings


def _assigned_partitions() -> int:
    try:
        return len(app.consumer.assignment())
    except Exception:  # the consumer is not started yet
        return 0


@app.page("/healthz")
class Health(View):
    async def get(self, request: Request) -> Response:
        assigned = _assigned_partitions()
        recovered = app.tables.recovery.completed.is_set()
        ready = assigned > 0 and recovered and not app.rebalancing
        return self.json(
            {"worker_id": settings.worker_id, "ready": ready, "assigned_partitions": assigned,
             "group": settings.group_id},
            status=200 if ready else 503,
        )


@app.page("/api/scopes")
class Scopes(View):
    """What each scope (on this worker's partitions) last reported."""

    async def get(self, request: Request) -> Response:
        prefix = request.query.get("scope", "")
        scopes: dict[str, Any] = {
            scope: summary for scope, summary in scope_summary.items()
            if summary is not None and scope.startswith(prefix)
        }
        return self.json({"worker_id": settings.worker_id, "scopes": scopes})


@app.page("/metrics")
class MetricsPage(View):
    async def get(self, request: Request) -> Response:
        return self.bytes(metrics.render(), content_type="text/plain; version=0.0.4")
