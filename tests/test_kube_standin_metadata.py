"""The stand-in's creates hold every object's metadata to the API server's rules, whatever its
kind: labels and annotations as ``ValidateObjectMeta`` takes them (a Secret's and a ConfigMap's
too), and a namespace in the body only where it is the request's (``EnsureObjectNamespaceMatchesRequestNamespace``,
k8s.io/apiserver pkg/registry/rest/meta.go: 400 otherwise). Driven through the real kubernetes
client."""

from __future__ import annotations

import json

import pytest
from kube_standin import configmaps
from kube_stub import KubeStub
from kubernetes import client
from kubernetes.client.rest import ApiException

from functions.adapters.kubernetes_client import api_client


@pytest.fixture
def core():
    stub = KubeStub()
    yield client.CoreV1Api(api_client(stub.url)), stub
    stub.close()


def test_a_label_the_api_server_refuses_refuses_a_secret_or_configmap(core):
    """A Secret as katuna creates it, a ConfigMap as ``kubectl create configmap`` would."""
    api, stub = core
    label = {"katuna.dev/study": "s" * 64}
    with pytest.raises(ApiException) as caught:
        api.create_namespaced_secret("default", {"metadata": {"name": "x", "labels": label}})
    code, body = configmaps.create(stub, "default", {"metadata": {"name": "x", "labels": label}, "data": {}})
    refused = 'metadata.labels: Invalid value: "' + "s" * 64 + '": must be no more than 63 characters'
    assert caught.value.status == 422 and refused in json.loads(caught.value.body)["message"]
    assert code == 422 and refused in body["message"]
    assert not stub.secrets and not stub.configmaps


def test_a_body_naming_another_namespace_than_the_requests_is_refused(core):
    api, stub = core
    batch = client.BatchV1Api(api.api_client)
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "katuna"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "x"}]}}}}
    secret = {"metadata": {"name": "x", "namespace": "katuna"}, "stringData": {"k": "v"}}
    for create in (lambda: batch.create_namespaced_job("default", job),
                   lambda: api.create_namespaced_secret("default", secret)):
        with pytest.raises(ApiException) as caught:
            create()
        assert caught.value.status == 400 and json.loads(caught.value.body)["message"] == \
            "the namespace of the provided object does not match the namespace sent on the request"
    assert not stub.jobs and not stub.secrets
    assert batch.create_namespaced_job("katuna", job).metadata.namespace == "katuna"
