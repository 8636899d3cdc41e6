"""The fields of a trial's workload that its kind does not have (a Job's ``comand``, a
PyTorchJob's ``restartpolicy``, a JobSet container's ``resource``). The API server drops such a
field, unless the request asks for strict field validation (a Job's by its decoder, a custom
resource's by its CRD's structural schema), and the trial runs without what it meant. katuna asks
for it on every create of a trial's workload, the submission's dry run included, and names each
field the API server refuses (:func:`strict_refusals`); where no cluster is asked (``katuna
render``, trials run on this machine), the kinds katuna knows are checked here
(:func:`unknown_workload_fields`), their templates by Kubernetes' own types in its client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from functions.adapters.kubernetes_client import status_body
from functions.core.container_scripts import field_path
from functions.core.errors import Problem
from functions.core.trial_spec import POD_TEMPLATE, kind_fields

UNKNOWN_JOB_FIELD = ("unknown field: a batch/v1 Job has no such field (Katib's webhook refuses it, and the API server "
                     "would drop it unread); check its spelling and place")
STRICT_DECODING = "strict decoding error:"
"""What the API server's 400 says where ``fieldValidation=Strict`` refused a field the kind's
schema does not have: ``PyTorchJob in version "v1" cannot be handled as a PyTorchJob: strict
decoding error: unknown field "spec.pytorchReplicaSpec"``, each such field by its path."""
_UNKNOWN_FIELD = re.compile(r'unknown field "([^"]+)"')


def kind_label(workload: Mapping[str, Any]) -> str:
    """The kind of ``workload`` as the API server's refusals name it: ``kubeflow.org/v1 PyTorchJob``."""
    return f"{workload.get('apiVersion')} {workload.get('kind')}"


def unknown_field(what: str) -> str:
    """Why a field of a ``what`` (``kubeflow.org/v1 PyTorchJob``) workload is refused."""
    return (f"unknown field: {what} has no such field (a cluster's dry run refuses it, and the API server would "
            "drop it unread); check its spelling and place")


def unknown_job_fields(job: Any, prefix: str) -> list[Problem]:
    """The fields of ``job``, a ``batch/v1`` Job as a mapping, that the Job's type does not have
    (``comand``, ``resurces``), each at its path under ``prefix``: Katib's webhook refuses a Job
    trial template with one, and so does a cluster's dry run (``fieldValidation=Strict``), so
    trials that run on this machine, which read a few of its fields, are held to the same rule.
    Only unknown fields: a value the typed model would read otherwise (a number for a quantity,
    a placeholder for a number) is the API server's to judge where the Job is created."""
    return [Problem(prefix + path, UNKNOWN_JOB_FIELD) for path in _typed_unknown(client.V1Job, job)]


def unknown_workload_fields(trial_spec: Mapping[str, Any], prefix: str) -> list[Problem]:
    """The fields of a ``trialSpec`` its kind does not have, each at its path under ``prefix``:
    a Job's by the Job's type (:func:`unknown_job_fields`), an operator's kind's by the fields
    its CRD lists (:func:`~functions.core.trial_spec.kind_fields`), its pod and Job templates
    by their types; none for a kind whose CRD keeps unknown fields, or that katuna does not know."""
    if (trial_spec.get("apiVersion"), trial_spec.get("kind")) == ("batch/v1", "Job"):
        return unknown_job_fields(trial_spec, prefix)
    why = unknown_field(kind_label(trial_spec))
    problems = []
    for path, template, value in kind_fields(trial_spec):
        if template is None:
            problems.append(Problem(f"{prefix}.{path}", why))
            continue
        model = client.V1PodTemplateSpec if template == POD_TEMPLATE else client.V1JobTemplateSpec
        problems += [Problem(f"{prefix}.{path}{field}", why) for field in _typed_unknown(model, value)]
    return problems


def _typed_unknown(model: Any, value: Any) -> list[str]:
    """The paths (``.spec.template.spec.containers[0].comand``) of the fields of ``value``
    that Kubernetes' type ``model`` does not have."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        return [field_path("", error["loc"]) for error in exc.errors() if error["type"] == "extra_forbidden"]
    return []


def strict_refusals(exc: ApiException, prefix: str, what: str, field: Callable[[str], str] = str) -> list[Problem]:
    """The fields the API server refused as unknown to ``what`` (``kubeflow.org/v1 PyTorchJob``)
    under strict field validation, each at its path under ``prefix`` (``field`` maps the
    workload's path to the template's); empty for any other refusal. Without ``Strict`` the API
    server drops such a field (a CRD's schema prunes it), and the trial runs without what it
    meant: a misspelt ``restartPolicy`` or ``replicas``."""
    if exc.status != 400:
        return []
    message = str(status_body(exc).get("message") or "")
    unknown = _UNKNOWN_FIELD.findall(message.partition(STRICT_DECODING)[2])
    return [Problem(f"{prefix}.{field(path)}", f"unknown field: {what} has no such field (the API server refuses "
                                               "it under strict field validation, and would otherwise drop it "
                                               "unread); check its spelling and place") for path in unknown]


DENIED_BY_WEBHOOK = 'admission webhook "'
"""How the API server's message of a validating webhook's denial starts (``ToStatusErr``): 400
where the webhook gives no code (knative's, Tekton's), 403 where it denies as controller-runtime
does (the Training Operator's, JobSet's); either is the workload's fault, not katuna's access."""
_DENIED = re.compile(r'^admission webhook "(?P<webhook>[^"]*)" denied the request: ')
_SPEC_PATH = r"spec(?:[.\[][^\s,:]*)?"
_PATHS_LAST = re.compile(rf"^(?P<why>.+): (?P<paths>{_SPEC_PATH}(?:, {_SPEC_PATH})*)$")
"""A line of knative's ``FieldError`` (Tekton's webhook): ``<why>: <path>, <path>``."""
_PATH_FIRST = re.compile(rf"^(?P<paths>{_SPEC_PATH}): (?P<why>.+)$")
"""One of Kubernetes' field errors (a controller-runtime webhook's): ``<path>: <why>``, several
joined by ``, `` (in brackets, as an aggregate error words them)."""
_NEXT_PATH = re.compile(rf", (?={_SPEC_PATH}: )")


def webhook_refusals(message: str, prefix: str, refused: str, field: Callable[[str], str] = str) -> list[Problem]:
    """A validating admission webhook's denial of the first trial's workload (``message`` as
    the API server words it), each reason at the ``spec`` path it names under ``prefix``
    (``field`` maps the workload's path to the template's): Tekton's, whose knative
    ``FieldError`` lines read ``<why>: <path>, <path>`` after ``validation failed:``, or one
    that leads with the path (``spec.x: Invalid value: ...``). Empty for any other refusal, or
    one that names no ``spec`` path (its ``metadata`` is katuna's: the trial's name), which stays
    at ``prefix``."""
    denied = _DENIED.match(message)
    if denied is None:
        return []
    said = f'admission webhook "{denied["webhook"]}" denied the request'
    problems: list[Problem] = []
    for line in message[denied.end():].removeprefix("validation failed: ").splitlines():
        line = line.strip()
        if _PATH_FIRST.match(line.removeprefix("[")):
            found = [_PATH_FIRST.match(part) for part in _NEXT_PATH.split(line.removeprefix("[").removesuffix("]"))]
        else:
            found = [_PATHS_LAST.match(line)]
        problems += [Problem(f"{prefix}.{field(path)}", f"{each['why']} ({said}): {refused}")
                     for each in found if each is not None for path in each["paths"].split(", ")]
    return problems
