"""Smoke test of the load generator against a real cursorshare server, on every transport.

Starts ``python -m cursorshare serve`` on a free port of 127.0.0.1 (conftest), then runs the load
generator in-process (its async API) with 3 clients at 10 Hz for 2 s. No timing assertions:
only that it connected, moves were delivered, and every field of the report is there.
"""

from __future__ import annotations

import pytest

from cursorshare.bench import LoadConfig, run_load
from cursorshare.bench.transports import TRANSPORTS


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_load_generator_against_cursorshare(
    cursorshare_server: tuple[str, int], transport: str
) -> None:
    url, pid = cursorshare_server
    result = await run_load(
        LoadConfig(
            url=url,
            transport=transport,
            clients=3,
            rate=10.0,
            duration=2.0,
            warmup=0.5,
            drain=1.0,
            server_pid=pid,
        )
    )
    assert result.connected == 3, result.last_error
    assert result.observers == 3
    assert result.sent > 0
    assert result.expected == result.sent * 3
    assert result.delivered > 0
    assert result.coverage is not None and result.coverage > 0.5, result
    assert result.latency_samples > 0
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms"):
        value = getattr(result, name)
        assert value is not None and value >= 0, name
    report = result.to_dict()
    for key in (
        "sent_per_s",
        "delivered_per_s",
        "expected_per_s",
        "coverage",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "server_cpu_percent",
        "server_rss_mib",
        "gen_cpu_percent",
        "warnings",
        "generator_bound",
    ):
        assert key in report, key
    assert result.server_rss_mib is not None and result.server_rss_mib > 0
    assert result.server_cpu_percent is not None
