"""Prometheus metrics, read from the live objects at scrape time (nothing on the hot path)."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .hub import Hub
from .sockjs import SessionManager

REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("metrics_registry", CollectorRegistry)


class AppCollector(Collector):
    """Reads the hub and the endpoint's sessions it was given (it knows nothing of the app)."""

    def __init__(self, hub: Hub, sessions: SessionManager) -> None:
        self._hub = hub
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        manager = self._sessions
        hub = self._hub
        sessions = GaugeMetricFamily(
            "cursorshare_sessions", "Live SockJS sessions by transport", labels=["transport"]
        )
        for transport, count in sorted(manager.count_by_transport().items()):
            sessions.add_metric([transport], count)
        yield sessions
        stats = manager.stats
        for name, help_text, value in (
            ("messages_in", "Messages received from clients", stats.messages_in),
            ("messages_dropped", "Messages dropped by the per-session rate limit",
             stats.messages_dropped),
            ("sessions_refused", "New sessions refused by max_sessions or "
             "max_sessions_per_address", stats.sessions_refused),
            ("hub_events", "Events queued into rooms (joins, moves, leaves)",
             hub.stats.events_in),
            ("hub_coalesced", "Moves dropped because a later one superseded them",
             hub.stats.coalesced),
            ("hub_payloads_out", "Encoded batches handed to sessions", hub.stats.payloads_out),
            ("hub_bytes_out", "Bytes of encoded batches handed to sessions", hub.stats.bytes_out),
            ("hub_overflows", "Members disconnected for staying behind", hub.stats.overflows),
            ("hub_flush_failures", "Room flushes that raised (their batch was dropped)",
             hub.stats.flush_failures),
        ):  # fmt: skip
            yield CounterMetricFamily(f"cursorshare_{name}", help_text, value=value)
        closes = CounterMetricFamily(
            "cursorshare_session_closes", "Sessions closed, by close code", labels=["code"]
        )
        for code, count in sorted(stats.closes.items()):
            closes.add_metric([str(code)], count)
        yield closes
        yield GaugeMetricFamily(
            "cursorshare_rooms", "Rooms with members on this node", value=len(hub.rooms)
        )
        yield GaugeMetricFamily(
            "cursorshare_hub_tick_seconds",
            "The hub's current flush interval (grows under CPU load, up to max_tick_ms)",
            value=hub.tick,
        )
        backplane = GaugeMetricFamily(
            "cursorshare_backplane_up",
            "1 when the backplane link is up (or local)",
            labels=["state"],
        )
        state = hub.backplane.state
        backplane.add_metric([state], 1 if state.healthy else 0)
        yield backplane
        for name, value in hub.backplane.counters().items():
            yield CounterMetricFamily(
                f"cursorshare_backplane_{name}", f"Backplane {name.replace('_', ' ')}", value=value
            )


def register_metrics(app: web.Application, hub: Hub, sessions: SessionManager) -> None:
    """Serve the figures of ``hub`` and ``sessions`` from `metrics_handler` on ``app``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AppCollector(hub, sessions))
    app[REGISTRY] = registry


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
