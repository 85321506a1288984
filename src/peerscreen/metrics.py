"""Prometheus metrics: what happened in this process, served at /metrics."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """One registry per application, so several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rooms_created = Counter(
            "peerscreen_rooms_created", "Rooms created.", registry=self.registry
        )
        self.rooms_ended = Counter(
            "peerscreen_rooms_ended",
            "Rooms ended, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.viewers_joined = Counter(
            "peerscreen_viewers_joined", "Viewers that joined a room.", registry=self.registry
        )
        self.messages = LabelCounts(
            "peerscreen_messages_relayed",
            "Signaling and chat messages accepted for delivery, by type.",
            "type",
        )
        self.registry.register(self.messages)
        self.errors = Counter(
            "peerscreen_errors",
            "Error answers, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.sockets = Gauge(
            "peerscreen_sockets_open",
            "WebSockets open on this process.",
            registry=self.registry,
        )
        self.media_handles = Gauge(
            "peerscreen_media_handles",
            "Janus handles this process holds: a host's upload or a viewer's stream each.",
            registry=self.registry,
        )
        self.long_polls = Gauge(
            "peerscreen_long_polls_waiting",
            "Long-poll requests waiting for mail on this process.",
            registry=self.registry,
        )
        self.setup_seconds = Histogram(
            "peerscreen_connection_setup_seconds",
            "Time from joining to the first frame, as reported by viewers' pages, by path.",
            ["path"],
            buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
            registry=self.registry,
        )

        self.gc_pauses = Histogram(
            "peerscreen_gc_pause_seconds",
            "Pauses of the garbage collector (every message waits while it runs), by generation.",
            ["generation"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
            registry=self.registry,
        )
        self._gc_started = 0.0
        self._gc_observers = [self.gc_pauses.labels(str(g)) for g in range(3)]

    def watch_gc(self) -> None:
        """Time every collection from now on (until :meth:`unwatch_gc`)."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def unwatch_gc(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self._gc_observers[info["generation"]].observe(time.perf_counter() - self._gc_started)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LabelCounts(Collector):
    """A counter by one label, kept as plain integers and read at scrape time.

    For what is counted on every message: prometheus_client's counters take a lock and
    several calls per increment, which showed in the relay's CPU per message.
    """

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.counts: dict[str, int] = {}

    def inc(self, value: str) -> None:
        counts = self.counts
        counts[value] = counts.get(value, 0) + 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in sorted(self.counts.items()):
            family.add_metric([value], count)
        yield family
