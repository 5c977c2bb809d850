"""Prometheus metrics in a registry of the app's own, so several apps can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "billbot_deliveries",
            "Webhook deliveries by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.api_errors = Counter(
            "billbot_api_errors",
            "Errors answered by WeChat or WeCom, by service and errcode",
            ["service", "code"],
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "billbot_turn_seconds",
            "Time to answer one webhook delivery",
            ["channel"],
            registry=self.registry,
        )
