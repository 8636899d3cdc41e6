"""The stand-in kubelet starts a container that must not run as root (``runAsNonRoot``, its own
or the pod's) only where it can tell the image's user is not root, as the kubelet's
``verifyRunAsNonRoot`` does: an image that names no user, user 0, or a name (``app``) leaves the
container waiting in ``CreateContainerConfigError`` for ever, in the kubelet's words; a numeric
non-root ``USER`` (``10001``, ``10001:10001``), or a ``runAsUser`` in the pod, starts it."""

from __future__ import annotations

import pytest
from kube_standin.image_users import image_user
from kube_stub import KubeStub

HARDENED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
NON_ROOT = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def _job(name: str, image: str, container: dict | None = None, **pod: dict) -> dict:
    spec = {"restartPolicy": "Never", "securityContext": NON_ROOT, "containers": [
        {"name": "trial", "image": image, "command": ["train"], "securityContext": {**HARDENED, **(container or {})}}],
            **pod}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": spec}}}


def _state(kube: KubeStub, job: dict, syncs: int = 3) -> tuple[dict, dict]:
    """The pod of ``job`` and its container's state after ``syncs`` of the kubelet's retries."""
    assert kube.create_job("katuna", job)[0] == 201
    for _ in range(syncs):
        kube.settle()
        kube.clock.advance()
    [pod] = [p for p in kube.pods.values() if p["metadata"]["labels"]["job-name"] == job["metadata"]["name"]]
    return pod, pod["status"]["containerStatuses"][0]["state"]


@pytest.mark.parametrize(("user", "words"), [
    ("", "image will run as root"),
    ("0", "image will run as root"),
    ("0:0", "image will run as root"),
    ("app", "image has non-numeric user (app), cannot verify user is non-root"),
    ("app:staff", "image has non-numeric user (app), cannot verify user is non-root"),
    ("-1", "image has an invalid user id (-1). (Must be 1-(2147483647)): must be between 0 and 2147483647, inclusive"),
])
def test_a_container_that_must_not_run_as_root_never_starts_from_an_image_that_may(simulated_kube: KubeStub, user: str,
                                                                                   words: str):
    simulated_kube.kubelets.image_users["registry.example.com/trainer:v1"] = user
    pod, state = _state(simulated_kube, _job("root", "registry.example.com/trainer:v1"))
    metadata = pod["metadata"]
    assert pod["status"]["phase"] == "Pending"
    assert state == {"waiting": {"reason": "CreateContainerConfigError", "message": (
        f'container has runAsNonRoot and {words} (pod: "{metadata["name"]}_katuna({metadata["uid"]})", '
        "container: trial)")}}


@pytest.mark.parametrize(("user", "container", "pod"), [
    ("10001", {}, {}),
    ("10001:10001", {}, {}),
    ("", {"runAsUser": 10001}, {}),
    ("app", {}, {"securityContext": {**NON_ROOT, "runAsUser": 10001}}),
    ("", {"runAsNonRoot": False}, {}),
])
def test_a_container_runs_where_the_kubelet_can_tell_its_user_is_not_root(simulated_kube: KubeStub, user: str,
                                                                          container: dict, pod: dict):
    simulated_kube.kubelets.image_users["trainer:v1"] = user
    _, state = _state(simulated_kube, _job("ok", "trainer:v1", container, **pod))
    assert "waiting" not in state, state


def test_a_run_as_user_of_root_breaks_the_pods_non_root_policy(simulated_kube: KubeStub):
    simulated_kube.kubelets.image_users["trainer:v1"] = "10001"
    pod, state = _state(simulated_kube, _job("zero", "trainer:v1", {"runAsUser": 0}))
    assert state["waiting"]["message"] == (f'container\'s runAsUser breaks non-root policy (pod: '
                                           f'"{pod["metadata"]["name"]}_katuna({pod["metadata"]["uid"]})", '
                                           "container: trial)")


def test_an_image_with_no_user_listed_runs_as_root_without_run_as_non_root(simulated_kube: KubeStub):
    """Most images name no user (``python``): they run as root, which nothing forbids here."""
    job = _job("plain", "python:3.12")
    job["spec"]["template"]["spec"]["securityContext"] = {}
    _, state = _state(simulated_kube, job)
    assert "waiting" not in state


def test_the_runtime_reads_a_user_as_containerd_does():
    assert [image_user(u) for u in ("", "0", "1000:50", "app", "+7", "99999999999999999999")] == [
        (None, ""), (0, ""), (1000, ""), (None, "app"), (7, ""), (None, "99999999999999999999")]
