"""Knative Eventing and Serving on loopback, for the katuna Service in reply mode.

:class:`KnativeCluster` wires the parts as ``knative/`` deploys them: the Broker and its
Triggers (:mod:`.broker`) at the Broker's address, ``K_SINK`` and ``K_CE_OVERRIDES`` as the
SinkBinding injects them, the PingSource and the
ApiServerSources (:mod:`.sources`) watching a Kubernetes API (the loopback stand-in), faults
on the sources' sends (:mod:`.faults`), the container as the image runs it, a process that can
be killed and started again (:mod:`.service`), and the Service's address in front of it,
holding it to the revision's ``containerConcurrency`` and ``timeoutSeconds`` and reaching the
container over queue-proxy's pool of kept-alive connections (:mod:`.serving`, :mod:`.queue_proxy`).
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from http_helpers import free_port

from .broker import Broker
from .faults import Faults
from .overrides import overrides_env
from .ping import PingSource
from .service import KatunaProcess
from .serving import Revision
from .sources import ApiServerSource
from .triggers import Addresses

MANIFESTS = Path(__file__).resolve().parents[2] / "knative"
SERVICE_REF = "serving.knative.dev/v1/Service/katuna"


def documents(components: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The objects of ``knative/``; with ``components`` (``trial-kinds/jobset``, say), as the
    kustomization renders with them added."""
    if components:
        from test_deploy_kustomize import render

        return render(MANIFESTS, components=components)
    return [doc for path in sorted(MANIFESTS.glob("*.yaml"))
            for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader) if doc]


def manifests(kind: str) -> list[dict[str, Any]]:
    """The objects of ``knative/`` of ``kind``."""
    return [doc for doc in documents() if doc.get("kind") == kind]


