"""The validating admission webhooks of the operators whose workloads katuna creates as trials,
in what they refuse of a workload's name and containers; each runs on a create, a dry run's
included (they declare ``sideEffects: None``), after the API server's own validation.

- Kubeflow Training Operator (``pkg/webhooks/<kind>``): a TFJob, PyTorchJob, XGBoostJob,
  PaddleJob or JAXJob must be named with a DNS-1035 label (``NameIsDNS1035Label``: it begins
  with a letter, as its pods' Services are named after it), and each of its replica templates
  must hold a container of the kind's default name (``pytorch``, ``tensorflow``, ...:
  ``ValidateReplicaSpecs``). An MPIJob has no webhook there.
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
    return 403, status(403, "Forbidden", f'admission webhook "{webhook}" denied the request: {", ".join(why)}')


def _training(job: dict) -> list[str]:
    """What the Training Operator's webhook refuses: a name that is no DNS-1035 label, a replica
    template without the kind's default container."""
    name = str((job.get("metadata") or {}).get("name") or "")
    why = [f"metadata.name: Invalid value: {json.dumps(name)}: should match: {','.join(problems)}"
           for problems in [dns1035_problems(name)] if problems]
    key, default = DEFAULT_CONTAINERS[job["kind"]]
    for role, replica in sorted(((job.get("spec") or {}).get(key) or {}).items()):
        containers = (((replica or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        if not any(c.get("name") == default for c in containers):
            why.append(f"spec.{key}[{role}].template.spec.containers: Required value: must have at least one "
                       f"container with name {default}")
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
