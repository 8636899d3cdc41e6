"""Which requests are the dashboard's pages, forms, data and open files: the service's guard
asks before it checks a session."""

from __future__ import annotations

DATA_SUFFIXES = (".json", "/log", "/plots", ".csv", ".fragment")
"""Paths a page's script fetches: without a session they answer 401, never the login page."""


def is_open_path(path: str) -> bool:
    """Paths that need no login: the login form itself and static files."""
    return path in ("/ui/login",) or path.startswith(("/ui/static/", "/ui/vendor/"))


def is_form_path(path: str) -> bool:
    """Paths the dashboard posts HTML forms to (the only writes that take form bodies)."""
    return path in ("/ui/login", "/ui/logout")


def is_page(path: str) -> bool:
    """Whether ``path`` is a dashboard page (answered with HTML, a login redirect when needed);
    the service's root leads to the dashboard."""
    return path in ("/", "/ui") or (path.startswith("/ui/") and "/plots/" not in path
                                    and not path.endswith(DATA_SUFFIXES))
