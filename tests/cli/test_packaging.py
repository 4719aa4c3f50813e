"""`pip install .` (not only editable) must give a server with its web assets."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_web_app_and_its_pinned_sockjs_client(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("cursorshare-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in ("index.html", "app.js", "style.css", "vendor/sockjs.min.js"):
        assert f"cursorshare/_web/{asset}" in names
    # The SockJS layer's own copy, served for its iframe page by any add_endpoint.
    shipped = zipfile.ZipFile(wheel).read("cursorshare/sockjs/_client/sockjs.min.js")
    assert shipped.startswith(b"/* sockjs-client v1.6.1 ")
    assert "cursorshare/sockjs/_client/sockjs.min.js.map" in names
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith("entry_points.txt")))
        .decode()
    )
    assert "cursorshare = cursorshare.cli:main" in entry_points
