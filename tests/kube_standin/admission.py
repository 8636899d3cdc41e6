"""The API server's admission of pods and Jobs, as its plugins refuse them (each a 403 Forbidden):

- ServiceAccount (plugin/pkg/admission/serviceaccount): a pod naming an account its namespace
  does not have (``spec.serviceAccountName``, ``default`` when unset): ``error looking up service
  account NS/NAME: serviceaccount "NAME" not found``. Every namespace has ``default`` (the
  ServiceAccount controller makes it), and the tests add others (:meth:`KubeStub.add_service_account`).
  It is a mutating plugin, run before the API server names a pod created by ``generateName``, so
  it names the pod by that prefix (``pods "job-" is forbidden``, apiserver's ``NewForbidden``):
  every refusal of a Job's pods reads the same, and its Event counts up.
- Pod Security (staging/src/k8s.io/pod-security-admission): a pod its namespace's
  ``pod-security.kubernetes.io/enforce`` level forbids (:mod:`kube_standin.pod_security`,
  :mod:`kube_standin.pod_security_restricted`): ``violates PodSecurity "baseline:latest": host
  namespaces (hostNetwork=true), ...``. Workloads are not refused, only the pods their
  controllers make; a Job created through the API is answered with a ``Warning`` where its pod
  template falls short of the namespace's ``warn`` level (its ``enforce`` one when unset):
  ``would violate PodSecurity "restricted:latest": ...``. Only the ``latest`` version is
  modelled.
- LimitRanger (plugin/pkg/admission/limitranger): a pod, once defaulted from its namespace's
  LimitRanges, one of whose containers (or whose sums) falls outside their min, max or
  limit-to-request ratio (:mod:`kube_standin.limit_ranges`): ``maximum cpu usage per Container is
  200m, but limit is 500m``.
- ResourceQuota (plugin/pkg/admission/resourcequota): a create past its namespace's hard
  ``pods`` (pods not yet ended), compute (the sums of the pods not yet ended: ``requests.cpu``,
  ``limits.memory``, ``requests.nvidia.com/gpu``, :mod:`kube_standin.quota_usage`) or
  ``count/jobs.batch`` (every Job): ``exceeded quota: NAME, requested: pods=1,requests.cpu=2,
  used: pods=2,requests.cpu=3, limited: pods=2,requests.cpu=4``. A quota that tracks cpu or memory
  (``cpu``, ``memory``, ``requests.*``, ``limits.*`` of them) first refuses any pod one of whose
  containers or init containers does not ask for each of those it tracks (the pod evaluator's
  ``Constraints``, kept for backward compatibility; a limit given alone stands for its request,
  as the pod's defaulting copies it there first): ``failed quota: NAME: must specify
  limits.cpu for: trial; requests.cpu for: init,trial``, which no wait changes.

- ExtendedResourceToleration (plugin/pkg/admission/extendedresourcetoleration), which GKE and EKS
  enable: a pod one of whose containers (or init containers) requests or limits an extended
  resource (``nvidia.com/gpu``: a name with a domain other than ``kubernetes.io``'s) is given a
  toleration of the taint of that name (``Exists``, ``NoSchedule``), which the clouds put on
  their GPU nodes (:func:`tolerate_extended_resources`).

LimitRanger, Pod Security and ResourceQuota validate, after the pod is named, so they name it in full (each
refusal of a Job's pods words its own Event).
Before those validating plugins, the pod is validated as a pod, which a Job's pod template is
not: a container image with whitespace around it is refused (``Pod "x" is invalid: ...``).
A controller refused (the Job controller) records ``FailedCreate`` on its Job, ``Error creating:
pods "x" is forbidden: ...``, and tries again at its next sync.
"""

from __future__ import annotations

from pathlib import Path

from kube_standin import limit_ranges, manifests, quota_usage
from kube_standin.pod_security import BASELINE
from kube_standin.pod_security_restricted import RESTRICTED
from kube_standin.quota_usage import Usage

