"""PATCH of custom resources on the loopback Kubernetes API, through the real ``kubernetes``
client, as a real API server takes one: merge patches (RFC 7386) and JSON patches (RFC 6902),
strategic merge refused (415), the patched object held to its schema and to its identity, the
status subresource apart, versions and generations as the API counts them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from conftest import study_definition
from kube_standin import katib_api
from kube_stub import KubeStub
from kubernetes import client
from kubernetes.client.rest import ApiException

TEAM = "team"
USER = "alice"
"""A user holding ``katuna-katib-edit`` in ``team``, as Katib's SDK users do."""
KATIB = ("kubeflow.org", "v1beta1", TEAM, "experiments")
STUDIES = ("katuna.dev", "v1", TEAM, "studies")
JSON_PATCH = "application/json-patch+json"


@pytest.fixture(scope="module")
def kube():
    stub = KubeStub(namespaces=(TEAM,))
    katib_api.install(stub)
    katib_api.bind(stub, USER, "katuna-katib-edit", TEAM)
    stub.authorizer.objects.append({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "study-patcher"},
        "rules": [{"apiGroups": ["katuna.dev"], "resources": ["studies", "studies/status"],
                   "verbs": ["create", "get", "patch"]}]})
    katib_api.bind(stub, USER, "study-patcher", TEAM)
    yield stub
    stub.close()


@pytest.fixture()
def api(kube: KubeStub) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(client.ApiClient(kube.configuration(USER)))


def experiment(kube: KubeStub, name: str, **spec) -> dict:
    """A Katib Experiment as kubectl applies it, then a status as katuna writes one."""
    kube.apply({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name, "namespace": TEAM},
                "spec": {"maxTrialCount": 2, "parallelTrialCount": 1, "algorithm": {"algorithmName": "random"}, **spec}})
    code, body = kube.patch_status("experiments.kubeflow.org", TEAM, name, {"status": {"phase": "Succeeded", "trials": 2}})
    assert code == 200, body
    return body


def refusal(call) -> tuple[int, dict]:
    with pytest.raises(ApiException) as raised:
        call()
    return raised.value.status, json.loads(raised.value.body)


def versions_since(kube: KubeStub, version: str) -> list[str]:
    return [c.type for c in kube.changes_since(int(version), "experiments.kubeflow.org")]


def test_a_merge_patch_changes_the_spec_and_leaves_the_status_and_system_fields(kube: KubeStub, api):
    read = experiment(kube, "mp-budget")
    body = json.loads(json.dumps(read))
    body["spec"]["maxTrialCount"] = 4
    body["status"] = {"phase": "Running"}
    body["metadata"].update(creationTimestamp="2001-01-01T00:00:00+00:00", generation=9)
    patched = api.patch_namespaced_custom_object(*KATIB, "mp-budget", body)
    assert patched["spec"]["maxTrialCount"] == 4 and patched["status"] == read["status"], "status is a subresource"
    assert patched["metadata"]["generation"] == read["metadata"]["generation"] + 1
    assert patched["metadata"]["creationTimestamp"] == read["metadata"]["creationTimestamp"]
    assert int(patched["metadata"]["resourceVersion"]) > int(read["metadata"]["resourceVersion"])
    assert versions_since(kube, read["metadata"]["resourceVersion"]) == ["MODIFIED"]
    assert api.get_namespaced_custom_object(*KATIB, "mp-budget") == patched

    removed = api.patch_namespaced_custom_object(*KATIB, "mp-budget", {"spec": {"parallelTrialCount": None,
                                                                                "extra": {"a": 1, "b": None}}})
    assert "parallelTrialCount" not in removed["spec"] and removed["spec"]["extra"] == {"a": 1}, "null deletes"
    labelled = api.patch_namespaced_custom_object(*KATIB, "mp-budget", {"metadata": {"labels": {"team": "a"}}})
    assert labelled["metadata"]["generation"] == removed["metadata"]["generation"], "metadata is no new generation"
    assert labelled["metadata"]["resourceVersion"] != removed["metadata"]["resourceVersion"]


