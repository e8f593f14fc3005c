"""Prometheus metrics, in registries owned by one app (no process globals).

Two views: :attr:`Metrics.public` holds only series without a model label (requests by route,
streams running and requests waiting over all models), safe for anyone to read during an
anonymous battle; :attr:`Metrics.registry` adds the per-model series, served only to an admin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class QueueStats(Protocol):
    """What metrics read of an engine's typed stats (``app.engines.base.EngineStats``)."""

    @property
    def running(self) -> int: ...

    @property
    def queue_depth(self) -> int: ...


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)  # everything: for an admin
        self.public = CollectorRegistry(auto_describe=True)  # no model labels: for anyone
        self.requests = Counter("arena_requests", "HTTP requests served.", ["route", "status"], registry=None)
        self.streams = Gauge("arena_streams", "Streams generating now, over all models.", registry=None)
        self.waiting = Gauge("arena_waiting_requests", "Requests waiting for a model, over all models.", registry=None)
        for collector in (self.requests, self.streams, self.waiting):
            self.registry.register(collector)
            self.public.register(collector)
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

    def render(self, engine_stats: Mapping[str, QueueStats], *, per_model: bool = False) -> bytes:
        """The exposition text, with the queue gauges set from each model's engine stats.

        ``per_model`` (an admin only) adds the series labelled by model id."""
        self.streams.set(sum(s.running for s in engine_stats.values()))
        self.waiting.set(sum(s.queue_depth for s in engine_stats.values()))
        if not per_model:
            return generate_latest(self.public)
        for model_id, stats in engine_stats.items():
            self.queue_depth.labels(model_id).set(stats.queue_depth)
            self.running.labels(model_id).set(stats.running)
        return generate_latest(self.registry)
