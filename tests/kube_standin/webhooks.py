"""The validating admission webhooks of the operators whose workloads katuna creates as trials,
in what they refuse of a workload's name and containers; each runs on a create, a dry run's
included (they declare ``sideEffects: None``), after the API server's own validation.

- Kubeflow Training Operator (``pkg/webhooks/<kind>``, v1.9.0): a TFJob, PyTorchJob, XGBoostJob,
  PaddleJob or JAXJob must be named with a DNS-1035 label (``NameIsDNS1035Label``: it begins
  with a letter, as its pods' Services are named after it); each of its roles must be one of
  the kind's (a PyTorchJob's, an XGBoostJob's and a PaddleJob's ``Master`` and ``Worker``, a
  JAXJob's ``Worker``; any case, as its defaulting webhook camel-cases them first; a TFJob's
  any, at most one ``Chief`` or ``Master``), and each of its replica templates must hold a
  container of the kind's default name (``pytorch``, ``tensorflow``, ...) and give each
  container an image; a PyTorchJob's and an XGBoostJob's ``Master`` runs 1 replica (an
  XGBoostJob must have one), a PyTorchJob's ``Worker`` at least 1; ``runPolicy.managedBy``
  is the operator's or MultiKueue's (``ValidateRunPolicy``). An MPIJob has no webhook there.
  Its reasons come as ``field.ErrorList.ToAggregate`` words them: one alone, several between
  brackets, joined by ``, ``.
- JobSet (``pkg/webhooks/jobset_webhook.go``): the name of each replicated Job's last Job,
  ``<jobset>-<replicatedJob>-<replicas-1>``, must be a DNS-1035 label, and so must the longest
  pod name of an Indexed one, ``<jobset>-<replicatedJob>-<job index>-<pod index>-abcde``.

The API server answers a denial 403 Forbidden, ``admission webhook "<webhook>" denied the
request: <why>`` (``ToStatusErr``, staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/errors),
as controller-runtime's validators deny with 403."""

from __future__ import annotations

import json
import re

from kube_standin.objects import status

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1035_FORMAT = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                  "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                  "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
DEFAULT_CONTAINERS = {"TFJob": ("tfReplicaSpecs", "tensorflow"), "PyTorchJob": ("pytorchReplicaSpecs", "pytorch"),
                      "XGBoostJob": ("xgbReplicaSpecs", "xgboost"), "PaddleJob": ("paddleReplicaSpecs", "paddle"),
                      "JAXJob": ("jaxReplicaSpecs", "jax")}
"""The Training Operator's kinds that have a webhook: where each keeps its replicas, and its default container."""
ROLES = {"PyTorchJob": ("Master", "Worker"), "XGBoostJob": ("Master", "Worker"), "PaddleJob": ("Master", "Worker"),
         "JAXJob": ("Worker",)}
"""The roles each kind's webhook takes (a TFJob's takes any)."""
SINGLE_MASTER = ("PyTorchJob", "XGBoostJob")
"""The kinds whose webhook takes a ``Master`` of exactly one replica."""
MANAGERS = ("kubeflow.org/training-operator", "kueue.x-k8s.io/multikueue")
"""The ``runPolicy.managedBy`` values the Training Operator's webhook takes (``supportedJobControllers``)."""


def dns1035_problems(name: str) -> list[str]:
    """Why ``name`` is no DNS-1035 label, as ``IsDNS1035Label`` words it."""
    problems = ["must be no more than 63 characters"] if len(name) > 63 else []
    return problems + ([] if DNS1035_LABEL.match(name) else [DNS1035_FORMAT])


def denial(obj: dict) -> tuple[int, dict] | None:
    """The API server's 403 for a workload its operator's webhook denies; None where none does."""
    kind = obj.get("kind")
    if kind in DEFAULT_CONTAINERS:
        webhook, why = f"validator.{kind.lower()}.training-operator.kubeflow.org", _training(obj)
    elif kind == "JobSet":
        webhook, why = "vjobset.kb.io", _jobset(obj)
    else:
        return None
    if not why:
        return None
    said = why[0] if len(why) == 1 else f"[{', '.join(why)}]"
    return 403, status(403, "Forbidden", f'admission webhook "{webhook}" denied the request: {said}')


