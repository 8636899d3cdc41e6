"""Population-based training where trials run in a namespace whose ResourceQuota tracks cpu and
memory, requests and limits (as a Kubeflow profile's namespace may): such a quota refuses every
pod one of whose containers, init containers too, does not ask for each (``failed quota: NAME:
must specify ...``). katuna's own containers, which the study cannot set (the checkpoint init
container of each trial's pod, the checkpoint-drop Job's), ask for small requests and limits of
both, so the trials of a study whose own containers ask run, and a deleted study's checkpoints
are deleted. The Jobs as rendered (valid to ``kubernetes-validate``), created in the strict
stand-in, and run end to end by ``katuna serve``."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from http_helpers import Service
from kube_stub import KubeStub
from test_pbt_claim_deletes import wait_gone
from test_pbt_cluster import CLAIM, IMAGE, VOLUME_OF, rendered, run_on_claim, simple_pbt, study_folder
from test_render import validate
from waiting import eventually

from functions.core.checkpoint_drop import drop_job, job_name
from functions.core.checkpoint_volume import INIT_CONTAINER

KUBE_NAMESPACES = ("pbt",)
QUOTA = {"requests.cpu": "8", "requests.memory": "16Gi", "limits.cpu": "16", "limits.memory": "32Gi"}
"""A compute quota tracking what every container must then ask for."""
ASKING = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
"""What the study's own training container asks for."""
KATUNAS = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
UID = "0123456789ab"


def asking_pbt(max_trials: int = 10) -> dict:
    """Katib's simple-pbt whose training container asks for cpu and memory, requests and limits."""
    doc = simple_pbt(max_trials=max_trials)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["resources"] = \
        copy.deepcopy(ASKING)
    return doc


def refusals(kube: KubeStub, job: str) -> list[str]:
    """What the API server said refusing the pods of the Job ``job`` (its ``FailedCreate`` Events)."""
    return [event["message"] for event in kube.events_of("Job", job) if event["reason"] == "FailedCreate"]


def pods_of(kube: KubeStub, namespace: str, job: str) -> list[dict]:
    return [pod for (where, _), pod in list(kube.pods.items())
            if where == namespace and pod["metadata"]["labels"].get("job-name") == job]


def test_katunas_own_containers_ask_for_cpu_and_memory_requests_and_limits(tmp_path: Path):
    trial = rendered(asking_pbt())
    validate(tmp_path, trial)
    pod = trial["spec"]["template"]["spec"]
    assert {c["name"]: c["resources"] for c in [*pod["initContainers"], *pod["containers"]]} == {
        INIT_CONTAINER: KATUNAS, "training-container": ASKING}
    drop = drop_job(VOLUME_OF, UID, {}, "baseline", 600)
    validate(tmp_path, drop)
    assert [c["resources"] for c in drop["spec"]["template"]["spec"]["containers"]] == [KATUNAS]


def test_the_quota_admits_a_pbt_trials_pod_and_the_checkpoint_drop_jobs(kube: KubeStub):
    """The Job controller makes the pods of a pbt trial's Job (its training container asking) and of
    the drop Job in a namespace whose quota tracks cpu and memory requests and limits, refusing none."""
    kube.add_namespace("quota")
    kube.set_quota("quota", QUOTA)
    try:
        trial = rendered(asking_pbt())
        trial["metadata"]["namespace"] = "quota"
        drop = drop_job(VOLUME_OF, UID, {}, "baseline", 600)
        names = [trial["metadata"]["name"], drop["metadata"]["name"]]
        assert [kube.create_job("quota", job)[0] for job in (trial, drop)] == [201, 201]
        eventually(lambda: all(pods_of(kube, "quota", name) or refusals(kube, name) for name in names),
                   "each Job's pod made or refused")
        assert {name: refusals(kube, name) for name in names} == {name: [] for name in names}
        assert all(pods_of(kube, "quota", name) for name in names)
    finally:
        kube.set_quota("quota", {})


@pytest.mark.slow
def test_a_pbt_study_runs_and_its_deletion_deletes_its_checkpoints_under_the_quota(kube: KubeStub, tmp_path: Path):
    kube.set_quota("pbt", QUOTA)
    try:
        doc = asking_pbt()
        doc["metadata"]["name"] = "quota-pbt"
        study, found = run_on_claim(kube, tmp_path, doc)
        assert study["status"] == "completed", study
        assert [t["state"] for t in found] == ["COMPLETE"] * 10, found
        assert [t for t in found if t["generation"] > 0], "a generation after the first, from its parents' folders"
        folder = study_folder(kube, tmp_path, "quota-pbt")
        assert (folder / "0").is_dir()
        service = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                          KATUNA_K8S_NAMESPACE="pbt", KATUNA_CHECKPOINT_CLAIM=CLAIM, KATUNA_CHECKPOINT_IMAGE=IMAGE)
        try:
            assert service.request("DELETE", "/studies/quota-pbt")[0] == 204
        finally:
            service.close()
        wait_gone(folder)
        assert refusals(kube, job_name(folder.name)) == []
    finally:
        kube.set_quota("pbt", {})
