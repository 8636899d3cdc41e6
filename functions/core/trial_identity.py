"""The Kubernetes service accounts a trial's pods may never run as: the katuna service's own.

The service's account holds its RBAC (create and delete Jobs, write study status) and, bound
through Workload Identity, IRSA or Pod Identity, its cloud identity (node pools, the cluster).
Trial code runs as whatever account its pods name, so a study naming one of the service's
accounts anywhere a pod's account can come from is refused: the ``kubernetes`` section, and
every ``serviceAccountName`` (or a pod's older ``serviceAccount``, or a Tekton
``taskServiceAccountName``) anywhere in a ``trialSpec``, whatever its kind (a Job's or a
Training Operator job's pod templates, a JobSet's, a TrainJob's ``podSpecOverrides``, an Argo
Workflow's and its executor's, a Tekton PipelineRun's). The name is refused in every namespace:
it is the service's, and a trial has no use for an account of that name elsewhere.

A value with a placeholder is known only at launch: the rendered workload is checked again
(:func:`check_launch`), and the launch fails for good if a parameter made it one of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from functions.core import template
from functions.core.errors import InvalidStudy, Problem
from functions.core.spec import Study

ACCOUNT_FIELDS = frozenset({"serviceAccountName", "serviceAccount", "taskServiceAccountName"})
"""The keys that name the service account pods run as, in any workload kind katuna renders."""
PATH = "trialTemplate.trialSpec"


def _named(path: str) -> bool:
    """Whether the string at ``path`` is a field naming a service account."""
    return path.rpartition(".")[2] in ACCOUNT_FIELDS


def _problem(path: str, account: str) -> Problem:
    return Problem(path, f"{account!r} is the katuna service's own service account, which holds its Kubernetes and "
                         "cloud permissions; trials may never run as it: name an account made for trials (or none)")


def account_problems(spec: Study, reserved: Iterable[str]) -> list[Problem]:
    """Where the study names one of the ``reserved`` accounts for its trials' pods."""
    given = [("kubernetes.serviceAccountName", spec.kubernetes.service_account)]
    given += [(path, value) for path, value in template.strings(spec.trial_template.trial_spec or {}, PATH)
              if _named(path)]
    return _reserved(given, reserved)


def check_launch(account: str | None, workload: Mapping[str, Any] | None, reserved: Iterable[str]) -> None:
    """Refuse (for good: every attempt would be the same) a trial whose pods would run as a
    ``reserved`` account: the ``account`` katuna gives its pods, or one the rendered ``trialSpec``
    ``workload`` names once a parameter's value filled its placeholder in."""
    given = [("kubernetes.serviceAccountName", account)]
    given += [(path, value) for path, value in template.strings(workload or {}, PATH) if _named(path)]
    found = _reserved(given, reserved)
    if found:
        raise InvalidStudy(found)


def _reserved(given: Iterable[tuple[str, str | None]], reserved: Iterable[str]) -> list[Problem]:
    names = frozenset(reserved)
    return [_problem(path, value) for path, value in given if value is not None and value in names]
