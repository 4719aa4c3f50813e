"""The load generator sends as sockjs-client does (lib/transport/lib/buffered-sender.js):
over HTTP one send in flight, then a pause during which moves wait for the next send; over a
websocket no pause. Event-driven: the fake send and the pause wait for the test's signals."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import orjson

from cursorshare.bench.clients import SOCKJS_CLIENT_SEND_WAIT_MS, Tally
from cursorshare.bench.transports import WebSocketClient, XhrStreamingClient


class RecordingClient(XhrStreamingClient):
    """An xhr-streaming client whose sends and pauses are held until the test releases them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[list[int]] = []
        self.send_started = asyncio.Event()
        self.release_send = asyncio.Event()
        self.pausing = asyncio.Event()
        self.release_pause = asyncio.Event()

    async def _send(self, body: str) -> None:
        self.sent.append([orjson.loads(m)["s"] for m in orjson.loads(body)])
        self.send_started.set()
        await self.release_send.wait()
        self.release_send.clear()

    async def _pause(self) -> None:
        self.pausing.set()
        await self.release_pause.wait()
        self.release_pause.clear()


def make(cls: type[Any], **kwargs: Any) -> Any:
    return cls(None, None, "http://127.0.0.1:1/ws", 0, Tally(), n_senders=1, observer=False,
               deadline=math.inf, **kwargs)  # fmt: skip


def test_http_clients_pause_25_ms_after_a_send_and_websocket_ones_do_not() -> None:
    assert make(XhrStreamingClient).send_wait == SOCKJS_CLIENT_SEND_WAIT_MS / 1000.0 == 0.025
    assert make(WebSocketClient, send_wait=0.025).send_wait == 0.0
    assert make(XhrStreamingClient, send_wait=0.0).send_wait == 0.0


async def test_moves_made_during_a_send_and_its_pause_go_out_together() -> None:
    client = make(RecordingClient)
    client.move(0.0)
    await client.send_started.wait()
    client.send_started.clear()
    client.move(1.0)  # the first send is in flight
    client.move(2.0)
    client.release_send.set()
    await client.pausing.wait()
    client.pausing.clear()
    client.move(3.0)  # the pause after it
    client.release_pause.set()
    await client.send_started.wait()
    assert client.sent == [[0], [1, 2, 3]]
    client.release_send.set()
    await client.pausing.wait()
    client.release_pause.set()
    assert client._flush_task is not None
    await client._flush_task  # nothing pending after the pause: the flush ends
    assert not client.sending
    client.move(4.0)  # the next move starts a send at once
    client.send_started.clear()
    await client.send_started.wait()
    assert client.sent[-1] == [4]
    client.release_send.set()
    client.release_pause.set()
    await client._flush_task
