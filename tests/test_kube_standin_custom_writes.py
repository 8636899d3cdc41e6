"""Writes of custom resources on the loopback Kubernetes API as a real API server takes them,
where it once took what a real one refuses or does not do: a patch or a delete asked as a dry
run (``dryRun=All``) is answered as done and changes nothing, whichever kind (katuna's own, an
operator's workload); a patch of an operator's workload is decoded and held
to its kind's schema and metadata rules as a create is (``fieldValidation=Strict`` refusing a
field the schema lacks); a list of workloads applies its field selector."""

from __future__ import annotations

import json
import sys

import pytest
from kube_standin import katib_api
from kube_stub import KubeStub
from kubernetes import client
from kubernetes.client.rest import ApiException

PYTORCH = ("kubeflow.org", "v1", "default", "pytorchjobs")
EXPERIMENTS = ("kubeflow.org", "v1beta1", "katuna", "experiments")
PYTORCHJOB = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "p"},
              "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "restartPolicy": "Never", "template": {
                  "spec": {"containers": [{"name": "pytorch", "image": "python:3.12",
                                           "command": [sys.executable, "-c", "import time; time.sleep(600)"]}]}}}}}}


USER = "alice"
"""A user who may write the kinds these tests write, in ``default`` and ``katuna``."""


@pytest.fixture
def cluster():
    stub = KubeStub()
    stub.install("training-operator")
    katib_api.install(stub)
    stub.authorizer.objects.append({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "writer"},
        "rules": [{"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs", "experiments", "experiments/status"],
                   "verbs": ["create", "get", "list", "patch", "delete"]}]})
    for namespace in ("default", "katuna"):
        katib_api.bind(stub, USER, "writer", namespace)
    yield stub
    stub.close()


def objects(cluster: KubeStub) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(client.ApiClient(cluster.configuration(USER)))


def refusal(call) -> tuple[int, dict]:
    with pytest.raises(ApiException) as raised:
        call()
    return raised.value.status, json.loads(raised.value.body)


def pytorchjob(cluster: KubeStub, name: str) -> dict:
    return objects(cluster).create_namespaced_custom_object(
        *PYTORCH, {**PYTORCHJOB, "metadata": {"name": name}})


def test_a_dry_run_patch_of_a_workload_is_answered_as_done_and_changes_nothing(cluster: KubeStub):
    made = pytorchjob(cluster, "dry")
    answered = objects(cluster).patch_namespaced_custom_object(*PYTORCH, "dry", {"spec": {"runPolicy": {
        "backoffLimit": 7}}}, dry_run="All")
    assert answered["spec"]["runPolicy"]["backoffLimit"] == 7, "answered as the patch would leave it"
    assert cluster.workloads[("pytorchjobs", "default", "dry")]["spec"] == made["spec"]


def experiment(cluster: KubeStub, name: str) -> dict:
    """A Katib Experiment as kubectl applies it."""
    return cluster.apply({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                          "metadata": {"name": name, "namespace": "katuna"},
                          "spec": {"maxTrialCount": 2, "parallelTrialCount": 1,
                                   "algorithm": {"algorithmName": "random"}}})


def test_a_dry_run_patch_of_a_resource_or_of_its_status_changes_nothing(cluster: KubeStub):
    experiment(cluster, "dry-experiment")
    stored = cluster.get_resource("experiments.kubeflow.org", "katuna", "dry-experiment")[1]
    api = objects(cluster)
    api.patch_namespaced_custom_object(*EXPERIMENTS, "dry-experiment", {"metadata": {"labels": {"dry": "run"}}},
                                       dry_run="All")
    api.patch_namespaced_custom_object_status(*EXPERIMENTS, "dry-experiment", {"status": {"phase": "Running"}},
                                              dry_run="All")
    assert cluster.get_resource("experiments.kubeflow.org", "katuna", "dry-experiment")[1] == stored


