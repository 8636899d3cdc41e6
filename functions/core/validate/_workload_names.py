"""The names a ``trialSpec``'s workload and what its controller makes get from a trial's name
(``<study>-<trial>``, :func:`~functions.core.naming.job_name`), checked for every trial the
study may run: a name one of them could not take would let the first trials run and refuse a
later one, or, caught by the first trial's dry run, be refused without naming ``name``.

- An Indexed ``batch/v1`` Job names its pods ``<job name>-<index>``, which the API server
  requires to be a DNS-1123 label for the last index when it takes the Job.
- The Kubeflow Training Operator's webhook requires a TFJob, PyTorchJob, XGBoostJob, PaddleJob
  or JAXJob to be named with a DNS-1035 label (``NameIsDNS1035Label``, kubeflow/training-operator
  ``pkg/webhooks``): one that begins with a letter, as the Services of its pods are named after it
  (``<job>-<role>-<index>``), which must be DNS-1035 labels too.
- JobSet's webhook requires the name of each replicated Job's last Job,
  ``<jobset>-<replicatedJob>-<replicas - 1>``, and of an Indexed one the longest name of its
  pods, ``<that Job>-<completions - 1>-<5 random characters>``, to be DNS-1035 labels
  (kubernetes-sigs/jobset ``pkg/webhooks/jobset_webhook.go``). A TrainJob runs as a JobSet of
  its name, which that webhook judges too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from functions.core import trial_kinds
from functions.core.errors import Problem
from functions.core.limits import Limits
from functions.core.naming import MAX_NAME, indexed_excess, job_name, name_excess
from functions.core.spec import Study

DNS1035_KINDS = {("kubeflow.org/v1", kind): "the Training Operator's webhook"
                 for kind in ("TFJob", "PyTorchJob", "XGBoostJob", "PaddleJob", "JAXJob")} | {
    ("jobset.x-k8s.io/v1alpha2", "JobSet"): "JobSet's webhook",
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"): "JobSet's webhook (a TrainJob runs as a JobSet of its name)"}
"""The kinds whose operators refuse a workload whose name is no DNS-1035 label, and who refuses it."""
POD_SUFFIX = "-abcde"
"""The random suffix a Job controller gives its pods' names, as JobSet's webhook counts it."""


def workload_name_problems(study: Study, limits: Limits) -> list[Problem]:
    """Each problem of the names the study's ``trialSpec`` workloads would get (see the module)."""
    job = study.trial_template.trial_spec or {}
    if not isinstance(job.get("spec") or {}, Mapping):
        return []
    return [*_letter_first(study, job), *_indexed_names(study, limits, job), *_jobset_names(study, limits, job),
            *_service_names(study, limits, job)]


def _letter_first(study: Study, job: Mapping[str, Any]) -> list[Problem]:
    """A name beginning with a digit, for a kind whose operator takes only DNS-1035 labels."""
    who = DNS1035_KINDS.get((str(job.get("apiVersion")), str(job.get("kind"))))
    if who is None or study.name[:1].isalpha():
        return []
    return [Problem("name", f"expected a name beginning with a letter for a {job.get('kind')} trialSpec: "
                            f"{who} refuses a {job.get('kind')} whose name is no DNS-1035 label, and each trial's "
                            f"is named after the study ({job_name(study.name, 0)}); got {study.name!r}")]


def _indexed_names(study: Study, limits: Limits, job: Mapping[str, Any]) -> list[Problem]:
    """An Indexed ``trialSpec`` Job's last pod name past a DNS-1123 label, for its last trial's
    last attempt (up to ``maxTrials``, else ``KATUNA_MAX_TRIALS``)."""
    spec = job.get("spec") or {}
    completions = spec.get("completions", 1 if spec.get("parallelism") is None else None)
    if (job.get("apiVersion"), job.get("kind"), spec.get("completionMode")) != ("batch/v1", "Job", "Indexed") \
            or not isinstance(completions, int) or completions < 1:
        return []
    trials, attempts = study.max_trials or limits.trials, study.trial_template.max_attempts
    excess = indexed_excess(study.name, trials, attempts, completions)
    if not excess:
        return []
    last = f"{job_name(study.name, trials - 1, attempts)}-{completions - 1}"
    return [Problem("name", f"expected at most {len(study.name) - excess} characters for an Indexed trialSpec Job of "
                            f"{completions} completions: the last pod of trial {trials - 1}'s attempt {attempts} would "
                            f"be named {last} ({len(last)} characters), and the API server refuses a Job whose pod "
                            f"names pass the {MAX_NAME} of a DNS-1123 label; shorten the name by {excess} characters, "
                            "or lower maxTrials, trialTemplate.maxAttempts or completions")]


