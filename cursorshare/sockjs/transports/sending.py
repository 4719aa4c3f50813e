"""The sending side of the HTTP transports (xhr_send, jsonp_send): one body, many messages."""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import parse_qs

from aiohttp import hdrs, web

from ..frames import BrokenFrame, NotAnArray, decode_messages
from ..http import BodyTooLarge, error, read_body, session_headers
from ..manager import SessionManager
from ..remote import SessionGone
from ..session import Session

FORM = "application/x-www-form-urlencoded"

#: Sends being handled: a strong reference, so one whose client left is not collected.
_in_flight: set[asyncio.Task[web.Response]] = set()


def _form_value(body: bytes, field: str) -> bytes:
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise BrokenFrame("form body is not UTF-8") from exc
    return fields.get(field, [""])[0].encode()


async def receive_messages(
    manager: SessionManager,
    request: web.Request,
    *,
    form_field: str | None,
    ok_status: int,
    ok_body: bytes,
    content_type: str,
) -> web.Response:
    """Deliver a body's messages to the session's handler, in order.

    ``form_field`` names the form field holding the payload when the body is a form
    (jsonp_send); any other body is the payload itself.

    A send that arrived whole is delivered even if its client leaves before the answer (a tab
    sends its last message and closes). On its session's own node nothing waits between the
    body and the session; a node that relays it waits for the owner's lookup and answer, and
    must not drop it then. So the body is read first (at once when it is all there; aiohttp
    fails the read once the connection is lost), and the rest is shielded from the request's
    cancellation (``handler_cancellation``).
    """
    try:
        body: bytes | None = await read_body(request, manager.options.max_message_size)
    except BodyTooLarge:
        body = None  # refused after the session lookup: a 404 comes first
    delivery = _receive_messages(
        manager,
        request,
        body,
        form_field=form_field,
        ok_status=ok_status,
        ok_body=ok_body,
        content_type=content_type,
    )
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        # Started at once (as aiohttp starts its request tasks): a send to a session of this
        # node whose handler does not wait is done before the task would have been scheduled,
        # and needs no shield.
        task = asyncio.Task(delivery, loop=loop, eager_start=True)
        if task.done():
            return task.result()
    else:
        task = loop.create_task(delivery)
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)
    return await asyncio.shield(task)


async def _receive_messages(
    manager: SessionManager,
    request: web.Request,
    body: bytes | None,
    *,
    form_field: str | None,
    ok_status: int,
    ok_body: bytes,
    content_type: str,
) -> web.Response:
    """`receive_messages` once the body is read (None: it was too large)."""
    options = manager.options
    headers = session_headers(request, options)
    headers[hdrs.CONTENT_TYPE] = content_type
    session = await manager.find_http(request.match_info["session"])
    if session is None:
        return error(404, "Session not found.", headers)
    try:
        if body is None:
            raise BodyTooLarge
        payload = body
        if form_field is not None and request.content_type == FORM:
            payload = _form_value(payload, form_field)
        if not payload:
            return error(500, "Payload expected.", headers)
        messages = decode_messages(payload)
    except BodyTooLarge:
        return error(413, "Payload too large.", headers)
    except NotAnArray:
        return error(500, "Payload expected.", headers)
    except BrokenFrame:
        return error(500, "Broken JSON encoding.", headers)
    try:
        await (
            session.deliver(messages) if isinstance(session, Session) else session.deliver(payload)
        )
    except SessionGone:
        return error(404, "Session not found.", headers)
    return web.Response(status=ok_status, body=ok_body, headers=headers)
