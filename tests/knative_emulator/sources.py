"""Knative's event sources of ``knative/``: an ApiServerSource's changes (and, in :mod:`.ping`, a
PingSource's ticks), sent to the Broker's address over HTTP with faults injected.

Each send waits for the broker's answer however long it takes (no ``K_SINK_TIMEOUT``), as the
adapters' clients do, and is tried again, 5 times at most, after no answer or an answer the
CloudEvents SDK retries (:func:`send_once`).

The ApiServerSource (mode ``Resource``) lists and watches each of its resources in its own
namespace, as client-go's reflector does, and sends every watched change, once the previous
one's send has been answered, as ``dev.knative.apiserver.resource.{add,update,delete}``
carrying the object, with the extension attributes ``kind``, ``apiversion``, ``name`` and
``namespace`` and the ``subject`` the adapter makes (:func:`self_link`). Like the real adapter,
whose store ignores ``Replace``, it sends nothing for what a list returns: objects that exist
when it starts, and changes made while a watch was gone (410 Gone, then a relist), are never
sent.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from functions.core.trial_kinds import KINDS

from .faults import Faults
from .messages import post

API_SERVER = "https://10.96.0.1:443"
"""The source the ApiServerSource adapter names: the API server it watches."""

PLURALS = {("katuna.dev/v1", "Study"): "studies", ("katuna.dev/v1", "Experiment"): "experiments",
           **{(version, kind.kind): kind.plural for kind in KINDS.values() for version in kind.api_versions}}
"""The resources a source may watch: study resources, and every trial kind (Jobs among them)."""
WATCH_SECONDS = 5
"""How long one watch request lasts before the reflector watches again (client-go: minutes)."""
CHANGES = {"ADDED": "add", "MODIFIED": "update", "DELETED": "delete"}
SEND_RETRIES, SEND_PERIOD = 5, 0.05
RETRIED = frozenset({404, 413, 425, 429, 502, 503, 504})
"""The answers the CloudEvents SDK's HTTP sender tries again after (sdk-go protocol/http
``defaultRetriableErrors``): not the ingress's 500 (a fan-out that failed) nor its 400."""


def guessed_plural(kind: str) -> str:
    """The resource apimachinery's ``UnsafeGuessKindToResource`` makes of a kind: lower case,
    then ``es`` after an ``s``, ``ies`` for a ``y``, else ``s`` (a kind ending in ``endpoints``
    as it is)."""
    singular = kind.lower()
    if singular.endswith("endpoints"):
        return singular
    if singular.endswith("s"):
        return singular + "es"
    return singular[:-1] + "ies" if singular.endswith("y") else singular + "s"


def self_link(obj: Mapping[str, Any]) -> str:
    """The ``subject`` of the adapter's event for ``obj`` (pkg/adapter/apiserver/events
    ``createSelfLink``): ``/apis/`` with the apiVersion as it is, so a core object's is
    ``/apis/v1/namespaces/ns/pods/name`` (not its API path, ``/api/v1/...``), and the resource
    guessed from the kind (:func:`guessed_plural`), not the API's own plural."""
    version = obj["apiVersion"]
    if "." in version and "/" not in version:
        version += "/versionUnknown"
    metadata = obj["metadata"]
    return f"/apis/{version}/namespaces/{metadata.get('namespace', '')}/{guessed_plural(obj['kind'])}/{metadata['name']}"


def resource_event(change: str, obj: Mapping[str, Any]) -> CloudEvent:
    """The adapter's event for a watched ``change`` (``add``, ``update`` or ``delete``) of ``obj``."""
    metadata = obj["metadata"]
    return CloudEvent(attributes={
        "type": f"dev.knative.apiserver.resource.{change}", "source": API_SERVER,
        "id": str(uuid.uuid4()), "time": datetime.now(UTC), "datacontenttype": "application/json",
        "subject": self_link(obj), "kind": obj["kind"], "apiversion": obj["apiVersion"], "name": metadata["name"],
        "namespace": metadata.get("namespace", "")}, data=dict(obj))


def send(ingress: str, event: CloudEvent, faults: Faults) -> None:
    """Send a source's event as many times as ``faults`` draw, each as :func:`send_once`."""
    for _ in range(faults.copies()):
        send_once(ingress, event)


def send_once(ingress: str, event: CloudEvent) -> int | None:
    """Post ``event`` as the adapters' CloudEvents client does (both adapters send with
    ``ContextWithRetriesExponentialBackoff(50 ms, 5)``): again after no answer or an answer the
    SDK retries (:data:`RETRIED`), waiting 100 ms, 200 ms, ... 1.6 s; any other answer, or the
    fifth retry's, is the send's (the adapter logs a failure, and the event is lost). The answer."""
    for retry in range(SEND_RETRIES + 1):
        status, _, _ = post(ingress, event, None)
        if status is not None and status not in RETRIED:
            return status
        if retry < SEND_RETRIES:
            time.sleep(SEND_PERIOD * 2 ** (retry + 1))
    return status


class Gone(Exception):
    """The watch's resourceVersion is too old (410): the reflector must list again."""


