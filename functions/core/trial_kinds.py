"""The workload kinds a ``trialSpec`` may be, as Katib runs them: where each keeps its pod
templates (read by :mod:`functions.core.workload_pods`), how its end reads (Katib's default
``successCondition`` / ``failureCondition``), which of its pods hold the metrics (the default
``primaryPodLabels``), and the label its operator puts on every pod it makes, which finds a
trial's pods by the workload's name. A TrainJob is run as
a JobSet of its name (:attr:`TrialKind.runs_as`), whose pods come from the runtime's templates.

Katib's own defaults cover ``Job``, the Training Operator's TFJob, PyTorchJob, XGBoostJob and
MPIJob, and Trainer's TrainJob; katuna gives the other kinds the conditions their controllers
document (PaddleJob and JAXJob as the Training Operator's other jobs, a JobSet's ``Completed`` /
``Failed``, an Argo Workflow's ``status.phase``, a Tekton PipelineRun's ``Succeeded`` condition).
No other kind is run (:func:`taken`): katuna creates a trial's workload with its own service
account's permissions, which reach objects that are no workload (Events, Secrets, Katib's Trials
and Suggestions), so a study naming one could have katuna make it. An operator adds a workload
kind of their own (``KATUNA_TRIAL_KINDS``, as Katib's ``trialResources`` in katib-config, each
``Kind.version.group``); a study of it gives both conditions, and its pods are found by
``primaryPodLabels`` alone.

An Argo Workflow has a third end besides ``Succeeded`` and ``Failed``: ``Error``, where its
controller gave up on it (a pod it could not make, a template it could not run, an executor
that could not report its step; ``WorkflowPhase`` in argo-workflows' ``pkg/apis/workflow/v1alpha1``).
Katib's own example conditions name ``Failed`` only, under which such a trial would run for
ever: :attr:`TrialKind.error` fails it once neither of the study's conditions holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.core import gjson

JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
KUBEFLOW_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
KUBEFLOW_PRIMARY = {"training.kubeflow.org/job-role": "master"}
TRAINJOB_PRIMARY = {"jobset.sigs.k8s.io/replicatedjob-name": "node", "batch.kubernetes.io/job-completion-index": "0"}
JOBSET_SUCCESS = 'status.conditions.#(type=="Completed")#|#(status=="True")#'
WORKFLOW_SUCCESS = 'status.[@this].#(phase=="Succeeded")#'
WORKFLOW_FAILURE = 'status.[@this].#(phase=="Failed")#'
WORKFLOW_ERROR = 'status.[@this].#(phase=="Error")#'
TEKTON_SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
TEKTON_FAILURE = 'status.conditions.#(type=="Succeeded")#|#(status=="False")#'


@dataclass(frozen=True)
class TrialKind:
    """One workload kind: its API, defaults, and where its pod templates are."""

    api_versions: tuple[str, ...]
    kind: str
    plural: str
    success: str | None
    failure: str | None
    owner_label: str | None
    """The label the kind's controller puts on each of its pods (a JobSet's on its Jobs too),
    valued with the workload's name."""
    primary_pod_labels: Mapping[str, str] = field(default_factory=dict)
    replica_specs: str | None = None
    """For the Training Operator's jobs: the key of ``spec`` that maps each role to its replicas."""
    ttl: tuple[str, ...] = ()
    """Where the kind keeps the seconds its controller keeps a finished workload (empty: the
    kind has no such field, as a TrainJob or a Tekton PipelineRun; a Job's TTL is set with
    katuna's other Job fields)."""
    runs_as: str | None = None
    """The kind its controller runs it as, a workload of its name controlled by it (a TrainJob's
    JobSet), whose Jobs make the pods and carry that kind's :attr:`owner_label`. Such pods are
    made from templates katuna does not write
    (:func:`~functions.core.workload_pods.labels_pods`), so they carry no study uid: they are
    known by their owners instead, each link checked by uid."""
    error: str | None = None
    """Where the kind's controller has given up on the workload (an Argo Workflow's ``Error``
    phase): the trial fails when this holds and neither the study's conditions nor the kind's
    defaults do, so no condition a study copied from Katib's examples leaves it running."""
    api_token: bool = False
    """Whether the kind's controller runs pods that need their service account's API token (an
    MPIJob's launcher starts its workers with ``kubectl exec``; an Argo Workflow's executor writes
    its results as resources): katuna leaves the token to such pods' templates, and closes it on
    the pod templates of every other kind unless the template or study asks for it."""
    clean_pods: tuple[str, ...] = ()
    """Where the kind says which of a finished workload's pods its controller deletes (the
    Training Operator's ``runPolicy.cleanPodPolicy``, whose default is ``None`` for every kind but
    TFJob: pods still running at the end, idle workers, run on); empty: the kind has no such field."""
    masters: tuple[str, ...] = ()
    """For the Training Operator's jobs: the roles (lower-cased) whose pods its controller labels
    ``job-role: master`` (``IsMasterRole``: a TFJob's Chief or Master, an MPIJob's Launcher, the
    Master of the others)."""
    worker_leads: bool = False
    """Whether, without any of :attr:`masters`, the controller labels worker 0 ``job-role:
    master`` (a TFJob, a PyTorchJob, a JAXJob); an XGBoostJob's or a PaddleJob's Workers never
    carry it."""
    restart: str = "Never"
    """For the Training Operator's jobs: the ``restartPolicy`` of a replica that names none
    (``<Kind>DefaultRestartPolicy``: a PyTorchJob's and a PaddleJob's ``OnFailure``)."""

    @property
    def group(self) -> str:
        return self.api_versions[0].rpartition("/")[0]

    @property
    def resource(self) -> tuple[str, str, str]:
        """``(group, version, plural)`` at the kind's first API version."""
        return self.group, self.api_versions[0].rpartition("/")[2], self.plural


