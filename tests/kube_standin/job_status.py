"""A Job's status as Kubernetes' Job controller writes it (1.31+, with ``JobPodReplacementPolicy``
and ``JobManagedBy``): its pod counts, its ``Suspended`` condition, and its end in two steps.

An end is decided first as an interim condition, ``FailureTarget`` or ``SuccessCriteriaMet``,
written alone (``trackJobStatusAndRemoveFinalizers``); the terminal one, ``Failed`` or
``Complete`` with the same reason and message, follows only once no pod of the Job is
terminating (``enactJobFinished``: ``delayTerminalCondition``), and ``completionTime`` with
``Complete`` alone. ``active`` counts the pods neither terminal nor deleted, ``terminating`` the
deleted ones not terminal yet, ``ready`` the active ones whose ``Ready`` condition holds; the
zero counts the API's ``omitempty`` leaves out (``active``, ``succeeded``, ``failed``) are left
out, ``ready`` and ``terminating`` (pointers) and ``uncountedTerminatedPods`` are always there.
"""

from __future__ import annotations

TERMINAL = ("Succeeded", "Failed")
INTERIM = {"FailureTarget": "Failed", "SuccessCriteriaMet": "Complete"}
"""Each interim condition, with the terminal one that follows it."""


def terminating(pod: dict) -> bool:
    """Whether the pod was deleted and has not ended yet (its containers still stopping)."""
    return bool(pod["metadata"].get("deletionTimestamp")) and pod["status"].get("phase") not in TERMINAL


def active(pod: dict) -> bool:
    """Whether the pod is neither terminal nor deleted (``FilterActivePods``)."""
    return pod["status"].get("phase") not in TERMINAL and not pod["metadata"].get("deletionTimestamp")


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def write_counts(status: dict, pods: list[dict], succeeded: int, failed: int) -> None:
    """The counts of ``pods`` (the Job's, still there) and of its pods counted so far."""
    running = [p for p in pods if active(p)]
    for key, value in (("active", len(running)), ("succeeded", succeeded), ("failed", failed)):
        if value:
            status[key] = value
        else:
            status.pop(key, None)
    status.update(ready=sum(ready(p) for p in running), terminating=sum(terminating(p) for p in pods),
                  uncountedTerminatedPods={})


def interim(job: dict) -> tuple[str, str, str] | None:
    """The Job's interim condition that holds (type, reason, message); None before its end is decided."""
    found = next((c for c in job["status"].get("conditions", []) if c["type"] in INTERIM and c["status"] == "True"),
                 None)
    return None if found is None else (found["type"], found.get("reason", ""), found.get("message", ""))


def add_condition(job: dict, kind: str, reason: str, message: str, stamp: str) -> None:
    """Append the condition ``kind`` (``True``) to the Job's, unless it holds already."""
    conditions = job["status"].setdefault("conditions", [])
    if not any(c["type"] == kind and c["status"] == "True" for c in conditions):
        conditions.append({"type": kind, "status": "True", "reason": reason, "message": message,
                           "lastProbeTime": stamp, "lastTransitionTime": stamp})


def set_suspended(job: dict, value: str, reason: str, message: str, stamp: str) -> bool:
    """Set the Job's ``Suspended`` condition to ``value``, as the real controller does: added only
    as ``True`` (never from nothing to ``False``), changed only when its status changes. Whether
    it changed."""
    conditions = job["status"].setdefault("conditions", [])
    found = next((c for c in conditions if c["type"] == "Suspended"), None)
    if (found is None and value == "False") or (found is not None and found["status"] == value):
        if not conditions:
            job["status"].pop("conditions")
        return False
    if found is None:
        found = {"type": "Suspended"}
        conditions.append(found)
    found.update(status=value, reason=reason, message=message, lastProbeTime=stamp, lastTransitionTime=stamp)
    return True
