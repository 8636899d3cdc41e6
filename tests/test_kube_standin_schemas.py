"""Custom resources on the loopback Kubernetes API are held to their CRD's structural schema as a
real API server holds them: a field the schema does not list is refused under strict field
validation (kubectl's default) and pruned otherwise, with a warning under ``Warn`` (the API's
default, what the ``kubernetes`` client gets when it names no directive); a value outside an
enum, of the wrong type or below a bound is refused with 422 whatever the directive."""

from __future__ import annotations

import json

import pytest
from conftest import study_definition
from kube_standin import katib_api
from kube_stub import KubeStub, Refused
from kubernetes import client
from kubernetes.client.rest import ApiException

EDITOR = "bob"
"""A user a cluster admin lets create and read Study resources in ``team``."""


@pytest.fixture(scope="module")
def kube():
    stub = KubeStub(namespaces=("team",))
    stub.authorizer.objects.append({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "study-editor"},
        "rules": [{"apiGroups": ["katuna.dev"], "resources": ["studies"], "verbs": ["create", "get", "list"]}]})
    katib_api.bind(stub, EDITOR, "study-editor", "team")
    yield stub
    stub.close()


def study(name: str, **overrides) -> dict:
    spec = study_definition(name, **overrides)
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": name, "namespace": "team"},
            "spec": spec}


def misspelt(name: str) -> dict:
    resource = study(name)
    resource["spec"]["trialTemplate"]["retian"] = True
    resource["spec"]["parameters"][0]["lgo"] = True
    return resource


def stored(kube: KubeStub, name: str) -> dict | None:
    with kube.lock:
        return kube.resources.get(("studies", "team", name))


def test_apply_refuses_an_unknown_field_strictly_as_kubectl_and_prunes_it_otherwise(kube: KubeStub):
    with pytest.raises(Refused) as refused:
        kube.apply(misspelt("kst-strict"))
    assert refused.value.code == 400
    assert str(refused.value) == ('Study in version "v1" cannot be handled as a Study: strict decoding error: '
                                  'unknown field "spec.parameters[0].lgo", unknown field "spec.trialTemplate.retian"')
    assert stored(kube, "kst-strict") is None, "nothing refused is stored"
    kube.warnings.clear()
    kube.apply(misspelt("kst-warn"), field_validation="Warn")
    assert stored(kube, "kst-warn")["spec"] == study("kst-warn")["spec"], "pruned"
    assert kube.warnings == ['unknown field "spec.parameters[0].lgo"', 'unknown field "spec.trialTemplate.retian"']
    kube.apply(misspelt("kst-ignore"), field_validation="Ignore")
    assert stored(kube, "kst-ignore")["spec"] == study("kst-ignore")["spec"]
    assert len(kube.warnings) == 2, "Ignore warns of nothing"


def test_an_edit_is_held_to_the_schema_too(kube: KubeStub):
    kube.apply(study("kst-edit"))
    with pytest.raises(Refused, match='unknown field "spec.trialTemplate.retian"'):
        kube.apply(misspelt("kst-edit"))
    assert stored(kube, "kst-edit")["metadata"]["generation"] == 1


@pytest.mark.parametrize("change,cause", [
    (lambda s: s.update(metricsCollector={"kind": "tfevents", "path": "/x"}),
     'spec.metricsCollector.kind: Unsupported value: "tfevents": supported values: "stdout", "file", "tfevent"'),
    (lambda s: s.update(parallelism="2"),
     'spec.parallelism: Invalid value: "string": spec.parallelism in body must be of type integer'),
    (lambda s: s.update(maxTrials=0),
     "spec.maxTrials: Invalid value: 0: spec.maxTrials in body should be greater than or equal to 1"),
    (lambda s: s.pop("objective"), "spec.objective: Required value"),
    (lambda s: s["parameters"].clear(),
     "spec.parameters: Invalid value: 0: spec.parameters in body should have at least 1 items"),
], ids=["enum", "type", "minimum", "required", "min-items"])
@pytest.mark.parametrize("directive", ["Strict", "Warn", "Ignore"])
def test_a_value_the_schema_refuses_is_a_422_whatever_the_directive(kube: KubeStub, change, cause: str, directive: str):
    resource = study("kst-invalid")
    change(resource["spec"])
    with pytest.raises(Refused) as refused:
        kube.apply(resource, field_validation=directive)
    assert refused.value.code == 422
    assert [c["field"] + ": " + c["message"] for c in refused.value.body["details"]["causes"]] == [cause]
    assert stored(kube, "kst-invalid") is None


def test_a_create_over_http_is_strict_when_asked_and_warns_by_default(kube: KubeStub):
    objects = client.CustomObjectsApi(client.ApiClient(kube.configuration(EDITOR)))
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object("katuna.dev", "v1", "team", "studies", misspelt("kst-http"),
                                                field_validation="Strict")
    assert refused.value.status == 400
    assert 'strict decoding error: unknown field "spec.parameters[0].lgo"' in json.loads(refused.value.body)["message"]
    created, code, headers = objects.create_namespaced_custom_object_with_http_info(
        "katuna.dev", "v1", "team", "studies", misspelt("kst-http"))
    assert code == 201 and created["spec"] == study("kst-http")["spec"]
    assert headers.getlist("Warning") == ['299 - "unknown field \\"spec.parameters[0].lgo\\""',
                                          '299 - "unknown field \\"spec.trialTemplate.retian\\""']
    bad = study("kst-http-bad", algorithm={"name": "bayes"})
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object("katuna.dev", "v1", "team", "studies", bad)
    assert refused.value.status == 422 and "spec.algorithm.name: Unsupported value" in refused.value.body


def test_katibs_kinds_keep_their_spec_whole_and_prune_what_lies_beside_it(kube: KubeStub):
    katib_api.install(kube)
    trial = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "metadata": {"name": "t", "namespace": "team"},
             "spec": {"anything": {"goes": [1]}}, "specs": {}}
    with pytest.raises(Refused, match='unknown field "specs"'):
        kube.apply(trial)
    kube.apply(trial, field_validation="Ignore")
    with kube.lock:
        kept = kube.resources[("trials.kubeflow.org", "team", "t")]
    assert kept["spec"] == {"anything": {"goes": [1]}} and "specs" not in kept


def test_a_null_field_is_dropped_as_if_left_out_unless_only_preserved_unknown_fields_admit_it(kube: KubeStub):
    """As the API server drops a null whose schema is neither nullable nor defaulted before it
    validates (prunenulls.go): a blank ``description:`` or ``earlyStopping:`` of a Study in YAML
    is taken as the field left out, while a null inside a trialSpec, which no schema describes,
    is kept for the workload's own API to judge."""
    resource = study("kst-nulls")
    resource["spec"].update(description=None, earlyStopping=None, timeBudget=None)
    resource["spec"]["parameters"][0]["step"] = None
    resource["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": "batch/v1", "kind": "Job",
                                                      "spec": {"backoffLimit": None}}
    kube.apply(resource)
    spec = stored(kube, "kst-nulls")["spec"]
    assert not {"description", "earlyStopping", "timeBudget"} & spec.keys()
    assert "step" not in spec["parameters"][0]
    assert spec["trialTemplate"]["trialSpec"]["spec"] == {"backoffLimit": None}