def _training(kind: str, replica_specs: str, masters: tuple[str, ...], worker_leads: bool = False,
              api_token: bool = False, restart: str = "Never") -> TrialKind:
    return TrialKind(("kubeflow.org/v1",), kind, kind.lower() + "s", KUBEFLOW_SUCCESS, KUBEFLOW_FAILURE,
                     "training.kubeflow.org/job-name", KUBEFLOW_PRIMARY, replica_specs,
                     ("spec", "runPolicy", "ttlSecondsAfterFinished"), api_token=api_token,
                     clean_pods=("spec", "runPolicy", "cleanPodPolicy"), masters=masters, worker_leads=worker_leads,
                     restart=restart)


KINDS: dict[str, TrialKind] = {kind.kind: kind for kind in (
    TrialKind(("batch/v1",), "Job", "jobs", JOB_SUCCESS, JOB_FAILURE, "batch.kubernetes.io/job-name"),
    _training("TFJob", "tfReplicaSpecs", ("chief", "master"), worker_leads=True),
    _training("PyTorchJob", "pytorchReplicaSpecs", ("master",), worker_leads=True, restart="OnFailure"),
    _training("MPIJob", "mpiReplicaSpecs", ("launcher",), api_token=True),
    _training("XGBoostJob", "xgbReplicaSpecs", ("master",)),
    _training("PaddleJob", "paddleReplicaSpecs", ("master",), restart="OnFailure"),
    _training("JAXJob", "jaxReplicaSpecs", (), worker_leads=True),
    TrialKind(("trainer.kubeflow.org/v1alpha1",), "TrainJob", "trainjobs", JOB_SUCCESS, JOB_FAILURE,
              "jobset.sigs.k8s.io/jobset-name", TRAINJOB_PRIMARY, runs_as="JobSet"),
    TrialKind(("jobset.x-k8s.io/v1alpha2",), "JobSet", "jobsets", JOBSET_SUCCESS, JOB_FAILURE,
              "jobset.sigs.k8s.io/jobset-name", ttl=("spec", "ttlSecondsAfterFinished")),
    TrialKind(("argoproj.io/v1alpha1",), "Workflow", "workflows", WORKFLOW_SUCCESS, WORKFLOW_FAILURE,
              "workflows.argoproj.io/workflow", ttl=("spec", "ttlStrategy", "secondsAfterCompletion"),
              error=WORKFLOW_ERROR, api_token=True),
    TrialKind(("tekton.dev/v1", "tekton.dev/v1beta1"), "PipelineRun", "pipelineruns", TEKTON_SUCCESS,
              TEKTON_FAILURE, "tekton.dev/pipelineRun"),
)}


NOT_WORKLOADS = frozenset({"katuna.dev"})
"""API groups no kind of which an operator may add (:func:`added_kind`), besides Kubernetes' own
(the core group's Pods, Secrets, ConfigMaps and Events; ``apps``, ``policy``, and every
``*.k8s.io`` group: Events, RBAC, admission): katuna's own study resources."""
ADDED_KIND = re.compile(r"([A-Z][A-Za-z0-9]*)\.(v[0-9]+(?:(?:alpha|beta)[0-9]+)?)\.([a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
                        r"(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*)")
"""``Kind.version.group``: a kind's name, a Kubernetes API version, a group that is a DNS subdomain."""
KATIB_KINDS = frozenset({"Experiment", "Trial", "Suggestion", "StudyJob"})
"""Katib's own kinds (group ``kubeflow.org``), which katuna writes as its Katib API: no workload."""


