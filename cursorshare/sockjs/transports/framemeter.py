"""Charging a websocket client for every frame it sends, before aiohttp parses them.

aiohttp assembles fragmented messages and answers pings inside its parser, so fragments,
pings and pongs never reach the session as messages, yet each costs the server a parse. The
`FrameMeter` sits between the socket and aiohttp's protocol of one connection, finds the
frame boundaries in the raw bytes (headers only; payloads are skipped, not read) and reports
the frames that carry no complete message. Complete data frames are charged where they are
delivered, by the number of messages they carry.

It also fails a client that sends an unmasked frame (RFC 6455 §5.1: "a server MUST close the
connection upon receiving a frame that is not masked"), with close code 1002, which aiohttp's
parser does not check.

The meter must see the stream from its first byte to stay on frame boundaries: it is
installed before the 101 answer, and a client that sent data before that answer (RFC 6455
§4.1 forbids it) is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

_FIN = 0x80
_MASKED = 0x80
_CONTINUATION, _TEXT, _BINARY = 0x0, 0x1, 0x2
#: What an unmasked client frame gets before the connection is dropped (§7.1.7).
_PROTOCOL_ERROR_CLOSE = bytes((0x88, 2 + 14)) + (1002).to_bytes(2, "big") + b"Unmasked frame"


class FrameScanner:
    """Frame boundaries of a client's byte stream, fed in arbitrary chunks."""

    __slots__ = ("_head", "_skip", "unmasked")

    def __init__(self) -> None:
        self._head = b""  # an incomplete frame header carried over to the next chunk
        self._skip = 0  # payload bytes of the current frame still to pass over
        #: A frame without the mask bit was seen: the client must be failed.
        self.unmasked = False

    def feed(self, data: bytes) -> int:
        """How many frames starting in ``data`` are fragments or control frames."""
        if self._head:
            data = self._head + data
            self._head = b""
        end = len(data)
        pos = 0
        skip = self._skip
        counted = 0
        while True:
            if skip:
                step = min(skip, end - pos)
                pos += step
                skip -= step
                if skip:
                    break
            if end - pos < 2:
                break
            first, second = data[pos], data[pos + 1]
            length = second & 0x7F
            size = 2 + (4 if second & _MASKED else 0)
            if length == 126:
                size += 2
            elif length == 127:
                size += 8
            if end - pos < size:
                break
            if length == 126:
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            elif length == 127:
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if not second & _MASKED:
                self.unmasked = True
            opcode = first & 0x0F
            if not (first & _FIN and opcode in (_CONTINUATION, _TEXT, _BINARY)):
                counted += 1
            pos += size
            skip = length
        self._skip = skip
        if pos < end:
            self._head = data[pos:]
        return counted


class FrameMeter(asyncio.Protocol):
    """Wraps the protocol of one upgraded connection; reports uncharged frames to ``charge``.

    Once the client is failed (for flooding, say), its input is dropped unparsed.
    """

    def __init__(self, inner: asyncio.Protocol, transport: asyncio.Transport) -> None:
        self._inner = inner
        self._transport = transport
        self._scanner = FrameScanner()
        self._uncharged = 0
        self._charge: Callable[[int], None] | None = None
        self._discarding = False

    @classmethod
    def install(cls, transport: asyncio.Transport) -> FrameMeter:
        meter = cls(cast(asyncio.Protocol, transport.get_protocol()), transport)
        transport.set_protocol(meter)
        return meter

    def bind(self, charge: Callable[[int], None]) -> None:
        """Charge frames to ``charge(count)`` from now on (and those counted before)."""
        self._charge = charge
        if self._uncharged:
            count, self._uncharged = self._uncharged, 0
            charge(count)

    def discard_input(self) -> None:
        """Drop everything the client sends from now on, unparsed (it was failed)."""
        self._discarding = True

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            # aiohttp resumes reading when its message queue drains; a failed client stays
            # unread.
            self._transport.pause_reading()
            return
        if self._transport.is_closing():
            return
        count = self._scanner.feed(data)
        if self._scanner.unmasked:
            # Fail the connection: aiohttp would parse the frame as if it were masked.
            self._discarding = True
            self._transport.write(_PROTOCOL_ERROR_CLOSE)
            self._transport.close()
            return
        if count:
            if self._charge is None:
                self._uncharged += count
            else:
                self._charge(count)
            if self._discarding or self._transport.is_closing():
                return
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
