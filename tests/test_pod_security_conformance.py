"""katuna's own baseline check (:mod:`functions.core.pod_security`, run at submission) refuses
exactly the pods Pod Security Admission's ``baseline`` refuses at creation, as the Kubernetes
stand-in models it (:mod:`kube_standin.pod_security`, 1.37 at ``latest``): each pod below is run
through both, as a Job's pod template in a study's ``trialSpec`` and as the pod the API server
admits, and they must agree. Were katuna to let one through, its trials would each fail at
creation; were it to refuse one, a study the cluster would run is turned away.

Every pod is one the API server's validation takes, and every baseline check of the stand-in's
has a pod here it refuses: a check a later Kubernetes adds, modelled in the stand-in, fails
:func:`test_every_baseline_check_has_a_pod_it_refuses` until a pod here covers it, and then
this test until katuna checks it too."""

from __future__ import annotations

import pytest
from kube_standin.admission import pod_security as admitted
from kube_standin.pod_security import BASELINE

from functions.core import pod_security

APPARMOR = "container.apparmor.security.beta.kubernetes.io/main"


def _pod(container: dict | None = None, annotations: dict | None = None, **spec: object) -> tuple[dict, dict]:
    """A pod's metadata and spec: its container ``main`` with the fields of ``container``, its spec those of ``spec``."""
    return ({"annotations": annotations or {}},
            {"restartPolicy": "Never", "containers": [{"name": "main", "image": "python:3.12", **(container or {})}],
             **spec})


def _context(**fields: object) -> dict:
    return {"securityContext": fields}


def _sysctls(*names: str) -> dict:
    return {"sysctls": [{"name": name, "value": "1"} for name in names]}


def _probe(kind: str, **action: object) -> dict:
    return {kind: {"port": 8080, **action}}


SIDECAR = {"name": "side", "image": "busybox", "restartPolicy": "Always",
           "startupProbe": _probe("httpGet", host="localhost")}

