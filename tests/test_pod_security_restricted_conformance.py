"""katuna's restricted check (:mod:`functions.core.pod_security_restricted`, run at submission
where the operator set ``KATUNA_TRIAL_POD_SECURITY=restricted``) refuses exactly the pods Pod
Security Admission's ``restricted`` refuses at creation, as the Kubernetes stand-in models it
(:mod:`kube_standin.pod_security_restricted`, 1.37 at ``latest``): each pod below is a Job's pod
template in a study's ``trialSpec``, checked by katuna, and the pod of the Job katuna renders
from it (katuna's own ``securityContext`` laid on a pod that sets none) is judged by the
stand-in's admission; they must agree. And the Job katuna renders for a study of an image alone
is one restricted admits, with the File collector's volume too.

Every restricted check of the stand-in's has a pod here it refuses
(:func:`test_every_restricted_check_has_a_pod_it_refuses`)."""

from __future__ import annotations

import pytest
from kube_standin.admission import pod_security as admitted
from kube_standin.pod_security_restricted import RESTRICTED

from functions.core import file_collector, pod_security
from functions.core.cluster import Cluster
from functions.core.job import render_job
from functions.core.launch import TrialLaunch

LEVEL = Cluster(pod_security="restricted")
HARDENED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
OWN_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def _container(name: str = "main", **context: object) -> dict:
    return {"name": name, "image": "python:3.12", "command": ["train"], "securityContext": {**HARDENED, **context}}


def _pod(*containers: dict, **spec: object) -> dict:
    """A pod spec of ``containers`` (one hardened ``main`` when none) with the fields of ``spec``."""
    return {"restartPolicy": "Never", "containers": list(containers) or [_container()], **spec}


def _bare(name: str = "main") -> dict:
    return {"name": name, "image": "python:3.12", "command": ["train"]}


REFUSED = {
    "a bare container": _pod(_bare()),
    "a bare init container": _pod(initContainers=[_bare("setup")]),
    "privilege escalation allowed": _pod(_container(allowPrivilegeEscalation=True)),
    "no capability dropped": _pod({**_bare(), "securityContext": {"allowPrivilegeEscalation": False}}),
    "some capabilities dropped": _pod(_container(capabilities={"drop": ["NET_RAW", "SYS_ADMIN"]})),
    "a capability baseline allows": _pod(_container(capabilities={"drop": ["ALL"], "add": ["CHOWN"]})),
    "the pod's own context without runAsNonRoot": _pod(securityContext={"fsGroup": 100,
                                                                        "seccompProfile": {"type": "RuntimeDefault"}}),
    "the pod's own context without seccomp": _pod(securityContext={"runAsNonRoot": True}),
    "runAsNonRoot false on the pod": _pod(_container(runAsNonRoot=True), securityContext={**OWN_POD,
                                                                                         "runAsNonRoot": False}),
    "runAsNonRoot false on a container": _pod(_container(runAsNonRoot=False), securityContext=OWN_POD),
    "one container of two without runAsNonRoot": _pod(
        _container(runAsNonRoot=True), _container("side"),
        securityContext={"seccompProfile": {"type": "RuntimeDefault"}}),
    "one container of two without seccomp": _pod(
        _container(seccompProfile={"type": "RuntimeDefault"}), _container("side"), securityContext={"runAsNonRoot": True}),
    "root on the pod": _pod(securityContext={**OWN_POD, "runAsUser": 0}),
    "root on a container": _pod(_container(runAsUser=0)),
    "a hostPath volume": _pod(volumes=[{"name": "h", "hostPath": {"path": "/data"}}]),
    "an NFS volume": _pod(volumes=[{"name": "n", "nfs": {"server": "nfs.example.com", "path": "/data"}}]),
    "procMount in a user namespace": _pod(_container(procMount="Unmasked"), hostUsers=False),
    "an unconfined seccomp profile": _pod(securityContext={**OWN_POD, "seccompProfile": {"type": "Unconfined"}}),
}

