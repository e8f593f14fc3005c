"""Prometheus metrics, in a registry owned by one app (no process globals)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("arena_requests", "HTTP requests served.", ["route", "status"], registry=self.registry)
        self.tokens = Counter("arena_tokens", "Tokens processed.", ["model", "kind"], registry=self.registry)
        self.ttft = Histogram(
            "arena_time_to_first_token_seconds",
            "Time from request to the first generated token.",
            ["model"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.aborts = Counter(
            "arena_aborted_streams",
            "Streams stopped because the client went away.",
            ["model"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "arena_queue_depth", "Requests waiting for a model.", ["model"], registry=self.registry
        )
        self.running = Gauge("arena_running_streams", "Streams generating now.", ["model"], registry=self.registry)

    def count_tokens(self, model: str, prompt: int, completion: int) -> None:
        self.tokens.labels(model, "prompt").inc(prompt)
        self.tokens.labels(model, "completion").inc(completion)

    def render(self, engine_stats: Mapping[str, Mapping[str, float | int]]) -> bytes:
        """The exposition text, with the queue gauges set from each model's engine stats."""
        for model_id, stats in engine_stats.items():
            self.queue_depth.labels(model_id).set(stats.get("queue_depth", 0))
            self.running.labels(model_id).set(stats.get("running", 0))
        return generate_latest(self.registry)
