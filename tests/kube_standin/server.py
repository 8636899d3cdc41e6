"""The HTTP faces of the stand-in: paths parsed as the API server parses them, each request
authorized as its user, then served by the cluster; watches stream one JSON event a line.

A request's bearer token names its user. Without one, the API server itself takes it as
``system:anonymous`` (anonymous authentication, its default), which RBAC grants nothing here:
every call is refused with 403, a SelfSubjectAccessReview included (``system:basic-user`` is
bound to authenticated users only). ``kubectl proxy`` instead adds its kubeconfig's credentials to
a request that carries none and passes a request's own ``Authorization`` on (client-go's
``bearerAuthRoundTripper``): the proxy face takes a token-less request as katuna's ServiceAccount,
as a proxy run with katuna's credentials would."""

from __future__ import annotations

import json
import re
from contextlib import suppress
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from kube_standin import access_review, etcd, fields, list_options, owner_refs
from kube_standin.history import Gone
from kube_standin.objects import status
from kube_standin.patches import APPLY_PATCH
from kube_standin.rbac import ANONYMOUS, Request, forbidden
from kube_standin.selectors import unreadable_selector

KATUNA_USER = "system:serviceaccount:katuna:katuna"
"""katuna's ServiceAccount: whose credentials the proxy face adds to a request without a token."""

PATH = re.compile(r"^/(?:api/(v1)|apis/([^/]+)/([^/]+))(?:/namespaces/([^/]+))?/([^/]+)(?:/([^/]+))?(?:/([^/]+))?$")


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str
    namespaced: bool = True


KINDS = {
    ("batch", "jobs"): Kind("Job", "batch/v1"),
    ("", "pods"): Kind("Pod", "v1"),
    ("", "nodes"): Kind("Node", "v1", namespaced=False),
    ("", "namespaces"): Kind("Namespace", "v1", namespaced=False),
    ("", "configmaps"): Kind("ConfigMap", "v1"),
    ("", "events"): Kind("Event", "v1"),
    ("events.k8s.io", "events"): Kind("Event", "events.k8s.io/v1"),
    ("", "secrets"): Kind("Secret", "v1"),
    ("", "persistentvolumeclaims"): Kind("PersistentVolumeClaim", "v1"),
    ("", "limitranges"): Kind("LimitRange", "v1"),
    ("katuna.dev", "studies"): Kind("Study", "katuna.dev/v1"),
    ("katuna.dev", "experiments"): Kind("Experiment", "katuna.dev/v1"),
}
"""Katib's kinds join these where the overlay is installed (:mod:`kube_standin.katib_api`)."""


DISCOVERY = re.compile(r"^/apis/([^/]+)/([^/]+)$")
"""The path of an API group version's discovery: the resources it serves, each with its kind."""


def discovery(cluster, user: str, group: str, version: str) -> tuple[int, dict | str]:
    """The API server's discovery of ``group``/``version`` (an ``APIResourceList``: each
    resource's name, kind and whether it is namespaced), which Kubernetes' ``system:discovery``
    ClusterRole lets every authenticated user read (anonymous requests are forbidden); a group
    version it does not serve is the 404 of a path it does not route."""
    if user == ANONYMOUS:
        return 403, status(403, "Forbidden", f'forbidden: User "{user}" cannot get path "/apis/{group}/{version}"')
    with cluster.lock:
        served = [(crd.plural, crd.kind, True) for crd in cluster.crds.values()
                  if crd.group == group and version in crd.versions]
        served += [(resource, kind.kind, kind.namespaced) for (named, resource), kind in cluster.kinds.items()
                   if named == group and kind.api_version == f"{group}/{version}"]
    if not served:
        return 404, ROUTE_NOT_FOUND
    verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
                 "resources": [{"name": name, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                                "verbs": verbs} for name, kind, namespaced in sorted(served)]}


GROUPS = re.compile(r"^/apis/?$")
"""The path of the API groups' discovery, with or without its slash (the aggregator serves both)."""


def group_list(cluster, user: str) -> tuple[int, dict | str]:
    """The API server's discovery of its groups (``GET /apis``, an ``APIGroupList``: each group
    and the versions it serves, the custom resources' included), which ``system:discovery``
    lets every authenticated user read (anonymous requests are forbidden). Versions in sorted
    order, the first preferred: Kubernetes' priority (``v1`` before ``v1beta1`` before
    ``v1alpha1``) for the versions the stand-in's kinds have."""
    if user == ANONYMOUS:
        return 403, status(403, "Forbidden", f'forbidden: User "{user}" cannot get path "/apis"')
    with cluster.lock:
        served = {(crd.group, version) for crd in cluster.crds.values() for version in crd.versions}
        served |= {(group, kind.api_version.rpartition("/")[2]) for (group, _), kind in cluster.kinds.items() if group}
    groups: dict[str, list[str]] = {}
    for group, version in sorted(served):
        groups.setdefault(group, []).append(version)
    return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": group, "versions": [{"groupVersion": f"{group}/{version}", "version": version} for version in versions],
         "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]}}
        for group, versions in groups.items()]}


