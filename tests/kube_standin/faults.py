"""Faults a test injects into the API server's answers, as a real one's connection can fail them:
an answer lost after the change was made (the server wrote it, then its connection dropped, or
the client's process died waiting), a call refused before anything was changed (``503``,
as the API server answers while etcd or its admission webhooks are unavailable), and a call of a
kind the API server does not route for a moment (the 404 of a path it does not serve, for a
custom resource that exists: an API server whose definitions of custom resources are not all
loaded after a restart, kubernetes/kubernetes#115241).

:meth:`Faults.hold` serves each later call of a verb on a resource, its change made, then holds
its answer until :meth:`Held.release`: the test kills the caller meanwhile.
:meth:`Faults.refuse` answers the next calls of a verb on a resource 503, changing nothing.
:meth:`Faults.unserve` answers them as for a kind it does not serve (404, no Status).
:meth:`Faults.unauthenticate` answers the next requests ``401 Unauthorized``, as an API server
answers a bearer token it does not take (rotated or expired since the client read it, or its
authenticator webhook away), before it reads anything else of the request.
"""

from __future__ import annotations

import threading

from kube_standin.objects import status

HOLD_LIMIT = 120.0
"""Seconds at most an answer is held, so a test that forgets to release leaves no thread for ever."""


class Held:
    """The answers held for one verb on one resource."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        """Set once a call was served and its answer is held."""
        self._released = threading.Event()

    def release(self) -> None:
        """Let the held answers go (to a caller that may be gone)."""
        self._released.set()

    def wait(self) -> None:
        self.reached.set()
        self._released.wait(HOLD_LIMIT)


class Faults:
    """The faults injected, by (verb, resource)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], Held] = {}
        self._refused: dict[tuple[str, str], int] = {}
        self._throttled: dict[tuple[str, str], bool] = {}
        self._unserved: dict[tuple[str, str], int] = {}
        self._unauthenticated = 0

    def hold(self, verb: str, resource: str) -> Held:
        """Hold the answers of later ``verb`` calls on ``resource`` (``deletecollection``, ``jobs``)
        once they are served."""
        held = Held()
        with self._lock:
            self._held[(verb, resource)] = held
        return held

    def refuse(self, verb: str, resource: str, times: int = 1, throttled: bool = False) -> None:
        """Answer the next ``times`` calls of ``verb`` on ``resource`` 503, changing nothing; or,
        ``throttled``, 429, as the API server's priority and fairness answers a request its
        queues have no room for."""
        with self._lock:
            self._refused[(verb, resource)] = times
            self._throttled[(verb, resource)] = throttled

    def unserve(self, verb: str, resource: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``verb`` on ``resource`` (a plural, ``experiments``)
        as the API server answers a path it does not route, changing nothing."""
        with self._lock:
            self._unserved[(verb, resource)] = times

    def unauthenticate(self, times: int = 1) -> None:
        """Answer the next ``times`` requests, whatever they ask, ``401 Unauthorized``."""
        with self._lock:
            self._unauthenticated = times

    def authentication(self) -> tuple[int, dict] | None:
        """The 401 to answer this request with, before anything else is read of it, or None."""
        with self._lock:
            if self._unauthenticated <= 0:
                return None
            self._unauthenticated -= 1
        return 401, status(401, "Unauthorized", "Unauthorized")

    def unserved(self, verb: str, resource: str) -> bool:
        """Whether this call is answered as one of a kind not served (and one fewer left to be)."""
        with self._lock:
            left = self._unserved.get((verb, resource), 0)
            if left > 0:
                self._unserved[(verb, resource)] = left - 1
            return left > 0

    def refusal(self, verb: str, resource: str) -> tuple[int, dict] | None:
        """The 503 (or 429) to answer this call with instead of serving it, or None."""
        with self._lock:
            left = self._refused.get((verb, resource), 0)
            if left <= 0:
                return None
            self._refused[(verb, resource)] = left - 1
            throttled = self._throttled.get((verb, resource), False)
        if throttled:
            return 429, status(429, "TooManyRequests", "Too many requests, please try again later.")
        return 503, status(503, "ServiceUnavailable", "the server is currently unable to handle the request")

    def answering(self, verb: str, resource: str) -> bool:
        """Called once a call was served, before its answer goes: waits while its answers are
        held; whether they were."""
        with self._lock:
            held = self._held.get((verb, resource))
        if held is None:
            return False
        held.wait()
        return True
