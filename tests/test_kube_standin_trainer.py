"""What Kubeflow Trainer and JobSet make of a TrainJob on the stand-in, as the real controllers
make it: a JobSet of the TrainJob's name controlled by the TrainJob, carrying none of its labels;
Jobs controlled by the JobSet; pods controlled by their Job, labelled by JobSet (v0.8.2's labels)
and by the Job controller, and with no label of the TrainJob's. Read through the real kubernetes
client, as katuna reads them, on a simulated clock."""

from __future__ import annotations

import pytest
from kube_standin.clock import SimulatedClock
from kube_standin.containers import Run, SimulatedContainers
from kube_stub import KubeStub
from kubernetes import client

from functions.adapters.kubernetes_client import api_client

JOBSET_LABELS = {"jobset.sigs.k8s.io/jobset-name", "jobset.sigs.k8s.io/replicatedjob-name",
                 "jobset.sigs.k8s.io/job-index"}


@pytest.fixture
def simulated():
    clock = SimulatedClock()
    kube = KubeStub(clock=clock)
    kube.kubelets.containers = SimulatedContainers(clock, lambda pod: Run(5.0, "loss=3\n"))
    kube.install_operator("trainer")
    yield kube, clock
    kube.close()



def _controller(references: list[client.V1OwnerReference] | None) -> tuple[str, str, str]:
    [reference] = references or []
    assert reference.controller and reference.block_owner_deletion
    return reference.kind, reference.name, reference.uid


def test_a_trainjobs_pods_are_its_own_through_its_jobset_and_jobs_each_controlling_the_next(simulated):
    kube, clock = simulated
    api = api_client(kube.url)
    objects, batch, core = client.CustomObjectsApi(api), client.BatchV1Api(api), client.CoreV1Api(api)
    train = objects.create_namespaced_custom_object("trainer.kubeflow.org", "v1alpha1", "default", "trainjobs", {
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
        "metadata": {"name": "t", "labels": {"katuna.dev/study": "t", "katuna.dev/uid": "0123456789ab"}},
        "spec": {"runtimeRef": {"name": "torch-distributed"},
                 "trainer": {"numNodes": 2, "image": "python:3.12", "command": ["train"]}}})

    def jobs() -> list[client.V1Job]:
        return batch.list_namespaced_job("default", label_selector="jobset.sigs.k8s.io/jobset-name=t").items

    kube.run_until(lambda: any(c.type == "Complete" for j in jobs() for c in j.status.conditions or []))
    jobset = objects.get_namespaced_custom_object("jobset.x-k8s.io", "v1alpha2", "default", "jobsets", "t")
    assert jobset["metadata"]["ownerReferences"] == [{
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "name": "t", "uid": train["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}]
    assert jobset["metadata"]["uid"] != train["metadata"]["uid"]
    assert not (jobset["metadata"].get("labels") or {}), "Trainer gives the JobSet none of the TrainJob's labels"

    [job] = jobs()
    assert job.metadata.name == "t-node-0"
    assert _controller(job.metadata.owner_references) == ("JobSet", "t", jobset["metadata"]["uid"])
    assert {k: v for k, v in job.metadata.labels.items() if k.startswith(("jobset.", "trainer."))} == {
        "jobset.sigs.k8s.io/jobset-name": "t", "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "jobset.sigs.k8s.io/job-index": "0", "trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}

    pods = core.list_namespaced_pod("default", label_selector="jobset.sigs.k8s.io/jobset-name=t").items
    assert sorted(p.metadata.labels["batch.kubernetes.io/job-completion-index"] for p in pods) == ["0", "1"]
    for pod in pods:
        assert _controller(pod.metadata.owner_references) == ("Job", "t-node-0", job.metadata.uid)
        assert {k for k in pod.metadata.labels if k.startswith("jobset.")} == JOBSET_LABELS
        assert not [k for k in pod.metadata.labels if k.startswith(("katuna.dev/", "trainer."))], \
            "the runtime's pod template carries none of the TrainJob's labels, nor the Job's own"

