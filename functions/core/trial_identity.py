"""What of the katuna service's a trial's pods may never have: its service accounts and its Secrets.

The service's account holds its RBAC (create and delete Jobs, write study status) and, bound
through Workload Identity, IRSA or Pod Identity, its cloud identity (node pools, the cluster).
Trial code runs as whatever account its pods name, so a study naming one of the service's
accounts anywhere a pod's account can come from is refused: the ``kubernetes`` section, and
every ``serviceAccountName`` (or a pod's older ``serviceAccount``, or a Tekton
``taskServiceAccountName``) anywhere in a ``trialSpec``, whatever its kind (a Job's or a
Training Operator job's pod templates, a JobSet's, a TrainJob's ``podSpecOverrides``, an Argo
Workflow's and its executor's, a Tekton PipelineRun's).

The service's Secrets (the token that authorizes writes to its API) live in the namespace its
trials run in by default, and the API server lets katuna create a pod that reads any of them. So
a study naming one of them anywhere a pod, or the controller of a workload kind, takes a
Secret's name from is refused too (:func:`secret_field`): an env ``valueFrom.secretKeyRef``, an
``envFrom`` ``secretRef``, a ``secret`` or ``projected`` volume, a CSI volume's
``nodePublishSecretRef``, the ``secretRef`` of the other volume plugins, a Tekton workspace, an
Argo artifact's credentials, and ``imagePullSecrets`` (the study's ``kubernetes`` section's or a
pod's). Either name is refused in every namespace: it is the service's, and a trial has no use
for one of that name elsewhere.

A value with a placeholder is known only at launch: the rendered workload is checked again
(:func:`check_launch`), and the launch fails for good if a parameter made it one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from functions.core import template
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy, Problem
from functions.core.spec import Study

ACCOUNT_FIELDS = frozenset({"serviceAccountName", "serviceAccount", "taskServiceAccountName"})
"""The keys that name the service account pods run as, in any workload kind katuna renders."""
SECRET_HOLDERS = ("secret", "secrets", "secretref", "secretkeyref")
"""How the key of an object whose ``name`` is a Secret's ends (lower-cased): ``secretKeyRef``,
``secretRef``, ``nodePublishSecretRef``, a projected source's ``secret``, ``imagePullSecrets``,
Argo's ``accessKeySecret`` and the like."""
PATH = "trialTemplate.trialSpec"


def _named(path: str) -> bool:
    """Whether the string at ``path`` is a field naming a service account."""
    return path.rpartition(".")[2] in ACCOUNT_FIELDS


def secret_field(path: str) -> bool:
    """Whether the string at ``path`` is a field naming a Secret: a ``secretName`` (a ``secret``
    volume's, an ``azureFile`` volume's, a Tekton workspace's), or the ``name`` of a reference
    whose key says it is a Secret's."""
    parent, _, key = path.rpartition(".")
    if key == "secretName":
        return True
    holder = parent.rpartition(".")[2].partition("[")[0].lower()
    return key == "name" and holder.endswith(SECRET_HOLDERS)


def _account(path: str, account: str) -> Problem:
    return Problem(path, f"{account!r} is the katuna service's own service account, which holds its Kubernetes and "
                         "cloud permissions; trials may never run as it: name an account made for trials (or none)")


def _secret(path: str, secret: str) -> Problem:
    return Problem(path, f"{secret!r} is one of the katuna service's own Secrets (such as the token that authorizes "
                         "writes to its API); trials may never read it: name a Secret made for trials")


def study_problems(spec: Study, service: Cluster) -> list[Problem]:
    """Where the study gives its trials' pods one of the ``service``'s own accounts or Secrets
    (its ``reserved_accounts`` and ``reserved_secrets``)."""
    return account_problems(spec, service.reserved_accounts) + secret_problems(spec, service.reserved_secrets)


def account_problems(spec: Study, reserved: Iterable[str]) -> list[Problem]:
    """Where the study names one of the ``reserved`` accounts for its trials' pods."""
    given = [("kubernetes.serviceAccountName", spec.kubernetes.service_account)]
    given += [(path, value) for path, value in template.strings(spec.trial_template.trial_spec or {}, PATH)
              if _named(path)]
    return _reserved(given, reserved, _account)


def secret_problems(spec: Study, reserved: Iterable[str]) -> list[Problem]:
    """Where the study names one of the ``reserved`` Secrets for its trials' pods."""
    return _reserved(_secrets(spec.kubernetes.image_pull_secrets, spec.trial_template.trial_spec), reserved, _secret)


def check_launch(cluster: Cluster, workload: Mapping[str, Any] | None) -> None:
    """Refuse (for good: every attempt would be the same) a trial whose pods would have one of
    the service's own accounts or Secrets (the ``reserved_*`` of ``cluster``, the trial's own
    with the service's defaults): the account and image pull Secrets katuna gives its pods, or
    one the rendered ``trialSpec`` ``workload`` names once a parameter's value filled its
    placeholder in."""
    accounts = [("kubernetes.serviceAccountName", cluster.service_account)]
    accounts += [(path, value) for path, value in template.strings(workload or {}, PATH) if _named(path)]
    found = _reserved(accounts, cluster.reserved_accounts, _account)
    found += _reserved(_secrets(cluster.image_pull_secrets, workload), cluster.reserved_secrets, _secret)
    if found:
        raise InvalidStudy(found)


def _secrets(pull_secrets: Iterable[str], workload: Mapping[str, Any] | None) -> list[tuple[str, str | None]]:
    """Every Secret name the ``kubernetes`` section's ``pull_secrets`` and a ``trialSpec`` give, with its path."""
    given: list[tuple[str, str | None]] = [(f"kubernetes.imagePullSecrets[{i}]", name)
                                           for i, name in enumerate(pull_secrets)]
    return given + [(path, value) for path, value in template.strings(workload or {}, PATH) if secret_field(path)]


def _reserved(given: Iterable[tuple[str, str | None]], reserved: Iterable[str],
              problem: Callable[[str, str], Problem]) -> list[Problem]:
    names = frozenset(reserved)
    return [problem(path, value) for path, value in given if value is not None and value in names]
