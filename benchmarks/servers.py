"""The servers a comparison starts: cursorshare and the sockjs-node tutorial server.

Each runs as a subprocess on a free port of 127.0.0.1, optionally pinned to one CPU with
``taskset``; the sockjs-node server is installed from its lock file with ``npm ci`` into a
scratch folder first (no ``node_modules`` in the repository).
"""

from __future__ import annotations

import asyncio
import contextlib
import filecmp
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

__all__ = [
    "CURSORSHARE_ENV",
    "SERVERS",
    "ServerProcess",
    "ServerSpec",
    "cursorshare_command",
    "default_sockjs_node_src",
    "free_port",
    "prepare_sockjs_node",
    "running_server",
]

SERVERS = ("cursorshare", "sockjs-node")
SOCKJS_NODE_FILES = ("package.json", "package-lock.json", "server.js")


def default_sockjs_node_src() -> Path:
    """``benchmarks/sockjs-node`` next to this file."""
    return Path(__file__).resolve().parent / "sockjs-node"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cursorshare_command() -> list[str]:
    """How to start ``cursorshare serve`` with this interpreter; ``{port}`` is filled later."""
    if importlib.util.find_spec("cursorshare.__main__") is not None:
        base = [sys.executable, "-m", "cursorshare"]
    else:
        script = Path(sys.executable).with_name("cursorshare")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "cursorshare.cli"]
    return [*base, "serve", "--host", "127.0.0.1", "--port", "{port}"]


def prepare_sockjs_node(src: Path, work: Path, log: Callable[[str], None] = print) -> Path:
    """Copy the tutorial server to ``work`` and ``npm ci`` it there (once); returns ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    changed = False
    for name in SOCKJS_NODE_FILES:
        s, d = src / name, work / name
        if not s.exists():
            raise FileNotFoundError(f"{s} is missing")
        if not d.exists() or not filecmp.cmp(s, d, shallow=False):
            shutil.copyfile(s, d)
            changed = True
    if changed or not (work / "node_modules" / "sockjs" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed: cannot install the sockjs-node server")
        log(f"installing the sockjs-node tutorial server into {work} (npm ci)")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=work,
            check=True,
            timeout=600,
        )
    return work


# Environment for the cursorshare server under test: lift the per-address session cap (every
# benchmark client comes from 127.0.0.1), for servers that read these knobs.
CURSORSHARE_ENV = {
    "CURSORSHARE_MAX_SESSIONS": "1000000",
    "CURSORSHARE_MAX_SESSIONS_PER_ADDRESS": "1000000",
    # Every client is 127.0.0.1 and an HTTP client holds two connections (receive, send):
    # past 500 clients the default per-address connection cap would refuse them with 503.
    "CURSORSHARE_MAX_CONNECTIONS": "1000000",
    "CURSORSHARE_MAX_CONNECTIONS_PER_ADDRESS": "1000000",
    "CURSORSHARE_LOG_LEVEL": "warning",
}


@dataclass
class ServerSpec:
    name: str
    argv: list[str]  # may contain "{port}"
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def command(self, port: int) -> list[str]:
        return [a.replace("{port}", str(port)) for a in self.argv]


class ServerProcess:
    """A server subprocess on 127.0.0.1:port, optionally pinned with ``taskset -c CPU``."""

    def __init__(self, spec: ServerSpec, port: int, cpu: int | None, log_dir: Path) -> None:
        self.spec = spec
        self.port = port
        self.url = f"http://127.0.0.1:{port}/ws"
        argv = spec.command(port)
        taskset = shutil.which("taskset")
        if cpu is not None and taskset is not None:
            argv = [taskset, "-c", str(cpu), *argv]
        self.argv = argv
        self.log_path = log_dir / f"{spec.name}-{port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=spec.cwd,
            env={**os.environ, **spec.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait_ready(self, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.spec.name} exited with {self.proc.returncode}: {self.tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    async with http.get(self.url + "/info") as resp:
                        if resp.status == 200:
                            await resp.read()
                            return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.spec.name} did not answer {self.url}/info in {within:.0f} s")

    def tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(5.0)
        self._log.close()


@contextlib.contextmanager
def running_server(spec: ServerSpec, cpu: int | None, log_dir: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(spec, free_port(), cpu, log_dir)
    try:
        yield server
    finally:
        server.stop()
