"""Katib's early stopping for cluster trials that only print their metrics: katuna reads the
running trial's log now and then, each report of the objective a step as Katib counts them,
and the pruner judges them as it judges a local trial's (a real ``katuna serve`` with the
Kubernetes executor, the real client, the loopback API whose kubelet runs the trial's command
and serves its log while it runs)."""

from __future__ import annotations

import sys

import pytest
import yaml
from http_helpers import Service
from kube_stub import KubeStub

NAMESPACE = "stopping"
KUBE_NAMESPACES = (NAMESPACE,)

TRIAL = """
import os, time
good = os.environ["KATUNA_TRIAL"] == "0"
for epoch in (1, 2, 3):
    print(f"Epoch {epoch}: loss={(1.0 if good else 10.0) + 1 / epoch:.4f}", flush=True)
    time.sleep(0.1 if good or epoch == 1 else 300)
"""
"""Trial 0 ends at once; every later one is far worse, and after its second report it would
run for many minutes."""


def experiment(name: str) -> dict:
    """A Katib Experiment with the median stopping rule, judged at the second report, whose
    trial prints ``loss=`` once an epoch with no step key, as Katib's example images do."""
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"}, "parallelTrialCount": 1, "maxTrialCount": 2,
            "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
                {"name": "min_trials_required", "value": "1"}, {"name": "start_step", "value": "2"}]},
            "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.2"}}],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "training-container", "image": "python:3.12",
                                    "command": [sys.executable, "-c", TRIAL, "--lr=${trialParameters.learningRate}"]}]}}}}}}}


@pytest.mark.slow
def test_a_cluster_trial_that_only_prints_is_stopped_by_katibs_rule_while_it_runs(kube: KubeStub, tmp_path):
    service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE=NAMESPACE, KATUNA_K8S_PROGRESS_SECONDS="0.3")
    try:
        status, _, body = service.request("POST", "/studies", yaml.safe_dump(experiment("stop-early")),
                                          {"Content-Type": "application/yaml"})
        assert status == 201, body
        study = service.wait_for("stop-early", timeout=60)
        trials = sorted(service.json("GET", "/studies/stop-early/trials")[1], key=lambda t: t["number"])
    finally:
        service.close()
    assert study["status"] == "completed", study
    assert [t["state"] for t in trials] == ["COMPLETE", "PRUNED"], trials
    assert trials[1]["reason"] == "pruned at step 2 by the medianstop rule (loss=10.5)"
    assert trials[1]["metrics"] == {"loss": 10.5}, "the metrics reported before the stop, as Katib's collector"
    deleted = [(namespace, name, policy) for namespace, name, policy in kube.deleted if name.startswith("stop-early")]
    assert deleted == [(NAMESPACE, "stop-early-1", "Background")], "its Job was deleted, with its pods, while it ran"
