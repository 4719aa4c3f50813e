"""The cursorshare load generator: a raw SockJS wire-protocol client for the cursor workload.

``run_load`` runs one load point and ``run_idle`` one idle-memory point (both async); the
``cursorshare bench`` command (``cli.add_parser``) wraps them, and ``compare`` pits cursorshare
against the sockjs-node tutorial server. See docs/benchmarks.md.
"""

from __future__ import annotations

from .runner import IdleConfig, IdleResult, LoadConfig, LoadResult, run_idle, run_load

__all__ = ["IdleConfig", "IdleResult", "LoadConfig", "LoadResult", "run_idle", "run_load"]