def sink_binding_env(broker: Broker, docs: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """What the SinkBinding of ``docs`` (``knative/``'s objects by default) adds to the katuna
    Service's containers (sinkbinding_lifecycle.go ``Do``): ``K_SINK``, the address of the Broker
    it names (as its ``status.address.url`` gives it, with the Broker's path), and
    ``K_CE_OVERRIDES``, its ``ceOverrides`` as JSON (:mod:`.overrides`: empty without them,
    refused where Eventing's webhook refuses them); ``K_CA_CERTS``, the CA of the Broker's
    https address, where the sink is that address (the Broker's ``transport_encryption``). A
    binding to a sink other than the Broker is refused loudly."""
    subject = ("serving.knative.dev/v1", "Service", "katuna")
    every = [b for b in (documents() if docs is None else docs) if b.get("kind") == "SinkBinding"]
    for binding in every:
        problem = subject_problem(binding, broker.name[0])
        if problem is not None:
            raise ValueError(f"SinkBinding {binding['metadata']['name']}: spec.subject: {problem}")
    bindings = [b for b in every if tuple(b["spec"]["subject"].get(key) for key in ("apiVersion", "kind", "name")) == subject]
    if len(bindings) != 1:
        raise ValueError("expected one SinkBinding of the katuna Service")
    spec, where = bindings[0]["spec"], f"SinkBinding {bindings[0]['metadata']['name']}"
    env = {"K_SINK": sink_of(spec["sink"], broker, where), "K_CE_OVERRIDES": overrides_env(spec.get("ceOverrides"), where)}
    if env["K_SINK"].startswith("https:") and broker.ca_pem is not None:
        env["K_CA_CERTS"] = broker.ca_pem
    return env


def subject_problem(binding: dict[str, Any], namespace: str) -> str | None:
    """What Eventing's webhook refuses in a SinkBinding's ``subject`` (knative.dev/pkg tracker
    ``Reference.Validate``, once defaulting gave it the binding's namespace, ``namespace`` where
    the binding names none; sinkbinding_validation.go), or None: no ``apiVersion`` or ``kind``,
    both or neither of ``name`` and ``selector``, a namespace other than the binding's."""
    subject = binding["spec"].get("subject") or {}
    missing = [field for field in ("apiVersion", "kind") if not subject.get(field)]
    if missing:
        return f"missing field(s): {', '.join(missing)}"
    if bool(subject.get("name")) == (subject.get("selector") is not None):
        return "expected exactly one of: name, selector"
    own = binding["metadata"].get("namespace", namespace)
    if subject.get("namespace", own) != own:
        return f"namespace {subject['namespace']!r}: expected the binding's own, {own!r}"
    return None


def sink_of(destination: dict[str, Any], broker: Broker, where: str) -> str:
    """The address a source's (or a binding's) ``sink`` resolves to, which must be a ref to the
    Broker (a ``uri`` beside it resolved against its address, as Knative's resolver does)."""
    namespace, name = broker.name
    ref = destination.get("ref") or {}
    if ref.get("kind") != "Broker" or ref.get("namespace", namespace) != namespace:
        raise ValueError(f"{where}: expected a sink ref to the Broker {namespace}/{name}, got {destination}")
    return Addresses({f"eventing.knative.dev/v1/Broker/{name}": broker.url}).resolve(destination, where)


def katuna_service(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The katuna Knative Service of the manifests."""
    found = [doc for doc in docs if doc["kind"] == "Service" and doc["apiVersion"] == "serving.knative.dev/v1"
             and doc["metadata"]["name"] == "katuna"]
    if len(found) != 1:
        raise ValueError("expected one Knative Service named katuna in the manifests")
    return found[0]


class KnativeCluster:
    """The service behind the broker, fed by the sources; ``token`` guards the service's API, and
    the broker delivers without it, as Knative's does without OIDC: the service believes katuna's
    own events on their signature alone; ``time_scale`` shrinks the Triggers' back-offs (:class:`Broker`);
    ``components`` of ``knative/`` are deployed too (their Triggers and their sources' resources);
    ``docs``, the objects deployed instead (``knative/``'s, changed or added to by a test);
    ``oidc`` and ``transport_encryption``, Eventing's features, as the Broker has them.
    ``url`` is the Service's address (:class:`Revision`), ``service.url`` the container's."""

    def __init__(self, workdir: Path, kube_api: str, *, faults: Faults | None = None, ping_interval: float = 1.0,
                 token: str | None = None, namespace: str = "katuna", time_scale: float = 1.0,
                 components: tuple[str, ...] = (), docs: list[dict[str, Any]] | None = None, oidc: bool = False,
                 transport_encryption: str = "disabled", **env: str) -> None:
        if docs is not None and components:
            raise ValueError("components or docs, not both: render the components into the docs")
        self.token, self.faults = token or secrets.token_urlsafe(16), faults or Faults()
        port = free_port()
        docs = documents(components) if docs is None else docs
        self.revision = Revision(katuna_service(docs), port)
        self.url = self.revision.url
        self.broker = Broker(docs, {SERVICE_REF: self.url}, namespace=namespace, time_scale=time_scale, oidc=oidc,
                             transport_encryption=transport_encryption)
        self.service = KatunaProcess(
            workdir, port=port, KATUNA_EVENTS="reply", **sink_binding_env(self.broker, docs),
            KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube_api, KATUNA_K8S_NAMESPACE=namespace,
            KATUNA_API_TOKEN=self.token, **{"KATUNA_TICK_FLOOR": str(ping_interval / 2), **env})
        self.sources = [ApiServerSource(doc, kube_api, sink_of(doc["spec"]["sink"], self.broker, doc["metadata"]["name"]),
                                        self.faults, namespace)
                        for doc in docs if doc["kind"] == "ApiServerSource"]
        [ping] = [doc for doc in docs if doc["kind"] == "PingSource"]
        self.ping = PingSource(ping, sink_of(ping["spec"]["sink"], self.broker, ping["metadata"]["name"]), self.faults,
                               ping_interval, namespace)

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The service's HTTP API with the token: status and JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def wait_for(self, study: str, timeout: float, statuses: tuple[str, ...] = ("completed", "failed", "stopped")) -> dict:
        """The study once it has ended (its record as the API shows it)."""
        deadline = time.monotonic() + timeout
        found: Any = None
        while time.monotonic() < deadline:
            try:
                status, found = self.api("GET", f"/studies/{study}")
            except OSError:
                status = 0
            if status == 200 and found["status"] in statuses:
                return found
            time.sleep(0.25)
        raise AssertionError(f"study {study} did not end within {timeout} s: {found}\n{self.service.log()[-4000:]}")

    def events_sent(self) -> int:
        """Events the broker took in (sources, replies and the service's K_SINK posts)."""
        return sum(self.broker.received.values())

    def close(self) -> None:
        self.ping.close()
        for source in self.sources:
            source.close()
        self.service.close()
        self.revision.close()
        self.broker.close()
