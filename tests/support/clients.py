"""A small asyncio SockJS client for tests, one class per transport.

Every client is one SockJS session::

    client = make_client("xhr-polling")
    await client.connect("http://127.0.0.1:8080/ws", query="v=2&room=r")  # waits for `o`
    await client.send({"type": "move", "x": 0.5, "y": 0.5})  # dicts are JSON-encoded
    message = await client.recv(timeout=2)                   # next app message (a str)
    welcome = await client.recv_json_until(lambda m: m.get("type") == "welcome")
    await client.close()                                     # go away, as a browser tab would

The receiving side runs in a background task that parses frames (``o``, ``h``, ``a[...]``,
``c[code,reason]``) and queues the messages; ``frames`` keeps every frame as received.
When a ``c`` frame arrives, ``closed_with`` is ``(code, reason)`` and `recv` raises
`SessionClosed` once the queued messages are read.

``close()`` on an HTTP transport cancels the request in flight (the server sees the client
abort) and stops polling; on websocket it closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import unquote, urlencode

import aiohttp

__all__ = [
    "TRANSPORTS",
    "EventSourceClient",
    "HtmlFileClient",
    "JsonpPollingClient",
    "SessionClosed",
    "SockJSClient",
    "WebSocketClient",
    "XhrPollingClient",
    "XhrStreamingClient",
    "make_client",
]

DEFAULT_TIMEOUT = 5.0

Predicate = Callable[[Any], bool]


class SessionClosed(Exception):
    """The session ended: a ``c`` frame arrived, or the connection failed."""

    def __init__(self, closed_with: tuple[int, str] | None, error: BaseException | None = None):
        super().__init__(closed_with if error is None else f"{closed_with} ({error!r})")
        self.closed_with = closed_with
        self.error = error


class SockJSClient:
    """What every transport shares: session URLs, frame parsing, the message queue."""

    #: The name `make_client` knows this transport by.
    transport: ClassVar[str]

    def __init__(self) -> None:
        self.base_url = ""
        self.query = ""
        self.server_id = f"{secrets.randbelow(1000):03d}"
        self.session_id = secrets.token_hex(8)
        #: Every frame received, as text, in order (heartbeats and the prelude excluded).
        self.frames: list[str] = []
        #: ``(code, reason)`` of the ``c`` frame, once one arrived.
        self.closed_with: tuple[int, str] | None = None
        #: What ended the receiving side when it was not a ``c`` frame (a network error).
        self.error: BaseException | None = None
        self._messages: asyncio.Queue[str | None] = asyncio.Queue()
        self._opened = asyncio.Event()
        self._ended = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._reader: asyncio.Task[None] | None = None
        #: Messages the last `recv_json_until` read past, decoded.
        self.skipped: list[Any] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.session_id}>"

    # -- public API ---------------------------------------------------------------------------

    @property
    def session_url(self) -> str:
        return f"{self.base_url}/{self.server_id}/{self.session_id}"

    @property
    def ended(self) -> bool:
        """True once the session is over for this client (closed by either side)."""
        return self._ended.is_set()

    async def connect(
        self,
        base_url: str,
        query: str = "",
        *,
        timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    ) -> None:
        """Open the session and wait for its ``o`` frame (or the ``c`` frame refusing it)."""
        self.base_url = base_url.rstrip("/")
        self.query = query
        self._http = aiohttp.ClientSession()
        self._reader = asyncio.get_running_loop().create_task(self._run())
        opened = asyncio.ensure_future(self._opened.wait())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait(
                {opened, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            opened.cancel()
            ended.cancel()
        if not self._opened.is_set():
            await self.close()
            if self.error is not None or self.closed_with is not None:
                raise SessionClosed(self.closed_with, self.error)
            raise TimeoutError(f"{self!r}: no open frame within {timeout}s")

    async def send(self, message: object) -> None:
        """Send one message: a str as is, anything else JSON-encoded."""
        await self.send_many([message])

    async def send_many(self, messages: list[object]) -> None:
        """Send several messages in one SockJS frame (one request on HTTP transports)."""
        texts = [m if isinstance(m, str) else json.dumps(m) for m in messages]
        await self._send_frame(json.dumps(texts))

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> str:  # noqa: ASYNC109
        """The next application message; SessionClosed when the session ended first."""
        try:
            message = await asyncio.wait_for(self._messages.get(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self!r}: no message within {timeout}s") from None
        if message is None:
            self._messages.put_nowait(None)  # every later recv fails the same way
            raise SessionClosed(self.closed_with, self.error)
        return message

    async def recv_json(self, timeout: float = DEFAULT_TIMEOUT) -> Any:  # noqa: ASYNC109
        return json.loads(await self.recv(timeout))

    async def recv_json_until(self, predicate: Predicate, timeout: float = DEFAULT_TIMEOUT) -> Any:  # noqa: ASYNC109
        """Read messages (as JSON) until one matches ``predicate``; return that one.

        The messages read past are kept in ``skipped`` for the caller to inspect.
        """
        self.skipped = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self!r}: no matching message within {timeout}s; got {self.skipped!r}"
                )
            try:
                message = await self.recv_json(remaining)
            except TimeoutError:
                raise TimeoutError(
                    f"{self!r}: no matching message within {timeout}s; got {self.skipped!r}"
                ) from None
            if predicate(message):
                return message
            self.skipped.append(message)

    def pending(self) -> list[str]:
        """Messages received and not read yet (without waiting)."""
        out: list[str] = []
        while not self._messages.empty():
            message = self._messages.get_nowait()
            if message is None:
                self._messages.put_nowait(None)
                break
            out.append(message)
        return out

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str] | None:  # noqa: ASYNC109
        """Wait until the session ends; return ``closed_with``."""
        await asyncio.wait_for(self._ended.wait(), timeout)
        return self.closed_with

    async def close(self) -> None:
        """Go away: stop receiving (abort the request in flight) and release the connection."""
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._end()
        if self._http is not None:
            await self._http.close()

    # -- frames -------------------------------------------------------------------------------

    def _on_frame(self, frame: str) -> None:
        """Record one frame: open, queue its messages, or note the close."""
        if not frame or self.ended:
            return
        kind = frame[0]
        if kind == "h":
            return
        self.frames.append(frame)
        if kind == "o":
            self._opened.set()
        elif kind == "a":
            for message in json.loads(frame[1:]):
                self._messages.put_nowait(message)
        elif kind == "c":
            code, reason = json.loads(frame[1:])
            self.closed_with = (int(code), str(reason))
            self._end()
        else:
            raise ValueError(f"{self!r}: unknown frame {frame!r}")

    def _end(self) -> None:
        if not self._ended.is_set():
            self._ended.set()
            self._messages.put_nowait(None)

    # -- transport specifics ----------------------------------------------------------------

    def _url(self, suffix: str, extra: dict[str, str] | None = None) -> str:
        parts = [p for p in (urlencode(extra) if extra else "", self.query) if p]
        return f"{self.session_url}/{suffix}" + ("?" + "&".join(parts) if parts else "")

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "connect() first"
        return self._http

    async def _run(self) -> None:
        try:
            await self._receive()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the network failed under us: the session is over
            if not self.ended:
                self.error = exc
        finally:
            self._end()

    async def _receive(self) -> None:
        """Read frames (calling `_on_frame`) until the session ends."""
        raise NotImplementedError

    async def _send_frame(self, payload: str) -> None:
        raise NotImplementedError


class WebSocketClient(SockJSClient):
    transport = "websocket"

    def __init__(self) -> None:
        super().__init__()
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def _receive(self) -> None:
        url = self._url("websocket").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        self.ws = await self.http.ws_connect(url, autoping=True)
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            self._on_frame(msg.data)
            if self.ended:
                break

    async def _send_frame(self, payload: str) -> None:
        assert self.ws is not None, "connect() first"
        await self.ws.send_str(payload)

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2.0)
        await super().close()


class _HttpSending(SockJSClient):
    """xhr_send: the frame is the POST body; 204 when delivered."""

    async def _send_frame(self, payload: str) -> None:
        async with self.http.post(
            self._url("xhr_send"),
            data=payload.encode(),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        ) as response:
            if response.status != 204:
                raise AssertionError(f"xhr_send: {response.status} {await response.text()!r}")


class _Streaming(_HttpSending):
    """A streaming response read line by line, reopened when the server ends it."""

    method: ClassVar[str] = "POST"
    suffix: ClassVar[str]

    def _frame_of_line(self, line: str) -> str | None:
        raise NotImplementedError

    async def _receive(self) -> None:
        while not self.ended:
            async with self.http.request(self.method, self._url(self.suffix)) as response:
                response.raise_for_status()
                while not self.ended:
                    raw = await response.content.readline()
                    if not raw:
                        break  # response_limit reached: reopen
                    frame = self._frame_of_line(raw.decode().rstrip("\r\n"))
                    if frame is not None:
                        self._on_frame(frame)


class XhrStreamingClient(_Streaming):
    transport = "xhr-streaming"
    suffix = "xhr_streaming"

    def _frame_of_line(self, line: str) -> str | None:
        if len(line) > 1 and set(line) == {"h"}:
            return None  # the 2 KiB prelude
        return line or None


class EventSourceClient(_Streaming):
    transport = "eventsource"
    method = "GET"
    suffix = "eventsource"

    def _frame_of_line(self, line: str) -> str | None:
        # sockjs-client runs decodeURI on each event; the server escapes only `%` and the
        # event's control characters, so unquoting all of them is the exact inverse.
        return unquote(line[len("data: ") :]) if line.startswith("data: ") else None


class HtmlFileClient(_Streaming):
    transport = "htmlfile"
    method = "GET"
    suffix = "htmlfile"
    _SCRIPT = re.compile(r'p\((".*")\);')

    def _url(self, suffix: str, extra: dict[str, str] | None = None) -> str:
        if suffix == "htmlfile":
            extra = {"c": "cb", **(extra or {})}
        return super()._url(suffix, extra)

    def _frame_of_line(self, line: str) -> str | None:
        match = self._SCRIPT.fullmatch(line.strip())
        return None if match is None else str(json.loads(match.group(1)))


class XhrPollingClient(_HttpSending):
    transport = "xhr-polling"
    method: ClassVar[str] = "POST"
    suffix: ClassVar[str] = "xhr"

    def _frames_of_body(self, body: str) -> list[str]:
        return [line for line in body.split("\n") if line]

    async def _receive(self) -> None:
        while not self.ended:
            async with self.http.request(self.method, self._url(self.suffix)) as response:
                response.raise_for_status()
                body = await response.text()
            for frame in self._frames_of_body(body):
                self._on_frame(frame)


class JsonpPollingClient(XhrPollingClient):
    """GET .../jsonp?c=cb answers ``/**/cb("<frame>");``; sends are a form ``d=<frames>``."""

    transport = "jsonp-polling"
    method = "GET"
    suffix = "jsonp"
    callback = "cb"
    _CALL = re.compile(r'/\*\*/cb\((".*")\);\s*', re.DOTALL)

    def _url(self, suffix: str, extra: dict[str, str] | None = None) -> str:
        if suffix == "jsonp":
            extra = {"c": self.callback, **(extra or {})}
        return super()._url(suffix, extra)

    def _frames_of_body(self, body: str) -> list[str]:
        match = self._CALL.fullmatch(body)
        if match is None:
            raise AssertionError(f"not a jsonp answer: {body!r}")
        return [str(json.loads(match.group(1)))]

    async def _send_frame(self, payload: str) -> None:
        async with self.http.post(self._url("jsonp_send"), data={"d": payload}) as response:
            text = await response.text()
            if response.status != 200 or text != "ok":
                raise AssertionError(f"jsonp_send: {response.status} {text!r}")


TRANSPORTS: dict[str, type[SockJSClient]] = {
    cls.transport: cls
    for cls in (
        WebSocketClient,
        XhrStreamingClient,
        EventSourceClient,
        XhrPollingClient,
        JsonpPollingClient,
        HtmlFileClient,
    )
}


def make_client(transport: str) -> SockJSClient:
    """A new, unconnected client: websocket, xhr-streaming, eventsource, xhr-polling,
    jsonp-polling or htmlfile."""
    try:
        return TRANSPORTS[transport]()
    except KeyError:
        raise ValueError(f"unknown transport {transport!r}; one of {sorted(TRANSPORTS)}") from None