def test_a_patch_that_changes_nothing_writes_nothing(kube: KubeStub, api):
    read = experiment(kube, "mp-same")
    same = api.patch_namespaced_custom_object(*KATIB, "mp-same", {"spec": {"maxTrialCount": 2}})
    assert same == read and versions_since(kube, read["metadata"]["resourceVersion"]) == []


def test_a_patch_made_against_an_older_version_is_a_conflict(kube: KubeStub, api):
    read = experiment(kube, "mp-stale")
    kube.patch_status("experiments.kubeflow.org", TEAM, "mp-stale", {"status": {"phase": "Running", "trials": 2}})
    read["spec"]["maxTrialCount"] = 5
    code, body = refusal(lambda: api.patch_namespaced_custom_object(*KATIB, "mp-stale", read))
    assert (code, body["reason"]) == (409, "Conflict")
    assert body["message"] == ('Operation cannot be fulfilled on experiments.kubeflow.org "mp-stale": the object has '
                               "been modified; please apply your changes to the latest version and try again")
    assert kube.get_resource("experiments.kubeflow.org", TEAM, "mp-stale")[1]["spec"]["maxTrialCount"] == 2
    code, body = refusal(lambda: api.patch_namespaced_custom_object(*KATIB, "mp-stale",
                                                                    {"metadata": {"resourceVersion": None}}))
    assert code == 422 and "metadata.resourceVersion" in body["message"], "a custom resource takes no unconditional update"


@pytest.mark.parametrize("metadata,code,message", [
    ({"name": "other"}, 400, "the name of the object (other) does not match the name on the URL (mp-identity)"),
    ({"namespace": "default"}, 400, "the namespace of the provided object does not match the namespace sent on the "
                                    "request"),
    ({"uid": "0000"}, 422, 'metadata.uid: Invalid value: "0000": field is immutable'),
    ({"labels": {"bad label": "x"}}, 422, "metadata.labels"),
])
def test_a_patch_cannot_change_what_identifies_the_object(kube: KubeStub, api, metadata: dict, code: int, message: str):
    read = experiment(kube, "mp-identity")
    refused = refusal(lambda: api.patch_namespaced_custom_object(*KATIB, "mp-identity",
                                                                 {"metadata": metadata, "spec": {"maxTrialCount": 3}}))
    assert refused[0] == code and message in refused[1]["message"]
    assert kube.get_resource("experiments.kubeflow.org", TEAM, "mp-identity")[1] == read, "nothing is stored"


def test_a_json_patch_applies_its_operations_in_order_or_none(kube: KubeStub, api):
    read = experiment(kube, "jp-ops")
    operations = [{"op": "test", "path": "/metadata/uid", "value": read["metadata"]["uid"]},
                  {"op": "replace", "path": "/spec/maxTrialCount", "value": 6},
                  {"op": "add", "path": "/spec/maxFailedTrialCount", "value": 1},
                  {"op": "copy", "from": "/spec/algorithm", "path": "/spec/copied"},
                  {"op": "move", "from": "/spec/copied", "path": "/spec/moved"},
                  {"op": "remove", "path": "/spec/parallelTrialCount"}]
    patched = api.patch_namespaced_custom_object(*KATIB, "jp-ops", operations, _content_type=JSON_PATCH)
    assert patched["spec"] == {"maxTrialCount": 6, "maxFailedTrialCount": 1, "algorithm": {"algorithmName": "random"},
                               "moved": {"algorithmName": "random"}}
    assert patched["metadata"]["generation"] == read["metadata"]["generation"] + 1

    for failing, reason in (({"op": "test", "path": "/spec/maxTrialCount", "value": True},
                             "testing value /spec/maxTrialCount failed: test failed"),
                            ({"op": "remove", "path": "/spec/absent"},
                             "remove operation does not apply: doc is missing path: /spec/absent: missing value"),
                            ({"op": "replace", "path": "/nowhere/x", "value": 1},
                             "replace operation does not apply: doc is missing path: /nowhere/x: missing value")):
        operations = [{"op": "replace", "path": "/spec/maxTrialCount", "value": 7}, failing]
        with pytest.raises(ApiException) as raised:
            api.patch_namespaced_custom_object(*KATIB, "jp-ops", operations, _content_type=JSON_PATCH)
        code, body = raised.value.status, json.loads(raised.value.body)
        assert (code, body["reason"]) == (422, "Invalid")
        assert [c["message"] for c in body["details"]["causes"]] == [reason]
    assert kube.get_resource("experiments.kubeflow.org", TEAM, "jp-ops")[1] == patched, "all or none"


