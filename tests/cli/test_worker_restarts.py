"""`serve --workers N` restarts a worker that dies, and backs off when one keeps dying at once
(a crash loop must not spin); SIGTERM still stops everything. The restart of a killed real
worker, serving again, is in tests/cluster/test_no_sticky.py."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time

from tests.cluster.procs import REPO


def test_a_worker_that_keeps_dying_is_restarted_after_growing_delays() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-m", "tests.cli.crashing_worker"],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert parent.stderr is not None
    delays: list[float] = []
    lines: list[str] = []

    def read() -> None:
        assert parent.stderr is not None
        for line in parent.stderr:
            lines.append(line)
            found = re.search(r"worker-1 \(pid \d+\) exited with status 3; .* in ([\d.]+) s", line)
            if found:
                delays.append(float(found.group(1)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60  # an upper bound on the event: four deaths of worker-1
    while len(delays) < 4 and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(30) == 1, lines  # workers died on their own meanwhile
    reader.join(5)
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0], lines
