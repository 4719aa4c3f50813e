"""Pinned npm packages of a test folder, installed once."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["npm_ci"]


def npm_ci(folder: Path) -> Path:
    """`npm ci` the lock file of ``folder`` once, again only when the lock file changed;
    returns ``folder``."""
    npm = shutil.which("npm")
    assert npm, f"{folder.name} needs node and npm"
    installed = folder / "node_modules" / ".package-lock.json"
    lock = folder / "package-lock.json"
    if not installed.is_file() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
            timeout=300,
        )
    return folder