@dataclass(frozen=True)
class Call:
    """One parsed request."""

    method: str
    group: str
    namespace: str | None
    resource: str
    name: str | None
    subresource: str
    query: dict[str, str]
    body: dict | None
    content_type: str
    version: str = ""
    dry_runs: tuple[str, ...] = ()
    """Every ``dryRun`` query parameter, in order (the API server reads them all, where
    :attr:`query` keeps the first of each)."""
    warnings: list[str] = field(default_factory=list)
    """What the answer warns of (``Warning`` headers), as serving it finds."""

    @property
    def watch(self) -> bool:
        """Whether the request asks for a watch: as the API server reads a boolean option, any
        value but ``false`` and ``0`` (in any case), an empty one included."""
        return truthy(self.query, "watch")

    @property
    def dry_run(self) -> bool:
        """Whether the request asks for a dry run (``dryRun=All``, the only value its options'
        validation lets through: :mod:`kube_standin.request_options`): admitted, validated and
        defaulted as any, answered as if done, nothing stored and no controller told."""
        return bool(self.dry_runs)

    def delete_options(self) -> dict:
        """A DELETE's options as the API server reads them: the body's when there is one (its
        query parameters are then ignored, ``propagationPolicy`` and ``dryRun`` included), else
        the query's (``dryRun`` a list, as in a body)."""
        if self.body is not None:
            return self.body
        options: dict = {k: v for k, v in self.query.items() if k in ("propagationPolicy", "orphanDependents")}
        return {**options, "dryRun": list(self.dry_runs)} if self.dry_runs else options

    def verb(self) -> str:
        if self.method == "GET":
            return "watch" if self.watch else ("get" if self.name else "list")
        return {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if self.name else "deletecollection"}[self.method]


def truthy(query: dict[str, str], name: str) -> bool:
    """A boolean option as the API server decodes it (``Convert_Slice_string_To_bool``): given
    with any value but ``false`` or ``0``, in any case."""
    return name in query and query[name].lower() not in ("false", "0")


def parse(method: str, raw_path: str, body: dict | None, content_type: str) -> Call | None:
    url = urlparse(raw_path)
    found = PATH.match(url.path)
    if not found:
        return None
    core, group, version, namespace, resource, name, subresource = found.groups()
    if resource == "namespaces" and namespace is not None and name is None:
        namespace, name = None, namespace
    given = parse_qs(url.query, keep_blank_values=True)
    query = {k: v[0] for k, v in given.items()}
    return Call(method, group or "", namespace, resource, name, subresource or "", query, body, content_type,
                version or core, tuple(given.get("dryRun", ())))


def _no_constant(name: str) -> float:
    """A bare ``NaN`` or ``Infinity`` is no JSON: the API server's decoder (Go's) refuses the body."""
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value ({name} is not JSON)")


ROUTE_NOT_FOUND = "404 page not found\n"
"""The body of the API server's 404 for a path it does not route (a kind it does not serve, a
version of a kind it does not serve): its delegation chain ends in Go's ``http.NotFound``
(k8s.io/apiserver pkg/util/notfoundhandler), plain text and no ``Status``. Clients show it as
"the server could not find the requested resource" (client-go makes that message when a 404
carries no Status); a 404 for an object that is not there is a ``Status`` naming it."""


