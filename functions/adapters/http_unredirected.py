"""An HTTP opener that follows no redirect, for katuna's own outgoing requests that carry a
credential: the events the event functions POST to their sink with its OIDC token
(:mod:`functions.adapters.cloudevents_sink`), and the API server's discovery document read with
the pod's service-account token (:mod:`functions.adapters.web.oidc`). urllib's default opener
follows a 301, 302, 303, 307 or 308 to whatever host the answer names, the ``Authorization``
header with it, and resends a POST answered 301, 302 or 303 as a GET without its body, whose 2xx
would pass for the POST taken. The trial reporter keeps its own copy
(:class:`functions.reporter._Unredirected`): it is a file of the standard library alone, carried
into trial images by itself.
"""

from __future__ import annotations

import ssl
import urllib.request
from typing import Any


class Unredirected(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: one is an ``HTTPError`` of its own status instead."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None


def unredirected_opener(context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """An opener whose requests go to their own URL alone (:class:`Unredirected`), trusting the
    certificates of ``context`` for HTTPS (the system's where None)."""
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), Unredirected())
