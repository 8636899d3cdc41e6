"""The media types the study API answers with, and the refusal of a request whose ``Accept``
takes none of them (``406 not_acceptable``, naming them), before the operation runs.

A client that asks for ``application/xml`` and is sent JSON finds out only when it fails to
parse the answer; one told ``406`` knows why. An ``Accept`` a browser or a library sends
(``*/*``, ``application/*``, ``application/json; charset=utf-8``) takes the API's types: a
range's parameters other than its weight are no reason to refuse (RFC 9110 section 12.5.1),
and a range with the weight 0 refuses its type unless a more specific range takes it. An
absent, empty or malformed ``Accept`` asks for nothing, and is answered as ever; so are the
health probes, whose callers (the kubelet, load balancers) take whatever comes, and a
``DELETE``, whose ``204`` has no body to be of any type. An error
answer is JSON whatever ``Accept`` says, as RFC 9110 section 15.5.7 allows.
"""

from __future__ import annotations

from flask import request
from werkzeug.datastructures import MIMEAccept
from werkzeug.exceptions import NotAcceptable
from werkzeug.http import parse_accept_header

JSON = "application/json"
TEXT = "text/plain"
ANSWERED_AS = {"api.trial_logs": TEXT}
"""The operations that answer with another type than :data:`JSON`."""
UNCHECKED = ("api.healthz", "api.readyz")


def check_accept() -> None:
    """``NotAcceptable`` naming the type the operation answers with, where ``Accept`` takes it not."""
    if request.endpoint in UNCHECKED or request.method in ("OPTIONS", "DELETE") or request.url_rule is None:
        return
    offered = ANSWERED_AS.get(request.endpoint or "", JSON)
    header = request.headers.get("Accept", "")
    if acceptable(header, offered):
        return
    raise NotAcceptable(f"Accept: {header!r:.100} takes no type this path answers with: it answers {offered}")


def acceptable(header: str, offered: str) -> bool:
    """Whether the ``Accept`` ``header`` takes the type ``offered``: the weight of the most
    specific of its ranges that matches (the type itself, its ``type/*``, then ``*/*``) is
    above 0. A header with no range, or with a range that is no ``type/subtype``, takes anything."""
    ranges = [(value.partition(";")[0].strip().lower(), quality) for value, quality in parse_accept_header(header, MIMEAccept)]
    ranges = [("*/*" if media == "*" else media, quality) for media, quality in ranges]
    if not header.strip() or not ranges or any(media.count("/") != 1 for media, _ in ranges):
        return True
    kind = offered.partition("/")[0]
    rank = {offered: 2, f"{kind}/*": 1, "*/*": 0}
    matching = [(rank[media], quality) for media, quality in ranges if media in rank]
    return bool(matching) and max(matching)[1] > 0
