"""Build hook: put the browser app (with its pinned sockjs-client) into the wheel.

`pip install .` then gives a server that serves its web assets with no source checkout.
Editable installs serve `web/static` from the checkout instead.
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
