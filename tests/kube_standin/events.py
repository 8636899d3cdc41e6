"""Events (core/v1) as the API server stores and lists them, and as client-go's legacy event
recorder writes them (``tools/record``, what kube-scheduler's older builds, the controllers and
the cluster autoscaler use): one Event per object, reason and message, its ``count`` and
``lastTimestamp`` moved on when the same is recorded again (the recorder's ``EventCorrelator``),
named ``<object>.<16 hex digits>`` in the object's namespace, ``source.component`` and
``reportingComponent`` the recorder's component. Similar events, those of one object, type,
reason and component that differ only by message (a Job controller's ``FailedCreate``, each
naming the pod the API server refused by the name it drew), are combined as its
``EventAggregator`` combines them (``events_cache.go``): once :data:`AGGREGATE_EVENTS` different
messages were recorded with no gap longer than :data:`AGGREGATE_SECONDS` between two, each
further one counts up a single Event of its own, first recorded then, whose message is the
latest one behind :data:`COMBINED`.

A list takes a field selector over the fields the API server makes selectable for Events
(``EventToSelectableFields``, pkg/registry/core/event/strategy.go: ``metadata.name``,
``metadata.namespace``, ``involvedObject.*``, ``reason``, ``reportingComponent``, ``source``,
``type``), terms ``key=value``, ``key==value`` or ``key!=value`` joined by commas; any other key
is refused, 400 ``field label not supported: KEY`` (apimachinery's ``fields`` conversion)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from kube_standin.objects import snapshot, status

INVOLVED = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
TERM = re.compile(r"^(?P<key>[^!=]+)(?P<operator>==|!=|=)(?P<value>.*)$")
AGGREGATE_EVENTS = 10
"""Different messages of similar events after which they are combined (``defaultAggregateMaxEvents``)."""
AGGREGATE_SECONDS = 600
"""The longest gap between two similar events that keeps them together (``defaultAggregateIntervalInSeconds``)."""
COMBINED = "(combined from similar events): "
"""What the aggregator puts before the message of the Event combining similar ones
(``EventAggregatorByReasonMessageFunc``)."""

Similar = dict[tuple, tuple[frozenset[str], float]]
"""The aggregator's record, by similar events' key: their different messages, and when the last came."""


def record(events: list[dict], similar: Similar, obj: dict, kind: str, reason: str, message: str, stamp: str,
           component: str = "") -> None:
    """Record an Event about ``obj`` at ``stamp``: one of the same object, reason and message
    counts up instead, and similar ones are combined past :data:`AGGREGATE_EVENTS` (see the
    module); ``similar`` is the recorder's record of them."""
    meta = obj["metadata"]
    involved = {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta["uid"],
                "apiVersion": obj.get("apiVersion", "")}
    message = _aggregated(similar, (*involved.values(), kind, reason, component), message, stamp)
    same = next((e for e in events if (e["involvedObject"], e["type"], e["reason"], e["source"].get("component")) ==
                 (involved, kind, reason, component) and _same(e["message"], message)), None)
    if same is not None:
        same.update(count=same["count"] + 1, lastTimestamp=stamp, message=message)
        return
    events.append({"apiVersion": "v1", "kind": "Event",
                   "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta.get("namespace"),
                                "uid": str(uuid.uuid4()), "creationTimestamp": stamp},
                   "involvedObject": involved, "type": kind, "reason": reason, "message": message, "count": 1,
                   "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": component},
                   "reportingComponent": component, "reportingInstance": ""})


def _aggregated(similar: Similar, key: tuple, message: str, stamp: str) -> str:
    """The message to record: ``message``, or behind :data:`COMBINED` once similar events (of
    ``key``) gave :data:`AGGREGATE_EVENTS` different ones without a gap longer than
    :data:`AGGREGATE_SECONDS` (the record keeps one fewer then, as the aggregator's does)."""
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    messages, last = similar.get(key, (frozenset(), float("-inf")))
    messages = (frozenset() if at - last > AGGREGATE_SECONDS else messages) | {message}
    if len(messages) < AGGREGATE_EVENTS:
        similar[key] = (messages, at)
        return message
    similar[key] = (messages - {min(messages)}, at)
    return COMBINED + message


def _same(recorded: str, message: str) -> bool:
    """Whether an Event recorded with message ``recorded`` is the one ``message`` counts up: the
    same message, or, for a combined one, the Event combining them."""
    return recorded == message or (recorded.startswith(COMBINED) and message.startswith(COMBINED))


def selectable(event: dict) -> dict[str, str]:
    """The fields a selector may name, with their values (``source`` falls back to the reporting component)."""
    fields = {f"involvedObject.{key}": str(event["involvedObject"].get(key) or "") for key in INVOLVED}
    return {**fields, "metadata.name": event["metadata"]["name"], "metadata.namespace": event["metadata"]["namespace"]
            or "", "reason": event["reason"], "type": event["type"], "reportingComponent": event["reportingComponent"],
            "source": event["source"].get("component") or event["reportingComponent"]}


def listed(events: list[dict], namespace: str | None, selector: str | None, version: int) -> tuple[int, dict]:
    """The list answer: the Events of ``namespace`` (all when None) the field ``selector`` selects."""
    terms = []
    for term in (t.strip() for t in (selector or "").split(",") if t.strip()):
        found = TERM.match(term)
        if found is None:
            return 400, status(400, "BadRequest", f"invalid selector: '{selector}'; can't understand '{term}'")
        if found["key"] not in selectable(_blank()):
            return 400, status(400, "BadRequest", f"field label not supported: {found['key']}")
        terms.append((found["key"], found["operator"] != "!=", found["value"]))
    items = [snapshot(e) for e in events if namespace in (None, e["metadata"]["namespace"])
             and all((selectable(e)[key] == value) == equal for key, equal, value in terms)]
    return 200, {"apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": str(version)}, "items": items}


def _blank() -> dict:
    return {"involvedObject": {}, "metadata": {"name": "", "namespace": ""}, "reason": "", "type": "",
            "reportingComponent": "", "source": {"component": ""}}
