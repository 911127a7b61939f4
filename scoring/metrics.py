"""Prometheus metrics of one app: requests and latency by route and status, decisions by
outcome, the model version served."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    """The app's own registry (so two apps in one process never share counters)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "agricredit_requests_total",
            "HTTP requests",
            ["route", "method", "status"],
            registry=self.registry,
        )
        buckets = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
        self.latency = Histogram(
            "agricredit_request_seconds",
            "Request latency",
            ["route", "method"],
            registry=self.registry,
            buckets=buckets,
        )
        self.decisions = Counter(
            "agricredit_decisions_total",
            "Decisions by outcome",
            ["decision"],
            registry=self.registry,
        )
        self.model = Gauge(
            "agricredit_model_version",
            "Model version served (1 = current)",
            ["name", "version"],
            registry=self.registry,
        )
