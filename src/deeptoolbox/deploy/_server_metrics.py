"""Prometheus metrics of the inference server (``GET /metrics``), one registry per app.

- ``deeptoolbox_requests_total{endpoint, status}``: requests answered;
- ``deeptoolbox_request_latency_seconds{endpoint}``: time from request to answer;
- ``deeptoolbox_batch_size``: observations per model run (micro-batching at work);
- ``deeptoolbox_inference_latency_seconds``: time of each model run.

With ``--workers N`` each worker process counts its own requests (the scraper sees one of
them per scrape); run one worker per container to scrape every one.
"""

from __future__ import annotations

import time
from typing import Any

from deeptoolbox.deploy._web_guard import ASGIApp, Receive, Scope, Send

ENDPOINTS = ("/v1/predict", "/v1/classify", "/v1/metadata", "/health", "/ready", "/metrics")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServerMetrics:
    """The counters and histograms of one server, in their own registry.

    Example:
        >>> metrics = ServerMetrics()
        >>> metrics.observe_batch(8, 0.002)
        >>> b"deeptoolbox_batch_size_count 1.0" in metrics.render()[0]
        True
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "deeptoolbox_requests", "HTTP requests answered, by endpoint and status code.",
            ["endpoint", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "deeptoolbox_request_latency_seconds", "Seconds from request to answer.",
            ["endpoint"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "deeptoolbox_batch_size", "Observations per model run.",
            buckets=_BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.inference = Histogram(
            "deeptoolbox_inference_latency_seconds", "Seconds per model run.",
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def observe_batch(self, rows: int, seconds: float) -> None:
        """Record one model run of ``rows`` observations."""
        self.batch_size.observe(rows)
        self.inference.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """ASGI middleware counting answers and timing them, by endpoint (unknown paths count as
    ``"other"``, so random paths cannot blow up the number of series)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        status: dict[str, Any] = {"code": 500}
        began = time.perf_counter()

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - began)