def added_kind(text: str) -> tuple[str, str] | str:
    """An operator's workload kind written as Katib's ``trialResources`` (``Kind.version.group``,
    ``RayJob.v1.ray.io``) as its ``(apiVersion, kind)``; else why it is none: malformed, or a
    kind of Kubernetes' own APIs (a group without a dot, or ``*.k8s.io``), of katuna's
    (:data:`NOT_WORKLOADS`) or Katib's (:data:`KATIB_KINDS`). A kind katuna knows is taken as
    written, so Katib's own list (``Job.v1.batch``, ``TFJob.v1.kubeflow.org``) may be copied."""
    written = ADDED_KIND.fullmatch(text.strip())
    if written is None:
        return f"expected Kind.version.group (as Katib's trialResources: RayJob.v1.ray.io), got {text!r}"
    kind, version, group = written.groups()
    if kind_of({"apiVersion": f"{group}/{version}", "kind": kind}) is not None:
        return f"{group}/{version}", kind
    if "." not in group or group.endswith(".k8s.io") or group in NOT_WORKLOADS \
            or group == "kubeflow.org" and kind in KATIB_KINDS:
        return (f"{text!r} is no workload kind: Kubernetes' own APIs' kinds, katuna's and Katib's own are never "
                "trials (katuna would create one with its own permissions)")
    return f"{group}/{version}", kind


def taken(trial_spec: Mapping[str, Any], added: Iterable[tuple[str, str]]) -> bool:
    """Whether katuna runs trials of the ``trialSpec``'s kind: one it knows (:data:`KINDS`), or
    one of the operator's ``added`` ``(apiVersion, kind)``."""
    return kind_of(trial_spec) is not None or (trial_spec.get("apiVersion"), trial_spec.get("kind")) in set(added)


def taken_kinds(added: Iterable[tuple[str, str]]) -> str:
    """The kinds :func:`taken` runs, as a refusal lists them."""
    known = [f"{api_version} {kind.kind}" for kind in KINDS.values() for api_version in kind.api_versions]
    return ", ".join(known + [f"{api_version} {kind}" for api_version, kind in added])


def is_workflow(trial_spec: Mapping[str, Any]) -> bool:
    """Whether the ``trialSpec`` is an Argo Workflow."""
    known = kind_of(trial_spec)
    return known is not None and known.kind == "Workflow"


def kind_of(trial_spec: Mapping[str, Any]) -> TrialKind | None:
    """The known kind of a ``trialSpec`` (None for a kind katuna has no defaults for)."""
    known = KINDS.get(str(trial_spec.get("kind")))
    return known if known is not None and trial_spec.get("apiVersion") in known.api_versions else None


BACKOFF_LIMIT = 6
"""The ``runPolicy.backoffLimit`` katuna gives a Training Operator job whose replicas restart
(:func:`restarts_in_place`) and whose ``trialSpec`` sets none: Kubernetes' default for a Job,
the one Katib gives a Job trial that sets none. The operator counts the restarts in place of its
running pods' containers (``PastBackoffLimit``), so a pod preempted and made again starts at 0:
a run lost costs none of them."""
RESTARTS = ("OnFailure", "Always", "ExitCode")
"""The replica restart policies under which the Training Operator, or the kubelet, runs a failed
replica again, and whose restarts ``runPolicy.backoffLimit`` counts."""
BACKOFF_GIVEN_UP = "reached the specified backoff limit"
"""Words of the Training Operator's ``Failed`` message once a job passed its ``backoffLimit``
(``Job <name> has failed because it has reached the specified backoff limit``)."""
DEADLINE_GIVEN_UP = "was active longer than specified deadline"
"""Words of the Training Operator's ``Failed`` message once a job ran past its
``runPolicy.activeDeadlineSeconds`` (``Job <name> has failed because it was active longer than
specified deadline``)."""


def restarts_in_place(trial_spec: Mapping[str, Any]) -> bool:
    """Whether a replica of the Training Operator job ``trial_spec`` is run again when it fails:
    its ``restartPolicy`` (else its kind's default, :attr:`TrialKind.restart`) is ``OnFailure``,
    ``Always`` or ``ExitCode``. Without a ``runPolicy.backoffLimit`` such a job whose master
    keeps failing never ends."""
    known, spec = kind_of(trial_spec), trial_spec.get("spec")
    roles = spec.get(known.replica_specs) if known is not None and known.replica_specs and isinstance(spec, Mapping) \
        else None
    return isinstance(roles, Mapping) and any(
        isinstance(replica, Mapping) and (replica.get("restartPolicy") or known.restart) in RESTARTS  # type: ignore[union-attr]
        for replica in roles.values())


