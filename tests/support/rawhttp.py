"""A raw HTTP/1.x client over asyncio streams, for tests that need exact bytes on the wire.

    conn = await RawConnection.open(port)
    response = await conn.request("POST", "/echo/000/abc/xhr")   # status, headers, body
    head = await conn.request_head("POST", "/echo/000/abc/xhr_streaming")
    first = await conn.read_chunk()                                # one chunk, as sent
    await conn.close()

Nothing is normalised: the request line and headers go out as given (only ``Host`` and,
for a body, ``Content-Length`` are added), and chunk boundaries, header case and the order of
what arrives stay visible. Every read is bounded by ``within`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from multidict import CIMultiDict

#: Default time limit (seconds) for any single network read.
TIMEOUT = 5.0


@dataclass
class Head:
    version: str
    status: int
    reason: str
    headers: CIMultiDict[str]


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: CIMultiDict[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def content_type(self) -> str | None:
        """The Content-Type header with spaces removed (the spec compares it that way)."""
        value = self.headers.get("Content-Type")
        return None if value is None else value.replace(" ", "")


class RawConnection:
    """One TCP connection to the test server, driven byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, f"127.0.0.1:{port}")

    async def send_request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        version: str = "1.1",
    ) -> None:
        if isinstance(body, str):
            body = body.encode("utf-8")
        body = body or b""
        hdrs = {"Host": self.host}
        hdrs.update(headers or {})
        lower = {k.lower() for k in hdrs}
        if (body or method in ("POST", "PUT")) and "content-length" not in lower:
            hdrs["Content-Length"] = str(len(body))
        lines = [f"{method} {path} HTTP/{version}"]
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()

    async def read_head(self, within: float = TIMEOUT) -> Head:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), within)
        lines = raw.decode("latin-1").split("\r\n")
        proto, status, *reason = lines[0].split(" ", 2)
        assert proto.startswith("HTTP/"), lines[0]
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.add(name.strip(), value.strip())
        return Head(proto[5:], int(status), reason[0] if reason else "", headers)

    async def request_head(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        version: str = "1.1",
        within: float = TIMEOUT,
    ) -> Head:
        await self.send_request(method, path, headers, body, version)
        return await self.read_head(within)

    async def read_exact(self, n: int, within: float = TIMEOUT) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), within)

    async def read_chunk(self, within: float = TIMEOUT) -> bytes:
        """One chunk of a chunked body; b'' for the last (zero-size) chunk."""

        async def go() -> bytes:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return b""
            data = await self.reader.readexactly(size)
            assert await self.reader.readexactly(2) == b"\r\n"
            return data

        return await asyncio.wait_for(go(), within)

    async def read_to_eof(self, within: float = TIMEOUT) -> bytes:
        return await asyncio.wait_for(self.reader.read(), within)

    async def at_eof(self, within: float = TIMEOUT) -> bool:
        """True when the server closed the connection (reads nothing more)."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), within)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return data == b""

    async def read_body(self, head: Head, method: str) -> bytes:
        if method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200:
            return b""
        if head.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while chunk := await self.read_chunk():
                parts.append(chunk)
            return b"".join(parts)
        if "Content-Length" in head.headers:
            return await self.read_exact(int(head.headers["Content-Length"]))
        return await self.read_to_eof()

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        version: str = "1.1",
        within: float = TIMEOUT,
    ) -> Response:
        head = await self.request_head(method, path, headers, body, version, within)
        data = await self.read_body(head, method)
        return Response(head.version, head.status, head.reason, head.headers, data)

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