ENFORCE = "pod-security.kubernetes.io/enforce"
WARN = "pod-security.kubernetes.io/warn"


def deployed(directory: Path) -> tuple[dict[str, dict[str, str]], set[tuple[str, str]]]:
    """The labels of each Namespace ``directory``'s Kustomization (or Component) applies, and its
    ServiceAccounts as (namespace, name), in their own namespace or the one it sets."""
    kustomization = manifests.document(directory / "kustomization.yaml")
    namespace = kustomization.get("namespace", "default")
    labels, accounts = {}, set()
    for resource in kustomization.get("resources", []):
        for obj in manifests.documents(directory / resource) if resource.endswith(".yaml") else []:
            if obj and obj.get("kind") == "Namespace":
                labels[obj["metadata"]["name"]] = obj["metadata"].get("labels") or {}
            elif obj and obj.get("kind") == "ServiceAccount":
                accounts.add((obj["metadata"].get("namespace", namespace), obj["metadata"]["name"]))
    return labels, accounts


class Forbidden(Exception):
    """A create an admission plugin refused, with the API server's message."""


class Invalid(Forbidden):
    """A create the API server's validation refused (422), with its message: a controller takes
    it as it takes a :class:`Forbidden` one, recording it and trying again."""


def account_refusal(accounts: set[tuple[str, str]], pod: dict) -> str | None:
    """Why the ServiceAccount plugin refuses ``pod`` (its namespace lacks the account it names),
    naming the pod as the request does: by its name, else its ``generateName``; or None."""
    where, spec = pod["metadata"]["namespace"], pod["spec"]
    account = spec.get("serviceAccountName") or "default"
    if (where, account) in accounts:
        return None
    name = pod["metadata"].get("name") or pod["metadata"].get("generateName", "")
    return (f'pods "{name}" is forbidden: error looking up service account {where}/{account}: '
            f'serviceaccount "{account}" not found')


def tolerate_extended_resources(pod: dict) -> None:
    """Add to ``pod`` a toleration of each extended resource its containers ask for, where it has
    none already (ExtendedResourceToleration merges them, never twice)."""
    spec = pod["spec"]
    names = set()
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        resources = container.get("resources") or {}
        names |= {name for kind in ("requests", "limits") for name in resources.get(kind) or {} if _extended(name)}
    tolerations = spec.get("tolerations") or []
    for name in sorted(names):
        toleration = {"key": name, "operator": "Exists", "effect": "NoSchedule"}
        if toleration not in tolerations:
            tolerations.append(toleration)
    if tolerations:
        spec["tolerations"] = tolerations


def _extended(name: str) -> bool:
    """Whether ``name`` is an extended resource: qualified by a domain outside ``kubernetes.io``
    (and its subdomains), not a quota's ``requests.`` name."""
    domain = name.split("/", 1)[0] if "/" in name else ""
    native = not domain or domain == "kubernetes.io" or domain.endswith(".kubernetes.io")
    return not native and not name.startswith("requests.")


def pod_refusal(namespace: dict, pod: dict, quota: dict[str, int | str] | None, used: Usage,
                ranges: list[list[dict]] | None = None) -> str | None:
    """Why the validating plugins refuse to create the named, defaulted ``pod`` in ``namespace``,
    the first one's words (LimitRanger by the namespace's ``ranges``, Pod Security, then quota:
    its constraints before its sums, ``used`` by the pods not yet ended), or None."""
    name = pod["metadata"]["name"]
    limited = limit_ranges.refusal(pod, ranges or [])
    if limited:
        return f'pods "{name}" is forbidden: {limited}'
    level = (namespace["metadata"].get("labels") or {}).get(ENFORCE, "privileged")
    violations = pod_security(level, pod["metadata"], pod["spec"])
    if violations:
        return f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": {", ".join(violations)}'
    unmet = _unmet_constraints(pod["spec"], quota or {})
    if unmet:
        return f'pods "{name}" is forbidden: failed quota: {QUOTA}: must specify {unmet}'
    over = quota_usage.refusal(QUOTA, quota or {}, used, quota_usage.pod_usage(pod["spec"]))
    return f'pods "{name}" is forbidden: {over}' if over else None


