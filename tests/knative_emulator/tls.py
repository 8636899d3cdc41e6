"""Eventing's ``transport-encryption`` feature as the Broker's addresses show it (broker.go
``ReconcileKind``): the ingress's listeners, and which of their addresses a reference resolves to.

- ``disabled``: http only; ``status.address`` is the http address.
- ``permissive``: both; ``status.address`` is the http address, ``status.addresses`` the https
  one, then the http one.
- ``strict``: https only, in both.

A reference to the Broker (a SinkBinding's or a source's sink, a Subscription's reply) resolves
to the first of ``status.addresses``, else to ``status.address`` (knative.dev/pkg resolver
``selectAddress``): under ``permissive`` that is the https address, while what reads
``status.address`` itself (the broker filter posting a reply with OIDC on) gets the http one. In
a cluster the two differ in scheme only (ports 80 and 443); here each listens on a port of its
own. The https listener's certificate is signed by a CA of the cluster's, which every part of
the emulator trusts (:func:`trusting`), as Knative's components trust the cluster's through
their trust bundle.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path

from tls_sink import Authority

MODES = ("disabled", "permissive", "strict")

_TRUSTED: list[str] = []
"""The PEM certificates of every CA the emulator's listeners were signed by."""


def trusting() -> ssl.SSLContext:
    """A client context trusting the system's CAs and the emulator's."""
    context = ssl.create_default_context()
    for pem in list(_TRUSTED):
        context.load_verify_locations(cadata=pem)
    return context


class Listeners:
    """The ingress's servers under ``mode``, each made by ``serve`` (an http server on a free
    loopback port) and served from a thread; ``address`` is ``status.address.url``'s scheme,
    host and port, ``resolved`` what a reference resolves to, and ``ca_pem`` the CA of the https
    one (None without it)."""

    def __init__(self, mode: str, serve: Callable[[], ThreadingHTTPServer]) -> None:
        if mode not in MODES:
            raise ValueError(f"transport-encryption: expected one of {', '.join(MODES)}, got {mode!r}")
        self._folder = tempfile.TemporaryDirectory(prefix="katuna-broker-tls-")
        self.servers: list[ThreadingHTTPServer] = []
        self.ca_pem: str | None = None
        urls = {}
        if mode != "strict":
            urls["http"] = self._start(serve(), "http")
        if mode != "disabled":
            authority = Authority(Path(self._folder.name))
            self.ca_pem = authority.ca_pem
            _TRUSTED.append(authority.ca_pem)
            urls["https"] = self._start(authority.serving(serve()), "https")
        self.address = urls["https" if mode == "strict" else "http"]
        self.resolved = urls.get("https", self.address)

    def _start(self, server: ThreadingHTTPServer, scheme: str) -> str:
        self.servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return f"{scheme}://127.0.0.1:{server.server_address[1]}"

    def close(self) -> None:
        """Stop the servers; their CA is trusted by no later client (:func:`trusting`)."""
        for server in self.servers:
            server.shutdown()
            server.server_close()
        if self.ca_pem in _TRUSTED:
            _TRUSTED.remove(self.ca_pem)
        self._folder.cleanup()
