"""Posting katuna's events to ``K_SINK``, the broker a SinkBinding names, beyond its replies.

Apart from :mod:`functions.adapters.cloudevents_http`, which reads and writes the events (the
CloudEvents SDK's one user): this holds what a post adds to the event it sends, the OIDC token
and TLS trust the binding mounts, and how the broker's answer is judged (a refusal for good, a
redirect never followed, anything else temporary).
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from functions.adapters.cloudevents_http import to_http
from functions.adapters.http_unredirected import unredirected_opener
from functions.core.errors import PermanentError, TemporaryError
from functions.core.events import Event

REFUSED_FOR_GOOD = frozenset({400, 413, 415, 422})
"""A broker ingress's answers to an event it will never take (malformed, too large, of a media
type it does not read); any other failure may pass when the event is posted again."""


class Sink:
    """Where katuna posts events beyond its replies: ``K_SINK``, reached as Knative's SinkBinding
    sets it up. With Eventing's ``authentication-oidc`` feature on, the binding mounts an OIDC
    token for the sink's audience at ``token_file`` and the broker refuses (401) a post without
    it; the token is read again for every post, as the binding rotates it. With transport
    encryption the sink is https, signed by the cluster's CA: ``tls`` makes the context that
    trusts it (the PEM certificates the binding puts in ``K_CA_CERTS`` and its mounted trust
    bundles besides the system's: :func:`functions.reporter.tls_context`), asked for at each post,
    so a rotated bundle is trusted from the next one. Events are signed with ``key`` where given
    (:mod:`functions.core.event_signature`), and carry the ``extensions`` of the SinkBinding's
    ``ceOverrides`` (``K_CE_OVERRIDES``), as Knative's own senders' do."""

    def __init__(self, url: str, token_file: Path | None = None, tls: Callable[[], ssl.SSLContext] | None = None,
                 key: bytes | None = None, extensions: tuple[tuple[str, str], ...] = ()) -> None:
        self.url = url
        self._token_file = token_file
        self._tls = tls
        self._key = key
        self._extensions = extensions

    def send(self, event: Event, timeout: float) -> None:
        """POST ``event`` to the sink, waiting ``timeout`` seconds for each read of the answer,
        its trace context also in the ``traceparent`` and ``tracestate`` headers, from which the
        broker's ingress continues the trace. A refusal of the event itself
        (:data:`REFUSED_FOR_GOOD`) is permanent, and so is a redirect, never followed
        (:func:`~functions.adapters.http_unredirected.unredirected_opener`: urllib would resend
        the POST as a GET without its body, whose 2xx would pass for the event taken, and with
        its ``Authorization`` header, to whatever host the answer names), as Knative's own
        deliveries take a 3xx for a failure not worth a retry; any other failure is temporary
        (an authentication refusal included: the token may be renewed meanwhile)."""
        headers, body = to_http(event, self._key, self._extensions)
        traced = event.trace.attributes() if event.trace is not None else {}
        request = urllib.request.Request(self.url, data=body, headers={**headers, **traced, **self._authorization()},
                                         method="POST")
        try:
            context = self._tls() if self._tls is not None and urllib.parse.urlsplit(self.url).scheme == "https" \
                else None
            with unredirected_opener(context).open(request, timeout=timeout):
                return
        except urllib.error.HTTPError as exc:
            exc.close()  # the answer unread: its connection, kept by the error raised from it, closed now
            if 300 <= exc.code < 400:
                raise PermanentError(f"{self.url} answered {event.type} with a redirect ({exc.code}) to "
                                     f"{exc.headers.get('Location')!r}, which is not followed: K_SINK must name "
                                     "the broker itself") from exc
            if exc.code in REFUSED_FOR_GOOD:
                raise PermanentError(f"{self.url} refused {event.type}: {exc}") from exc
            raise TemporaryError(f"could not send {event.type} to {self.url}: {exc}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise TemporaryError(f"could not send {event.type} to {self.url}: {exc}") from exc

    def _authorization(self) -> dict[str, str]:
        """The bearer token as the file holds it now; none while there is no file (OIDC is off)."""
        if self._token_file is None:
            return {}
        try:
            token = self._token_file.read_text().strip()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TemporaryError(f"could not read the OIDC token for {self.url} at {self._token_file}: {exc}") from exc
        return {"Authorization": f"Bearer {token}"} if token else {}
