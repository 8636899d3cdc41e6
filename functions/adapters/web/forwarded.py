"""Who sent a request, as a log line names it: the peer's address, and what the proxies in
between say of the client.

Behind Knative's queue-proxy every request comes from 127.0.0.1, so the address alone names no
one. The ``X-Forwarded-For`` and ``Forwarded`` headers a proxy adds say more, but anyone may send
them: they are written as reported (cut to :data:`KEPT` characters, control characters escaped)
and never trusted for any decision.
"""

from __future__ import annotations

from typing import Any

from functions.adapters.log_lines import printable

KEPT = 200
"""Characters kept of each forwarding header."""

HEADERS = ("X-Forwarded-For", "Forwarded")


def sender(request: Any) -> str:
    """``request``'s peer address, then each forwarding header it came with, as reported:
    ``127.0.0.1 (X-Forwarded-For: "10.4.0.7")``."""
    reported = [f'{name}: "{_cut(value)}"' for name in HEADERS if (value := request.headers.get(name))]
    return f"{request.remote_addr} ({'; '.join(reported)})" if reported else str(request.remote_addr)


def _cut(value: str) -> str:
    """``value`` cut, its control characters and double quotes escaped."""
    return printable(value[:KEPT] + ("…" if len(value) > KEPT else "")).replace('"', '\\"')
