"""A server in a process of its own, for the tests and scripts that need the real command.

    with ServerProcess.cursorshare("--disconnect-delay", "1") as server:  # waits on /healthz
        urlopen(server.url + "/healthz")
    # left: SIGTERM, then its exit code in server.returncode and its output in server.output()

    server = ServerProcess.cursorshare(log=tmp_path / "node.log")
    await server.astart()                      # the same wait, without blocking the loop
    server.send_signal(signal.SIGINT)
    assert await server.await_exit(within=10) == 0

`ServerProcess.cursorshare` runs ``python -m cursorshare serve --host 127.0.0.1 --port <free
port>`` with the caller's flags, in an environment without the caller's ``CURSORSHARE_*``
variables (plus the ``env`` given); the constructor runs any other argv (the sockjs-node
comparison server, the command without ``serve``). Output (stdout and stderr together) goes to
``log``, or to an anonymous temporary file. Waits are for an event (the server answering,
the process exiting), each bounded by a generous timeout.

Runs on the standard library alone, so the scripts can use it (they put the repository root on
``sys.path``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

REPO = Path(__file__).resolve().parents[2]

#: Upper bound, in seconds, on a server coming up (a loaded CI machine imports slowly).
READY_WITHIN = 30.0
#: Upper bound, in seconds, on a server exiting after SIGTERM (its shutdown timeout is 5 s).
EXIT_WITHIN = 15.0
#: Seconds between two readiness probes.
PROBE_INTERVAL = 0.05

# Straight to 127.0.0.1, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``CURSORSHARE_*`` settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURSORSHARE_")}
    env["PYTHONUNBUFFERED"] = "1"  # output reaches the log as it is written
    env.update(extra or {})
    return env


class ServerExited(RuntimeError):
    """The server process ended before it answered."""


class ServerProcess:
    """One server process on 127.0.0.1: started, waited for, stopped, its output kept."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO,
        log: Path | None = None,
        ready_path: str = "/healthz",
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.env = clean_environment(env)
        self.cwd = cwd
        self.log = log
        #: The path that answers 200 once the server is ready.
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None
        #: Without ``log``: an unlinked temporary file holding the output, closed with self.
        self._output_fd: int | None = None

    @classmethod
    def cursorshare(
        cls,
        *flags: str,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        port: int | None = None,
    ) -> Self:
        """``python -m cursorshare serve`` on 127.0.0.1 and a free port, with ``flags``."""
        port = free_port() if port is None else port
        argv = [sys.executable, "-m", "cursorshare", "serve"]
        argv += ["--host", "127.0.0.1", "--port", str(port), *flags]
        return cls(argv, port=port, env=env, log=log)

    # -- where it is ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "spawn() first"
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once the process ended (negative: killed by that signal)."""
        return None if self.process is None else self.process.poll()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """Everything the process wrote so far, stdout and stderr interleaved."""
        if self.log is not None:
            return self.log.read_text(errors="replace") if self.log.exists() else ""
        if self._output_fd is None:
            return ""
        # pread: the child shares the file's offset, which a seek would move under it.
        fd = self._output_fd
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def output_tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    # -- starting ---------------------------------------------------------------------------

    def spawn(self) -> None:
        """Start the process; return at once (`wait_ready` / `await_ready` wait for it)."""
        assert self.process is None, "spawned already"
        if self.log is None:
            fd, path = tempfile.mkstemp(prefix="server-", suffix=".log")
            os.unlink(path)  # nothing to clean up: the file goes when its last descriptor does
            self._output_fd = fd
            weakref.finalize(self, os.close, fd)
        else:
            fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
            )
        finally:
            if self.log is not None:
                os.close(fd)  # the child has its own descriptor

    def answers(self) -> bool:
        """True when ``ready_path`` answers 200; ServerExited if the process ended."""
        if self.process is not None and self.process.poll() is not None:
            raise ServerExited(
                f"{self.argv[:4]} exited with {self.process.returncode}:\n{self.output_tail()}"
            )
        try:
            with _DIRECT.open(self.url + self.ready_path, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, within: float = READY_WITHIN) -> None:
        deadline = time.monotonic() + within
        while not self.answers():
            if time.monotonic() > deadline:
                self._give_up(within)
            time.sleep(PROBE_INTERVAL)

    async def await_ready(self, within: float = READY_WITHIN) -> None:
        """`wait_ready` for async code: the probes run in a thread, the loop keeps going."""
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(self.answers):
            if time.monotonic() > deadline:
                self._give_up(within)
            await asyncio.sleep(PROBE_INTERVAL)

    def _give_up(self, within: float) -> None:
        self.kill()
        raise TimeoutError(
            f"{self.argv[:4]} did not answer {self.ready_path} within {within:.0f} s:\n"
            f"{self.output_tail()}"
        )

    def start(self, within: float = READY_WITHIN) -> Self:
        self.spawn()
        self.wait_ready(within)
        return self

    async def astart(self, within: float = READY_WITHIN) -> Self:
        self.spawn()
        await self.await_ready(within)
        return self

    # -- stopping ---------------------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, like a crashed machine."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(EXIT_WITHIN)

    def wait_exit(self, within: float = EXIT_WITHIN) -> int:
        """The exit code; TimeoutError (the process still running) if it takes longer."""
        assert self.process is not None, "spawn() first"
        try:
            return self.process.wait(within)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.argv[:4]} still running after {within} s") from None

    async def await_exit(self, within: float = EXIT_WITHIN) -> int:
        """`wait_exit` for async code."""
        return await asyncio.to_thread(self.wait_exit, within)

    def stop(self, sig: int = signal.SIGTERM, within: float = EXIT_WITHIN) -> int | None:
        """Send ``sig`` (SIGTERM: a graceful shutdown) and wait; SIGKILL past ``within``.

        Returns the exit code (negative when it had to be killed), None if it never ran.
        """
        if self.process is None:
            return None
        self.send_signal(sig)
        try:
            return self.wait_exit(within)
        except TimeoutError:
            self.kill()
            return self.process.returncode

    async def astop(self, sig: int = signal.SIGTERM, within: float = EXIT_WITHIN) -> int | None:
        return await asyncio.to_thread(self.stop, sig, within)

    # -- as a context ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.astop()
