"""The cursorshare load generator: a raw SockJS wire-protocol client for the cursor workload.

``run_load`` runs one load point (one or several generator processes, one room or many) and
``run_idle`` one idle-memory point (both async); the ``cursorshare bench`` command
(``cli.add_parser``) wraps them. The comparison with the sockjs-node tutorial server lives
outside the package, in ``benchmarks/``. See docs/benchmarks.md.
"""

from __future__ import annotations

from .idle import IdleConfig, IdleResult, run_idle
from .results import LoadConfig, LoadResult
from .runner import run_load

__all__ = ["IdleConfig", "IdleResult", "LoadConfig", "LoadResult", "run_idle", "run_load"]
