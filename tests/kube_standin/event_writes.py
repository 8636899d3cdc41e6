"""Events created through ``events.k8s.io/v1``, validated as the API server validates them
(``ValidateEventCreate``, pkg/apis/core/validation/events.go: the legacy checks every Event
passes, and the strict ones of ``events.k8s.io/v1`` and later), then stored as the ``v1`` Events
``kubectl describe`` and ``kubectl get events`` list (:mod:`kube_standin.events`): ``regarding``
becomes ``involvedObject``, ``note`` the ``message``, ``reportingController`` the
``reportingComponent``, and the deprecated fields the legacy ones.

An ``events.k8s.io/v1`` Event needs its name (a DNS subdomain, or a ``generateName``), its
``eventTime``, a ``type`` of ``Normal`` or ``Warning``, ``reportingController`` (a qualified
name), ``reportingInstance`` and ``action`` (at most 128 bytes each: Go's ``len`` of a string),
``reason`` (at most 128 bytes) and a ``note`` of at most 1024 bytes, labels, annotations and
owner references as every object's (``ValidateObjectMeta``, which only the ``events.k8s.io/v1``
path runs); it may not set ``deprecatedFirstTimestamp``,
``deprecatedLastTimestamp``, ``deprecatedCount`` nor ``deprecatedSource``, and a ``series``
counts at least 2 and has its ``lastObservedTime``. An Event about an object of no namespace
lives in ``default`` or ``kube-system``. A name already held is 409 AlreadyExists."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from kube_standin import decoding
from kube_standin.names import metadata_problems, qualified_name_problems
from kube_standin.objects import DNS_SUBDOMAIN, already_exists, invalid, snapshot, status
from kube_standin.secrets import owner_problems

QUALIFIED = "events.events.k8s.io"
LIMITS = {"reportingInstance": 128, "action": 128, "reason": 128}
NOTE_BYTES = 1024
LEGACY = {"deprecatedFirstTimestamp": "firstTimestamp", "deprecatedLastTimestamp": "lastTimestamp",
          "deprecatedCount": "count", "deprecatedSource": "source"}
"""The ``events.k8s.io/v1`` fields kept for ``v1`` readers, by the ``v1`` field each is: none
set, so ``v1`` shows no ``count`` and no timestamps but ``eventTime`` (empty fields are left out)."""


def create(cluster, namespace: str, body: dict | None, dry_run: bool, directive: str | None = None,
           warnings: list[str] | None = None) -> tuple[int, dict]:
    """Create the ``events.k8s.io/v1`` Event ``body`` in ``namespace``, decoded as ``directive``
    (the request's ``fieldValidation``) says (:mod:`kube_standin.decoding`)."""
    body = snapshot(body) if isinstance(body, dict) else {}
    if (unreadable := decoding.decoded("Event", body, directive, warnings)) is not None:
        return 400, status(400, "BadRequest", f'Event in version "v1" cannot be handled as a Event: {unreadable}')
    metadata = dict(body.get("metadata") or {})
    name = metadata.get("name") or ""
    if not name and metadata.get("generateName"):
        name = f"{metadata['generateName']}{uuid.uuid4().hex[:5]}"
    if (unreadable := _unreadable_time(body)) is not None:
        return unreadable
    problems = problems_of(body, name, namespace)
    if problems:
        return invalid("Event", QUALIFIED, name, problems)
    with cluster.lock:
        if any(e["metadata"]["name"] == name and e["metadata"]["namespace"] == namespace for e in cluster.events):
            return already_exists(QUALIFIED, name)
        stored = _as_v1(body, name, namespace, cluster.clock.stamp())
        if not dry_run:
            cluster.events.append(stored)
        return 201, as_events_v1(stored)


def _unreadable_time(body: dict) -> tuple[int, dict] | None:
    """400 for an ``eventTime`` that is no RFC 3339 time, as the decoder refuses it."""
    given = body.get("eventTime")
    if given is None:
        return None
    try:
        datetime.fromisoformat(str(given).replace("Z", "+00:00"))
    except ValueError:
        return 400, status(400, "BadRequest", f'Event in version "v1" cannot be handled as a Event: parsing time '
                                              f'{json.dumps(given)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse')
    return None


def problems_of(body: dict, name: str, namespace: str) -> list[tuple[str, str]]:
    """What ``ValidateEventCreate`` refuses of an ``events.k8s.io/v1`` Event."""
    problems = _legacy(body, namespace) + metadata_problems(body.get("metadata"), "metadata")
    problems += owner_problems((body.get("metadata") or {}).get("ownerReferences"))
    if not name:
        problems.append(("metadata.name", "Required value: name or generateName is required"))
    elif not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        problems.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                                          "lower case alphanumeric characters, '-' or '.'"))
    series = body.get("series")
    if isinstance(series, dict):
        if (series.get("count") or 0) < 2:
            problems.append(("series.count", 'Invalid value: "": should be at least 2'))
        if not series.get("lastObservedTime"):
            problems.append(("series.lastObservedTime", "Required value"))
    if not body.get("eventTime"):
        problems.append(("eventTime", "Required value"))
    if body.get("type") not in ("Normal", "Warning"):
        problems.append(("type", f'Invalid value: "": has invalid value: {body.get("type") or ""}'))
    for given, legacy in LEGACY.items():
        if body.get(given) not in (None, 0, {}, {"component": "", "host": ""}):
            problems.append((legacy, 'Invalid value: "": needs to be unset'))
    return problems