class ApiServerSource:
    """An ApiServerSource manifest's resources, watched on ``api`` in ``namespace``."""

    def __init__(self, manifest: Mapping[str, Any], api: str, ingress: str, faults: Faults,
                 namespace: str = "katuna") -> None:
        spec = manifest["spec"]
        if spec.get("mode") != "Resource":
            raise ValueError("ApiServerSource: only mode Resource is emulated")
        unknown = set(spec) - {"mode", "serviceAccountName", "resources", "sink"}
        if unknown:
            raise ValueError(f"ApiServerSource spec: {sorted(unknown)} not emulated")
        self.api, self.ingress, self.faults, self.namespace = api.rstrip("/"), ingress, faults, namespace
        self.user = f"system:serviceaccount:{namespace}:{spec['serviceAccountName']}"
        """Who the source is to the API server (the stand-in takes the user name as the bearer token)."""
        self.sent = 0
        self.lists = 0
        """Lists made (one per resource at the start, one more after each 410)."""
        self.relists = 0
        self.watching = 0
        """Watches open now."""
        self._counting = threading.Lock()
        self._connections: set[http.client.HTTPConnection] = set()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._threads = [threading.Thread(target=self._reflect, args=(resource,), daemon=True)
                         for resource in spec["resources"]]
        for thread in self._threads:
            thread.start()

    def _path(self, resource: Mapping[str, Any]) -> str:
        key = (resource["apiVersion"], resource["kind"])
        if key not in PLURALS:
            raise ValueError(f"ApiServerSource: resource {key} not emulated")
        group = "/api/v1" if "/" not in key[0] else f"/apis/{key[0]}"
        return f"{self.api}{group}/namespaces/{self.namespace}/{PLURALS[key]}"

    @staticmethod
    def _selector(resource: Mapping[str, Any]) -> str:
        """A label selector as the query string writes it (``matchLabels`` and ``Exists``)."""
        selector = resource.get("selector") or {}
        expressions = selector.get("matchExpressions") or []
        if set(selector) - {"matchLabels", "matchExpressions"} or any(e["operator"] != "Exists" for e in expressions):
            raise ValueError(f"ApiServerSource selector {selector} not emulated")
        terms = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
        return ",".join(terms + [expression["key"] for expression in expressions])

    def _reflect(self, resource: Mapping[str, Any]) -> None:
        """List, then watch from the list's resourceVersion; on 410 list again (and send nothing
        for what changed meanwhile); on a closed or broken watch (cut mid-chunk: http.client's
        ``IncompleteRead``), or a failed list, try again from the last version seen, as client-go's
        reflector does, until :meth:`close`."""
        path, selector = self._path(resource), self._selector(resource)
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(path, selector)
                self._running.wait()
                for change, obj in self._watch(path, selector, version):
                    version = obj.get("metadata", {}).get("resourceVersion") or version
                    if change in CHANGES:
                        self._emit(resource, CHANGES[change], obj)
            except Gone:
                self.relists += 1
                version = None
            except (OSError, http.client.HTTPException, ValueError):
                self._stop.wait(0.2)

    def _get(self, url: str, timeout: float) -> Any:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.user}"})
        return urllib.request.urlopen(request, timeout=timeout)

    def _list(self, path: str, selector: str) -> str:
        """The resourceVersion of a list (whose items, as the adapter's store ignores them, send nothing)."""
        query = urllib.parse.urlencode({"labelSelector": selector} if selector else {})
        with self._get(f"{path}?{query}", 30) as response:
            version = json.loads(response.read())["metadata"]["resourceVersion"]
        with self._counting:
            self.lists += 1
        return version

    def _watch(self, path: str, selector: str, version: str) -> Iterator[tuple[str, dict]]:
        """The watch's changes, over a connection of its own that :meth:`close` can cut."""
        query = {"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true", "timeoutSeconds": str(WATCH_SECONDS)}
        if selector:
            query["labelSelector"] = selector
        url = urllib.parse.urlsplit(f"{path}?{urllib.parse.urlencode(query)}")
        connection = http.client.HTTPConnection(url.netloc, timeout=60)
        with self._counting:
            self._connections.add(connection)
        try:
            connection.request("GET", f"{url.path}?{url.query}", headers={"Authorization": f"Bearer {self.user}"})
            response = connection.getresponse()
            if response.status == 410:
                raise Gone()
            if response.status != 200:
                raise OSError(f"watch answered {response.status}: {response.read()[:200]!r}")
            with self._counting:
                self.watching += 1
            try:
                yield from self._lines(response)
            finally:
                with self._counting:
                    self.watching -= 1
        finally:
            with self._counting:
                self._connections.discard(connection)
            connection.close()

    def _lines(self, response: Any) -> Iterator[tuple[str, dict]]:
        with response:
            for line in response:
                if self._stop.is_set() or not self._running.is_set():
                    return
                if not line.strip():
                    continue
                item = json.loads(line)
                if item["type"] == "ERROR":
                    if item["object"].get("code") == 410:
                        raise Gone()
                    raise ValueError(f"watch error: {item['object']}")
                yield item["type"], item["object"]

    def _emit(self, resource: Mapping[str, Any], change: str, obj: dict) -> None:
        obj.setdefault("apiVersion", resource["apiVersion"])
        obj.setdefault("kind", resource["kind"])
        self.sent += 1
        send(self.ingress, resource_event(change, obj), self.faults)

    def pause(self) -> None:
        """Cut the source off the API server (its watches end at their next line, a bookmark at
        the latest), as a network partition or a restart of the adapter's pod would."""
        self._running.clear()

    def resume(self) -> None:
        """Watch again from the last version seen (410 Gone if the API no longer keeps it)."""
        self._running.set()

    def close(self) -> None:
        """Stop watching: each open watch is cut rather than waited out to its next line."""
        self._stop.set()
        self._running.set()
        with self._counting:
            connections = list(self._connections)
        for connection in connections:
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=WATCH_SECONDS + 5)
