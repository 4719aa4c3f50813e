"""A parent of two workers that die at once (a crash loop), for test_worker_restarts.py: run as
``python -m tests.cli.crashing_worker``; the parent's log goes to stderr."""

from __future__ import annotations

import logging
import sys

from cursorshare import workers
from cursorshare.config import Settings


def die_at_once(settings: Settings, reuse_port: bool = False) -> int:
    sys.exit(3)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings(workers=2, redis_url="redis://127.0.0.1:1/0", port=1, node_id="c")
    sys.exit(workers.run(settings, die_at_once))
