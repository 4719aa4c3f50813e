"""A websocket client at the byte level (RFC 6455 §5), for tests that need exact frames.

aiohttp's client assembles fragments, answers pings and completes the close handshake by
itself; these helpers let a test send any frame and see exactly what the server sends, and
when it closes the TCP connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from dataclasses import dataclass

TIMEOUT = 5.0

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """One masked client frame (clients must mask, §5.3)."""
    mask = os.urandom(4)
    length = len(payload)
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        head = bytes((first, 0x80 | length))
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes

    @property
    def text(self) -> str:
        return self.payload.decode()

    @property
    def close_code(self) -> int | None:
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


class RawWebSocket:
    """One websocket connection driven frame by frame."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, path: str) -> RawWebSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        )
        writer.write(request.encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send(self, opcode: int, payload: bytes = b"", *, fin: bool = True) -> None:
        self.writer.write(client_frame(opcode, payload, fin=fin))
        await self.writer.drain()

    async def recv(self, within: float = TIMEOUT) -> Frame:
        """The next server frame; EOFError when the server closed the connection."""

        async def go() -> Frame:
            try:
                first, second = await self.reader.readexactly(2)
            except asyncio.IncompleteReadError as exc:
                raise EOFError from exc
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(length)
            return Frame(bool(first & 0x80), first & 0x0F, payload)

        return await asyncio.wait_for(go(), within)

    async def recv_until_close(self, within: float = TIMEOUT) -> tuple[list[Frame], Frame]:
        """Frames up to the server's close frame, and the close frame."""
        frames: list[Frame] = []
        while True:
            frame = await self.recv(within)
            if frame.opcode == CLOSE:
                return frames, frame
            frames.append(frame)

    async def at_eof(self, within: float = TIMEOUT) -> bool:
        """True when the server closed the TCP connection (nothing more to read)."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), within)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return data == b""

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
