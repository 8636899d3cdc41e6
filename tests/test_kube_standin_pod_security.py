"""The stand-in's admission refuses a Job's pods as a real API server's plugins do, worded as they
word it: Pod Security's ``baseline`` and ``restricted`` levels (checks from
k8s.io/pod-security-admission at 1.37's ``latest``), warned of when the Job itself is created;
and a missing ServiceAccount, which names the pod by its ``generateName`` (the plugin mutates,
before the pod is named), so the Job controller's repeated refusals are one Event counting up."""

from __future__ import annotations

import re

import pytest
from kube_standin.admission import ENFORCE
from kube_standin.clock import SimulatedClock
from kube_stub import KubeStub

from functions.core.job import CONTAINER_SECURITY
from functions.core.pod_security import RUNTIME_SECCOMP as POD_SECURITY

DROPPED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
"""A container restricted lets run, with :data:`RESTRICTED_POD`."""
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def _job(name: str, container: dict | None = None, annotations: dict | None = None, **pod) -> dict:
    """A Job of one pod whose container ``trial`` has the fields of ``container``, its pod those of ``pod``."""
    spec = {"restartPolicy": "Never", "containers": [{"name": "trial", "image": "python:3.12", **(container or {})}],
            **pod}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"annotations": annotations or {}}, "spec": spec}}}


def _refusals(kube: KubeStub, namespace: str, job: dict) -> list[tuple[str, int]]:
    """The Job controller's ``FailedCreate`` Events on ``job`` after three syncs (each tries a
    pod again once the controller's back-off has passed, on a simulated clock), with their
    counts; none when it made the pod."""
    assert kube.create_job(namespace, job)[0] == 201
    for _ in range(3):
        kube.settle()
        if isinstance(kube.clock, SimulatedClock):
            kube.clock.advance()
    return [(e["message"], e["count"]) for e in kube.events_of("Job", job["metadata"]["name"])
            if e["reason"] == "FailedCreate"]


def _refused_by(kube: KubeStub, namespace: str, job: dict) -> str:
    """Why Pod Security refuses ``job``'s pod, its generated name left out."""
    (message, _), *_ = _refusals(kube, namespace, job) or [("", 0)]
    name = job["metadata"]["name"]
    found = re.fullmatch(rf'Error creating: pods "{name}-[a-z0-9]{{5}}" is forbidden: violates PodSecurity (.*)',
                         message)
    assert found, message
    return found.group(1)


