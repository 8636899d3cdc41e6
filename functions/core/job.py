"""The Kubernetes Job of one trial attempt, rendered as a structure.

Parameter values are substituted into each string field on its own (see
:mod:`functions.core.template`), so a value holding quotes, colons, newlines or YAML syntax stays
one string and cannot change the Job's shape.
"""

from __future__ import annotations

import copy
import math
import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from functions.core import (
    checkpoint_volume,
    file_collector,
    katib_trials,
    pod_security,
    quantities,
    report_token,
    trial_identity,
    trial_kinds,
    trial_spec,
)
from functions.core.cluster import (
    ATTEMPT_LABEL,
    MAX_INT64,
    START_ALLOWANCE,
    STUDY_LABEL,
    TRIAL_LABEL,
    UID_LABEL,
    Cluster,
)
from functions.core.disruptions import pods_to_lose
from functions.core.errors import PermanentError, Problem
from functions.core.labels import valid_value
from functions.core.launch import TrialLaunch
from functions.core.naming import EARLIER, OTHER, OWN
from functions.core.spec import Study

CONTAINER = "trial"
EXTENDED_RESOURCES = {"gpu": "nvidia.com/gpu"}
SIZED = frozenset({"cpu", "memory"})


NO_DEFAULTS = Cluster()
"""No service defaults: the study's own ``kubernetes`` section, or Kubernetes' defaults."""


def primary_container_name(launch: TrialLaunch) -> str:
    """The container whose output is the trial's: ``trial`` in a Job katuna renders; in a
    ``trialSpec``, the one ``primaryContainerName`` names (else the first) of its primary pods,
    under its name in the pod."""
    if launch.trial_spec is None:
        return CONTAINER
    return trial_spec.primary_container_name(launch.trial_spec, launch.primary_container,
                                             launch.primary_pod_labels) or CONTAINER


def is_job(launch: TrialLaunch) -> bool:
    """Whether the attempt runs as a ``batch/v1`` Job (katuna's own, or a ``trialSpec`` Job)."""
    return runs_as_job(launch.trial_spec)


def runs_as_job(spec: Mapping[str, Any] | None) -> bool:
    """Whether a trial template's ``trialSpec`` is a ``batch/v1`` Job (None: katuna renders one)."""
    return spec is None or trial_kinds.resource(spec)[:2] == ("batch", "v1") and spec.get("kind") == "Job"


def own_conditions(launch: TrialLaunch) -> bool:
    """Whether a ``trialSpec`` Job ends by conditions of the study's own rather than Katib's
    defaults (``Complete`` / ``Failed``), which the Job executor reads directly."""
    given = (launch.success_condition, launch.failure_condition)
    return launch.trial_spec is not None and given != (None, None) and given != (
        trial_kinds.JOB_SUCCESS if launch.success_condition else None,
        trial_kinds.JOB_FAILURE if launch.failure_condition else None)


class NotRenderable(PermanentError):
    """The study lacks what a trial needs to run on Kubernetes (an image, for one)."""


def container_folder(working_dir: str | None) -> str | None:
    """The ``workingDir`` of katuna's trial container for ``trialTemplate.workingDir`` (its
    placeholders filled in): an absolute folder of the image as it is; none for ``.``, the
    image's own working directory; a :class:`NotRenderable` for another relative one, which
    names a folder of the study's machine the image does not have, and which the container
    runtime refuses, as the OCI runtime spec has it (``cwd`` "MUST be an absolute path";
    runc: "cwd must be an absolute path"), the trial's pod never starting."""
    if not working_dir or posixpath.normpath(working_dir) == ".":
        return None
    if not working_dir.startswith("/"):
        raise NotRenderable(f"trialTemplate.workingDir: expected an absolute folder of the image for trials run "
                            f"on Kubernetes (a container runs in no relative one), or '.' for the image's own "
                            f"working directory; got {working_dir!r}")
    return working_dir


CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]}}
"""What a trial container may not do; the user the image names runs it (images often run as
root), unless the study names one (``kubernetes.runAsUser``)."""


MANAGED_BY = "app.kubernetes.io/managed-by"

SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
POD_ANNOTATIONS = {SAFE_TO_EVICT: "false"}
"""Annotations of every trial pod: the cluster autoscaler (GKE's, and EKS's) may not evict a
running trial to empty an under-used node (it drains nodes below half their allocatable whose
pods, a Job's included, fit elsewhere), which would start the trial again from its beginning on
another node; the node goes once the trial has ended. A trial template's own value wins."""
ISTIO_INJECT = "sidecar.istio.io/inject"
POD_LABELS = {ISTIO_INJECT: "false"}
"""Labels of the pods of katuna's own trial Jobs, beside the Job's: Istio injects no proxy into
them where their namespace asks for injection (``istio-injection=enabled``, as Kubeflow's profile
namespaces are labelled), as Katib labels its trials' pods (``AppendIstioSidecarLabel``). A
proxy would run on after the trial's container exits, keeping its pod running. A ``trialSpec``'s
pods get none: what its template says is kept."""


def labels(launch: TrialLaunch) -> dict[str, str]:
    """The labels of the attempt's workload and of every pod it makes; a Katib Experiment's
    trial adds Katib's (``katib.kubeflow.org/experiment`` and ``katib.kubeflow.org/trial``,
    the Trial resource's name), which Katib's pod webhook gives a trial's pods and its SDK
    (``get_job_logs``) and UI select them by: each that is a label value (63 characters at most;
    a Trial of an Experiment named near that long has none, as Katib's own names stay short)."""
    own = {STUDY_LABEL: launch.study, UID_LABEL: launch.uid, TRIAL_LABEL: str(launch.number),
           ATTEMPT_LABEL: str(launch.attempt), MANAGED_BY: "katuna"}
    if launch.katib_experiment is None:
        return own
    trial = katib_trials.trial_name(launch.katib_experiment, launch.number)
    katib = {katib_trials.EXPERIMENT_LABEL: launch.katib_experiment, katib_trials.TRIAL_NAME_LABEL: trial}
    return own | {key: value for key, value in katib.items() if valid_value(value)}


def pod_labels(launch: TrialLaunch) -> dict[str, str]:
    """The labels of every pod of the attempt: a Katib Experiment's labels
    (:attr:`TrialLaunch.experiment_labels`), as Katib's pod webhook gives a Trial's labels to its
    pods, under the workload's (:func:`labels`), so that katuna's own, which select each attempt's
    pods, and ``katib.kubeflow.org/trial`` win over one of theirs of the same key (an
    ``app.kubernetes.io/managed-by`` Helm set; ``katuna.dev/`` keys are refused at submission);
    both win over the pod template's own. The workload itself gets :func:`labels` alone, as
    Katib's Job gets only its template's: a label a controller reads off a Job (Kueue's
    ``kueue.x-k8s.io/queue-name``) does not reach it from the Experiment."""
    return {**launch.experiment_labels, **labels(launch)}


def holder(found: Mapping[str, str] | None, launch: TrialLaunch) -> str:
    """Whose is a workload named as the launch's, by its labels ``found``: :data:`OWN` (this
    attempt's: the study's uid and the attempt match), :data:`EARLIER` (a trial of an earlier
    study of the same name, deleted, or deleted and submitted again, whose finished workloads
    its TTL or ``retain`` kept: names carry no uid), else :data:`OTHER` (nothing katuna made
    for a study of this name)."""
    found = found or {}
    if found.get(UID_LABEL) == launch.uid and found.get(ATTEMPT_LABEL) == str(launch.attempt):
        return OWN
    same_study = found.get(MANAGED_BY) == "katuna" and found.get(STUDY_LABEL) == launch.study
    return EARLIER if same_study and found.get(UID_LABEL) not in (None, launch.uid) else OTHER


STRAY_SELECTOR = f"{MANAGED_BY}=katuna,{STUDY_LABEL},{UID_LABEL},{TRIAL_LABEL},{ATTEMPT_LABEL}"
"""The workloads katuna made for trials, of any kind: its label and each of a trial attempt's."""


def attempt_of(labels: Mapping[str, str]) -> tuple[str, str, int, int] | None:
    """``(study, uid, trial, attempt)`` of a workload :data:`STRAY_SELECTOR` selected, from its
    labels; None where a number is no number (a workload labelled by hand)."""
    trial, attempt = labels[TRIAL_LABEL], labels[ATTEMPT_LABEL]
    if not (trial.isdigit() and attempt.isdigit()):
        return None
    return labels[STUDY_LABEL], labels[UID_LABEL], int(trial), int(attempt)


