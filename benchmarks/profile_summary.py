"""Summarize py-spy raw samples (``py-spy record --format raw``) of a cursorshare server.

    python -m benchmarks.profile_summary /tmp/cursorshare-profile/server.raw [--top 25]

Prints where the samples were: idle in the event loop, in cursorshare's own code (inclusive:
anything called from a cursorshare frame that is not the event loop's), and the functions
with the most samples of their own (the innermost frame), so that two profiles of the same
load point can be compared line by line.
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_IDLE = ("select (selectors.py", "_run_once (asyncio/base_events.py", "run_forever (uvloop")


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "lib/python3", "cursorshare/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "cursorshare/":
                path = "cursorshare/" + path
            break
    return f"{match['func']} ({path})"


def summarize(path: Path, top: int) -> str:
    total = 0
    own: Counter[str] = Counter()
    ours = 0
    ours_by_entry: Counter[str] = Counter()
    idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        leaf = frames[-1]
        own[leaf] += count
        if leaf.startswith(("select (", "poll (", "epoll")) or "run_forever" in leaf:
            idle += count
        # The first cursorshare frame called by aiohttp or asyncio (below the server's startup).
        entry = next(
            (
                f
                for prev, f in itertools.pairwise(frames)
                if "(cursorshare/" in f and "(cursorshare/" not in prev and "runpy" not in prev
            ),
            None,
        )
        if entry is not None:
            ours += count
            ours_by_entry[entry] += count
    lines = [
        f"{total} samples; idle {100 * idle / max(total, 1):.1f} %; "
        f"under cursorshare frames {100 * ours / max(total, 1):.1f} %"
    ]
    lines.append("outermost cursorshare frame (inclusive):")
    for name, count in ours_by_entry.most_common(top):
        lines.append(f"  {100 * count / total:5.1f} %  {name}")
    lines.append("own samples (innermost frame):")
    for name, count in own.most_common(top):
        lines.append(f"  {100 * count / total:5.1f} %  {name}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarize(args.raw, args.top))


if __name__ == "__main__":
    main()
