"""A trial Job's pod the API server refuses to create, as the Job controller's Events on the Job
tell it: ``FailedCreate``, ``Error creating: pods "x" is forbidden: ...``. An admission plugin
refused the pod (a ServiceAccount that does not exist, the namespace's Pod Security level, a
ResourceQuota full or smaller than the pod, or tracking cpu or memory a container does not ask for, a
LimitRange's bounds), or its validation found the pod invalid (``Pod "x" is invalid: ...``: an
image with whitespace around it, which a pod template may hold but a pod may not), and the
controller tries again for ever, so the Job waits with no pod and no condition; only its Events
say why."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from functions.adapters.kubernetes_unstartable import COMBINED, Unstartable
from functions.core.limit_ranges import quantity
from functions.core.quota_causes import limit_range_cause, quota_cause, quota_small_cause
from functions.core.start_failures import account_cause, invalid_pod_cause

FAILED_CREATE = "FailedCreate"
"""The reason of the Job controller's Event on a Job whose pod the API server refused to create."""
RECENT = 1200.0
"""Seconds within which a refusal still holds: the Job controller syncs a Job whose create was
refused again after its queue's back-off, 1 s doubled up to 60 s (``DefaultJobApiBackOff``,
``MaxJobApiBackOff``, pkg/controller/job), and its event recorder lets one Event about an object
through every 5 minutes once 25 have gone (client-go's ``EventSourceObjectSpamFilter``), so a
refusal that still holds is recorded again within about 6 minutes; one not recorded for longer
than this is past (the pod was made since, and later deleted)."""
POD_SECURITY_NEVER = "its namespace's Pod Security level refuses every pod of the template, so no wait can change it"
RESTRICTED_HINT = ("; where the namespace enforces restricted, the operator's KATUNA_TRIAL_POD_SECURITY=restricted has "
                   "katuna's own trial pods meet it (runAsNonRoot) and checks a trialSpec against it at submission")
INVALID_NEVER = "the API server's validation refuses every pod of the template alike, so no wait can change it"
QUOTA_NEVER = "the quota refuses every pod of the template alike, however much of it is free, so no wait can change it"
_FORBIDDEN = re.compile(r'^(?:Error creating: )?pods "[^"]*" is forbidden: (?P<why>.*)$', re.DOTALL)
_INVALID = re.compile(r'^(?:Error creating: )?Pod "[^"]*" is invalid: (?P<why>.*)$', re.DOTALL)
_NO_ACCOUNT = re.compile(r"^error looking up service account (?P<namespace>[^/ ]+)/(?P<name>[^: ]+):")
_UNASKED = re.compile(r"^failed quota: (?P<quota>[^:]+): must specify (?P<missing>.+)$", re.DOTALL)
_EXCEEDED = re.compile(r"^exceeded quota: (?P<quota>[^,]+), requested: (?P<requested>\S*), used: \S*, "
                       r"limited: (?P<limited>\S*)$")
_LIMIT_RANGE = re.compile(r"^\[?(?:(?:minimum|maximum) \S+ usage per|\S+ max limit to request ratio per) "
                          r"(?:Container|Pod) is ")
SMALL_NEVER = "the quota in all is less than one pod of the template asks for, so no wait can change it"
LIMIT_RANGE_NEVER = "its namespace's LimitRange refuses every pod of the template alike, so no wait can change it"


