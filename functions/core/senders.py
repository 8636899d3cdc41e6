"""Who may deliver events to katuna with Knative Eventing's OIDC tokens: the subjects (``sub``
claims) it takes, ``KATUNA_OIDC_SUBJECTS``.

A token's audience and issuer say only that the cluster signed it for katuna, and any pod can
have one signed (a projected ``serviceAccountToken`` volume with katuna's audience needs no
RBAC). Its subject, ``system:serviceaccount:<namespace>:<name>``, says which service account
asked for it: a broker delivers a Trigger's events with the Trigger's own OIDC account. Each
allowed subject is a whole subject, or a prefix ending in ``*``, as a Knative EventPolicy's
``from.sub``. The accounts they name are the service's too: no trial may run as one
(:mod:`functions.core.trial_identity`).
"""

from __future__ import annotations

from collections.abc import Iterable

ACCOUNT_PREFIX = "system:serviceaccount:"


def account_subject(namespace: str, account: str) -> str:
    """The subject of the tokens a pod running as ``account`` in ``namespace`` gets."""
    return f"{ACCOUNT_PREFIX}{namespace}:{account}"


def allowed(subject: str, subjects: Iterable[str]) -> bool:
    """Whether ``subject`` is one of ``subjects``, or begins with one ending in ``*``."""
    return any(subject.startswith(s[:-1]) if s.endswith("*") else subject == s for s in subjects)


def subject_problem(subject: str) -> str | None:
    """Why ``subject`` cannot be an allowed subject, or None: a service account's subject, a
    ``*`` only at its end."""
    if not subject.startswith(ACCOUNT_PREFIX) or subject == ACCOUNT_PREFIX + "*":
        return (f"expected a service account's subject, {ACCOUNT_PREFIX}<namespace>:<name> (a trailing * matches "
                f"every name it begins), got {subject!r}")
    if "*" in subject[:-1]:
        return f"a * may only end a subject, as in a Knative EventPolicy, got {subject!r}"
    return None