def raw_patch(kube: KubeStub, path: str, body: object, content_type: str) -> tuple[int, dict]:
    """A PATCH as sent, for what the ``kubernetes`` client will not send as asked."""
    request = urllib.request.Request(kube.url + path, data=json.dumps(body).encode(), method="PATCH",
                                     headers={"Content-Type": content_type, "Authorization": f"Bearer {USER}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_patch_types_a_custom_resource_does_not_take_are_refused(kube: KubeStub, api):
    read = experiment(kube, "mp-types")
    code, body = refusal(lambda: api.patch_namespaced_custom_object(*KATIB, "mp-types", {"spec": {"maxTrialCount": 3}},
                                                                    _content_type=JSON_PATCH))
    assert (code, body["reason"]) == (415, "UnsupportedMediaType"), \
        "the client sends an object under a JSON patch's type as a strategic merge patch"
    assert body["message"] == ("the body of the request was in an unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
    path = f"/apis/kubeflow.org/v1beta1/namespaces/{TEAM}/experiments/mp-types"
    code, body = raw_patch(kube, path, {"spec": {"maxTrialCount": 3}}, JSON_PATCH)
    assert (code, body["reason"]) == (400, "BadRequest") and "cannot unmarshal object" in body["message"]
    code, body = raw_patch(kube, path, [{"op": "add", "path": "/spec/maxTrialCount", "value": 3}],
                           "application/merge-patch+json")
    assert code == 400 and "cannot unmarshal array" in body["message"]
    code, body = raw_patch(kube, path, {"spec": {"maxTrialCount": 3}}, "application/apply-patch+yaml")
    assert code == 501 and "stand-in does not implement server-side apply" in body["message"]
    assert kube.get_resource("experiments.kubeflow.org", TEAM, "mp-types")[1] == read


def study(name: str) -> dict:
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": name, "namespace": TEAM},
            "spec": study_definition(name)}


def test_the_patched_object_is_held_to_the_schema_as_a_create_is(kube: KubeStub, api):
    created = api.create_namespaced_custom_object(*STUDIES, study("mp-schema"))
    unknown = {"spec": {"trialTemplate": {"retian": True}}}
    code, body = refusal(lambda: api.patch_namespaced_custom_object(*STUDIES, "mp-schema", unknown,
                                                                    field_validation="Strict"))
    assert code == 422 and 'strict decoding error: unknown field "spec.trialTemplate.retian"' in body["message"]
    data, _, headers = api.patch_namespaced_custom_object_with_http_info(*STUDIES, "mp-schema", unknown)
    assert 'unknown field \\"spec.trialTemplate.retian\\"' in headers["Warning"], "Warn, the API's default"
    assert data == created, "pruned: nothing changed"
    code, body = refusal(lambda: api.patch_namespaced_custom_object(*STUDIES, "mp-schema", {"spec": {"maxTrials": "x"}}))
    assert code == 422 and 'spec.maxTrials: Invalid value: "string"' in body["message"]
    assert api.get_namespaced_custom_object(*STUDIES, "mp-schema") == created


def test_a_status_patch_changes_only_the_status(kube: KubeStub, api):
    created = api.create_namespaced_custom_object(*STUDIES, study("mp-status"))
    patched = api.patch_namespaced_custom_object_status(*STUDIES, "mp-status",
                                                        {"spec": {"maxTrials": 99}, "status": {"phase": "Running"},
                                                         "metadata": {"labels": {"a": "b"}}})
    assert patched["status"] == {"phase": "Running"} and patched["spec"] == created["spec"]
    assert "labels" not in patched["metadata"] and patched["metadata"]["generation"] == 1
    code, body = refusal(lambda: api.patch_namespaced_custom_object_status(
        *STUDIES, "mp-status", [{"op": "test", "path": "/status/phase", "value": "Pending"}], _content_type=JSON_PATCH))
    assert code == 422 and body["details"]["causes"][0]["message"] == "testing value /status/phase failed: test failed"


def test_a_status_json_patch_testing_an_older_resource_version_is_refused_whole(kube: KubeStub, api):
    """As the API server answers a JSON patch whose ``test`` fails: 422, one cause naming the
    path, nothing written (katuna's status writes test the version they were computed after)."""
    created = api.create_namespaced_custom_object(*STUDIES, study("mp-version"))
    read = created["metadata"]["resourceVersion"]
    first = api.patch_namespaced_custom_object_status(*STUDIES, "mp-version", [
        {"op": "test", "path": "/metadata/resourceVersion", "value": read},
        {"op": "add", "path": "/status", "value": {"phase": "Stopped"}}], _content_type=JSON_PATCH)
    assert first["status"] == {"phase": "Stopped"} and first["metadata"]["resourceVersion"] != read
    code, body = refusal(lambda: api.patch_namespaced_custom_object_status(*STUDIES, "mp-version", [
        {"op": "test", "path": "/metadata/resourceVersion", "value": read},
        {"op": "add", "path": "/status", "value": {"phase": "Running"}}], _content_type=JSON_PATCH))
    assert (code, body["message"]) == (422, "the server rejected our request due to an error in our request")
    assert body["details"]["causes"][0]["message"] == "testing value /metadata/resourceVersion failed: test failed"
    assert api.get_namespaced_custom_object(*STUDIES, "mp-version") == first


def test_a_delete_its_finalizers_hold_marks_the_object_until_a_patch_takes_the_last_one_off(kube: KubeStub, api):
    """As the registry does: the held object stays with a ``deletionTimestamp`` and its generation
    one up; a finalizer added then is refused; taking the last one off deletes it, and the
    garbage collector then takes what it owned."""
    kube.apply({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                "metadata": {"name": "held", "namespace": TEAM, "finalizers": ["example.com/hold"]},
                "spec": {"maxTrialCount": 2, "parallelTrialCount": 1, "algorithm": {"algorithmName": "random"}}})
    owner = api.get_namespaced_custom_object(*KATIB, "held")
    owned = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "metadata": {"name": "held-0", "ownerReferences": [
        {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": "held", "uid": owner["metadata"]["uid"]}]},
             "spec": {}}
    assert katib_api.create(kube, "trials.kubeflow.org", TEAM, owned)[0] == 201
    for _ in range(2):
        marked = api.delete_namespaced_custom_object(*KATIB, "held")
        assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["generation"] == 2
    code, body = refusal(lambda: api.patch_namespaced_custom_object(
        *KATIB, "held", {"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}))
    assert code == 422 and "no new finalizers can be added if the object is being deleted" in body["message"]
    api.patch_namespaced_custom_object(*KATIB, "held", {"metadata": {"finalizers": None}})
    assert refusal(lambda: api.get_namespaced_custom_object(*KATIB, "held"))[0] == 404
    assert kube.get_resource("trials.kubeflow.org", TEAM, "held-0")[0] == 404
