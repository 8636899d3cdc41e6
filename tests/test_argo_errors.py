"""An Argo Workflow that ends in ``Error`` (its controller gave up on it: here, a step whose
executor may not report its end, as its account lacks the ``workflowtaskresults`` grant) fails
its trial with Argo's words, under katuna's default conditions and under Katib's example ones,
which name ``Failed`` only; a Workflow of steps ends ``Failed`` instead, and its trial says
which step failed and why, from the Workflow's nodes."""

from __future__ import annotations

import sys

import pytest
from kube_stub import KubeStub
from waiting import eventually

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.core.cluster import Cluster
from functions.core.launch import TrialLaunch

FIT = {"image": "python:3.12", "command": [sys.executable, "-c", "print('loss=0.5')"]}
FORBIDDEN = ('wait: Error (exit code 64): workflowtaskresults.argoproj.io is forbidden: User '
             '"system:serviceaccount:default:default" cannot create resource "workflowtaskresults"')
KATIB_EXAMPLE = {"success_condition": 'status.[@this].#(phase=="Succeeded")#',
                 "failure_condition": 'status.[@this].#(phase=="Failed")#'}
"""The conditions of Katib's examples/v1beta1/argo/argo-workflow.yaml."""


@pytest.fixture
def cluster():
    stub = KubeStub()
    stub.install_operator("argo")
    yield stub
    stub.close()


def _launch(name: str, templates: list[dict], **conditions: str) -> TrialLaunch:
    """A Workflow naming no account, so its pods run as ``default``, whose executor may not report."""
    spec = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "spec": {"entrypoint": templates[0]["name"], "templates": templates}}
    return TrialLaunch(name, "0123456789ab", 0, 1, f"{name}-0", [], {}, ".", timeout=None, trial_spec=spec,
                       primary_container="main", **conditions)


def _workflow(cluster: KubeStub, name: str) -> dict:
    with cluster.lock:
        return cluster.workloads[("workflows", "default", name)]


@pytest.mark.parametrize("conditions", [{}, KATIB_EXAMPLE], ids=["default", "katib-example"])
def test_a_workflow_in_error_fails_its_trial_with_argos_message(cluster: KubeStub, conditions: dict[str, str]):
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))
    launch = _launch("err", [{"name": "fit", "container": FIT}], **conditions)
    executor.launch(launch)
    eventually(lambda: _workflow(cluster, "err-0").get("status", {}).get("phase") == "Error", "the Workflow to err")
    assert _workflow(cluster, "err-0")["status"]["message"].startswith(FORBIDDEN)
    finished = eventually(lambda: executor.poll(launch), "the trial to end")
    assert (finished.data["outcome"], finished.data["exitCode"]) == ("exited", 1)
    assert finished.data["message"].startswith(f"Workflow failed: Error: {FORBIDDEN}")
    assert finished.data["message"].count(FORBIDDEN) == 1


def test_a_workflow_of_steps_fails_on_a_step_that_erred_and_says_which(cluster: KubeStub):
    """As Argo's step group: a child that erred fails the group, and the Workflow, with
    ``child '<node>' failed``; the step's node holds the executor's words."""
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))
    launch = _launch("steps", [{"name": "hp", "steps": [[{"name": "train", "template": "fit"}]]},
                               {"name": "fit", "container": FIT}], **KATIB_EXAMPLE)
    executor.launch(launch)
    eventually(lambda: _workflow(cluster, "steps-0").get("status", {}).get("phase") == "Failed",
               "the Workflow to fail")
    status = _workflow(cluster, "steps-0")["status"]
    [(node_id, node)] = status["nodes"].items()
    assert status["message"] == f"child '{node_id}' failed"
    assert (node["phase"], node["displayName"]) == ("Error", "train") and node["message"].startswith(FORBIDDEN)
    finished = eventually(lambda: executor.poll(launch), "the trial to end")
    assert finished.data["message"].startswith(
        f"Workflow failed: Failed: child '{node_id}' failed; step train: {FORBIDDEN}")


def test_a_workflow_in_error_as_its_pod_was_deleted_is_a_lost_run_naming_argos_message(cluster: KubeStub):
    """A step's pod deleted before it ran (here, waiting for an image the registry has not)
    errs its node (Argo's ``pod deleted``) and the Workflow: its run is lost, not failed, and
    the trial's reason says what Argo said."""
    cluster.kubelets.missing_images.add("registry.example.com/missing:1")
    executor = KubernetesExecutor(Cluster(namespace="default"), api_client(cluster.url))
    launch = _launch("gone", [{"name": "fit", "container": {**FIT, "image": "registry.example.com/missing:1"}}])
    executor.launch(launch)
    [pod] = eventually(lambda: [p for p in _pods(cluster) if p["metadata"]["name"].startswith("gone-0-")], "its pod")
    with cluster.lock:
        cluster.delete_pod(pod)
    eventually(lambda: _workflow(cluster, "gone-0").get("status", {}).get("phase") == "Error", "the Workflow to err")
    finished = eventually(lambda: executor.poll(launch), "the trial to end")
    assert finished.data["outcome"] == "preempted"
    assert finished.data["message"].endswith("the run is lost, not failed (Workflow Error: pod deleted)")


def _pods(cluster: KubeStub) -> list[dict]:
    with cluster.lock:
        return list(cluster.pods.values())
