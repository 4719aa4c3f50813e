"""The access log, without secrets: a request line's ``resume`` query parameter (a client's
resume key, which gives its identity back) is logged as ``[redacted]``."""

from __future__ import annotations

import re
from collections.abc import Iterable

from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

#: Query parameters never written to the access log.
SECRET_PARAMETERS = frozenset({"resume"})
REDACTED = "[redacted]"
#: Any other text of the line (a Referer, say) that could carry one, as ``resume=...``.
_SECRET_IN_TEXT = re.compile(r"((?:^|[?&;])resume=)[^&;\s\"]*")


def redacted_path(request: BaseRequest) -> str:
    """The request's path and query as aiohttp logs it, secret parameters redacted."""
    url = request.rel_url
    if not SECRET_PARAMETERS.intersection(url.query):
        return request.path_qs
    query = [(k, REDACTED if k in SECRET_PARAMETERS else v) for k, v in url.query.items()]
    return str(url.with_query(query))


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access logger with secret query parameters replaced by ``[redacted]``."""

    def _format_line(
        self, request: BaseRequest, response: StreamResponse, time: float
    ) -> Iterable[tuple[str | tuple[str, str], str]]:
        line = []
        for key, value in super()._format_line(request, response, time):
            if key == "first_request_line" and request is not None:
                major, minor = request.version
                value = f"{request.method} {redacted_path(request)} HTTP/{major}.{minor}"
            elif isinstance(value, str) and "resume=" in value:  # some atoms are numbers
                value = _SECRET_IN_TEXT.sub(rf"\1{REDACTED}", value)
            line.append((key, value))
        return line
