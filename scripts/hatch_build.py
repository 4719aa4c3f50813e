"""Build hook: put the browser app (with its pinned sockjs-client) into the wheel.

`pip install .` then gives a server that serves its web assets with no source checkout, and a
SockJS layer that serves the same sockjs-client for its iframe page
(`cursorshare/sockjs/_client`). Editable installs use `web/static` from the checkout instead.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class WebAssetsHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        web = Path(self.root) / "web"
        if not (web / "static" / "vendor" / "sockjs.min.js").exists():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=web, check=True)
        if version == "editable":
            return
        build_data["force_include"][str(web / "static")] = "cursorshare/_web"
        vendor = web / "static" / "vendor"
        for name in ("sockjs.min.js", "sockjs.min.js.map"):
            build_data["force_include"][str(vendor / name)] = f"cursorshare/sockjs/_client/{name}"