BASELINE = {
    "pod seccomp": (_job("j", securityContext={"seccompProfile": {"type": "Unconfined"}}),
                    'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'),
    "both seccomps": (_job("j", {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
                           securityContext={"seccompProfile": {"type": "Unconfined"}}),
                      'seccompProfile (pod and container "trial" must not set securityContext.seccompProfile.type '
                      'to "Unconfined")'),
    "procMount": (_job("j", {"securityContext": {"procMount": "Unmasked"}}),
                  'procMount (container "trial" must not set securityContext.procMount to "Unmasked")'),
    "sysctls": (_job("j", securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                                       {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                                                       {"name": "net.core.somaxconn", "value": "1"}]}),
                "forbidden sysctls (kernel.msgmax, net.core.somaxconn)"),
    "AppArmor annotation": (
        _job("j", annotations={"container.apparmor.security.beta.kubernetes.io/trial": "unconfined"}),
        'forbidden AppArmor profile (annotation must not set AppArmor profile type to '
        '"container.apparmor.security.beta.kubernetes.io/trial="unconfined"")'),
    "AppArmor field": (_job("j", {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
                       'forbidden AppArmor profile (container "trial" must not set AppArmor profile type to '
                       '"Unconfined")'),
    "SELinux type": (_job("j", {"securityContext": {"seLinuxOptions": {"type": "spc_t"}}}),
                     'seLinuxOptions (container "trial" set forbidden securityContext.seLinuxOptions: type "spc_t")'),
    "SELinux user and role": (_job("j", securityContext={"seLinuxOptions": {"user": "system_u", "role": "system_r"}}),
                              "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: user may not be set; "
                              "role may not be set)"),
    "Windows hostProcess": (_job("j", hostNetwork=True, securityContext={"windowsOptions": {"hostProcess": True}}),
                            "host namespaces (hostNetwork=true), hostProcess (pod must not set "
                            "securityContext.windowsOptions.hostProcess=true)"),
    "hostPort": (_job("j", {"ports": [{"containerPort": 80, "hostPort": 8080}]}),
                 'hostPort (container "trial" uses hostPort 8080)'),
    "capabilities": (_job("j", {"securityContext": {"capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]}}}),
                     'non-default capabilities (container "trial" must not include "NET_ADMIN", "SYS_ADMIN" in '
                     "securityContext.capabilities.add)"),
    "probe host": (_job("j", {"livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}),
                   'probe or lifecycle host (container "trial" uses probe or lifecycle host "10.0.0.1")'),
    "several, in the checks' order": (
        _job("j", {"securityContext": {"privileged": True}}, hostNetwork=True,
             securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}),
        'host namespaces (hostNetwork=true), privileged (container "trial" must not set '
        'securityContext.privileged=true), forbidden sysctls (kernel.msgmax)'),
}


@pytest.mark.parametrize(("job", "violation"), BASELINE.values(), ids=BASELINE.keys())
def test_a_pod_short_of_baseline_is_refused_in_the_checks_own_words(simulated_kube: KubeStub, job: dict,
                                                                      violation: str):
    assert _refused_by(simulated_kube, "katuna", job) == f'"baseline:latest": {violation}'


ALLOWED = {
    "profiles": _job("j", {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"},
                                               "appArmorProfile": {"type": "RuntimeDefault"}}},
                     annotations={"container.apparmor.security.beta.kubernetes.io/trial": "runtime/default"}),
    "safe sysctls": _job("j", securityContext={"sysctls": [{"name": n, "value": "1"} for n in (
        "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_notsent_lowat")]}),
    "container SELinux types": _job("j", {"securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}),
    "procMount in a user namespace": _job("j", {"securityContext": {"procMount": "Unmasked"}}, hostUsers=False),
    "baseline's capabilities": _job("j", {"securityContext": {"capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"]}}}),
}


@pytest.mark.parametrize("job", ALLOWED.values(), ids=ALLOWED.keys())
def test_a_pod_baseline_allows_is_made(simulated_kube: KubeStub, job: dict):
    assert _refusals(simulated_kube, "katuna", job) == []


RESTRICTED = {
    "a bare pod": (_job("j"), 'allowPrivilegeEscalation != false (container "trial" must set '
                              'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container '
                              '"trial" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod '
                              'or container "trial" must set securityContext.runAsNonRoot=true), seccompProfile (pod or '
                              'container "trial" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
                              '"Localhost")'),
    "katuna's trial pod": (_job("j", {"securityContext": CONTAINER_SECURITY}, securityContext=POD_SECURITY),
                           'runAsNonRoot != true (pod or container "trial" must set '
                           "securityContext.runAsNonRoot=true)"),
    "root": (_job("j", {"securityContext": {**DROPPED, "runAsUser": 0, "runAsNonRoot": False}},
                  securityContext=RESTRICTED_POD),
             'runAsNonRoot != true (container "trial" must not set securityContext.runAsNonRoot=false), runAsUser=0 '
             '(container "trial" must not set runAsUser=0)'),
    "a capability": (_job("j", {"securityContext": {"allowPrivilegeEscalation": False,
                                                    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE",
                                                                                              "CHOWN"]}}},
                          securityContext=RESTRICTED_POD),
                     'unrestricted capabilities (container "trial" must not include "CHOWN" in '
                     "securityContext.capabilities.add)"),
    "a hostPath volume": (_job("j", {"securityContext": DROPPED}, securityContext=RESTRICTED_POD,
                               volumes=[{"name": "host", "hostPath": {"path": "/data"}},
                                        {"name": "scratch", "emptyDir": {}}]),
                          'restricted volume types (volume "host" uses restricted volume type "hostPath")'),
    "an unconfined seccomp profile": (_job("j", {"securityContext": DROPPED}, securityContext={"runAsNonRoot": True,
                                                                         "seccompProfile": {"type": "Unconfined"}}),
                                      'seccompProfile (pod must not set securityContext.seccompProfile.type to '
                                      '"Unconfined")'),
}


@pytest.mark.parametrize(("job", "violation"), RESTRICTED.values(), ids=RESTRICTED.keys())
def test_a_pod_short_of_restricted_is_refused_in_the_checks_own_words(job: dict, violation: str):
    kube = KubeStub(namespaces=["strict"])
    try:
        kube.label_namespace("strict", {ENFORCE: "restricted"})
        assert _refused_by(kube, "strict", job) == f'"restricted:latest": {violation}'
    finally:
        kube.close()


def test_a_pod_restricted_allows_is_made_and_a_user_namespace_may_run_as_root():
    kube = KubeStub(namespaces=["strict"])
    try:
        kube.label_namespace("strict", {ENFORCE: "restricted"})
        assert _refusals(kube, "strict", _job("j", {"securityContext": DROPPED}, securityContext=RESTRICTED_POD)) == []
        assert _refusals(kube, "strict", _job("k", {"securityContext": {**DROPPED, "runAsUser": 0}}, hostUsers=False,
                                              securityContext=POD_SECURITY)) == []
    finally:
        kube.close()


def test_a_job_short_of_the_namespaces_warn_level_is_created_with_a_warning(simulated_kube: KubeStub):
    """katuna's namespace enforces baseline and warns of restricted: a Job is never refused for
    its template, but warned of; its pods are refused by the enforced level alone."""
    warnings: list[str] = []
    assert simulated_kube.create_job("katuna", _job("j", {"securityContext": CONTAINER_SECURITY}, securityContext=POD_SECURITY),
                                     warnings=warnings)[0] == 201
    assert warnings == ['would violate PodSecurity "restricted:latest": runAsNonRoot != true (pod or container '
                        '"trial" must set securityContext.runAsNonRoot=true)']
    warned: list[str] = []
    assert simulated_kube.create_job("katuna", _job("k", {"securityContext": DROPPED}, securityContext=RESTRICTED_POD),
                                     warnings=warned)[0] == 201
    assert warned == []


def test_a_missing_service_account_refuses_the_pod_by_its_generate_name_in_one_counted_event(
        simulated_kube: KubeStub):
    (message, count), *others = _refusals(simulated_kube, "katuna", _job("acct", serviceAccountName="trainer"))
    assert (message, others) == ('Error creating: pods "acct-" is forbidden: error looking up service account '
                                 'katuna/trainer: serviceaccount "trainer" not found', [])
    assert count > 1, "each sync's refusal counts up on the first"