def given_up(trial_spec: Mapping[str, Any], message: str) -> str | None:
    """Why the Training Operator failed its job with ``message``, deleting its pods first: its
    replicas restarted past its ``runPolicy.backoffLimit`` (``backoffLimit``: the trial's own
    failure), or it ran past its ``runPolicy.activeDeadlineSeconds`` (``activeDeadlineSeconds``:
    the trial timed out); None for any other end."""
    known = kind_of(trial_spec)
    if known is None or known.replica_specs is None:
        return None
    return "backoffLimit" if BACKOFF_GIVEN_UP in message else "activeDeadlineSeconds" if DEADLINE_GIVEN_UP in message \
        else None


def kept_for_ever(trial_spec: Mapping[str, Any]) -> bool:
    """Whether a finished workload of the ``trialSpec``'s kind stays until someone deletes it:
    its kind keeps no lifetime katuna can set (a TrainJob, a Tekton PipelineRun, a kind katuna
    has no defaults for), where a Job, the Training Operator's jobs, a JobSet and an Argo
    Workflow are deleted by their controllers once their TTL passed (:attr:`TrialKind.ttl`)."""
    known = kind_of(trial_spec)
    return known is None or not known.ttl


def resource(trial_spec: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(group, version, plural)`` of the workload: a known kind's, else the kind lower-cased
    plus ``s`` (the plural a CustomResourceDefinition gets by convention), which the Kubernetes
    adapter takes only where the API server's discovery lists no other for the kind
    (:mod:`functions.adapters.kubernetes_discovery`)."""
    group, _, version = str(trial_spec.get("apiVersion", "")).rpartition("/")
    known = kind_of(trial_spec)
    return group, version, known.plural if known is not None else str(trial_spec.get("kind", "")).lower() + "s"


def conditions(trial_spec: Mapping[str, Any], success: str | None, failure: str | None) -> tuple[str | None, str | None]:
    """The study's conditions, else the kind's defaults (None where neither gives one)."""
    known = kind_of(trial_spec)
    return (success or (known.success if known else None), failure or (known.failure if known else None))


def ended(workload: Mapping[str, Any], success: str | None = None, failure: str | None = None) -> bool:
    """Whether the workload has ended: ``failure`` or ``success`` holds (else its kind's
    defaults), or the end its controller gives up on it at (:func:`error`)."""
    success, failure = conditions(workload, success, failure)
    return any(gjson.holds(workload, path) is not None for path in (failure, success, error(workload)) if path)


def error(trial_spec: Mapping[str, Any]) -> str | None:
    """The condition on which the workload's controller has given up on it
    (:attr:`TrialKind.error`), if its kind has one."""
    known = kind_of(trial_spec)
    return known.error if known is not None else None


def failed_steps(workload: Mapping[str, Any], limit: int = 3) -> list[str]:
    """For an Argo Workflow, the first ``limit`` of its pod steps that failed or erred, each as
    its name and its node's message (``status.nodes``): a Workflow of steps ends saying only
    ``child '<node>' failed``, and the step's node says why (``wait: Error (exit code 64): ...``);
    none whose message the Workflow's already holds. Empty for any other kind."""
    known = kind_of(workload)
    status = workload.get("status")
    nodes = status.get("nodes") if known is not None and known.kind == "Workflow" and isinstance(status, Mapping) else None
    said = str(status.get("message") or "") if isinstance(status, Mapping) else ""
    found = [node for node in (nodes.values() if isinstance(nodes, Mapping) else ()) if isinstance(node, Mapping)
             and node.get("type") == "Pod" and node.get("phase") in ("Failed", "Error") and node.get("message")
             and str(node["message"]) not in said]
    return [f"step {node.get('displayName') or node.get('name')}: {node['message']}" for node in found[:limit]]


def closes_tokens(trial_spec: Mapping[str, Any]) -> bool:
    """Whether katuna gives the workload's pod templates ``automountServiceAccountToken: false``
    where they set none: a known kind whose pods need no API token (see :attr:`TrialKind.api_token`)."""
    known = kind_of(trial_spec)
    return known is not None and not known.api_token


def primary_pod_labels(trial_spec: Mapping[str, Any], given: Mapping[str, str] | None) -> dict[str, str]:
    """The labels that select the pods whose output is the trial's: the study's, else the kind's."""
    if given:
        return dict(given)
    known = kind_of(trial_spec)
    return dict(known.primary_pod_labels) if known is not None else {}


def runner(trial_spec: Mapping[str, Any]) -> TrialKind | None:
    """The kind the workload is run as (:attr:`TrialKind.runs_as`): a TrainJob's JobSet; None
    for a kind whose pods its own controller makes."""
    known = kind_of(trial_spec)
    return KINDS[known.runs_as] if known is not None and known.runs_as is not None else None


def check_condition(path: str) -> str | None:
    """Why a condition is outside the GJSON subset katuna evaluates, or None."""
    return gjson.check(path)
