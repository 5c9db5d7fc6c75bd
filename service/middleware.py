"""Request counting and latency for Prometheus, as a plain ASGI middleware (no
buffering of bodies, and it sees the status of every answer, errors included)."""

from __future__ import annotations

import time
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, endpoints: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Unknown paths share one label, so scanners cannot grow the series.
        endpoint = scope["path"] if scope["path"] in self.endpoints else "other"
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        m = self.metrics
        m.in_flight.labels(endpoint).inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            m.in_flight.labels(endpoint).dec()
            m.requests.labels(endpoint, str(status)).inc()
            m.latency.labels(endpoint).observe(time.perf_counter() - start)
