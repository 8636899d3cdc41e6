"""Trials as Kubernetes Jobs: a study's ``kubernetes`` section, and the Job of one trial attempt.

Rendering builds the Job as a structure; parameter values are substituted into each string
field on its own (see :mod:`functions.core.template`), so a value holding quotes, colons,
newlines or YAML syntax stays one string and cannot change the Job's shape.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from functions.core import trial_spec
from functions.core.errors import PermanentError
from functions.core.reader import Reader, join

if TYPE_CHECKING:
    from functions.core.ports import TrialLaunch

STUDY_LABEL = "katuna.dev/study"
TRIAL_LABEL = "katuna.dev/trial"
ATTEMPT_LABEL = "katuna.dev/attempt"
UID_LABEL = "katuna.dev/uid"
TRIAL_TAINT = {"key": "katuna.dev/trial", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
CONTAINER = "trial"
EXTENDED_RESOURCES = {"gpu": "nvidia.com/gpu"}


class NotRenderable(PermanentError):
    """The study lacks what a trial needs to run on Kubernetes (an image, for one)."""


@dataclass(frozen=True)
class Cluster:
    """Where and how trial Jobs run; unset fields fall back to the service's defaults."""

    namespace: str | None = None
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    ttl_seconds_after_finished: int | None = None
    backoff_limit: int = 0
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Mapping[str, Any], ...] = (TRIAL_TAINT,)
    default_resources: tuple[tuple[str, str], ...] = ()
    """Container resources of trials whose template names none (from the service's settings)."""

    def with_defaults(self, defaults: Cluster) -> Cluster:
        return replace(
            self,
            namespace=self.namespace or defaults.namespace or "default",
            service_account=self.service_account or defaults.service_account,
            image_pull_secrets=self.image_pull_secrets or defaults.image_pull_secrets,
            ttl_seconds_after_finished=_first(self.ttl_seconds_after_finished, defaults.ttl_seconds_after_finished, 3600),
            default_resources=self.default_resources or defaults.default_resources,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.namespace, "serviceAccountName": self.service_account,
            "imagePullSecrets": list(self.image_pull_secrets) or None,
            "ttlSecondsAfterFinished": self.ttl_seconds_after_finished, "backoffLimit": self.backoff_limit,
            "nodeSelector": dict(self.node_selector) or None, "tolerations": [dict(t) for t in self.tolerations],
        }
        return {k: v for k, v in out.items() if v is not None}


def _first(*values: int | None) -> int:
    return next(v for v in values if v is not None)


_FIELDS = {"namespace", "serviceAccountName", "imagePullSecrets", "ttlSecondsAfterFinished", "backoffLimit",
           "nodeSelector", "tolerations"}


def parse_cluster(r: Reader, data: Any, path: str = "kubernetes") -> Cluster:
    """The ``kubernetes`` section of a study; problems go to ``r``."""
    item = r.mapping(data, path, _FIELDS)
    secrets = r.get(item, "imagePullSecrets", path, "list") or []
    for i, secret in enumerate(secrets):
        if not isinstance(secret, str) or not secret:
            r.fail(f"{path}.imagePullSecrets[{i}]", "expected a secret name")
    counts = {key: r.get(item, key, path, "int") for key in ("ttlSecondsAfterFinished", "backoffLimit")}
    for key, value in counts.items():
        if value is not None and value < 0:
            r.fail(join(path, key), "expected an integer >= 0")
    selector = r.get(item, "nodeSelector", path, "mapping") or {}
    for key, value in selector.items():
        if not isinstance(value, str):
            r.fail(f"{path}.nodeSelector.{key}", "expected a string (quote values such as \"true\")")
    tolerations = r.get(item, "tolerations", path, "list")
    for i, toleration in enumerate(tolerations or []):
        if not isinstance(toleration, Mapping):
            r.fail(f"{path}.tolerations[{i}]", "expected a mapping with key, operator, value, effect")
    return Cluster(
        namespace=r.get(item, "namespace", path, "str"),
        service_account=r.get(item, "serviceAccountName", path, "str"),
        image_pull_secrets=tuple(s for s in secrets if isinstance(s, str)),
        ttl_seconds_after_finished=counts["ttlSecondsAfterFinished"],
        backoff_limit=counts["backoffLimit"] or 0,
        node_selector=tuple(sorted((k, v) for k, v in selector.items() if isinstance(v, str))),
        tolerations=tuple(tolerations) if tolerations is not None else (TRIAL_TAINT,),
    )


CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]}}
"""What a trial container may not do; the user the image names runs it (images often run as root)."""

POD_SECURITY = {"seccompProfile": {"type": "RuntimeDefault"}}


def labels(launch: TrialLaunch) -> dict[str, str]:
    return {STUDY_LABEL: launch.study, UID_LABEL: launch.uid, TRIAL_LABEL: str(launch.number),
            ATTEMPT_LABEL: str(launch.attempt), "app.kubernetes.io/managed-by": "katuna"}


def _resources(resources: Mapping[str, str]) -> dict[str, dict[str, str]]:
    requests = {EXTENDED_RESOURCES.get(k, k): v for k, v in resources.items()}
    limits = {k: v for k, v in requests.items() if k not in ("cpu", "ephemeral-storage")}
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def render_job(request: TrialLaunch, defaults: Cluster = Cluster()) -> dict[str, Any]:
    """The ``batch/v1`` Job that runs one trial attempt; ``defaults`` fill what the study leaves out."""
    if request.trial_spec is None and not request.image:
        raise NotRenderable("trialTemplate.image: required to run trials on Kubernetes")
    cluster = (request.cluster or Cluster()).with_defaults(defaults)
    name = request.job_name
    job_labels = labels(request)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": request.image,
        "command": list(request.argv),
        "env": [{"name": k, "value": v} for k, v in sorted(request.env.items())],
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    resources = request.resources or dict(cluster.default_resources)
    if resources:
        container["resources"] = _resources(resources)
    if request.container_working_dir:
        container["workingDir"] = request.container_working_dir
    account = cluster.service_account or (trial_spec.pod_spec(request.trial_spec).get("serviceAccountName")
                                           if request.trial_spec is not None else None)
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container],
                           "securityContext": copy.deepcopy(POD_SECURITY), "automountServiceAccountToken": bool(account)}
    if cluster.service_account:
        pod["serviceAccountName"] = cluster.service_account
    if cluster.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in cluster.image_pull_secrets]
    if cluster.node_selector:
        pod["nodeSelector"] = dict(cluster.node_selector)
    if cluster.tolerations:
        pod["tolerations"] = [dict(t) for t in cluster.tolerations]
    spec: dict[str, Any] = {
        "backoffLimit": cluster.backoff_limit,
        "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]},
        "ttlSecondsAfterFinished": cluster.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": dict(job_labels)}, "spec": pod},
    }
    if request.timeout:
        spec["activeDeadlineSeconds"] = math.ceil(request.timeout)
    metadata = {"name": name, "namespace": cluster.namespace, "labels": job_labels}
    if request.trial_spec is not None:
        katuna_env = {k: v for k, v in request.env.items() if k.startswith("KATUNA_")}
        del spec["template"]["spec"]["containers"]
        return trial_spec.render(request.trial_spec, request.primary_container, request.params or {},
                                 metadata, spec, katuna_env)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}