def _training(job: dict) -> list[str]:
    """What the Training Operator's webhook refuses: a name that is no DNS-1035 label, a
    ``runPolicy.managedBy`` of another controller, and what :func:`_replica_problems` says."""
    name = str((job.get("metadata") or {}).get("name") or "")
    why = [f"metadata.name: Invalid value: {json.dumps(name)}: should match: {','.join(problems)}"
           for problems in [dns1035_problems(name)] if problems]
    spec = job.get("spec") or {}
    manager = (spec.get("runPolicy") or {}).get("managedBy")
    if manager is not None and manager not in MANAGERS:
        why.append(f"spec.runPolicy.managedBy: Unsupported value: {json.dumps(manager)}: supported values: "
                   + ", ".join(json.dumps(m) for m in MANAGERS))
    return why + _replica_problems(job["kind"], spec)


def _replica_problems(kind: str, spec: dict) -> list[str]:
    """What the webhook refuses of a job's roles (``validate<Kind>ReplicaSpecs``): a role the
    kind has not, a template without the kind's container or with a container of no image, a
    ``Master`` of other than one replica, a PyTorchJob's ``Worker`` of none; an XGBoostJob
    without ``Master``, a TFJob with more than one ``Chief`` or ``Master``."""
    key, default = DEFAULT_CONTAINERS[kind]
    roles = spec.get(key) or {}
    allowed = ROLES.get(kind)
    why = []
    for role, replica in sorted(roles.items()):
        path = f"spec.{key}[{role}]"
        named = next((r for r in allowed or () if r.lower() == str(role).lower()), None)
        if allowed is not None and named is None:
            why.append(f"{path}: Unsupported value: {json.dumps(role)}: supported values: "
                       + ", ".join(json.dumps(r) for r in allowed))
        containers = (((replica or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        why += [f"{path}.template.spec.containers[{i}].image: Required value: must be required"
                for i, container in enumerate(containers) if not container.get("image")]
        if not any(c.get("name") == default for c in containers):
            why.append(f"{path}.template.spec.containers: Required value: must have at least one "
                       f"container with name {default}")
        replicas = (replica or {}).get("replicas", 1)
        if kind in SINGLE_MASTER and named == "Master" and replicas != 1:
            why.append(f"{path}.replicas: Forbidden: must be 1")
        elif kind == "PyTorchJob" and replicas < 1:
            why.append(f"{path}.replicas: Forbidden: must be at least 1")
    if kind == "XGBoostJob" and not any(str(r).lower() == "master" for r in roles):
        why.append(f"spec.{key}[Master]: Required value: must be present")
    if kind == "TFJob" and sum(str(r).lower() in ("chief", "master") for r in roles) > 1:
        why.append(f"spec.{key}: Forbidden: must not have more than 1 Chief or Master role")
    return why


def _jobset(jobset: dict) -> list[str]:
    """What JobSet's webhook refuses of the names its Jobs and their pods would get."""
    name = str((jobset.get("metadata") or {}).get("name") or "")
    why = []
    for replicated in (jobset.get("spec") or {}).get("replicatedJobs") or []:
        replicas = replicated.get("replicas", 1)
        longest_job = f"{name}-{replicated.get('name')}-{replicas - 1}"
        why += [f"spec.replicatedJobs.name: Invalid value: {json.dumps(longest_job)}: {problem}"
                for problem in dns1035_problems(longest_job)]
        spec = (replicated.get("template") or {}).get("spec") or {}
        if spec.get("completionMode") == "Indexed" and spec.get("completions") is not None:
            longest_pod = f"{longest_job}-{spec['completions'] - 1}-abcde"
            why += [f"spec.replicatedJobs.template.spec: Invalid value: {json.dumps(longest_pod)}: {problem}"
                    for problem in dns1035_problems(longest_pod)]
    return why
