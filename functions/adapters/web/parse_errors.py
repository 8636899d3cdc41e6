"""gunicorn's own refusals in the API's one error shape.

gunicorn answers a request it cannot parse itself, before any application sees it: a request
line past its limit (``414``), too many or too large header fields (``431``), a malformed
request (``400``), and a fault outside the application (``500``), each as an HTML page
(``gunicorn.util.write_error``) without the headers every other answer carries. A client
switching on ``error`` would find none. :class:`JsonErrors` stands for the client's socket while
gunicorn's worker writes such an answer (``handle_error``), and sends the same status as
katuna's JSON error instead.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from functions.adapters.web import NO_STORE, SAFETY_HEADERS

CODES = {400: "malformed_request", 414: "uri_too_long", 431: "request_header_fields_too_large",
         500: "internal_server_error"}
"""The ``error`` of each status gunicorn answers with; ``http_error`` for the others (``417``, ``501``)."""

_STATUS = re.compile(rb"HTTP/1\.[01] ([0-9]{3}) ([^\r\n]*)\r\n")
_MESSAGE = re.compile(rb"</h1>\s*(.*?)\s*</body>", re.DOTALL)


class JsonErrors:
    """The client socket gunicorn writes its error answer to, answering JSON instead."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def sendall(self, data: bytes) -> None:
        self._client.sendall(json_answer(data))


def json_answer(answer: bytes) -> bytes:
    """gunicorn's HTML error ``answer`` as katuna's JSON error of the same status and message;
    anything else as it is."""
    status = _STATUS.match(answer)
    if status is None:
        return answer
    code, reason = int(status.group(1)), status.group(2).decode("latin-1")
    found = _MESSAGE.search(answer)
    message = html.unescape(found.group(1).decode("latin-1")) if found and found.group(1) else reason
    body = json.dumps({"error": CODES.get(code, "http_error"), "message": message, "retryable": False}).encode()
    head = [f"HTTP/1.1 {code} {reason}", "Connection: close", "Content-Type: application/json",
            f"Content-Length: {len(body)}", f"Cache-Control: {NO_STORE}",
            *(f"{name}: {value}" for name, value in SAFETY_HEADERS.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
