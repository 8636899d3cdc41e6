"""The pod Knative Serving makes of ``knative/service.yaml``, as the Kubernetes API must take it.

Serving's revision reconciler builds the Deployment's pod from the Service's template
(knative/serving pkg/reconciler/revision/resources/deploy.go ``makeServingContainer``): the
serving container's port is renamed ``user-port``; its readiness probe is taken out (queue-proxy
runs it against the container); a liveness probe gets the serving port (``rewriteUserLivenessProbe``,
whatever port it named while ``multi-container-probing`` is off, as it is by default); a startup
probe is passed on as it is, so one naming no port reaches the API server with port 0, which
refuses the Deployment (``ValidatePortNumOrName``: 1 to 65535, or a port name) and the revision
never gets a pod.
"""

from __future__ import annotations

import copy
import re

import pytest
from test_deploy import KNATIVE, pod_spec
from test_deploy_kustomize import COMPONENTS, render

USER_PORT_NAME = "user-port"
"""The name Serving gives the serving container's port in the pod (``buildContainerPorts``)."""

PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
"""An IANA service name, as ``ValidatePortNumOrName`` takes a port given by name (no ``--``)."""


def knatives_pod_container(container: dict) -> dict:
    """The serving container as Serving puts it in the revision's Deployment."""
    built = copy.deepcopy(container)
    port = (built.get("ports") or [{}])[0].get("containerPort", 8080)
    built["ports"] = [{"name": USER_PORT_NAME, "containerPort": port}]
    readiness = built.get("readinessProbe") or {}
    if {"httpGet", "tcpSocket", "grpc"} & set(readiness):
        del built["readinessProbe"]
    for handler in ("httpGet", "tcpSocket"):
        action = (built.get("livenessProbe") or {}).get(handler)
        if action is not None:
            action["port"] = port
    return built


def probe_port_problems(container: dict) -> list[str]:
    """What the API server refuses in the probes the kubelet runs: a port that is neither a
    number from 1 to 65535 nor a port name; and, beyond its rules, a port the container does
    not listen on (the probe would never pass)."""
    ports = {p["containerPort"] for p in container.get("ports", [])} | {p.get("name") for p in container.get("ports", [])}
    problems = []
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        for handler in ("httpGet", "tcpSocket"):
            action = (container.get(probe) or {}).get(handler)
            if action is None:
                continue
            port = action.get("port", 0)
            if not (isinstance(port, int) and 1 <= port <= 65535 or isinstance(port, str) and PORT_NAME.match(port)):
                problems.append(f"{probe}.{handler}.port: Invalid value: {port!r}: must be between 1 and 65535")
            elif port not in ports:
                problems.append(f"{probe}.{handler}.port: {port!r} is no port of the container")
    return problems


def test_the_probes_the_kubelet_runs_name_the_serving_port():
    assert probe_port_problems(knatives_pod_container(pod_spec()["containers"][0])) == []


def test_every_components_service_gets_probes_the_api_server_takes():
    [service] = [doc for doc in render(KNATIVE, components=COMPONENTS)
                 if doc["kind"] == "Service" and doc["apiVersion"].startswith("serving.knative.dev")]
    container = service["spec"]["template"]["spec"]["containers"][0]
    assert probe_port_problems(knatives_pod_container(container)) == []


@pytest.mark.parametrize(("probe", "refused"), [
    ("startupProbe", True), ("livenessProbe", False), ("readinessProbe", False)])
def test_a_probe_naming_no_port_is_refused_only_where_serving_passes_it_on_as_it_is(probe: str, refused: bool):
    container = {"name": "c", "image": "i", "ports": [{"containerPort": 8080}],
                 probe: {"httpGet": {"path": "/healthz"}, "periodSeconds": 10}}
    problems = probe_port_problems(knatives_pod_container(container))
    assert problems == ([f"{probe}.httpGet.port: Invalid value: 0: must be between 1 and 65535"] if refused else [])
    elsewhere = probe_port_problems(knatives_pod_container({**container, probe: {"httpGet": {
        "path": "/healthz", "port": 8081}}}))
    assert elsewhere == ([f"{probe}.httpGet.port: 8081 is no port of the container"] if refused else [])
