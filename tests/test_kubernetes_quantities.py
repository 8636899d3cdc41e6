"""Resource quantities written as YAML numbers (``nvidia.com/gpu: 1``, ``cpu: 0.5``, an
``emptyDir``'s ``sizeLimit: 1000``), as Katib's own examples write them: the API server reads a
number as a quantity (``Quantity.UnmarshalJSON`` parses its text), and Katib runs such trial
Jobs, so katuna does too, on a cluster, though Kubernetes' typed client takes only strings there.
What the API server refuses (a quantity that is none, a negative amount) is refused with its
words, and what the typed client alone refuses is a clear refusal naming the field, never an
error retried for ever (katuna serve with the Kubernetes executor, the real client, the loopback API)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import yaml
from conftest import katib_job_experiment, study_definition
from http_helpers import Service, run_on_cluster
from kube_standin.nodes import STATIC_ALLOCATABLE, node
from kube_stub import KubeStub

from functions.core.formats import load_definition
from functions.core.job import render_job
from functions.core.launch import TrialLaunch

NAMESPACE = "quantities"
KUBE_NAMESPACES = (NAMESPACE,)
SPEC = "spec.trialTemplate.trialSpec"
POD = f"{SPEC}.spec.template.spec"


def experiment(name: str, resources: dict, /, **pod: object) -> dict:
    """A Katib Experiment of one trial whose container has ``resources`` and whose pod spec has ``pod``."""
    command = [sys.executable, "-c", "print('loss=0.5')", "${trialParameters.learningRate}"]
    return katib_job_experiment(name, {"resources": resources, "command": command}, **pod)


NUMERIC = {"requests": {"cpu": 0.5, "memory": "1Gi"}, "limits": {"cpu": 1, "nvidia.com/gpu": 1, "memory": "1Gi"}}
SCRATCH = [{"name": "scratch", "emptyDir": {"sizeLimit": 1000}}]


def test_every_numeric_quantity_of_a_pod_spec_is_rendered_as_the_text_the_api_server_reads():
    definition = experiment("numbers", copy.deepcopy(NUMERIC), overhead={"cpu": 0.25}, resources={"limits": {"cpu": 2}},
                            volumes=[*SCRATCH, {"name": "claim", "ephemeral": {"volumeClaimTemplate": {"spec": {
                                "resources": {"requests": {"storage": 1e-05}}}}}}],
                            initContainers=[{"name": "init", "image": "busybox", "resources": {"limits": {"cpu": 0.1}},
                                             "command": ["true"]}])
    definition["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"][
        "limits"]["example.com/flag"] = True
    spec, _ = load_definition(definition)
    launch = TrialLaunch("numbers", "u1", 0, 1, "numbers-0", [], {}, ".", None, trial_spec=spec.trial_template.trial_spec,
                         primary_container="training-container", params={"lr": 0.1})
    pod = render_job(launch)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "0.5", "memory": "1Gi"},
        "limits": {"cpu": "1", "nvidia.com/gpu": "1", "memory": "1Gi", "example.com/flag": True}}, \
        "a boolean is no quantity: left for the API server to refuse"
    assert pod["initContainers"][0]["resources"] == {"limits": {"cpu": "0.1"}}
    assert (pod["overhead"], pod["resources"]) == ({"cpu": "0.25"}, {"limits": {"cpu": "2"}})
    assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "1000"}
    assert pod["volumes"][1]["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"] == {
        "requests": {"storage": "1e-05"}}


@pytest.fixture(scope="module")
def gpus(kube: KubeStub) -> KubeStub:
    """The cluster with a node whose device plugin advertises GPUs."""
    kube.add_node(node("node-gpu", {}, (), {**STATIC_ALLOCATABLE, "nvidia.com/gpu": "4"}, kube.clock.stamp()))
    return kube


@pytest.fixture(scope="module")
def service(gpus, tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("quantities"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=gpus.url, KATUNA_K8S_NAMESPACE=NAMESPACE)
    yield running
    running.close()


def post(service: Service, definition: dict) -> tuple[int, dict]:
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(definition),
                                      {"Content-Type": "application/yaml"})
    return status, json.loads(body)


@pytest.mark.slow
def test_a_trial_job_with_numeric_quantities_runs_with_the_amounts_it_asked_for(service: Service, gpus: KubeStub):
    status, body = post(service, experiment("gpu-job", copy.deepcopy(NUMERIC), volumes=SCRATCH))
    assert status == 201, body
    study = service.wait_for("gpu-job", timeout=120)
    trial = service.json("GET", "/studies/gpu-job/trials")[1][0]
    assert (study["status"], trial["state"], trial["value"]) == ("completed", "COMPLETE", 0.5), trial
    pod = gpus.created_jobs["gpu-job-0"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "0.5", "memory": "1Gi"},
                                                 "limits": {"cpu": "1", "nvidia.com/gpu": "1", "memory": "1Gi"}}
    assert pod["volumes"][0]["emptyDir"]["sizeLimit"] == "1000"


REFUSED = {
    "no quantity": ({"limits": {"cpu": "abc"}}, [], SPEC, (
        "Job in version \"v1\" cannot be handled as a Job: quantities must match the regular expression "
        "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")),
    "exponent and suffix": ({"limits": {"memory": "1e-05Gi"}}, [], SPEC, "quantities must match the regular "
                                                                             "expression"),
    "two points": ({"limits": {"memory": "1.2.3"}}, [], SPEC, "quantities must match the regular expression"),
    "negative": ({"limits": {"cpu": -1}}, [], f"{POD}.containers[0].resources.limits[cpu]",
                 'Invalid value: "-1": must be greater than or equal to 0'),
    "negative size": ({}, [{"name": "scratch", "emptyDir": {"sizeLimit": -1000}}], f"{POD}.volumes[0].emptyDir.sizeLimit",
                      "Forbidden: SizeLimit field must be a valid resource quantity"),
    "boolean": ({"limits": {"cpu": True}}, [], f"{POD}.containers[0].resources.limits.cpu",
                "Input should be a valid string, got True: Kubernetes' client refuses the first trial's Job before "
                "sending it"),
}


@pytest.mark.slow
@pytest.mark.parametrize("resources,volumes,path,words", REFUSED.values(), ids=REFUSED.keys())
def test_a_quantity_kubernetes_refuses_is_refused_at_submission_naming_the_field(
        service: Service, resources: dict, volumes: list, path: str, words: str):
    status, body = post(service, experiment("refused", resources, **({"volumes": volumes} if volumes else {})))
    assert status == 422, body
    assert [p["path"] for p in body["problems"]] == [path] and words in body["problems"][0]["message"], body
    assert service.request("GET", "/studies/refused")[0] == 404, "nothing is stored"


@pytest.mark.slow
def test_a_value_only_a_trials_parameter_makes_the_client_refuse_fails_that_trial_alone(gpus: KubeStub,
                                                                                       tmp_path: Path):
    """A typed field filled with a number where Kubernetes takes only a string (an environment
    value): the first trial's dry run passed, so the launch is refused for that trial, naming the
    field, and the study goes on."""
    definition = study_definition(name="typed-env", maxTrials=2, maxFailedTrials=2, parallelism=1,
                                  algorithm={"name": "grid"})
    definition["parameters"] = [{"name": "mode", "type": "categorical", "values": ["fast", "7"]}]
    container = {"name": "main", "image": "python:3.12", "env": [{"name": "MODE", "value": "${trialParameters.mode}"}],
                 "command": [sys.executable, "-c", "print('loss=0.5')", "${trialParameters.mode}"]}
    definition["trialTemplate"] = {"typedFields": [["spec", "template", "spec", "containers", 0, "env", 0, "value"]],
                                   "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
                                       "spec": {"restartPolicy": "Never", "containers": [container]}}}}}
    study, trials = run_on_cluster(gpus.url, tmp_path, NAMESPACE, definition)
    by_mode = {t["params"]["mode"]: t for t in trials}
    assert (by_mode["fast"]["state"], by_mode["7"]["state"]) == ("COMPLETE", "FAIL"), trials
    assert by_mode["7"]["reason"] == (
        "katuna refused the workload its parameters make: trialTemplate.trialSpec.spec.template.spec.containers[0]"
        f".env[0].value: Input should be a valid string, got 7: Kubernetes' client refuses Job "
        f"typed-env-{by_mode['7']['number']} before sending it")
    assert study["status"] == "completed", study
