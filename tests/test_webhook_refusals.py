"""An operator's validating webhook that denies the first trial's workload is answered at the
field it names under ``trialTemplate.trialSpec``: Tekton's (knative's ``FieldError`` lines,
``<why>: <path>, <path>``, in a 400) and a controller-runtime one's (``<path>: <why>``, in a
403, which is the workload's fault and no lack of access)."""

from __future__ import annotations

import sys

import pytest
from kube_stub import KubeStub

from functions.adapters.kubernetes_access import Access
from functions.adapters.kubernetes_fields import webhook_refusals
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy, Problem
from functions.core.validate import parse_study

TRIAL_SPEC = "spec.trialTemplate.trialSpec"
REFUSED = "the API server refuses the first trial's PipelineRun (a dry run of its create)"
TEKTON = 'admission webhook "validation.webhook.pipeline.tekton.dev" denied the request: validation failed: '


def test_tektons_refusal_is_at_each_path_it_names_under_the_trial_spec():
    message = (TEKTON + "expected exactly one, got both: spec.pipelineRef, spec.pipelineSpec\n"
               "invalid value: -1: spec.pipelineSpec.tasks[0].retries\nretries must be 0 or more")
    assert webhook_refusals(message, TRIAL_SPEC, REFUSED) == [
        Problem(f"{TRIAL_SPEC}.spec.pipelineRef", "expected exactly one, got both (admission webhook "
                f'"validation.webhook.pipeline.tekton.dev" denied the request): {REFUSED}'),
        Problem(f"{TRIAL_SPEC}.spec.pipelineSpec", "expected exactly one, got both (admission webhook "
                f'"validation.webhook.pipeline.tekton.dev" denied the request): {REFUSED}'),
        Problem(f"{TRIAL_SPEC}.spec.pipelineSpec.tasks[0].retries", "invalid value: -1 (admission webhook "
                f'"validation.webhook.pipeline.tekton.dev" denied the request): {REFUSED}')]


def test_a_path_first_refusal_is_placed_and_one_naming_no_spec_path_is_left_to_the_whole_trial_spec():
    denied = ('admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the request: '
              "spec.pytorchReplicaSpecs[Worker].template.spec.containers: Required value: must have at least one "
              "container with name pytorch")
    [problem] = webhook_refusals(denied, TRIAL_SPEC, REFUSED)
    assert problem.path == f"{TRIAL_SPEC}.spec.pytorchReplicaSpecs[Worker].template.spec.containers"
    assert problem.message.startswith("Required value: must have at least one container with name pytorch")
    assert webhook_refusals(TEKTON + 'invalid value: "7b": metadata.name', TRIAL_SPEC, REFUSED) == []
    assert webhook_refusals("spec.x: Invalid value: 1", TRIAL_SPEC, REFUSED) == [], "no webhook's denial"


def test_a_study_whose_workload_the_operators_webhook_denies_is_refused_at_the_field_it_names():
    """The Training Operator's webhook denies a PyTorchJob whose Worker has no ``pytorch``
    container (403): the study is refused at that field, not told katuna may not create it in
    its namespace."""
    replica = {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "main", "image": "python:3.12", "command": [sys.executable, "train.py", "--x=${trialParameters.x}"]}]}}}
    trial_spec = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {
        "pytorchReplicaSpecs": {"Master": replica, "Worker": replica}}}
    study = {"name": "denied", "objective": {"metric": "loss", "direction": "minimize"}, "maxTrials": 1,
             "parallelism": 1, "parameters": [{"name": "x", "type": "float", "min": -5.0, "max": 5.0}],
             "kubernetes": {"namespace": "default"},
             "trialTemplate": {"trialSpec": trial_spec, "primaryContainerName": "main"}}
    cluster = KubeStub()
    try:
        cluster.install_operator("training-operator")
        with pytest.raises(InvalidStudy) as refused:
            Access(cluster.api_client(), Cluster(namespace="default")).refusal(parse_study(study))
        assert [p.path for p in refused.value.problems] == [
            f"trialTemplate.trialSpec.spec.pytorchReplicaSpecs[{role}].template.spec.containers"
            for role in ("Master", "Worker")]
        assert "must have at least one container with name pytorch" in refused.value.problems[0].message
        assert not cluster.workloads
    finally:
        cluster.close()
