"""Which requests are the dashboard's pages, forms, data and open files: the service's guard
asks before it checks a session."""

from __future__ import annotations

DATA_SUFFIXES = (".json", "/log", "/plots", ".csv", ".fragment", ".js")
"""Paths a page's script fetches, or loads as a script: without a session they answer 401, never
the login page."""


def is_open_path(path: str) -> bool:
    """Paths that need no login: the login form itself and the dashboard's own static files,
    which its page uses. Not plotly.js under ``/ui/vendor/`` (4.8 MB, 1.5 MB gzipped), which only
    the pages behind the login draw with: an answer that large outgrows what the kernel takes
    for a client that does not read it, so a thread of the worker stays on each such request
    until the client reads or ``KATUNA_CLIENT_TIMEOUT`` passes, and a handful of clients with no
    token, asking for it again and again, would keep every thread, the broker's deliveries' and
    the token holders' requests waiting."""
    return path in ("/ui/login",) or path.startswith("/ui/static/")


def is_form_path(path: str) -> bool:
    """Paths the dashboard posts HTML forms to (the only writes that take form bodies)."""
    return path in ("/ui/login", "/ui/logout")


def is_page(path: str) -> bool:
    """Whether ``path`` is a dashboard page (answered with HTML, a login redirect when needed);
    the service's root leads to the dashboard."""
    return path in ("/", "/ui") or (path.startswith("/ui/") and "/plots/" not in path
                                    and not path.endswith(DATA_SUFFIXES))
