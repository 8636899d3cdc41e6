"""Pod Security Admission's ``restricted`` checks (staging/src/k8s.io/pod-security-admission/policy)
as Kubernetes 1.37 runs them at version ``latest``, worded as each words its reason and detail.

By id (the order they run in, after the baseline checks they leave standing):
``allowPrivilegeEscalation`` (each container must set it ``false``), ``capabilities_restricted``
(each must drop ``ALL`` and add nothing but ``NET_BIND_SERVICE``; it replaces
``capabilities_baseline``), ``procMount_restricted`` (baseline's without the user-namespace
exception; it replaces ``procMount``), ``restrictedVolumes`` (only ``configMap``, ``csi``,
``downwardAPI``, ``emptyDir``, ``ephemeral``, ``image``, ``persistentVolumeClaim``, ``projected``
and ``secret`` volumes; it replaces ``hostPathVolumes``), ``runAsNonRoot`` (``true`` on the pod,
or on every container), ``runAsUser`` (never 0) and ``seccompProfile_restricted``
(``RuntimeDefault`` or ``Localhost`` on the pod, or on every container; it replaces
``seccompProfile_baseline``). A Windows pod (``os.name: windows``) is spared the privilege
escalation, capabilities and seccomp checks; a pod in a user namespace (``hostUsers: false``)
the ``runAsNonRoot`` and ``runAsUser`` ones.
"""

from __future__ import annotations

from collections.abc import Callable

from kube_standin.pod_security import (
    Result,
    allowed_profile,
    containers,
    context,
    named,
    plural,
    proc_mount,
    profiles,
    quote,
    setters,
    user_namespace,
    windows,
)

ALLOWED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                             "persistentVolumeClaim", "projected", "secret"})
NAMED_VOLUMES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd",
                 "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte",
                 "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos")
"""The volume sources ``restrictedVolumes`` names when a volume uses one (any other is ``unknown``)."""


def _escalation(metadata: dict, spec: dict) -> Result:
    names = [c["name"] for c in containers(spec) if context(c).get("allowPrivilegeEscalation") is not False]
    if windows(spec) or not names:
        return None
    return "allowPrivilegeEscalation != false", f"{named(names)} must set securityContext.allowPrivilegeEscalation=false"


def _capabilities(metadata: dict, spec: dict) -> Result:
    if windows(spec):
        return None
    granted = {c["name"]: context(c).get("capabilities") or {} for c in containers(spec)}
    undropped = [name for name, caps in granted.items() if "ALL" not in (caps.get("drop") or ())]
    added = {name: set(caps.get("add") or ()) - {"NET_BIND_SERVICE"} for name, caps in granted.items()}
    adding = [name for name, extra in added.items() if extra]
    said = [f'{named(undropped)} must set securityContext.capabilities.drop=["ALL"]'] if undropped else []
    if adding:
        said.append(f"{named(adding)} must not include {quote(sorted(set().union(*added.values())))} in "
                    "securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(said)) if said else None


def _volumes(metadata: dict, spec: dict) -> Result:
    bad = [v for v in spec.get("volumes", []) if not ALLOWED_VOLUMES & {k for k, s in v.items() if s is not None}]
    if not bad:
        return None
    types = sorted({next((t for t in NAMED_VOLUMES if v.get(t) is not None), "unknown") for v in bad})
    return ("restricted volume types", f"{named([v['name'] for v in bad], 'volume')} {plural('uses', 'use', len(bad))} "
            f"{plural('restricted volume type', 'restricted volume types', len(types))} {quote(types)}")


def _non_root(metadata: dict, spec: dict) -> Result:
    if user_namespace(spec):
        return None
    pod = context(spec).get("runAsNonRoot")
    explicit = [c["name"] for c in containers(spec) if context(c).get("runAsNonRoot") is False]
    if pod is False or explicit:
        return "runAsNonRoot != true", f"{setters(pod is False, explicit)} must not set securityContext.runAsNonRoot=false"
    implicit = [c["name"] for c in containers(spec) if context(c).get("runAsNonRoot") is None and pod is not True]
    if implicit:
        return "runAsNonRoot != true", f"pod or {named(implicit)} must set securityContext.runAsNonRoot=true"
    return None


def _user(metadata: dict, spec: dict) -> Result:
    pod = context(spec).get("runAsUser") == 0
    names = [c["name"] for c in containers(spec) if context(c).get("runAsUser") == 0]
    if user_namespace(spec) or not (pod or names):
        return None
    return "runAsUser=0", f"{setters(pod, names)} must not set runAsUser=0"


def _seccomp(metadata: dict, spec: dict) -> Result:
    if windows(spec):
        return None
    pod, names, values = profiles(spec, "seccompProfile", allowed_profile)
    if pod or names:
        return "seccompProfile", f"{setters(pod, names)} must not set securityContext.seccompProfile.type to {quote(values)}"
    if context(spec).get("seccompProfile") is not None:
        return None
    implicit = [c["name"] for c in containers(spec) if context(c).get("seccompProfile") is None]
    if not implicit:
        return None
    return "seccompProfile", (f'pod or {named(implicit)} must set securityContext.seccompProfile.type to '
                              '"RuntimeDefault" or "Localhost"')


RESTRICTED: dict[str, tuple[Callable[[dict, dict], Result], str | None]] = {
    "allowPrivilegeEscalation": (_escalation, None), "capabilities_restricted": (_capabilities, "capabilities_baseline"),
    "procMount_restricted": (proc_mount, "procMount"), "restrictedVolumes": (_volumes, "hostPathVolumes"),
    "runAsNonRoot": (_non_root, None), "runAsUser": (_user, None),
    "seccompProfile_restricted": (_seccomp, "seccompProfile_baseline")}
"""Restricted's checks by id, each with the baseline check it replaces."""
