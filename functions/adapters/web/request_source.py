"""Refusals by where a request comes from: a socket of another user of the machine, or a proxy,
where the service has no API token; a Host it does not serve; a read another site's page asks for.

Without a token, only the service's own user may reach the service; and no page of another site,
nor a host name rebound to the loopback address, may reach it through a browser. The gate
(:mod:`.gate`) runs these checks in turn, and the checks of callers (:mod:`.callers`) fall back
on them where no token is set.
"""

from __future__ import annotations

from flask import request

from functions.adapters.web import forwarded, guard, peers


def check_local_user():
    """Without the API token, a request only from a socket of the service's own user (or
    root): any account of the machine can connect to loopback (:mod:`.peers`). ``katuna
    serve``'s worker refuses other connections before reading them (:mod:`.worker`); this
    check stands for servers that do not. A server that does not hand over the connection
    (tests' clients) is taken as before. Whatever the connection, a request a proxy says it
    passed on is refused: its client is whoever reached the proxy (:func:`forwarded.proxy_header`)."""
    connection = request.environ.get("gunicorn.socket")
    problem = None if connection is None else peers.stranger(connection)
    if problem is None and (header := forwarded.proxy_header(request)) is not None:
        problem = PROXIED.format(header=header)
    return None if problem is None else guard.refusal(request, 403, "local_user_not_allowed", problem)


PROXIED = ("without KATUNA_API_TOKEN this service takes requests only from its own user on this machine, and this "
           "one came through a proxy (its {header} header says so), whose clients are whoever can reach the proxy: "
           "set KATUNA_API_TOKEN to serve through a proxy (its clients then send Authorization: Bearer <token>)")
"""The refusal, by a service without a token, of a request a proxy passed on."""


def cross_site_read_refused():
    """The refusal of a read another site's page asks for (:func:`guard.cross_site_read`)."""
    return guard.refusal(request, 403, "cross_origin", "reads another site's page asks for are refused: open "
                                                       "this service's pages from its own address")


def host_refused():
    """The refusal of a request whose Host is not one the service serves (:func:`guard.host_allowed`)."""
    return guard.refusal(request, 400, "host_not_allowed", guard.host_naming_problem(request) or (
        f"Host {request.host!r} is not served here: add its name to KATUNA_ALLOWED_HOSTS "
        "(comma-separated; loopback names and addresses are always served)"))
