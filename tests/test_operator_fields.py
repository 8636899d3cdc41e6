"""A field an operator's kind does not have, in a ``trialSpec`` (a PyTorchJob's misspelt
``restartpolicy``, a JobSet container's ``comand``, a TrainJob's ``numNode``): the API server
checks a custom resource against its CRD's schema, and drops such a field unless the request
asks for strict field validation. katuna asks for it on every kind's dry run at submission and
on each trial's create, so the study is refused, or the trial fails, naming the field, rather
than trials running without what it meant. The loopback API server prunes, warns of and refuses
such fields by the operators' own CRD schemas (``tests/schemas/operators``), as the real one does.
Where no cluster is asked (``katuna render``, trials run on this machine) the kinds katuna knows
are checked by their fields and their templates' Kubernetes types."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from kube_stub import KubeStub
from kubernetes import client
from kubernetes.client.rest import ApiException
from test_cli import in_process

from functions.adapters.kubernetes_access import Access
from functions.adapters.kubernetes_client import translate
from functions.adapters.kubernetes_workloads import Workloads
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy, RefusedWorkload
from functions.core.launch import TrialLaunch
from functions.core.validate import parse_study

COMMAND = [sys.executable, "train.py", "--x=${trialParameters.x}"]


def _pytorchjob() -> dict:
    """A PyTorchJob whose worker's ``restartPolicy`` and job's ``runPolicy`` are misspelt."""
    replica = {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "pytorch", "image": "python:3.12", "command": COMMAND}]}}}
    return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {
        "pytorchReplicaSpecs": {"Master": copy.deepcopy(replica), "Worker": {**replica, "restartpolicy": "Never"}},
        "runpolicy": {"cleanPodPolicy": "All"}}}


def _jobset() -> dict:
    """A JobSet whose replicated Job's ``replicas`` and container's ``resources`` are misspelt."""
    container = {"name": "node", "image": "python:3.12", "command": COMMAND, "resource": {"limits": {"cpu": "1"}}}
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
        {"name": "node", "replica": 2, "template": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [container]}}}}}]}}


def _trainjob() -> dict:
    """A TrainJob whose trainer's ``numNodes`` is misspelt."""
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNode": 2, "image": "python:3.12",
                                                                 "command": COMMAND}}}


KINDS = [
    ("training-operator", "pytorchjobs", _pytorchjob, ["spec.pytorchReplicaSpecs.Worker.restartpolicy", "spec.runpolicy"]),
    ("jobset", "jobsets", _jobset, ["spec.replicatedJobs[0].replica",
                                    "spec.replicatedJobs[0].template.spec.template.spec.containers[0].resource"]),
    ("trainer", "trainjobs", _trainjob, ["spec.trainer.numNode"]),
]
"""Each kind's operator, resource, a workload with fields its CRD lacks, and their paths."""


@pytest.fixture
def cluster():
    stub = KubeStub()
    for operator in ("training-operator", "jobset", "trainer", "argo", "tekton"):
        stub.install_operator(operator)
    yield stub
    stub.close()


def _named(workload: dict, name: str) -> dict:
    return {**copy.deepcopy(workload), "metadata": {"name": name}}