def test_a_dry_run_delete_of_a_custom_resource_deletes_nothing(cluster: KubeStub):
    pytorchjob(cluster, "kept")
    experiment(cluster, "kept-experiment")
    api = objects(cluster)
    api.delete_namespaced_custom_object(*PYTORCH, "kept", dry_run="All")
    api.delete_namespaced_custom_object(*EXPERIMENTS, "kept-experiment",
                                        body={"dryRun": ["All"], "propagationPolicy": "Background"})
    assert ("pytorchjobs", "default", "kept") in cluster.workloads
    assert cluster.get_resource("experiments.kubeflow.org", "katuna", "kept-experiment")[0] == 200


def test_a_delete_of_a_custom_resource_is_answered_as_the_crd_store_answers_it(cluster: KubeStub):
    """A delete that takes the object at once, asked or dry run, is answered with a Status naming
    it (the CRD store returns no deleted object); one a finalizer holds, its own or the garbage
    collector's for ``Orphan``, with the object marked deleting."""
    made = experiment(cluster, "told")
    api = objects(cluster)
    done = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": "told", "group": "kubeflow.org", "kind": "experiments", "uid": made["metadata"]["uid"]}}
    assert api.delete_namespaced_custom_object(*EXPERIMENTS, "told", dry_run="All") == done
    assert api.delete_namespaced_custom_object(*EXPERIMENTS, "told") == done
    orphaned = api.delete_namespaced_custom_object(*EXPERIMENTS, experiment(cluster, "orphaned")["metadata"]["name"],
                                                   propagation_policy="Orphan")
    assert orphaned["kind"] == "Experiment" and orphaned["metadata"]["finalizers"] == ["orphan"]
    assert orphaned["metadata"]["deletionTimestamp"]
    assert cluster.get_resource("experiments.kubeflow.org", "katuna", "orphaned")[0] == 404
    cluster.apply({**made, "metadata": {"name": "held", "namespace": "katuna", "finalizers": ["example.com/hold"]}})
    tried = api.delete_namespaced_custom_object(*EXPERIMENTS, "held", dry_run="All")
    assert tried["metadata"]["deletionTimestamp"] and tried["metadata"]["finalizers"] == ["example.com/hold"]
    assert "deletionTimestamp" not in cluster.get_resource("experiments.kubeflow.org", "katuna", "held")[1]["metadata"]


def test_a_patch_of_an_operators_workload_is_held_to_its_schema(cluster: KubeStub):
    made = pytorchjob(cluster, "schema")
    api = objects(cluster)
    code, body = refusal(lambda: api.patch_namespaced_custom_object(
        *PYTORCH, "schema", {"spec": {"runPolicy": {"backoffLimit": "many"}}}))
    assert code == 422 and "spec.runPolicy.backoffLimit" in body["message"], body
    code, body = refusal(lambda: api.patch_namespaced_custom_object(
        *PYTORCH, "schema", {"spec": {"retries": 3}}, field_validation="Strict"))
    assert code == 422 and 'unknown field "spec.retries"' in body["message"], body
    code, body = refusal(lambda: api.patch_namespaced_custom_object(
        *PYTORCH, "schema", {"metadata": {"labels": {"team": "a b"}}}))
    assert code == 422 and "metadata.labels" in body["message"], body
    pruned = api.patch_namespaced_custom_object(*PYTORCH, "schema", {"spec": {"retries": 3}})
    assert "retries" not in pruned["spec"], "a field the schema lacks is pruned, as on create"
    assert cluster.workloads[("pytorchjobs", "default", "schema")]["spec"] == made["spec"]


def test_a_list_of_workloads_applies_its_field_selector(cluster: KubeStub):
    pytorchjob(cluster, "one")
    pytorchjob(cluster, "two")
    listed = objects(cluster).list_namespaced_custom_object(*PYTORCH, field_selector="metadata.name=two")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["two"]
