"""How long katuna waits for the APIs it calls (the Kubernetes API, GKE, EKS), and for a node
pool the cloud keeps refusing for now.

Recorded handlers call them inside the store's write transaction, so a call that never ends
would hold the database's write lock, and one of the service's threads, for good: every call
has a timeout instead, after which it fails as a temporary error (the event is delivered again).
"""

from __future__ import annotations

REMOTE_TIMEOUT = 10.0
"""Seconds a call may wait to connect, and again for each read of its answer
(``KATUNA_REMOTE_TIMEOUT``). Below the store's busy timeout (30 s), so a writer waiting for the
lock that a stuck call holds gets it before it gives up."""

POOL_WAIT = 3600.0
"""Seconds after a study is stored that its node pool may still be refused for now
(``KATUNA_POOL_WAIT``) before the study fails with the cloud's last answer. A cluster busy with
an upgrade clears within it; a refusal that only reads like one (GKE answers a precondition that
will never be met with the same ``FAILED_PRECONDITION`` as a busy cluster) would otherwise keep
the study waiting for its pool for good, its trials pending."""
