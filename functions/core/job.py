"""The Kubernetes Job of one trial attempt, rendered as a structure.

Parameter values are substituted into each string field on its own (see
:mod:`functions.core.template`), so a value holding quotes, colons, newlines or YAML syntax stays
one string and cannot change the Job's shape. The containers' resources come from
:mod:`functions.core.job_resources`, the labels and selectors from :mod:`functions.core.workload_labels`.
"""

from __future__ import annotations

import copy
import math
import posixpath
from collections.abc import Mapping
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
from functions.core.cluster import MAX_JOB_DEADLINE, SINK_BINDING_LABEL, START_ALLOWANCE, Cluster
from functions.core.disruptions import pods_to_lose
from functions.core.errors import PermanentError
from functions.core.job_resources import added_to_trial_spec, container_resources, trial_resources
from functions.core.launch import TrialLaunch
from functions.core.workload_labels import POD_LABELS, labels, pod_labels

CONTAINER = "trial"


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


def bound(launch: TrialLaunch, cluster: Cluster) -> dict[str, str]:
    """The label a SinkBinding selects the attempt's Job by (:attr:`Cluster.sink_binding`): none
    for another kind of workload, which such a binding does not name."""
    return {SINK_BINDING_LABEL: cluster.sink_binding} if cluster.sink_binding and is_job(launch) else {}


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


SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
POD_ANNOTATIONS = {SAFE_TO_EVICT: "false"}
"""Annotations of every trial pod: the cluster autoscaler (GKE's, and EKS's) may not evict a
running trial to empty an under-used node (it drains nodes below half their allocatable whose
pods, a Job's included, fit elsewhere), which would start the trial again from its beginning on
another node; the node goes once the trial has ended. A trial template's own value wins."""


def job_deadline(request: TrialLaunch, cluster: Cluster) -> int:
    """The Job's ``activeDeadlineSeconds``, a backstop: the trial's timeout plus the start
    allowance for each run the attempt's Job may make (the pods it may lose to disruptions,
    :func:`~functions.core.disruptions.pods_to_lose`, and the last one). The deadline counts from
    the Job's start, across its pods, Pending time included, while katuna gives each replacement
    a fresh timeout: so it ends no run katuna lets go on, only an attempt katuna has not looked at.
    A ``trialSpec`` Job's own sooner deadline is kept over it (:func:`trial_spec.render`). One
    longer than the Job controller counts is the longest it counts
    (:data:`~functions.core.cluster.MAX_JOB_DEADLINE` seconds), where a larger number would fail
    every trial's Job at its start."""
    allowance = cluster.start_allowance if cluster.start_allowance is not None else START_ALLOWANCE
    runs = pods_to_lose(request.attempt, request.max_attempts) + 1
    return min((math.ceil(request.timeout or 0) + allowance) * runs, MAX_JOB_DEADLINE)


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
                                     cluster.checkpoints, request.uid, request.checkpoint,
                                     cluster.pod_security == pod_security.RESTRICTED)
    except checkpoint_volume.CheckpointClash as exc:
        raise NotRenderable(f"algorithm: pbt: {exc}") from exc


CHECKPOINT_SETTING = ("set KATUNA_CHECKPOINT_CLAIM to a ReadWriteMany PersistentVolumeClaim of the trials' "
                      "namespace, and KATUNA_CHECKPOINT_IMAGE to katuna's own image")
"""What enables population-based training where trials run as Kubernetes Jobs."""


def _render(request: TrialLaunch, defaults: Cluster) -> dict[str, Any]:
    """The workload that runs the launch's trial: a Job of its image, or its own trial spec."""
    if request.trial_spec is None and not request.image:
        raise NotRenderable("trialTemplate.image: required to run trials on Kubernetes")
    cluster = (request.cluster or Cluster()).with_defaults(defaults)
    pod = _pod(_container(request, cluster), cluster)
    spec = _job_spec(request, cluster, pod)
    metadata = {"name": request.job_name, "namespace": cluster.namespace,
                "labels": labels(request) | bound(request, cluster)}
    if request.trial_spec is not None:
        return _from_trial_spec(request, request.trial_spec, cluster, metadata, spec)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def _container(request: TrialLaunch, cluster: Cluster) -> dict[str, Any]:
    """The trial's container of a launch by image: its command, katuna's variables, its
    resources and working folder, locked down."""
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": request.image,
        "command": list(request.argv),
        "env": report_token.env_entries(request.env, request.job_name),
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    resources = trial_resources(request.resources or {}, cluster)
    if resources:
        container["resources"] = container_resources(resources)
    folder = container_folder(request.container_working_dir)
    if folder is not None:
        container["workingDir"] = folder
    return container


def _pod(container: dict[str, Any], cluster: Cluster) -> dict[str, Any]:
    """The trial's pod spec: its one ``container``, never restarted, with the cluster's
    security context, service account, pull secrets and placement."""
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container],
                           "securityContext": pod_security.pod_context(cluster.pod_security, cluster.run_as_user),
                           "automountServiceAccountToken": bool(cluster.automount_token),
                           "enableServiceLinks": False}
    if cluster.service_account:
        pod["serviceAccountName"] = cluster.service_account
    if cluster.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in cluster.image_pull_secrets]
    if cluster.node_selector:
        pod["nodeSelector"] = dict(cluster.node_selector)
    if cluster.tolerations:
        pod["tolerations"] = [dict(t) for t in cluster.tolerations]
    return pod


def _job_spec(request: TrialLaunch, cluster: Cluster, pod: dict[str, Any]) -> dict[str, Any]:
    """The Job's spec around ``pod``: its retries (a disrupted pod's ignored), its time to live
    once finished (none where the trial is retained) and its deadline."""
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
    return spec


def _from_trial_spec(request: TrialLaunch, given: Mapping[str, Any], cluster: Cluster, metadata: dict[str, Any],
                     spec: dict[str, Any]) -> dict[str, Any]:
    """The launch's own trial spec, ``given`` (a Job, or another workload), rendered with
    katuna's metadata, variables and additions, and the pod settings of the Job ``spec`` that
    would run an image (its container taken out: the trial spec has its own)."""
    pod = spec["template"]["spec"]
    katuna_env = {k: v for k, v in request.env.items() if k.startswith("KATUNA_") or k == katib_trials.TRIAL_NAME_ENV}
    del spec["template"]["spec"]["containers"]
    spec["template"]["metadata"]["labels"] = pod_labels(request)
    added = added_to_trial_spec(request, cluster)
    if not is_job(request):
        workload = trial_spec.render_workload(given, request.primary_container,
                                              request.primary_pod_labels, request.params or {}, metadata, pod,
                                              katuna_env, added, spec["ttlSecondsAfterFinished"],
                                              request.typed_fields, POD_ANNOTATIONS, request.retain,
                                              pod_labels(request))
        _trial_named_in_every_replica(workload, request)
        return workload
    return trial_spec.render(given, request.primary_container, request.params or {},
                             metadata, spec, katuna_env, added, request.typed_fields, request.primary_pod_labels)


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