REFUSED = {
    "privileged": _pod(_context(privileged=True)),
    "privileged init container": _pod(initContainers=[{"name": "i", "image": "p", **_context(privileged=True)}]),
    "hostNetwork": _pod(hostNetwork=True),
    "hostPID": _pod(hostPID=True),
    "hostIPC": _pod(hostIPC=True),
    "hostPath": _pod(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
    "hostPort": _pod({"ports": [{"containerPort": 80, "hostPort": 8080}]}),
    "capability": _pod(_context(capabilities={"add": ["NET_ADMIN"]})),
    "capability in lower case": _pod(_context(capabilities={"add": ["chown"]})),
    "capability with its CAP_ prefix": _pod(_context(capabilities={"add": ["CAP_CHOWN"]})),
    "sysctl": _pod(securityContext=_sysctls("kernel.msgmax")),
    "sysctl among safe ones": _pod(securityContext=_sysctls("net.ipv4.tcp_rmem", "net.core.somaxconn")),
    "procMount": _pod(_context(procMount="Unmasked")),
    "procMount with the node's users": _pod(_context(procMount="Unmasked"), hostUsers=True),
    "pod seccomp": _pod(securityContext={"seccompProfile": {"type": "Unconfined"}}),
    "container seccomp": _pod(_context(seccompProfile={"type": "Unconfined"})),
    "pod AppArmor": _pod(securityContext={"appArmorProfile": {"type": "Unconfined"}}),
    "container AppArmor": _pod(_context(appArmorProfile={"type": "Unconfined"})),
    "AppArmor annotation": _pod(annotations={APPARMOR: "unconfined"}),
    "AppArmor annotation of another container": _pod(annotations={
        "container.apparmor.security.beta.kubernetes.io/other": "unconfined"}),
    "SELinux type": _pod(_context(seLinuxOptions={"type": "spc_t"})),
    "SELinux user": _pod(securityContext={"seLinuxOptions": {"user": "system_u"}}),
    "SELinux role": _pod(_context(seLinuxOptions={"role": "system_r"})),
    "pod hostProcess": _pod(securityContext={"windowsOptions": {"hostProcess": True}}),
    "container hostProcess": _pod(_context(windowsOptions={"hostProcess": True})),
    "liveness httpGet host": _pod({"livenessProbe": _probe("httpGet", host="10.0.0.1")}),
    "readiness tcpSocket host, the loopback": _pod({"readinessProbe": _probe("tcpSocket", host="127.0.0.1")}),
    "startup httpGet host, the IPv6 loopback": _pod({"startupProbe": _probe("httpGet", host="::1")}),
    "postStart httpGet host": _pod({"lifecycle": {"postStart": _probe("httpGet", host="example.com")}}),
    "preStop tcpSocket host": _pod({"lifecycle": {"preStop": _probe("tcpSocket", host="169.254.169.254")}}),
    "sidecar's probe host": _pod(initContainers=[SIDECAR]),
}

ALLOWED = {
    "a bare pod": _pod(),
    "false and empty everywhere": _pod({**_context(privileged=False, windowsOptions={"hostProcess": False}),
                                        "ports": [{"containerPort": 80, "hostPort": 0}]},
                                       hostNetwork=False, hostPID=False, hostIPC=False, volumes=[]),
    "katuna's own hardening": _pod(_context(privileged=False, allowPrivilegeEscalation=False,
                                            capabilities={"drop": ["ALL"], "add": ["CHOWN", "NET_BIND_SERVICE"]}),
                                   securityContext={"seccompProfile": {"type": "RuntimeDefault"}}),
    "every capability baseline allows": _pod(_context(capabilities={"add": sorted(pod_security.BASELINE_CAPABILITIES)})),
    "every safe sysctl": _pod(securityContext=_sysctls(*sorted(pod_security.SAFE_SYSCTLS))),
    "sysctls Kubernetes 1.32 and 1.37 allow": _pod(securityContext=_sysctls(
        "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat")),
    "procMount Default": _pod(_context(procMount="Default")),
    "procMount in a user namespace": _pod(_context(procMount="Unmasked"), hostUsers=False),
    "profiles": _pod(_context(seccompProfile={"type": "Localhost", "localhostProfile": "p.json"},
                              appArmorProfile={"type": "Localhost", "localhostProfile": "p"}),
                     securityContext={"seccompProfile": {"type": "RuntimeDefault"},
                                      "appArmorProfile": {"type": "RuntimeDefault"}}),
    "AppArmor annotations": _pod(annotations={APPARMOR: "runtime/default",
                                              "container.apparmor.security.beta.kubernetes.io/b": "localhost/p",
                                              "container.apparmor.security.beta.kubernetes.io/c": ""}),
    "other annotations": _pod(annotations={"apparmor.example.com/main": "unconfined", "note": "unconfined"}),
    "SELinux container types and a level": _pod(_context(seLinuxOptions={"type": "container_engine_t"}),
                                                securityContext={"seLinuxOptions": {"level": "s0:c1,c2"}}),
    "SELinux type left null": _pod(_context(seLinuxOptions={"type": None, "level": "s0"})),
    "probes and handlers of the pod's own IP": _pod({
        "livenessProbe": _probe("httpGet", path="/healthz"), "readinessProbe": _probe("tcpSocket", host=""),
        "startupProbe": _probe("grpc"), "lifecycle": {"postStart": {"exec": {"command": ["true"]}},
                                                       "preStop": {"sleep": {"seconds": 1}}}}),
    "an HTTP header named host": _pod({"livenessProbe": _probe("httpGet", httpHeaders=[
        {"name": "Host", "value": "example.com"}])}),
}


def _katuna(metadata: dict, spec: dict) -> list[str]:
    """What katuna refuses in a study whose ``trialSpec`` is a Job of this pod."""
    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"metadata": metadata, "spec": spec}}}
    return [str(problem) for problem in pod_security.study_problems(job)]


@pytest.mark.parametrize(("metadata", "spec"), REFUSED.values(), ids=REFUSED.keys())
def test_katuna_refuses_at_submission_what_baseline_refuses_at_creation(metadata: dict, spec: dict):
    assert admitted("baseline", metadata, spec), "the pod is one baseline refuses"
    assert _katuna(metadata, spec)


@pytest.mark.parametrize(("metadata", "spec"), ALLOWED.values(), ids=ALLOWED.keys())
def test_katuna_takes_what_baseline_allows(metadata: dict, spec: dict):
    assert admitted("baseline", metadata, spec) == [], "the pod is one baseline allows"
    assert _katuna(metadata, spec) == []


def test_every_baseline_check_has_a_pod_it_refuses():
    failing = {check for metadata, spec in REFUSED.values() for check, refuses in BASELINE.items()
               if refuses(metadata, spec)}
    assert failing == set(BASELINE)