def trial_selector(launch: TrialLaunch) -> str:
    """The label selector of every workload of the launch's trial (each attempt's), and of no
    trial of an earlier study of the same name."""
    return f"{STUDY_LABEL}={launch.study},{UID_LABEL}={launch.uid},{TRIAL_LABEL}={launch.number}"


def study_selector(study: str, uid: str) -> str:
    """The label selector of every workload of every trial of the study (that very study:
    ``uid``), and of no earlier study of the same name."""
    return f"{STUDY_LABEL}={study},{UID_LABEL}={uid}"


TRIALS_PER_SELECTOR = 100
"""Trials one :func:`trials_selector` names at most: their numbers keep a request's query well
under any URL limit."""


def selector_chunks(launches: Sequence[TrialLaunch],
                    namespace_of: Callable[[TrialLaunch], str]) -> list[tuple[str, list[TrialLaunch]]]:
    """The ``launches`` by namespace and study, in chunks of at most :data:`TRIALS_PER_SELECTOR`,
    each with its namespace: what one :func:`trials_selector` may select."""
    groups: dict[tuple[str, str], list[TrialLaunch]] = {}
    for launch in launches:
        groups.setdefault((namespace_of(launch), launch.uid), []).append(launch)
    return [(namespace, group[start:start + TRIALS_PER_SELECTOR]) for (namespace, _), group in groups.items()
            for start in range(0, len(group), TRIALS_PER_SELECTOR)]


def trials_selector(launches: Sequence[TrialLaunch]) -> str:
    """The label selector of every workload of the ``launches``' trials, all of one study and at
    most :data:`TRIALS_PER_SELECTOR` (as :func:`trial_selector` selects one trial's)."""
    first = launches[0]
    numbers = ",".join(str(launch.number) for launch in launches)
    return f"{STUDY_LABEL}={first.study},{UID_LABEL}={first.uid},{TRIAL_LABEL} in ({numbers})"


def _resources(resources: Mapping[str, str], unlimited: frozenset[str] = frozenset()) -> dict[str, dict[str, str]]:
    """Requests of every resource, limits of all but cpu, ``ephemeral-storage`` and ``unlimited``."""
    requests = {EXTENDED_RESOURCES.get(k, k): v for k, v in resources.items()}
    limits = {k: v for k, v in requests.items() if k not in {"cpu", "ephemeral-storage", *unlimited}}
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def _added_to_trial_spec(request: TrialLaunch, cluster: Cluster) -> dict[str, dict[str, str]]:
    """The resources added to a ``trialSpec``'s primary containers: none when they request cpu
    or memory themselves; else the study's ``trialTemplate.resources``, and the service's
    defaults as requests only. Katib runs such a container with no limit, so a default memory
    limit would kill a trial (a PyTorchJob's, a GPU one) that Katib runs to its end; the requests
    still keep its pods out of the BestEffort class and size nodes for the autoscaler."""
    if trial_spec.requests_resources(request.trial_spec or {}, SIZED):
        return {}
    own = request.resources or {}
    defaulted = frozenset() if _sized(own) else SIZED
    return _resources(trial_resources(own, cluster), unlimited=defaulted)


def _sized(resources: Mapping[str, Any]) -> bool:
    """Whether ``resources`` name cpu or memory: what keeps a pod out of the BestEffort class,
    and what the cluster autoscaler sizes nodes by."""
    return bool(SIZED & set(resources))


def trial_resources(template: Mapping[str, str], defaults: Cluster) -> dict[str, str]:
    """A trial container's resources: the template's, with the service's default resources
    added when the template names neither cpu nor memory (a pod without them is BestEffort)."""
    return dict(template) if _sized(template) else {**dict(defaults.default_resources), **template}


def missing_requests(spec: Study, defaults: Cluster) -> Problem | None:
    """A study with a ``nodePool`` whose trials would request no cpu or memory: the scheduler
    would pack its BestEffort pods onto one node, and the pool's autoscaler would never grow."""
    template = spec.trial_template
    if spec.node_pool is None or _sized(trial_resources(dict(template.resources), defaults)):
        return None
    if template.trial_spec is not None and trial_spec.requests_resources(template.trial_spec, SIZED):
        return None
    return Problem("trialTemplate.resources", "a study with a nodePool needs cpu or memory requests for its trials "
                   "(the pool's autoscaler sizes nodes by them); expected trialTemplate.resources with cpu or memory "
                   "(or resources.requests in the trialSpec's containers), or a service default in "
                   "KATUNA_K8S_DEFAULT_RESOURCES")


