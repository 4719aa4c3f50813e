"""The `cursorshare` command: options from flags and environment, the URL it prints, clean stops."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from cursorshare import config
from cursorshare.cli import build_parser
from tests.support.server import ServerExited, ServerProcess, free_port


def test_flags_win_over_environment_which_wins_over_defaults() -> None:
    args = build_parser().parse_args(["serve", "--port", "9001"])
    settings = config.from_args(
        args,
        {"CURSORSHARE_PORT": "9002", "CURSORSHARE_HOST": "0.0.0.0", "CURSORSHARE_TICK_MS": "15"},
    )
    assert settings.port == 9001
    assert settings.host == "0.0.0.0"
    assert settings.tick_ms == 15.0
    assert settings.log_level == "info"


def test_list_and_boolean_options_parse_from_environment() -> None:
    args = build_parser().parse_args(["serve"])
    settings = config.from_args(
        args,
        {
            "CURSORSHARE_COOKIE_NEEDED": "yes",
            "CURSORSHARE_ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "CURSORSHARE_DISABLED_TRANSPORTS": "websocket",
        },
    )
    assert settings.cookie_needed is True
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.disabled_transports == ("websocket",)


@pytest.mark.parametrize("switch", ["access_log", "cookie_needed"])
def test_boolean_options_are_switches_and_their_environment_values_still_parse(
    switch: str,
) -> None:
    flag = "--" + switch.replace("_", "-")
    env = "CURSORSHARE_" + switch.upper()
    parser = build_parser()
    assert getattr(config.from_args(parser.parse_args(["serve", flag]), {}), switch) is True
    no = parser.parse_args(["serve", "--no-" + flag[2:]])
    assert getattr(config.from_args(no, {env: "yes"}), switch) is False  # the flag wins
    assert getattr(config.from_args(parser.parse_args(["serve"]), {env: "on"}), switch) is True
    assert getattr(config.from_args(parser.parse_args(["serve"]), {env: "0"}), switch) is False
    assert getattr(config.from_args(parser.parse_args(["serve"]), {}), switch) is False
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", flag + "=yes"])  # a switch takes no value


def test_a_malformed_environment_value_is_a_clear_error() -> None:
    args = build_parser().parse_args(["serve"])
    with pytest.raises(SystemExit, match="CURSORSHARE_PORT"):
        config.from_args(args, {"CURSORSHARE_PORT": "eighty"})


def test_every_setting_has_a_knob() -> None:
    fields = set(config.Settings.__dataclass_fields__)
    assert {knob.field for knob in config.KNOBS} == fields


def _command(*flags: str) -> ServerProcess:
    """``python -m cursorshare`` (no ``serve``: the default command), its port from the
    environment as a deployment would set it."""
    port = free_port()
    return ServerProcess(
        [sys.executable, "-m", "cursorshare", *flags],
        port=port,
        env={"CURSORSHARE_PORT": str(port), "CURSORSHARE_LOG_LEVEL": "warning"},
    )


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serves_prints_its_url_and_stops_cleanly(stop: signal.Signals) -> None:
    server = _command("--host", "127.0.0.1")
    with server:  # waits until /healthz answers 200
        # The URL is printed once the socket listens, before any request can be answered.
        line = server.output().splitlines()[0]
        assert f"http://localhost:{server.port}/" in line
        assert "in-memory hub" in line
        with urllib.request.urlopen(f"{server.url}/") as response:
            assert b"cursorshare" in response.read()
        assert server.stop(stop) == 0


def test_a_bad_setting_ends_the_command_with_a_clear_message() -> None:
    server = _command("--event-loop", "tokio")
    with pytest.raises(ServerExited, match="unknown event loop 'tokio'"):
        server.start()
    assert server.returncode not in (0, None)


def test_http_bounds_parse_from_flags_and_environment() -> None:
    args = build_parser().parse_args(["serve", "--header-timeout", "2.5", "--max-connections", "7"])
    settings = config.from_args(
        args, {"CURSORSHARE_MAX_CONNECTIONS_PER_ADDRESS": "3", "CURSORSHARE_MAX_HEADERS": "40"}
    )
    assert settings.header_timeout == 2.5
    assert settings.max_connections == 7
    assert settings.max_connections_per_address == 3
    assert settings.max_headers == 40
    assert settings.body_timeout == config.Settings().body_timeout


def test_every_knob_is_in_the_readme_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for knob in config.KNOBS:
        assert f"| `{knob.flag}` | `{knob.env}` |" in readme, knob.flag


def test_the_command_closes_a_slowloris_at_its_header_deadline() -> None:
    with ServerProcess.cursorshare("--header-timeout", "0.5") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")  # and nothing more
            answer = b""
            while chunk := sock.recv(4096):  # the server closes: recv returns b""
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert server.stop() == 0


def _listen_backlog(port: int) -> int:
    """The backlog of the socket listening on ``port`` (``ss``: Send-Q of a LISTEN socket)."""
    ss = shutil.which("ss") or "/usr/sbin/ss"
    out = subprocess.run(
        [ss, "-ltnH", f"( sport = :{port} )"], check=True, capture_output=True, text=True
    ).stdout
    (line,) = out.splitlines()
    return int(line.split()[2])


def test_the_listen_backlog_is_a_setting_and_defaults_to_2048() -> None:
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    with ServerProcess.cursorshare() as server:
        assert _listen_backlog(server.port) == min(2048, somaxconn)
    with ServerProcess.cursorshare("--listen-backlog", "77") as server:
        assert _listen_backlog(server.port) == 77


def _serve_until_exit(*flags: str) -> subprocess.CompletedProcess[str]:
    """``cursorshare serve`` with ``flags``, run to its end (it must end by itself)."""
    return subprocess.run(
        [sys.executable, "-m", "cursorshare", "serve", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_port_in_use_is_one_clear_line_and_exit_status_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve_until_exit("--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert f"127.0.0.1:{port}" in line and "in use" in line.lower(), line


def test_a_host_that_does_not_resolve_is_one_clear_line_and_exit_status_2() -> None:
    result = _serve_until_exit("--host", "no-such-host.invalid", "--port", str(free_port()))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "no-such-host.invalid" in line, line


def test_a_port_out_of_range_is_refused_not_taken_modulo_65536() -> None:
    result = _serve_until_exit("--host", "127.0.0.1", "--port", "99999")  # 34463 before
    assert result.returncode == 2, result.stderr
    assert "99999" in result.stderr and "Traceback" not in result.stderr


def test_workers_that_cannot_listen_are_not_restarted_forever() -> None:
    """Every worker would fail the same way at every restart: the parent stops, status 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # No Redis is needed: the workers fail at listening, which their start reaches anyway.
        result = _serve_until_exit(
            "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
            "--redis-url", "redis://127.0.0.1:1/0",
        )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


class _IPv6Server(ServerProcess):
    @property
    def url(self) -> str:
        return f"http://[::1]:{self.port}"


def test_an_ipv6_host_is_printed_and_served_as_a_url() -> None:
    port = free_port()
    argv = [sys.executable, "-m", "cursorshare", "serve", "--host", "::1", "--port", str(port)]
    with _IPv6Server(argv, port=port) as server:  # waits until http://[::1]:port answers
        assert f"serving http://[::1]:{port}/" in server.output().splitlines()[0]
        assert server.stop() == 0