QUOTA = "trial-quota"
"""The name of each namespace's ResourceQuota (:meth:`kube_stub.KubeStub.set_quota`)."""
CONSTRAINED = ("cpu", "limits.cpu", "limits.memory", "memory", "requests.cpu", "requests.memory")
"""The resources whose quota every container must ask for (``validationSet``, pkg/quota/v1/evaluator/core/pods.go)."""


def _unmet_constraints(spec: dict, quota: dict[str, int | str]) -> str:
    """What the quota's pod evaluator says is missing of the pod ``spec`` (``Constraints``):
    each constrained resource the quota tracks, sorted, with the containers (and init
    containers) that do not ask for it; empty when every one does."""
    required = [resource for resource in CONSTRAINED if resource in quota]
    missing: dict[str, set[str]] = {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        asked = _asked(container.get("resources") or {})
        for resource in required:
            if resource not in asked:
                missing.setdefault(resource, set()).add(container.get("name") or "")
    return "; ".join(f"{resource} for: {','.join(sorted(names))}" for resource, names in sorted(missing.items()))


def _asked(resources: dict) -> set[str]:
    """The quota resources a container's ``resources`` count towards (``podComputeUsageHelper``):
    a request of cpu or memory counts as both ``cpu`` and ``requests.cpu``, a limit as
    ``limits.cpu``, and as a request too where the container gives none (the API server's
    defaulting of a pod, ``SetDefaults_Pod``, copies a limit to its absent request before
    admission)."""
    asked = set()
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    for kind in ("cpu", "memory"):
        if kind in requests or kind in limits:
            asked |= {kind, f"requests.{kind}"}
        if kind in limits:
            asked.add(f"limits.{kind}")
    return asked


def workload_warnings(namespace: dict, template: dict) -> list[str]:
    """The warnings Pod Security answers the create of a workload whose pod ``template`` falls
    short of its ``namespace``'s warn level (its enforce level where it sets none)."""
    labels = namespace["metadata"].get("labels") or {}
    level = labels.get(WARN, labels.get(ENFORCE, "privileged"))
    violations = pod_security(level, template.get("metadata") or {}, template.get("spec") or {})
    return [f'would violate PodSecurity "{level}:latest": {", ".join(violations)}'] if violations else []


def pod_security(level: str, metadata: dict, spec: dict) -> list[str]:
    """What ``level`` refuses in a pod (its ``metadata`` and ``spec``): each failed check's
    ``reason (detail)``, in the order Pod Security runs them (baseline's checks by id, then
    restricted's, each of these in place of the baseline check it replaces); none at ``privileged``."""
    if level == "privileged":
        return []
    checks = dict(BASELINE)
    if level == "restricted":
        for name, (check, replaced) in RESTRICTED.items():
            checks.pop(replaced or "", None)
            checks[name] = check
    results = [checks[name](metadata, spec) for name in [*sorted(BASELINE), *sorted(RESTRICTED)] if name in checks]
    return [f"{reason} ({detail})" for reason, detail in filter(None, results)]


def job_refusal(name: str, quota: dict[str, int | str] | None, jobs: int) -> str | None:
    """Why the API server refuses to create the Job ``name`` where ``jobs`` exist: its namespace's quota."""
    return _over_quota("jobs.batch", name, "count/jobs.batch", quota, jobs)


def _over_quota(qualified: str, name: str, resource: str, quota: dict[str, int | str] | None,
                used: int) -> str | None:
    limit = (quota or {}).get(resource)
    if limit is None or used + 1 <= int(limit):
        return None
    return (f'{qualified} "{name}" is forbidden: exceeded quota: {QUOTA}, requested: {resource}=1, '
            f"used: {resource}={used}, limited: {resource}={limit}")
