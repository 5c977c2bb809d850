"""Prometheus metrics in a registry of the app's own, so several apps can share a process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "billbot_deliveries",
            "Webhook deliveries by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.messages = Counter(
            "billbot_messages",
            "Messages in (from customers, events) and out (replies, API sends) by channel and type",
            ["channel", "direction", "type"],
            registry=self.registry,
        )
        self.funnel_steps = Counter(
            "billbot_funnel_steps",
            "Funnel steps reached (each journey counts once per step)",
            ["step"],
            registry=self.registry,
        )
        self.dedup_hits = Counter(
            "billbot_dedup_hits",
            "Redeliveries answered from the record instead of running again",
            ["channel"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "billbot_rejected_requests",
            "Callbacks refused before any processing, by channel and reason",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.handoffs_waiting = Gauge(
            "billbot_handoffs_waiting",
            "Handoffs waiting for an agent (read when /metrics is scraped)",
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