def hugepages_alone(spec: Study, defaults: Cluster) -> Problem | None:
    """A study whose trial container, katuna's own, would ask for hugepages without cpu or
    memory, which Kubernetes refuses in every pod (a Katib ``trialSpec``'s is judged by the API
    server's dry run at submission)."""
    template = spec.trial_template
    resources = trial_resources(dict(template.resources), defaults)
    huge = sorted(name for name in resources if name.startswith("hugepages-"))
    if template.trial_spec is not None or not huge or _sized(resources):
        return None
    return Problem("trialTemplate.resources", f"{huge[0]} needs cpu or memory beside it: Kubernetes refuses a "
                   "container asking for hugepages alone; expected cpu or memory in trialTemplate.resources (or a "
                   "service default in KATUNA_K8S_DEFAULT_RESOURCES)")


def job_deadline(request: TrialLaunch, cluster: Cluster) -> int:
    """The Job's ``activeDeadlineSeconds``, a backstop: the trial's timeout plus the start
    allowance for each run the attempt's Job may make (the pods it may lose to disruptions,
    :func:`~functions.core.disruptions.pods_to_lose`, and the last one). The deadline counts from
    the Job's start, across its pods, Pending time included, while katuna gives each replacement
    a fresh timeout: so it ends no run katuna lets go on, only an attempt katuna has not looked at.
    A ``trialSpec`` Job's own sooner deadline is kept over it (:func:`trial_spec.render`). One
    longer than the field holds is the longest it holds (:data:`~functions.core.cluster.MAX_INT64`
    seconds), where a larger number would refuse every trial's Job."""
    allowance = cluster.start_allowance if cluster.start_allowance is not None else START_ALLOWANCE
    runs = pods_to_lose(request.attempt, request.max_attempts) + 1
    return min((math.ceil(request.timeout or 0) + allowance) * runs, MAX_INT64)


def render_job(request: TrialLaunch, defaults: Cluster = NO_DEFAULTS) -> dict[str, Any]:
    """The workload that runs one trial attempt (a ``batch/v1`` Job, or the ``trialSpec``'s kind);
    ``defaults`` fill what the study leaves out. A trial whose pods would run as one of the
    service's own accounts, or would name one of its Secrets, is refused
    (:mod:`functions.core.trial_identity`); then a trial of population-based training gets its
    checkpoint folder's mount and init container (:func:`_with_checkpoint`). Numeric resource
    quantities are written as text (:mod:`functions.core.quantities`), as Kubernetes' typed
    clients take them."""
    rendered = _render(request, defaults)
    quantities.write_as_text(rendered)
    cluster = (request.cluster or Cluster()).with_defaults(defaults)
    trial_identity.check_launch(cluster, rendered if request.trial_spec is not None else None, request.trial_spec)
    _with_checkpoint(rendered, request, cluster)
    return rendered


def _with_checkpoint(rendered: dict[str, Any], request: TrialLaunch, cluster: Cluster) -> None:
    """Population-based training: the Job's pod mounts the trial's checkpoint folder on the
    service's claim, seeded by an init container (:mod:`functions.core.checkpoint_volume`). A
    :class:`NotRenderable` where no claim is set, for a workload other than a Job, or where the
    pod has katuna's names or a mount at the checkpoint path already."""
    if request.checkpoint is None:
        return
    if cluster.checkpoints is None:
        raise NotRenderable(f"algorithm: pbt needs a shared claim for its checkpoints on Kubernetes: "
                            f"{CHECKPOINT_SETTING}")
    if not is_job(request):
        raise NotRenderable("algorithm: pbt runs its trials on Kubernetes as Jobs only (katuna's own, or a trialSpec "
                            "of kind batch/v1 Job), whose pod mounts the trial's checkpoint folder")
    try:
        checkpoint_volume.add_to_pod(rendered["spec"]["template"]["spec"], primary_container_name(request),
                                     cluster.checkpoints, request.uid, request.checkpoint)
    except checkpoint_volume.CheckpointClash as exc:
        raise NotRenderable(f"algorithm: pbt: {exc}") from exc


