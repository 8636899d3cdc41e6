"""How long katuna waits for the APIs it calls (the Kubernetes API, GKE, EKS).

Recorded handlers call them inside the store's write transaction, so a call that never ends
would hold the database's write lock, and one of the service's threads, for good: every call
has a timeout instead, after which it fails as a temporary error (the event is delivered again).
"""

from __future__ import annotations

REMOTE_TIMEOUT = 10.0
"""Seconds a call may wait to connect, and again for each read of its answer
(``KATUNA_REMOTE_TIMEOUT``). Below the store's busy timeout (30 s), so a writer waiting for the
lock that a stuck call holds gets it before it gives up."""