ALLOWED = {
    "hardened containers in a pod katuna gives its context": _pod(initContainers=[_container("setup")]),
    "the pod's own context": _pod(securityContext={**OWN_POD, "runAsUser": 1000, "fsGroup": 100}),
    "non-root and seccomp on every container": _pod(
        _container(runAsNonRoot=True, seccompProfile={"type": "Localhost", "localhostProfile": "p.json"}),
        securityContext={"fsGroup": 100}),
    "binding low ports": _pod(_container(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})),
    "volumes restricted allows": _pod(volumes=[
        {"name": "scratch", "emptyDir": {}}, {"name": "config", "configMap": {"name": "c"}},
        {"name": "token", "secret": {"secretName": "s"}}, {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
        {"name": "info", "downwardAPI": {"items": []}}, {"name": "all", "projected": {"sources": []}}]),
    "root in a user namespace": _pod(_container(runAsUser=0), hostUsers=False,
                                     securityContext={"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}}),
    "a Windows pod": _pod(_bare(), os={"name": "windows"}, securityContext={"runAsNonRoot": True}),
}


def _job(spec: dict) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": spec}}}


def _katuna(spec: dict) -> list[str]:
    """What katuna refuses, at restricted, in a study whose ``trialSpec`` is a Job of this pod."""
    return [str(problem) for problem in pod_security.study_problems(_job(spec), "restricted")]


def _rendered(spec: dict) -> dict:
    """The pod template of the Job katuna renders for the study's first trial, at restricted."""
    launch = TrialLaunch("conform", "u1", 0, 1, "conform-0", [], {}, ".", None, trial_spec=_job(spec),
                         primary_container="main", params={})
    return render_job(launch, LEVEL)["spec"]["template"]


def _admission(spec: dict) -> list[str]:
    template = _rendered(spec)
    return admitted("restricted", template.get("metadata") or {}, template["spec"])


@pytest.mark.parametrize("spec", REFUSED.values(), ids=REFUSED.keys())
def test_katuna_refuses_at_submission_what_restricted_refuses_at_creation(spec: dict):
    assert _admission(spec), "the pod is one restricted refuses"
    assert _katuna(spec)


@pytest.mark.parametrize("spec", ALLOWED.values(), ids=ALLOWED.keys())
def test_katuna_takes_what_restricted_allows(spec: dict):
    assert _admission(spec) == [], "the pod is one restricted allows"
    assert _katuna(spec) == []


def test_every_restricted_check_has_a_pod_it_refuses():
    failing = {check for spec in REFUSED.values() for check, (refuses, _) in RESTRICTED.items()
               if refuses({}, _rendered(spec)["spec"])}
    assert failing == set(RESTRICTED)


def _image_only(name: str, metrics_file: str | None = None) -> TrialLaunch:
    return TrialLaunch(name, "u1", 0, 1, f"{name}-0", ["python", "train.py"], {}, ".", None, image="python:3.12",
                       metrics_file=metrics_file)


def test_the_job_katuna_renders_for_an_image_is_one_restricted_admits_where_the_operator_says_so():
    """At the baseline (the default) katuna's Job runs the image's own user, root in most
    images: restricted refuses it for want of ``runAsNonRoot``, as the docs said. At restricted it
    asks for ``runAsNonRoot``, and a study's ``runAsUser`` gives the user."""
    baseline = render_job(_image_only("plain"))["spec"]["template"]
    assert [v.split(" (")[0] for v in admitted("restricted", baseline["metadata"], baseline["spec"])] == [
        "runAsNonRoot != true"]
    strict = render_job(_image_only("strict"), LEVEL)["spec"]["template"]
    assert admitted("restricted", strict["metadata"], strict["spec"]) == []
    assert strict["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": True}
    user = TrialLaunch("user", "u1", 0, 1, "user-0", ["train"], {}, ".", None, image="python:3.12",
                       cluster=Cluster(run_as_user=10001))
    assert render_job(user, LEVEL)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
    wrapped = file_collector.wrap(render_job(_image_only("file"), LEVEL), "trial", "/metrics/out.log")
    template = wrapped["spec"]["template"]
    assert template["spec"]["volumes"] and admitted("restricted", template["metadata"], template["spec"]) == []
