"""The resource an added workload kind is served at, as the API server's discovery lists it
(:mod:`functions.adapters.kubernetes_discovery`), through the real client on the stand-in."""

from __future__ import annotations

from kube_standin.workloads import Crd
from kube_stub import KubeStub
from kubernetes import client

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_discovery import served_resource

PROCESS = {"apiVersion": "example.com/v1", "kind": "BatchProcess", "spec": {}}
ELSEWHERE = {**PROCESS, "apiVersion": "example.org/v1"}


def test_the_resource_found_is_kept_by_the_client_that_asked_not_by_every_client_of_its_server(kube: KubeStub):
    """The operator's CRD of a kind is replaced by one of another plural. A client that asked
    keeps the answer it was given; a client made since asks the API server and finds the new
    plural. The answer was kept for the process by the server's address, so a new client (a
    configuration loaded again) created, read and deleted at the old plural, which answers 404."""
    with kube.lock:
        kube.crds[("example.com", "batchprocesses")] = Crd("example.com", ("v1",), "batchprocesses", "BatchProcess")
    first = client.CustomObjectsApi(api_client(kube.url))
    assert served_resource(first, PROCESS) == ("example.com", "v1", "batchprocesses")
    with kube.lock:
        del kube.crds[("example.com", "batchprocesses")]
        kube.crds[("example.com", "batchjobs")] = Crd("example.com", ("v1",), "batchjobs", "BatchProcess")
    assert served_resource(first, PROCESS) == ("example.com", "v1", "batchprocesses"), "kept by the client"
    again = client.CustomObjectsApi(api_client(kube.url))
    assert served_resource(again, PROCESS) == ("example.com", "v1", "batchjobs")


def test_a_kind_the_api_does_not_list_keeps_the_conventional_plural_and_is_asked_again(kube: KubeStub):
    """Before the operator's CRD is installed the conventional plural stands, and nothing is
    kept: once it is installed, the same client finds its plural."""
    objects = client.CustomObjectsApi(api_client(kube.url))
    assert served_resource(objects, ELSEWHERE) == ("example.org", "v1", "batchprocesss")
    with kube.lock:
        kube.crds[("example.org", "batchprocesses")] = Crd("example.org", ("v1",), "batchprocesses", "BatchProcess")
    assert served_resource(objects, ELSEWHERE) == ("example.org", "v1", "batchprocesses")
