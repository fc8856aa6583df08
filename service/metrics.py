"""Prometheus metrics of the recommendation service (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ServiceMetrics:
    def __init__(self) -> None:
        # One registry per app, so tests can build several apps in one process.
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "tunelake_http_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "tunelake_events_published_total",
            "Events acknowledged by Kafka",
            ["stream"],
            registry=self.registry,
        )
        self.publish_failures = Counter(
            "tunelake_publish_failures_total",
            "Publishes Kafka or the registry refused",
            ["stream"],
            registry=self.registry,
        )
