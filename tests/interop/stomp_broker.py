"""A small STOMP 1.2 broker on a SockJS endpoint, for driving STOMP clients others wrote.

It knows CONNECT/STOMP, SUBSCRIBE, UNSUBSCRIBE, SEND and DISCONNECT, answers every `receipt`
header, and delivers each SEND to every subscription of its destination as a MESSAGE (the
sender's own subscriptions included, so one client can check its round trip). A malformed
frame gets an ERROR frame and the session is closed, as STOMP 1.2 requires; other sessions go
on. No transactions, acks or heart-beats: the client is told `heart-beat:0,0`.

STOMP counts `content-length` in bytes and a frame may arrive across several SockJS messages
(or several frames in one), so each session keeps a byte buffer and frames are cut from it.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

from cursorshare.sockjs import MsgType, Session, SockjsMessage
from cursorshare.sockjs.abuselog import AbuseLog

log = logging.getLogger("tests.interop.stomp")

#: What `receipt`, `content-length` and the transport's own headers are to a MESSAGE: not
#: copied from the SEND that caused it.
_NOT_FORWARDED = frozenset({"receipt", "content-length", "transaction", "destination"})
#: The largest frame (headers and body) a session may have pending.
MAX_FRAME_BYTES = 256 * 1024

# STOMP 1.2 header escapes (not applied in CONNECT and CONNECTED frames).
_ESCAPES = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", ":": "\\c"}
_UNESCAPES = {"\\": "\\", "r": "\r", "n": "\n", "c": ":"}


class StompError(Exception):
    """The client broke the protocol; the message goes into the ERROR frame."""


@dataclass
class Frame:
    command: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def encode(self) -> str:
        escape = self.command not in ("CONNECTED",)
        lines = [self.command]
        headers = dict(self.headers)
        headers["content-length"] = str(len(self.body))
        for name, value in headers.items():
            lines.append(f"{_escape(name)}:{_escape(value)}" if escape else f"{name}:{value}")
        return "\n".join(lines) + "\n\n" + self.body.decode() + "\0"


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(char, char) for char in text)


def _unescape(text: str) -> str:
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, "")
        if following not in _UNESCAPES:
            raise StompError(f"undefined escape sequence \\{following} in a header")
        out.append(_UNESCAPES[following])
    return "".join(out)


class FrameReader:
    """Cuts complete frames out of the bytes a client sent so far."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while True:
            # End-of-lines between frames are heart-beats (or padding): skip them.
            while self._buffer.startswith((b"\n", b"\r")):
                del self._buffer[:1]
            frame = self._next_frame()
            if frame is None:
                break
            frames.append(frame)
        if len(self._buffer) > MAX_FRAME_BYTES:
            raise StompError(f"frame larger than {MAX_FRAME_BYTES} bytes")
        return frames

    def _next_frame(self) -> Frame | None:
        head_end = self._buffer.find(b"\n\n")
        crlf_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0 and crlf_end < 0:
            return None
        if crlf_end >= 0 and (head_end < 0 or crlf_end < head_end):
            head, body_start = bytes(self._buffer[:crlf_end]), crlf_end + 4
        else:
            head, body_start = bytes(self._buffer[:head_end]), head_end + 2
        try:
            lines = head.decode().replace("\r\n", "\n").split("\n")
        except UnicodeDecodeError as exc:
            raise StompError("frame headers are not UTF-8") from exc
        command, header_lines = lines[0], lines[1:]
        escaped = command not in ("CONNECT", "STOMP")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            if not colon:
                raise StompError(f"header line without a colon: {line[:40]!r}")
            if escaped:
                name, value = _unescape(name), _unescape(value)
            headers.setdefault(name, value)  # the first of repeated headers counts
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise StompError("content-length is not a number")
            body_end = body_start + int(length)
            if len(self._buffer) <= body_end:
                return None
            if self._buffer[body_end] != 0:
                raise StompError("no NULL octet after content-length bytes of body")
        else:
            body_end = self._buffer.find(b"\0", body_start)
            if body_end < 0:
                return None
        body = bytes(self._buffer[body_start:body_end])
        try:
            body.decode()
        except UnicodeDecodeError as exc:
            # SockJS carries text: a body cut inside a character cannot be relayed.
            raise StompError(
                "frame body is not UTF-8 (content-length splits a character?)"
            ) from exc
        del self._buffer[: body_end + 1]
        return Frame(command, headers, body)


@dataclass
class _Client:
    reader: FrameReader = field(default_factory=FrameReader)
    connected: bool = False
    # subscription id -> destination
    subscriptions: dict[str, str] = field(default_factory=dict)


class StompBroker:
    """The SockJS handler: ``add_endpoint(app, StompBroker(), prefix="/stomp")``."""

    def __init__(self) -> None:
        self._clients: dict[Session, _Client] = {}
        self._message_ids = itertools.count(1)
        self._abuse = AbuseLog(log)

    async def __call__(self, msg: SockjsMessage, session: Session) -> None:
        if msg.type is MsgType.OPEN:
            self._clients[session] = _Client()
        elif msg.type is MsgType.MESSAGE:
            client = self._clients.get(session)
            if client is not None:
                self._receive(session, client, str(msg.data))
        else:
            self._clients.pop(session, None)

    def _receive(self, session: Session, client: _Client, data: str) -> None:
        try:
            for frame in client.reader.feed(data.encode()):
                self._handle(session, client, frame)
        except StompError as exc:
            request = session.request
            self._abuse.warn(request.remote if request else None, "STOMP: %s", exc)
            session.send(Frame("ERROR", {"message": str(exc)}, str(exc).encode()).encode())
            self._clients.pop(session, None)
            session.close(3000, "STOMP protocol error")

    def _handle(self, session: Session, client: _Client, frame: Frame) -> None:
        if frame.command in ("CONNECT", "STOMP"):
            versions = frame.headers.get("accept-version", "1.0").split(",")
            if "1.2" not in versions:
                raise StompError("this broker speaks STOMP 1.2 only")
            client.connected = True
            session.send(Frame("CONNECTED", {"version": "1.2", "heart-beat": "0,0"}).encode())
        elif not client.connected:
            raise StompError(f"{frame.command} before CONNECT")
        elif frame.command == "SUBSCRIBE":
            client.subscriptions[_required(frame, "id")] = _required(frame, "destination")
        elif frame.command == "UNSUBSCRIBE":
            client.subscriptions.pop(_required(frame, "id"), None)
        elif frame.command == "SEND":
            self._publish(_required(frame, "destination"), frame)
        elif frame.command == "DISCONNECT":
            pass
        else:
            raise StompError(f"unknown command {frame.command[:40]!r}")
        if "receipt" in frame.headers and frame.command not in ("CONNECT", "STOMP"):
            session.send(Frame("RECEIPT", {"receipt-id": frame.headers["receipt"]}).encode())
        if frame.command == "DISCONNECT":
            self._clients.pop(session, None)
            session.close(1000, "Normal closure")

    def _publish(self, destination: str, sent: Frame) -> None:
        extra = {k: v for k, v in sent.headers.items() if k not in _NOT_FORWARDED}
        for session, client in list(self._clients.items()):
            for subscription, subscribed_to in client.subscriptions.items():
                if subscribed_to != destination:
                    continue
                headers = {
                    **extra,
                    "destination": destination,
                    "subscription": subscription,
                    "message-id": str(next(self._message_ids)),
                }
                session.send(Frame("MESSAGE", headers, sent.body).encode())


def _required(frame: Frame, header: str) -> str:
    value = frame.headers.get(header)
    if not value:
        raise StompError(f"{frame.command} without a {header} header")
    return value