def _jobset_names(study: Study, limits: Limits, job: Mapping[str, Any]) -> list[Problem]:
    """A JobSet ``trialSpec`` whose last trial's last attempt would name a Job, or a pod, past a
    DNS-1035 label: the longest such name of any replicated Job."""
    if (job.get("apiVersion"), job.get("kind")) != ("jobset.x-k8s.io/v1alpha2", "JobSet"):
        return []
    over = _overflow(study, limits, list(_tails(_mapping(job.get("spec")))))
    if over is None:
        return []
    return [Problem("name", f"expected at most {len(study.name) - over.excess} characters for this JobSet trialSpec: "
                            f"trial {over.trial}'s attempt {over.attempt} would name a Job or pod {over.name} "
                            f"({len(over.name)} characters), and JobSet's webhook refuses a JobSet whose Jobs' or "
                            f"pods' names pass the {MAX_NAME} of a DNS-1035 label; shorten the name by {over.excess} "
                            "characters, or lower maxTrials, trialTemplate.maxAttempts, or a replicated Job's name, "
                            "replicas or completions")]


class _Overflow(NamedTuple):
    """The last trial's last attempt, the name it would give past a DNS-1035 label, and by how
    many characters the study's name would have to shrink."""
    trial: int
    attempt: int
    name: str
    excess: int


def _overflow(study: Study, limits: Limits, tails: list[str]) -> _Overflow | None:
    """Where the last trial's last attempt's name followed by the longest of ``tails`` (what an
    operator adds to it; the last given of those as long) would pass a DNS-1035 label; None
    where it would not."""
    if not tails:
        return None
    tail = sorted(tails, key=len)[-1]
    trials, attempts = study.max_trials or limits.trials, study.trial_template.max_attempts
    excess = name_excess(study.name, trials, attempts, tail)
    if not excess:
        return None
    return _Overflow(trials - 1, attempts, job_name(study.name, trials - 1, attempts) + tail, excess)


def _tails(spec: Mapping[str, Any]) -> Iterator[str]:
    """What each replicated Job adds to the JobSet's name in its last Job's name and, Indexed,
    its last pod's (a placeholder's value is unknown here, and left to the dry run)."""
    for replicated in spec.get("replicatedJobs") or []:
        name, replicas = _mapping(replicated).get("name"), _mapping(replicated).get("replicas", 1)
        if not isinstance(name, str) or not isinstance(replicas, int) or replicas < 1:
            continue
        yield f"-{name}-{replicas - 1}"
        job = _mapping(_mapping(_mapping(replicated).get("template")).get("spec"))
        completions = job.get("completions")
        if job.get("completionMode") == "Indexed" and isinstance(completions, int) and completions >= 1:
            yield f"-{name}-{replicas - 1}-{completions - 1}{POD_SUFFIX}"


def _service_names(study: Study, limits: Limits, job: Mapping[str, Any]) -> list[Problem]:
    """A Training Operator job whose last trial's last attempt would name a Service past a
    DNS-1035 label: the operator names each replica's pod and Service ``<job>-<role>-<index>``
    (``GenGeneralName``, its role lower-cased), and the API server refuses a Service of such a
    name (``ValidateServiceName``), so its workers could never reach the master."""
    known = trial_kinds.kind_of(job)
    if known is None or known.replica_specs is None or (job.get("apiVersion"), known.kind) not in DNS1035_KINDS:
        return []
    replicas = _mapping(_mapping(job.get("spec")).get(known.replica_specs))
    tails = [f"-{role.lower()}-{count - 1}" for role, count in
             ((role, _mapping(replica).get("replicas", 1)) for role, replica in replicas.items())
             if isinstance(count, int) and count >= 1]
    over = _overflow(study, limits, tails)
    if over is None:
        return []
    return [Problem("name", f"expected at most {len(study.name) - over.excess} characters for this {known.kind} "
                            f"trialSpec: the Training Operator names each replica's pod and Service <trial's "
                            f"name>-<role>-<index>, trial {over.trial}'s attempt {over.attempt} {over.name} "
                            f"({len(over.name)} characters), and the API server refuses a Service whose name passes "
                            f"the {MAX_NAME} of a DNS-1035 label; shorten the name by {over.excess} characters, or "
                            "lower maxTrials, trialTemplate.maxAttempts or the replicas")]


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` where it is a mapping, else an empty one (its shape is another check's to refuse)."""
    return value if isinstance(value, Mapping) else {}
