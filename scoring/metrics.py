"""Prometheus metrics of one app: requests and latency by route and status, decisions by
outcome and batch size, the model version served.

With several workers (`serve --workers N`) the supervisor points PROMETHEUS_MULTIPROC_DIR at
a fresh directory before it starts them: each worker then writes its values to files there
(prometheus_client's multiprocess mode) and `/metrics`, whichever worker answers it, reports
the sum over all workers; the model version is reported per live worker (a `pid` label).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class ServiceMetrics:
    """The app's own registry (so two apps in one process never share counters), or, in
    multiprocess mode, the files every worker writes."""

    def __init__(self) -> None:
        self.shared_dir = os.environ.get(MULTIPROCESS_DIR)
        # in multiprocess mode values live in the shared files; a registry would report
        # this worker's values a second time
        self.registry = None if self.shared_dir else CollectorRegistry()
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
        self.fast_path = Counter(
            "agricredit_score_fast_path_total",
            "POST /v1/score requests answered without the framework's request handling",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "agricredit_decision_batch_size",
            "Applications decided together (those that arrived in one event-loop turn)",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )
        self._children: dict[tuple[Any, ...], Any] = {}  # label values -> child(ren)
        self.model = Gauge(
            "agricredit_model_version",
            "Model version served (1 = current)",
            ["name", "version"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self._served: tuple[str, str] | None = None
        self.data_reloads = Counter(
            "agricredit_data_reloads",
            "Times the worker loaded the store again after a commit to its arrival log",
            registry=self.registry,
        )
        self.data_as_of = Gauge(
            "agricredit_data_as_of_seconds",
            "The as-of time of the data the worker decides from (unix seconds)",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.table_last_recorded = Gauge(
            "agricredit_table_last_recorded_seconds",
            "When each input table last received a row, in the data the worker decides from "
            "(unix seconds; its freshness is time() minus this)",
            ["table"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )

    def data_loaded(self, data_as_of: float, last_arrivals: dict[str, float]) -> None:
        """The data the worker now decides from: its as-of time and each table's latest
        arrival (unix seconds)."""
        self.data_as_of.set(data_as_of)
        for table, at in last_arrivals.items():
            self.table_last_recorded.labels(table).set(at)

    def serve_model(self, name: str, version: str) -> None:
        """Mark the version now served (the one before it drops to 0: multiprocess mode
        cannot remove a label)."""
        if self._served is not None:
            self.model.labels(*self._served).set(0)
        self.model.labels(name, version).set(1)
        self._served = (name, version)

    def exposition(self) -> bytes:
        """Every metric in Prometheus text format."""
        if self.shared_dir is None:
            return generate_latest(self.registry) if self.registry is not None else b""
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.shared_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its latency (labelled children kept: `labels` costs more
        than the count itself)."""
        children = self._children.get((route, method, status))
        if children is None:
            children = self._children[route, method, status] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
        children[0].inc()
        children[1].observe(seconds)

    def count_decision(self, decision: str) -> None:
        """Count one decision by outcome."""
        child = self._children.get(("decision", decision))
        if child is None:
            child = self._children["decision", decision] = self.decisions.labels(decision)
        child.inc()
