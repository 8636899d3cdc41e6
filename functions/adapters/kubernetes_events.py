"""Kubernetes Events about the resources katuna keeps (:mod:`functions.core.resource_events`),
written through ``events.k8s.io/v1``, which ``kubectl describe`` and ``kubectl get events``
read through ``v1`` as any controller's.

Each Event is created under its happening's name (:func:`~functions.core.resource_events.event_name`):
the API's 409 (AlreadyExists) says it was recorded before, by an earlier run of the same
handling. The names recorded, or found recorded, are returned: a report keeps those of a Trial's
Events with its trial in the store, and that of a study's end with the study, and asks for none
of them again, whichever process reports it next (:mod:`functions.handlers.writeback`). A
process also asks for each Event once: the names it recorded are kept (the latest
:data:`RECALLED`), for reports made at once, before the store has the names. An Event is best
effort: a write refused (403, where katuna's account may not ``create events`` in the
namespace), failed (5xx) or not answered is logged once per namespace and answer, and never
fails, nor makes repeat, the handling that recorded it."""

from __future__ import annotations

import logging
import socket
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from functions.core.resource_events import Happening, Regarding, event_name

log = logging.getLogger("katuna.kubernetes")

CONTROLLER = "katuna.dev/katuna"
"""The Events' ``reportingController`` (a qualified name, as the API requires)."""
INSTANCE_BYTES = 128
"""The longest ``reportingInstance`` the API takes, in bytes."""
RECALLED = 8192
"""How many Event names a process keeps as recorded: the Events of its running trials, a few each."""


class KubernetesEvents:
    """Records Events with the ``events.k8s.io/v1`` API through the client ``api``."""

    def __init__(self, api: client.ApiClient) -> None:
        self._events_v1 = client.EventsV1Api(api)
        self._instance = socket.gethostname().encode()[:INSTANCE_BYTES].decode(errors="ignore") or "katuna"
        self._said: set[tuple[str, str]] = set()
        self._recorded: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, regarding: Regarding, happenings: Sequence[Happening]) -> list[str]:
        """Create the Event of each happening about ``regarding`` that is not there yet; the
        names of those recorded, now or before."""
        return [name for happening in happenings if (name := self._create(regarding, happening)) is not None]

    def _create(self, regarding: Regarding, happening: Happening) -> str | None:
        """Create one Event, unless this process recorded it already, and return its name; one
        already there is recorded, a failure is logged once (None: asked again at the next report)."""
        body = event(regarding, happening, self._instance)
        name = body["metadata"]["name"]
        key = (regarding.namespace, name)
        if self._recalled(key):
            return name
        try:
            self._events_v1.create_namespaced_event(regarding.namespace, cast(client.EventsV1Event, body))
        except ApiException as exc:
            if exc.status != 409:
                self._say(regarding, f"{exc.status} {exc.reason}", " ".join(str(exc.body).split())[:300])
                return None
        except (HTTPError, OSError, ValidationError) as exc:
            self._say(regarding, type(exc).__name__, str(exc)[:300])
            return None
        self._recall(key)
        return name

    def _recalled(self, key: tuple[str, str]) -> bool:
        """Whether this process recorded the Event ``key`` (namespace, name)."""
        with self._lock:
            if key not in self._recorded:
                return False
            self._recorded.move_to_end(key)
            return True

    def _recall(self, key: tuple[str, str]) -> None:
        """Keep the Event ``key`` as recorded, forgetting the least recently used past :data:`RECALLED`."""
        with self._lock:
            self._recorded[key] = None
            if len(self._recorded) > RECALLED:
                self._recorded.popitem(last=False)

    def _say(self, regarding: Regarding, answer: str, detail: str) -> None:
        """Log a failed Event write, once per namespace and answer for the process's life."""
        with self._lock:
            if (regarding.namespace, answer) in self._said:
                return
            self._said.add((regarding.namespace, answer))
        log.warning("could not record Events in namespace %s (%s: %s); the %s %s and its like get none there, "
                    "and nothing else changes: katuna's account needs `create` on events.events.k8s.io there "
                    "(the katuna-trials ClusterRole grants it)", regarding.namespace, answer, detail,
                    regarding.kind, regarding.name)


def event(regarding: Regarding, happening: Happening, instance: str) -> dict[str, Any]:
    """The ``events.k8s.io/v1`` Event of ``happening`` about ``regarding``, in its namespace."""
    return {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": event_name(regarding, happening.key), "namespace": regarding.namespace},
        "eventTime": micro_time(happening.at), "reportingController": CONTROLLER, "reportingInstance": instance,
        "action": happening.action, "reason": happening.reason, "type": happening.type, "note": happening.note,
        "regarding": {"apiVersion": regarding.api_version, "kind": regarding.kind,
                      "namespace": regarding.namespace, "name": regarding.name, "uid": regarding.uid},
    }


def micro_time(seconds: float) -> str:
    """A ``MicroTime``, as the API writes one: RFC 3339 with microseconds."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