@pytest.mark.parametrize(("operator", "plural", "made", "unknown"), KINDS, ids=[k[1] for k in KINDS])
def test_the_api_server_refuses_warns_of_or_drops_a_field_an_operators_crd_lacks_as_the_request_asks(
        cluster: KubeStub, operator: str, plural: str, made, unknown: list[str]):
    """``Strict``: 400, naming each field, nothing stored; ``Warn`` (the default): created with
    a warning for each, and stored without them; ``Ignore``: the same, with no warning."""
    workload = made()
    group, version = workload["apiVersion"].split("/")
    objects = client.CustomObjectsApi(cluster.api_client())
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object(group, version, "default", plural, _named(workload, "strict"),
                                                field_validation="Strict")
    kind = workload["kind"]
    assert (refused.value.status, json.loads(refused.value.body)["message"]) == (
        400, f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: '
             + ", ".join(f'unknown field "{f}"' for f in unknown))
    assert (plural, "default", "strict") not in cluster.workloads, "nothing refused is stored"
    for directive, warned in (("Warn", unknown), ("Ignore", [])):
        name = directive.lower()
        _, code, headers = objects.create_namespaced_custom_object_with_http_info(
            group, version, "default", plural, _named(workload, name), field_validation=directive)
        assert code == 201 and [w for w in headers.getlist("Warning") if "unknown field" in w] == [
            f'299 - "unknown field \\"{f}\\""' for f in warned], directive
        with cluster.lock:
            stored = cluster.workloads[(plural, "default", name)]
        assert not any(_holds(stored, path) for path in unknown), "the API server drops what its schema lacks"


def _holds(obj: object, path: str) -> bool:
    """Whether ``obj`` has a field at ``path`` (``spec.a[0].b``)."""
    for step in path.replace("[", ".[").split("."):
        if step.startswith("["):
            index = int(step[1:-1])
            if not isinstance(obj, list) or index >= len(obj):
                return False
            obj = obj[index]
        elif isinstance(obj, dict) and step in obj:
            obj = obj[step]
        else:
            return False
    return True


@pytest.mark.parametrize(("plural", "workload"), [
    ("workflows", {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {
        "entrypoint": "fit", "templates": [{"name": "fit", "container": {"image": "python:3.12"}}], "entrypont": "x"}}),
    ("pipelineruns", {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {"pipelineSpecc": {}}}),
], ids=["workflows", "pipelineruns"])
def test_a_kind_whose_crd_keeps_unknown_fields_is_taken_whole_even_under_strict_validation(
        cluster: KubeStub, plural: str, workload: dict):
    """Argo's and Tekton's installed CRDs preserve unknown fields: the API server keeps them all."""
    group, version = workload["apiVersion"].split("/")
    objects = client.CustomObjectsApi(cluster.api_client())
    objects.create_namespaced_custom_object(group, version, "default", plural, _named(workload, "kept"),
                                            field_validation="Strict", dry_run="All")


def _study(name: str, trial_spec: dict, container: str) -> dict:
    return {"name": name, "objective": {"metric": "loss", "direction": "minimize"}, "maxTrials": 1,
            "parallelism": 1, "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
            "algorithm": {"name": "random", "seed": 1},
            "trialTemplate": {"trialSpec": trial_spec, "primaryContainerName": container}}


@pytest.mark.parametrize(("operator", "plural", "made", "unknown"), KINDS, ids=[k[1] for k in KINDS])
def test_a_study_whose_trial_spec_has_a_field_its_kind_lacks_is_refused_at_submission_naming_it(
        cluster: KubeStub, operator: str, plural: str, made, unknown: list[str]):
    """The dry run of the first trial's workload asks for strict field validation, whatever the
    kind: the API server refuses the field where it would otherwise drop it, and the study is
    refused, naming it in the ``trialSpec``, with nothing stored."""
    container = {"pytorchjobs": "pytorch", "jobsets": "node", "trainjobs": "node"}[plural]
    access = Access(cluster.api_client(), Cluster(namespace="default"))
    with pytest.raises(InvalidStudy) as refused:
        access.refusal(parse_study(_study("misspelt", made(), container)))
    kind = made()
    assert [(p.path, p.message) for p in refused.value.problems] == [(
        f"trialTemplate.trialSpec.{path}",
        f"unknown field: {kind['apiVersion']} {kind['kind']} has no such field (the API server refuses it under "
        "strict field validation, and would otherwise drop it unread); check its spelling and place")
        for path in unknown]
    assert not cluster.workloads, "a dry run stores nothing"