CHECKPOINT_SETTING = ("set KATUNA_CHECKPOINT_CLAIM to a ReadWriteMany PersistentVolumeClaim of the trials' "
                      "namespace, and KATUNA_CHECKPOINT_IMAGE to katuna's own image")
"""What enables population-based training where trials run as Kubernetes Jobs."""


def _render(request: TrialLaunch, defaults: Cluster) -> dict[str, Any]:
    if request.trial_spec is None and not request.image:
        raise NotRenderable("trialTemplate.image: required to run trials on Kubernetes")
    cluster = (request.cluster or Cluster()).with_defaults(defaults)
    name = request.job_name
    job_labels = labels(request)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": request.image,
        "command": list(request.argv),
        "env": report_token.env_entries(request.env, name),
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    resources = trial_resources(request.resources or {}, cluster)
    if resources:
        container["resources"] = _resources(resources)
    folder = container_folder(request.container_working_dir)
    if folder is not None:
        container["workingDir"] = folder
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container],
                           "securityContext": pod_security.pod_context(cluster.pod_security, cluster.run_as_user),
                           "automountServiceAccountToken": bool(cluster.automount_token)}
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
        "ttlSecondsAfterFinished": None if request.retain else cluster.ttl_seconds_after_finished,
        "template": {"metadata": {"labels": {**pod_labels(request), **POD_LABELS}, "annotations": dict(POD_ANNOTATIONS)},
                     "spec": pod},
    }
    if request.timeout:
        spec["activeDeadlineSeconds"] = job_deadline(request, cluster)
    metadata = {"name": name, "namespace": cluster.namespace, "labels": job_labels}
    if request.trial_spec is not None:
        katuna_env = {k: v for k, v in request.env.items() if k.startswith("KATUNA_") or k == katib_trials.TRIAL_NAME_ENV}
        del spec["template"]["spec"]["containers"]
        spec["template"]["metadata"]["labels"] = pod_labels(request)
        added = _added_to_trial_spec(request, cluster)
        if not is_job(request):
            workload = trial_spec.render_workload(request.trial_spec, request.primary_container,
                                                  request.primary_pod_labels, request.params or {}, metadata, pod,
                                                  katuna_env, added, spec["ttlSecondsAfterFinished"],
                                                  request.typed_fields, POD_ANNOTATIONS, request.retain,
                                                  pod_labels(request))
            _trial_named_in_every_replica(workload, request)
            return workload
        return trial_spec.render(request.trial_spec, request.primary_container, request.params or {},
                                 metadata, spec, katuna_env, added, request.typed_fields, request.primary_pod_labels)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def _trial_named_in_every_replica(workload: dict[str, Any], request: TrialLaunch) -> None:
    """Katib's :data:`~functions.core.katib_trials.TRIAL_NAME_ENV`, where the launch has it, in
    every container of the workload named as its primary one (each replica's: a PyTorchJob's
    workers', each Argo step's), as Katib's pod webhook gives it to every pod of a trial; the
    primary container has it already, with katuna's variables."""
    value = request.env.get(katib_trials.TRIAL_NAME_ENV)
    if value is None:
        return
    entry = {"name": katib_trials.TRIAL_NAME_ENV, "value": value}
    name = trial_spec.primary_container_name(workload, request.primary_container, request.primary_pod_labels)
    for _, _, own, container in trial_spec.located_containers(workload):
        if own == name and isinstance(container, dict):
            given = [e for e in container.get("env") or [] if not (isinstance(e, Mapping) and e.get("name") == entry["name"])]
            container["env"] = [*given, entry]


def render_trial(request: TrialLaunch, defaults: Cluster = NO_DEFAULTS) -> dict[str, Any]:
    """The workload of one trial attempt as the cluster gets it: :func:`render_job`, with the
    primary container wrapped for the File or tfevent collector when the study has one."""
    rendered = render_job(request, defaults)
    if request.metrics_file is None:
        return rendered
    if request.metrics_events:
        return file_collector.wrap_events(rendered, primary_container_name(request), request.metrics_file,
                                          request.metrics_events)
    return file_collector.wrap(rendered, primary_container_name(request), request.metrics_file)
