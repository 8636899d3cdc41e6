"""The API server's admission of pods and Jobs, as its plugins refuse them (each a 403 Forbidden):

- ServiceAccount (plugin/pkg/admission/serviceaccount): a pod naming an account its namespace
  does not have (``spec.serviceAccountName``, ``default`` when unset): ``error looking up service
  account NS/NAME: serviceaccount "NAME" not found``. Every namespace has ``default`` (the
  ServiceAccount controller makes it), and the tests add others (:meth:`KubeStub.add_service_account`).
- Pod Security (staging/src/k8s.io/pod-security-admission): a pod its namespace's
  ``pod-security.kubernetes.io/enforce`` level forbids, for ``baseline``: host namespaces,
  privileged containers, ``hostPath`` volumes, host ports, and capabilities added beyond
  baseline's list; ``restricted`` refuses these too (its further checks are not modelled).
  Workloads are not checked, only the pods their controllers make: ``violates PodSecurity
  "baseline:latest": host namespaces (hostNetwork=true), ...``.
- ResourceQuota (plugin/pkg/admission/resourcequota): a create past its namespace's hard
  ``pods`` (pods not yet ended) or ``count/jobs.batch`` (every Job): ``exceeded quota: NAME,
  requested: pods=1, used: pods=2, limited: pods=2``.

A controller refused (the Job controller) records ``FailedCreate`` on its Job, ``Error creating:
pods "x" is forbidden: ...``, and tries again at its next sync.
"""

from __future__ import annotations

from pathlib import Path

from kube_standin import manifests

ENFORCE = "pod-security.kubernetes.io/enforce"
BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
"""The capabilities the baseline level lets a container add (its ``capabilities_baseline`` check)."""


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


def pod_refusal(namespace: dict, accounts: set[tuple[str, str]], pod: dict, quota: dict[str, int] | None,
                live_pods: int) -> str | None:
    """Why the API server refuses to create ``pod`` in ``namespace``, the first plugin's words
    (ServiceAccount, then Pod Security, then quota), or None."""
    name, spec = pod["metadata"].get("name", ""), pod["spec"]
    where = namespace["metadata"]["name"]
    account = spec.get("serviceAccountName") or "default"
    if (where, account) not in accounts:
        return (f'pods "{name}" is forbidden: error looking up service account {where}/{account}: '
                f'serviceaccount "{account}" not found')
    level = (namespace["metadata"].get("labels") or {}).get(ENFORCE, "privileged")
    violations = [] if level == "privileged" else _baseline_violations(spec)
    if violations:
        return f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": {", ".join(violations)}'
    return _over_quota("pods", name, "pods", quota, live_pods)


def job_refusal(name: str, quota: dict[str, int] | None, jobs: int) -> str | None:
    """Why the API server refuses to create the Job ``name`` where ``jobs`` exist: its namespace's quota."""
    return _over_quota("jobs.batch", name, "count/jobs.batch", quota, jobs)


def _over_quota(qualified: str, name: str, resource: str, quota: dict[str, int] | None, used: int) -> str | None:
    limit = (quota or {}).get(resource)
    if limit is None or used + 1 <= limit:
        return None
    return (f'{qualified} "{name}" is forbidden: exceeded quota: trial-quota, requested: {resource}=1, '
            f"used: {resource}={used}, limited: {resource}={limit}")


def _baseline_violations(spec: dict) -> list[str]:
    """What the baseline level refuses in a pod spec, each check worded as Pod Security words it."""
    found = []
    hosts = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    if hosts:
        found.append(f"host namespaces ({', '.join(hosts)})")
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    privileged = [c["name"] for c in containers if (c.get("securityContext") or {}).get("privileged")]
    if privileged:
        found.append(f"privileged ({_containers(privileged)} must not set securityContext.privileged=true)")
    paths = [v["name"] for v in spec.get("volumes", []) if "hostPath" in v]
    if paths:
        found.append(f"hostPath volumes ({_named('volume', paths)})")
    ports = [c["name"] for c in containers if any(p.get("hostPort") for p in c.get("ports", []))]
    if ports:
        found.append(f"hostPort ({_containers(ports)} uses hostPort)")
    added = [c["name"] for c in containers
             if set(((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or ()) - BASELINE_CAPABILITIES]
    if added:
        found.append(f"non-default capabilities ({_containers(added)} must not include capabilities beyond the "
                     "baseline set in securityContext.capabilities.add)")
    return found


def _containers(names: list[str]) -> str:
    return _named("container", names)


def _named(what: str, names: list[str]) -> str:
    quoted = ", ".join(f'"{name}"' for name in names)
    return f"{what} {quoted}" if len(names) == 1 else f"{what}s {quoted}"
