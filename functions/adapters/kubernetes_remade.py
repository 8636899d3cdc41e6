"""The pods of a Training Operator job's ``ExitCode`` replicas as a look reads them, for
:mod:`functions.core.remade_pods` to count those its operator made again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.adapters.kubernetes_status import disrupted, status_of
from functions.core.remade_pods import ROLE_LABEL, SeenPod


def seen_pods(pods: list[Any], replicas: Mapping[str, str], container: str) -> list[SeenPod]:
    """Each pod of the ``replicas`` (by replica type lower-cased) among ``pods``: a failed one
    with its ``container``'s end (else the first container's that ended), a disrupted one so."""
    return [_seen(pod, container) for pod in pods if pod.metadata and pod.metadata.uid and pod.metadata.name
            and (pod.metadata.labels or {}).get(ROLE_LABEL) in replicas]


def names_of(pods: list[Any], replicas: Mapping[str, str]) -> dict[str, str]:
    """The replica type, as the job writes it, of each pod name of the ``replicas``."""
    named = {}
    for pod in pods:
        role = (pod.metadata.labels or {}).get(ROLE_LABEL) if pod.metadata else None
        if isinstance(role, str) and role in replicas:
            named[pod.metadata.name] = replicas[role]
    return named


def _seen(pod: Any, container: str) -> SeenPod:
    if disrupted(pod):
        return SeenPod(pod.metadata.name, pod.metadata.uid, disrupted=True)
    if pod.status is None or pod.status.phase != "Failed":
        return SeenPod(pod.metadata.name, pod.metadata.uid)
    statuses = [status_of(pod, container), *(pod.status.container_statuses or [])]
    ended = next((s.state.terminated for s in statuses if s is not None and s.state and s.state.terminated), None)
    if ended is None:
        return SeenPod(pod.metadata.name, pod.metadata.uid, failed=True)
    return SeenPod(pod.metadata.name, pod.metadata.uid, ended.exit_code, ended.reason or "", failed=True)
