"""The sending side of the HTTP transports (xhr_send, jsonp_send): one body, many messages."""

from __future__ import annotations

from urllib.parse import parse_qs

from aiohttp import hdrs, web

from ..frames import BrokenFrame, NotAnArray, decode_messages
from ..http import BodyTooLarge, error, read_body, session_headers
from ..manager import SessionManager
from ..remote import SessionGone
from ..session import Session

FORM = "application/x-www-form-urlencoded"


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
    """
    options = manager.options
    headers = session_headers(request, options)
    headers[hdrs.CONTENT_TYPE] = content_type
    session = await manager.find_http(request.match_info["session"])
    if session is None:
        return error(404, "Session not found.", headers)
    try:
        payload = await read_body(request, options.max_message_size)
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
