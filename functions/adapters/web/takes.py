"""What an operation of the API and of the event paths takes of a request besides its path: a
query parameter or a body it does not take is refused (``400 malformed_request``, naming it),
never ignored.

An ignored part would make a wrong request look right: ``POST /studies?dryRun=true`` would
create and run the study, ``DELETE /studies/x`` with ``{"force": true}`` would answer as if the
flag meant something. So an operation takes no parameter and no body unless its view says so
(:func:`query` for one that checks its own parameters by name, :func:`body` for one that reads
its body). The health probes, ``/metrics`` and the dashboard's pages are not checked here:
a probe or a scraper may add a parameter of its own, and the pages check theirs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from flask import Request

from functions.adapters.web.guard import WRITE_METHODS
from functions.core.errors import MalformedRequest

CHECKED_BLUEPRINTS = ("api", "functions")
"""The blueprints whose operations are checked: the study API and the event paths."""
UNCHECKED_ENDPOINTS = ("api.healthz", "api.readyz")
_QUERY = "katuna_takes_query"
_BODY = "katuna_takes_body"

View = TypeVar("View", bound=Callable)


def query(view: View) -> View:
    """``view`` checks its query parameters itself, each by name (:func:`.paging.page_request`,
    :func:`.query.only`)."""
    setattr(view, _QUERY, True)
    return view


def body(view: View) -> View:
    """``view`` reads the request's body."""
    setattr(view, _BODY, True)
    return view


def delivery(view: View) -> View:
    """``view`` takes an event delivered to it: its body, and whatever query parameters the
    delivery's transport adds, which are no part of the event and are ignored (Eventarc adds
    ``__GCP_CloudEventsMode``, an operator's subscriber URI may hold one): a ``400`` would be
    final, sending the event to the dead-letter sink, or losing a dead letter for good."""
    setattr(view, _QUERY, True)
    return body(view)


def check(request: Request, view: Callable | None) -> None:
    """``MalformedRequest`` for a query parameter or a body the operation of ``request`` (served by
    ``view``) does not take; nothing for a request outside :data:`CHECKED_BLUEPRINTS`. A body is
    refused only on a write: a read's body has no meaning in HTTP, and none is read."""
    if view is None or request.blueprint not in CHECKED_BLUEPRINTS or request.endpoint in UNCHECKED_ENDPOINTS:
        return
    if request.args and not getattr(view, _QUERY, False):
        name = sorted(request.args)[0]
        raise MalformedRequest(f"{name:.40}: not a parameter of {_operation(request)}, which takes none")
    if request.method in WRITE_METHODS and not getattr(view, _BODY, False) and request.get_data(cache=True):
        raise MalformedRequest(f"the body: expected none, as {_operation(request)} takes nothing but its path "
                               f"(got {len(request.get_data())} bytes)")


def _operation(request: Request) -> str:
    """The method and path of the operation, as the OpenAPI document writes it
    (``POST /studies/{name}/stop``)."""
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    return request.method + " " + re.sub(r"<(?:[^:>]*:)?([^>]+)>", r"{\1}", rule)