def refused_create(events: list[Any], since: float, now: float) -> Unstartable | None:
    """The pod a Job waits for that the API server refuses to create, by the latest of the Job
    controller's :data:`FAILED_CREATE` ``events`` on it recorded after ``since`` (the Job's
    creation, or its latest pod's: earlier ones are past) and :data:`RECENT` before ``now``; None
    when there is none. It waits from the first refusal recorded after ``since``: the earliest
    first record of those events, as the event recorder combines similar ones (refusals naming
    each pod it was refused by its own name) into an Event of its own once ten came, first
    recorded then, its message behind :data:`~functions.adapters.kubernetes_unstartable.COMBINED`. A
    missing ServiceAccount is the user's to create, so it waits (as a missing Secret does); a Pod
    Security refusal, or a pod the API server's validation finds invalid, meets every pod of the
    template and fails at once, as does a ResourceQuota's refusal of a pod one of whose containers
    does not ask for the cpu or memory it tracks (``failed quota: NAME: must specify ...``) or that
    asks for more than the quota allows in all (``exceeded quota``, what one pod requests above
    what the quota limits), and a LimitRange's refusal (a container outside its bounds); any
    other (a ResourceQuota full for now) waits, as it may pass."""
    refusals = [event for event in events if event.reason == FAILED_CREATE and since <= _last(event) <= now + 1]
    current = [event for event in refusals if now - _last(event) <= RECENT]
    if not current:
        return None
    latest = max(current, key=_last)
    waiting = max(since, min(_first(event) for event in refusals))
    message = (latest.message or "").removeprefix(COMBINED)
    invalid = _INVALID.match(message)
    if invalid is not None:
        why = invalid.group("why")
        return Unstartable(waiting, "", f"the API server refuses to create it as invalid: {why}",
                           invalid_pod_cause(why), True, INVALID_NEVER)
    forbidden = _FORBIDDEN.match(message)
    why = forbidden.group("why") if forbidden else message.removeprefix("Error creating: ")
    said = f"the API server refuses to create it: {why}"
    account = _NO_ACCOUNT.match(why)
    if account is not None:
        return Unstartable(waiting, "", said, account_cause(account["name"], account["namespace"]), False)
    unasked = _UNASKED.match(why)
    if unasked is not None:
        return Unstartable(waiting, "", said, quota_cause(unasked["quota"], _namespace(latest), unasked["missing"]), True,
                           QUOTA_NEVER)
    small = _EXCEEDED.match(why)
    if small is not None and (beyond := _beyond(small["requested"], small["limited"])):
        return Unstartable(waiting, "", said, quota_small_cause(small["quota"], _namespace(latest), beyond), True,
                           SMALL_NEVER)
    if _LIMIT_RANGE.match(why):
        return Unstartable(waiting, "", said, limit_range_cause(_namespace(latest), why), True, LIMIT_RANGE_NEVER)
    if why.startswith("violates PodSecurity "):
        hint = RESTRICTED_HINT if why.startswith('violates PodSecurity "restricted:') else ""
        return Unstartable(waiting, "", said, why.replace(";", ","), True, POD_SECURITY_NEVER + hint)
    return Unstartable(waiting, "", said, None, False)


def _beyond(requested: str, limited: str) -> str:
    """Of a quota's refusal, each resource one pod asks for more of than the quota's hard limit
    (``requests.cpu=8 of requests.cpu=4``, comma-separated), where one does; empty otherwise."""
    asked, hard = _amounts(requested), _amounts(limited)
    over = [name for name, value in asked.items() if name in hard and value[0] > hard[name][0]]
    return ", ".join(f"{name}={asked[name][1]} of {name}={hard[name][1]}" for name in over)


def _amounts(listed: str) -> dict[str, tuple[Decimal, str]]:
    """A quota refusal's list of amounts (``pods=1,requests.cpu=2``), each as a number and as written."""
    found = {}
    for item in listed.split(","):
        name, _, text = item.partition("=")
        value = quantity(text)
        if value is not None:
            found[name] = (value, text)
    return found


def _namespace(event: Any) -> str:
    """The namespace of an Event (its object's, where the pod was refused)."""
    return str((event.metadata.namespace if event.metadata else None) or "")


def _last(event: Any) -> float:
    """When an Event was last recorded, seconds since the epoch."""
    when = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
    return when.timestamp() if when is not None else 0.0


def _first(event: Any) -> float:
    """When an Event was first recorded (the first of the refusals it counts), seconds since the epoch."""
    when = event.first_timestamp or event.event_time or event.metadata.creation_timestamp
    return when.timestamp() if when is not None else 0.0
