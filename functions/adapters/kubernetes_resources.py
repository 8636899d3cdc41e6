"""The resources port on Kubernetes (study resources read, their status written; Katib's
Experiments and StudyJobs listed and their Trials and Suggestions kept up to date; ConfigMaps
holding trial templates read) and the nodes port (a pool's Node objects listed), through the
client and error translation of
:mod:`functions.adapters.kubernetes_executor`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableSequence, Sequence
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from functions.adapters.kubernetes_client import all_pages, call, read_or_none, translate, unrouted
from functions.adapters.kubernetes_events import KubernetesEvents
from functions.adapters.kubernetes_suggestions import Suggestions
from functions.adapters.kubernetes_trials import Trials
from functions.core.cluster_templates import ConfigMapForbidden
from functions.core.errors import NoKubernetesApi, PermanentError, TemporaryError
from functions.core.node_hours import NodeSeen
from functions.core.resource_events import Happening, Regarding
from functions.core.resources import GROUP, KATIB_API_VERSIONS, KINDS, PLURALS, VERSION, Ref
from functions.core.status_room import fitted, room

WRITE_TRIES = 5
"""Status writes tried before giving up (a TemporaryError: the event is delivered again), each
one overtaken by another write to the resource after it was read."""
LIST_PAGE = 500
"""Objects asked for in one list request (the API's ``limit``; ``continue`` asks for more): study
resources, Katib's Experiments and StudyJobs, nodes."""


class KubernetesResources:
    """Implements :class:`functions.core.ports.Resources` with the custom objects API; the
    client is made at first use."""

    def __init__(self, connect: Callable[[], client.ApiClient], katib_api: bool = False) -> None:
        self._connect = connect
        self._api: client.CustomObjectsApi | None = None
        self._core: client.CoreV1Api | None = None
        self.katib_api = katib_api
        self._trials = Trials(self._objects, self._is)
        self._suggestions = Suggestions(self._objects)
        self._events: KubernetesEvents | None = None

    def _objects(self) -> client.CustomObjectsApi:
        if self._api is None:
            try:
                self._api = client.CustomObjectsApi(self._connect())
            except config.ConfigException as exc:
                raise NoKubernetesApi(f"no Kubernetes API to read study resources from: not in a cluster, no "
                                      f"KATUNA_K8S_API and no usable kubeconfig ({' '.join(str(exc).split())}); a "
                                      "Kubernetes resource's event is handled by a katuna that reaches the cluster's "
                                      "API: in the cluster, or with KATUNA_K8S_API or KUBECONFIG set") from exc
        return self._api

    def get(self, ref: Ref) -> Mapping[str, Any] | None:
        """The resource, or None when the API answers that it is not there. A 404 for its kind's
        path (:func:`~functions.adapters.kubernetes_client.unrouted`) says nothing of the
        resource: a :class:`TemporaryError`, so that a study is never ended as deleted while its
        resource may be there (its event is delivered again)."""
        try:
            return cast(Mapping[str, Any], self._objects().get_namespaced_custom_object(
                ref.group, ref.version, ref.namespace, ref.plural, ref.name))
        except ApiException as exc:
            if exc.status == 404 and not unrouted(exc):
                return None
            if exc.status == 404:
                raise TemporaryError(f"could not read {ref}: the Kubernetes API does not serve "
                                     f"{ref.plural}.{ref.group}/{ref.version} now ({exc.status} {exc.reason}: "
                                     f"{' '.join(str(exc.body).split())})") from exc
            raise translate(exc, f"read {ref}") from exc
        except HTTPError as exc:
            raise translate(exc, f"read {ref}") from exc

    def write_status(self, ref: Ref, uid: str, status: Callable[[], Mapping[str, Any]]) -> bool:
        """Read the resource, then replace its status subresource with what ``status()`` computes
        now, cut to what etcd leaves beside the resource as read (:func:`~functions.core.status_room.fitted`),
        over the version read only; a write that another overtook (the resource changed in
        between) reads and computes again, so a status computed earlier never lands over a later
        one, whichever write ends last. False when the resource is gone or is another one of the
        same name."""
        for _ in range(WRITE_TRIES):
            current = self.get(ref)
            metadata = (current or {}).get("metadata") or {}
            if metadata.get("uid") != uid:
                return False
            if self._replace_status(ref, uid, metadata["resourceVersion"], fitted(status(), room(current or {}))):
                return True
        raise TemporaryError(f"the status of {ref} was changed by another writer under each of {WRITE_TRIES} writes")

    def _replace_status(self, ref: Ref, uid: str, version: str, status: Mapping[str, Any]) -> bool:
        """A JSON patch of the status subresource whose first operations test ``/metadata/uid`` and
        ``/metadata/resourceVersion``: the API refuses the whole patch (422) for a resource deleted
        and made again under the same name, or changed since ``version`` was read, as Katib's
        own status update (which carries the resourceVersion) gets a 409. (A merge patch cannot
        guard: the status subresource ignores ``metadata`` in it.) Keys whose value is None are
        left out. False when refused so, or gone."""
        patch: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": uid},
                 {"op": "test", "path": "/metadata/resourceVersion", "value": version},
                 {"op": "add", "path": "/status", "value": {k: v for k, v in status.items() if v is not None}}]
        try:
            self._objects().patch_namespaced_custom_object_status(
                ref.group, ref.version, ref.namespace, ref.plural, ref.name, patch,
                _content_type="application/json-patch+json")
        except ApiException as exc:
            if exc.status == 404 or (exc.status == 422 and not self._is(ref, uid, version)):
                return False
            raise translate(exc, f"write the status of {ref}") from exc
        except HTTPError as exc:
            raise translate(exc, f"write the status of {ref}") from exc
        return True

    def _is(self, ref: Ref, uid: str, version: str | None = None) -> bool:
        """Whether the resource at ``ref`` is the one with ``uid`` (and, given ``version``, still
        at that resourceVersion): the API's answer to a failed ``test`` operation (422, "the
        server rejected our request due to an error in our request") does not say which
        operation failed."""
        metadata = (self.get(ref) or {}).get("metadata") or {}
        return metadata.get("uid") == uid and version in (None, metadata.get("resourceVersion"))

    def list(self, namespace: str) -> list[Mapping[str, Any]]:
        """Every Study and Experiment in ``namespace``, read page by page, started again where a
        page's token expired (:func:`~functions.adapters.kubernetes_client.all_pages`); each item
        with its ``apiVersion`` and ``kind``; none of a kind whose definition is not installed (404)."""
        found: list[Mapping[str, Any]] = []
        for kind in KINDS[f"{GROUP}/{VERSION}"]:
            plural = PLURALS[kind]
            pages = read_or_none(partial(all_pages, partial(self._page, namespace, plural), _continue_of),
                                 f"list the {plural} in namespace {namespace}")
            found += [{**item, "apiVersion": f"{GROUP}/{VERSION}", "kind": kind}
                      for page in pages or [] for item in page.get("items") or []]
        return found

    def _page(self, namespace: str, plural: str, token: str) -> Any:
        """One page of a list, from where ``token`` (the last page's ``continue``) left off."""
        if token:
            return self._objects().list_namespaced_custom_object(GROUP, VERSION, namespace, plural, limit=LIST_PAGE,
                                                                 _continue=token)
        return self._objects().list_namespaced_custom_object(GROUP, VERSION, namespace, plural, limit=LIST_PAGE)

    def list_katib(self) -> Sequence[Mapping[str, Any]]:
        """Every Katib Experiment and StudyJob in every namespace the service may list, read
        page by page as :meth:`list` reads (:data:`LIST_PAGE` at a time, started again where a
        page's token expired), so a cluster of many Experiments is never one answer of them all;
        none of a kind whose definition is not installed."""
        found: list[Mapping[str, Any]] = []
        if not self.katib_api:
            return found
        for api_version in KATIB_API_VERSIONS:
            group, _, version = api_version.partition("/")
            for kind in KINDS[api_version]:
                pages = read_or_none(partial(all_pages, partial(self._cluster_page, group, version, PLURALS[kind]),
                                             _continue_of), f"list the {PLURALS[kind]}.{group}")
                found += [{**item, "apiVersion": api_version, "kind": kind}
                          for page in pages or [] for item in page.get("items") or []]
        return found

    def _cluster_page(self, group: str, version: str, plural: str, token: str) -> Any:
        """One page of a list across namespaces, from where ``token`` left off."""
        if token:
            return self._objects().list_cluster_custom_object(group, version, plural, limit=LIST_PAGE,
                                                              _continue=token)
        return self._objects().list_cluster_custom_object(group, version, plural, limit=LIST_PAGE)

    def put_trials(self, owner: Ref, trials: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        """Write the status of each Trial given, creating the Trial first where the API has none:
        one request per Trial that is the Experiment's, three for a new one, and no list, so a
        write costs what the Trials given cost, however many the Experiment has. A Trial an
        earlier Experiment of the same name left is replaced (:mod:`functions.adapters.kubernetes_trials`).
        The uid of each Trial written, by name."""
        return self._trials.put(owner, trials)

    def put_suggestion(self, owner: Ref, uid: str, wanted: Callable[[], Mapping[str, Any]]) -> None:
        """Make the Experiment's Suggestion what ``wanted()`` computes once it was read: one read
        where it is so already, a write more for its spec or its status where either changed
        (:mod:`functions.adapters.kubernetes_suggestions`)."""
        self._suggestions.put(owner, uid, wanted)

    def record_events(self, regarding: Regarding, happenings: Sequence[Happening]) -> Sequence[str]:
        """Record an Event of each happening about ``regarding``, best effort
        (:mod:`functions.adapters.kubernetes_events`), through the client the resources were
        written with; the names of those recorded."""
        if self._events is None:
            self._events = KubernetesEvents(self._objects().api_client)
        return self._events.record(regarding, happenings)

    def delete_trials(self, owner: Ref, uid: str, names: Sequence[str]) -> None:
        """Delete each Trial named that is the Experiment's (``uid``); one already gone (404), or
        another's, is left."""
        self._trials.delete(owner, uid, names)

    def read_config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The ConfigMap's ``data`` (none: empty), or None when it is not there; a refusal (403)
        names the grant katuna lacks there."""
        if self._core is None:
            try:
                self._core = client.CoreV1Api(self._connect())
            except config.ConfigException as exc:
                raise TemporaryError(f"no Kubernetes API to read ConfigMaps: {exc}") from exc
        doing = f"read the ConfigMap {namespace}/{name}"
        try:
            found = read_or_none(partial(self._core.read_namespaced_config_map, name, namespace), doing)
        except PermanentError as exc:
            if isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 403:
                raise ConfigMapForbidden(f"katuna's service account may not get configmaps in namespace {namespace!r}: "
                                         "bind the katuna-trial-templates ClusterRole (knative/rbac.yaml, which grants "
                                         "get on configmaps and nothing else) there with a RoleBinding, or the "
                                         "katuna-trials ClusterRole where trials run there") from exc
            raise
        return None if found is None else dict(found.data or {})


class KubernetesNodes:
    """Implements :class:`functions.core.ports.Nodes` with the core API's node list (a cluster
    scope read: katuna's ClusterRole grants ``list nodes``); the client is made at first use."""

    def __init__(self, connect: Callable[[], client.ApiClient]) -> None:
        self._connect = connect
        self._api: client.CoreV1Api | None = None

    def _core(self) -> client.CoreV1Api:
        if self._api is None:
            try:
                self._api = client.CoreV1Api(self._connect())
            except config.ConfigException as exc:
                raise TemporaryError(f"no Kubernetes API to list nodes: {exc}") from exc
        return self._api

    def list(self, labels: Mapping[str, str]) -> list[NodeSeen]:
        """The nodes carrying every one of ``labels`` whose kubelet posts their status, page by
        page: one whose ``Ready`` condition is ``Unknown`` (its VM stopped, as GKE stops a
        preempted spot VM and keeps its Node) runs nothing and is not billed for."""
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        dates: list[float] = []
        pages = call(lambda: all_pages(partial(self._page, selector, dates),
                                       lambda page: page.metadata._continue or ""),
                     f"list the nodes labelled {selector}")
        listed_at = dates[-1] if dates else None
        return [NodeSeen(node.metadata.name, node.metadata.creation_timestamp.timestamp(), listed_at)
                for page in pages for node in page.items or [] if not _unreachable(node)]

    def _page(self, selector: str, dates: MutableSequence[float], token: str) -> Any:
        """One page of the node list, from where ``token`` (the last page's ``continue``) left off;
        the API server's time when it answered (its ``Date`` header) added to ``dates``."""
        if token:
            page, _, headers = self._core().list_node_with_http_info(label_selector=selector, limit=LIST_PAGE,
                                                                     _continue=token)
        else:
            page, _, headers = self._core().list_node_with_http_info(label_selector=selector, limit=LIST_PAGE)
        date = _date(headers or {})
        if date is not None:
            dates.append(date)
        return page


def _continue_of(page: Mapping[str, Any]) -> str:
    """A custom object list page's ``continue`` token; empty on the last page."""
    return (page.get("metadata") or {}).get("continue") or ""


def _unreachable(node: Any) -> bool:
    """Whether the node's kubelet stopped posting its status (``Ready`` is ``Unknown``)."""
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "Unknown" for c in conditions)


def _date(headers: Mapping[str, str]) -> float | None:
    """An answer's ``Date`` header as seconds since the epoch; None when it has none it can read."""
    try:
        return parsedate_to_datetime(headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