def _legacy(body: dict, namespace: str) -> list[tuple[str, str]]:
    """The checks every Event with an ``eventTime`` passes (``legacyValidateEvent``)."""
    problems: list[tuple[str, str]] = []
    regarding = body.get("regarding") or {}
    if not regarding.get("namespace") and namespace not in ("default", "kube-system"):
        problems.append(("involvedObject.namespace", 'Invalid value: "": does not match event.namespace'))
    controller = str(body.get("reportingController") or "")
    if not controller:
        problems.append(("reportingController", "Required value"))
    problems += [("reportingController", f"Invalid value: {json.dumps(controller)}: {why}")
                 for why in qualified_name_problems(controller)]
    for field in ("reportingInstance", "action", "reason"):
        value = str(body.get(field) or "")
        if not value:
            problems.append((field, "Required value"))
        elif len(value.encode()) > LIMITS[field]:
            problems.append((field, f'Invalid value: "": can have at most {LIMITS[field]} characters'))
    if len(str(body.get("note") or "").encode()) > NOTE_BYTES:
        problems.append(("message", f'Invalid value: "": can have at most {NOTE_BYTES} characters'))
    return problems


def _as_v1(body: dict, name: str, namespace: str, stamp: str) -> dict:
    """The Event as the ``v1`` API holds it."""
    regarding = body.get("regarding") or {}
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {**(body.get("metadata") or {}), "name": name, "namespace": namespace,
                          "uid": str(uuid.uuid4()), "creationTimestamp": stamp},
             "involvedObject": dict(regarding), "type": body.get("type"), "reason": body.get("reason"),
             "message": body.get("note") or "", "eventTime": body.get("eventTime"), "action": body.get("action"),
             "reportingComponent": body.get("reportingController"),
             "reportingInstance": body.get("reportingInstance"), "source": {}}
    if body.get("related"):
        event["related"] = body["related"]
    if body.get("series"):
        event["series"] = body["series"]
    return event


def as_events_v1(event: dict) -> dict:
    """A stored (``v1``) Event as ``events.k8s.io/v1`` reads it."""
    return snapshot({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": event["metadata"],
                     "eventTime": event.get("eventTime"), "regarding": event["involvedObject"],
                     "type": event["type"], "reason": event["reason"], "note": event["message"],
                     "action": event.get("action"), "reportingController": event.get("reportingComponent"),
                     "reportingInstance": event.get("reportingInstance"),
                     **{new: event.get(old) for new, old in LEGACY.items() if event.get(old)}})