def test_a_trials_workload_with_a_field_its_kind_lacks_is_refused_naming_it_rather_than_run_without_it(
        cluster: KubeStub):
    """Each trial's create asks for strict field validation too (a study taken before its kind's
    CRD changed, or whose dry run its first trial skipped): the trial's workload is refused,
    naming the field, and nothing is created."""
    launch = TrialLaunch("misspelt", "0123456789ab", 0, 1, "misspelt-0", [], {}, ".", timeout=None,
                         trial_spec=_pytorchjob(), primary_container="pytorch")
    workload = {**_pytorchjob(), "metadata": {"name": "misspelt-0"}}
    with pytest.raises(RefusedWorkload) as refused:
        Workloads(cluster.api_client(), translate).create("default", workload, launch)
    assert [p.path for p in refused.value.problems] == [
        "trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Worker.restartpolicy", "trialTemplate.trialSpec.spec.runpolicy"]
    assert not cluster.workloads


@pytest.mark.parametrize(("operator", "plural", "made", "unknown"), KINDS, ids=[k[1] for k in KINDS])
def test_render_refuses_a_field_an_operators_kind_lacks_naming_it_with_its_line(
        tmp_path: Path, operator: str, plural: str, made, unknown: list[str]):
    """``katuna render`` would print a workload the cluster's dry run refuses (and whose field
    the API server would otherwise drop): it refuses it, as it refuses a Job's, naming each field."""
    container = {"pytorchjobs": "pytorch", "jobsets": "node", "trainjobs": "node"}[plural]
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(_study("misspelt", made(), container), sort_keys=False))
    rendered = in_process("render", str(study))
    assert rendered.exit_code == 2 and rendered.stdout == "", rendered.output
    kind = made()
    listed = [line for line in rendered.stderr.splitlines() if line.startswith("  - ")]
    assert [re.sub(r" \(line \d+\)", "", line) for line in listed] == [
        f"  - trialTemplate.trialSpec.{path}: unknown field: {kind['apiVersion']} {kind['kind']} has no such field (a "
        "cluster's dry run refuses it, and the API server would drop it unread); check its spelling and place"
        for path in unknown]
    assert all(re.search(r" \(line \d+\):", line) for line in listed), "each with the line of its field"


def test_a_study_of_an_operators_kind_run_on_this_machine_is_refused_for_a_field_the_kind_lacks(
        embedded, tmp_path: Path):
    """A local trial runs the primary container's command alone: without a check it would run
    as if the misspelt fields were not there, where a cluster refuses the study."""
    definition = _study("misspelt", _pytorchjob(), "pytorch")
    with pytest.raises(InvalidStudy) as refused:
        embedded.submit(parse_study(definition), definition, tmp_path)
    assert [p.path for p in refused.value.problems] == [
        "trialTemplate.trialSpec.spec.pytorchReplicaSpecs.Worker.restartpolicy", "trialTemplate.trialSpec.spec.runpolicy"]
    assert embedded.store.list_studies() == []


def test_the_fields_of_an_operators_kind_and_of_kubernetes_types_in_its_templates_are_taken(embedded, tmp_path: Path):
    """Only unknown fields are refused: a PyTorchJob whose every field its CRD has (its run and
    elastic policies, a role's restart policy, a pod template's own fields) runs on this machine."""
    job = _pytorchjob()
    job["spec"]["runPolicy"] = job["spec"].pop("runpolicy")
    job["spec"]["elasticPolicy"] = {"rdzvBackend": "c10d", "minReplicas": 1}
    worker = job["spec"]["pytorchReplicaSpecs"]["Worker"]
    worker["restartPolicy"] = worker.pop("restartpolicy")
    worker["template"] = {"metadata": {"labels": {"team": "a"}}, "spec": {
        **worker["template"]["spec"], "nodeSelector": {"pool": "gpu"}, "terminationGracePeriodSeconds": 5}}
    definition = _study("spelt", job, "pytorch")
    embedded.submit(parse_study(definition), definition, tmp_path)
    assert [s.name for s in embedded.store.list_studies()] == ["spelt"]