def warning(text: str) -> str:
    """A ``Warning`` header's value as the API server sends it (RFC 7234: code 299, no agent)."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{quoted}"'


def handler(cluster, unauthenticated: str = ANONYMOUS) -> type[BaseHTTPRequestHandler]:
    """A request handler class serving ``cluster``, taking a request without a bearer token as
    ``unauthenticated``'s: ``system:anonymous`` for the API server itself, katuna's account for
    a ``kubectl proxy`` run with katuna's credentials."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        """Kept-alive connections, and chunked watch streams a client reads event by event."""
        disable_nagle_algorithm = True
        """An answer's headers and body go out at once (TCP_NODELAY), as an API server's do, not
        held back until the client acknowledges the headers (its delayed ACK: ~40 ms a request)."""

        def log_message(self, *args) -> None:
            return

        def date_time_string(self, timestamp: float | None = None) -> str:
            """The ``Date`` header, on the cluster's clock as an API server's is on its own."""
            return formatdate(cluster.clock.time() if timestamp is None else timestamp, usegmt=True)

        def _send(self, code: int, body: dict | str | bytes, warnings: list[str] | None = None) -> None:
            text = isinstance(body, str | bytes)
            data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            for text in warnings or ():
                self.send_header("Warning", warning(text))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _user(self) -> str:
            token = self.headers.get("Authorization", "")
            return token[len("Bearer "):] if token.startswith("Bearer ") else unauthenticated

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if (unauthenticated := cluster.faults.authentication()) is not None:
                self.rfile.read(length)
                self._send(*unauthenticated)
                return
            if self.command in ("POST", "PUT", "PATCH") and (too_large := etcd.body_refusal(length)) is not None:
                self.rfile.read(length)
                self._send(*too_large)
                return
            content_type = self.headers.get("Content-Type", "").partition(";")[0].strip()
            try:
                body = json.loads(self.rfile.read(length), parse_constant=_no_constant) if length else None
            except ValueError as exc:
                if content_type != APPLY_PATCH:
                    self._send(400, status(400, "BadRequest", f"the body of the request is no JSON: {exc}"))
                    return
                body = None
            if self.command == "POST" and urlparse(self.path).path == access_review.PATH:
                self._send(*access_review.answer(cluster.authorizer, self._user(), body))
                return
            if self.command == "GET" and GROUPS.fullmatch(urlparse(self.path).path):
                self._send(*group_list(cluster, self._user()))
                return
            if self.command == "GET" and (listed := DISCOVERY.fullmatch(urlparse(self.path).path)):
                self._send(*discovery(cluster, self._user(), *listed.groups()))
                return
            call = parse(self.command, self.path, body, content_type)
            if call is None:
                self._send(404, ROUTE_NOT_FOUND)
                return
            request = Request(self._user(), call.verb(), call.group, call.resource, call.subresource,
                              call.namespace or "", call.name or "")
            cluster.audit.append((request.verb, call.resource, call.namespace or "", call.name or ""))
            if not cluster.authorizer.allows(request):
                cluster.refused.append(request)
                self._send(*forbidden(request))
                return
            cluster.authorized.append(request)
            if (refused := owner_refs.refusal(request, body, content_type, self._stored(call), cluster.resource_of,
                                              cluster.authorizer.allows)):
                self._send(*refused)
            elif cluster.served(call.group, call.resource) is None or cluster.faults.unserved(call.verb(),
                                                                                              call.resource):
                # As the API server: authorization comes before routing, so a kind it does not
                # serve is refused (403) where not granted, and not found (404) where granted.
                self._send(404, ROUTE_NOT_FOUND)
            elif (unreadable := unreadable_selector(call.query.get("labelSelector")) or fields.unreadable(call)):
                self._send(400, status(400, "BadRequest", unreadable))
            elif (refused := list_options.refusal(call)) is not None:
                self._send(*refused)
            elif call.watch:
                self._watch(call)
            elif (refused := cluster.faults.refusal(call.verb(), call.resource)) is not None:
                self._send(*refused)
            else:
                answer = cluster.serve(call)
                if not cluster.faults.answering(call.verb(), call.resource):
                    self._send(*answer, call.warnings)
                    return
                with suppress(BrokenPipeError, ConnectionResetError):  # its caller may be gone
                    self._send(*answer, call.warnings)

        @staticmethod
        def _stored(call: Call) -> dict | None:
            """The object a replace or patch of ``call`` writes over, as a GET reads it; None for
            another call, or where there is none (serving the call then answers it)."""
            if call.method not in ("PUT", "PATCH") or not call.name or call.subresource \
                    or cluster.served(call.group, call.resource) is None:
                return None
            code, stored = cluster.serve(replace(call, method="GET", body=None, query={}, dry_runs=(), warnings=[]))
            return stored if code == 200 and isinstance(stored, dict) else None

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle  # noqa: N815

        def _watch(self, call: Call) -> None:
            kind = cluster.served(call.group, call.resource)
            timeout = float(call.query.get("timeoutSeconds") or 60)
            bookmarks = cluster.bookmark_seconds if truthy(call.query, "allowWatchBookmarks") else None
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                try:
                    for event in cluster.watch(call, cluster.clock.monotonic() + timeout, bookmarks):
                        if event["type"] == "BOOKMARK":
                            event["object"].update(kind=kind.kind, apiVersion=kind.api_version)
                        self._chunk(json.dumps(event).encode() + b"\n")
                except Gone as gone:
                    self._chunk(json.dumps({"type": "ERROR", "object": gone.status()}).encode() + b"\n")
                self._chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler
