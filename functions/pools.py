"""Wiring of node pools: the adapter the settings name, and the checks a submitted study passes
that depend on the service's settings (its node pools, its own service accounts and Secrets) or
on what the cluster lets it do (create the study's trial workload where it would run).

With no node-pool settings nothing is built, and a study without ``nodePool`` runs as before.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from functions.core.errors import InvalidStudy, Problem
from functions.core.gpu_fit import gpu_misfit
from functions.core.job import NotRenderable, container_folder
from functions.core.job_resources import hugepages_alone, missing_requests
from functions.core.nodepool import installation_value
from functions.core.ports import NodePools
from functions.core.spec import Study
from functions.core.system_paths import local_problems
from functions.core.trial_identity import study_problems
from functions.core.trial_spec import (
    PATH,
    TEMPLATE_FOLDER,
    fields_known,
    local_engine_fields,
    local_entrypoint,
    local_env_sources,
    local_folder,
    local_pod_parts,
    relative_pod_folders,
)
from functions.settings import Settings

_NEEDS = {"gke": "KATUNA_GKE_PROJECT, KATUNA_GKE_LOCATION and KATUNA_GKE_CLUSTER",
          "eks": "KATUNA_EKS_CLUSTER, KATUNA_EKS_SUBNETS and KATUNA_EKS_NODE_ROLE"}


def node_pools(settings: Settings) -> NodePools | None:
    """The configured cloud's node-pool adapter (its SDK imported only then), or None; the pools
    it creates for studies carry the installation's identity (:func:`installation_value`)."""
    installation = installation_value(settings.installation_id)
    if settings.gke_cluster:
        from infra import gke
        from infra.gke_requests import GkeCluster

        gke_cluster = GkeCluster(_required(settings.gke_project, "KATUNA_GKE_PROJECT"),
                                 _required(settings.gke_location, "KATUNA_GKE_LOCATION"), settings.gke_cluster,
                                 settings.gke_node_service_account, installation=installation)
        return gke.GkeNodePools(gke_cluster, gke.client(settings.gke_endpoint), settings.remote_timeout)
    if settings.eks_cluster:
        from infra import eks, eks_clients
        from infra.eks_requests import EksCluster

        eks_cluster = EksCluster(settings.eks_cluster, settings.eks_subnets, settings.eks_node_role,
                                 installation=installation)
        return eks.EksNodePools(eks_cluster, *eks_clients.clients(settings.eks_region, settings.remote_timeout))
    return None


def _required(value: str | None, variable: str) -> str:
    """A setting that must accompany the cluster's name: :class:`Settings` refuses to start
    without it, so this only narrows its type (and names the variable should that ever change)."""
    if not value:
        raise ValueError(f"{variable}: required with the cluster it names")
    return value


def check_study(spec: Study, definition: dict, settings: Settings, runs_jobs: bool) -> None:
    """What the service refuses of a study it would otherwise take, before anything is stored:
    trial pods running as one of the service's own accounts or naming one of its Secrets, a
    metrics file under the system's folders for trials run on this machine
    (:mod:`functions.core.system_paths`), a trialSpec container that runs its image's
    entrypoint or a field a Job trialSpec's type does not have, hugepages without cpu or memory
    or a relative working folder (katuna's container's, or a trialSpec pod's container's) for
    trials run as Jobs, and a node pool it cannot provide."""
    problems = study_problems(spec, settings.cluster_defaults()) + ([] if runs_jobs else _local_problems(spec))
    if runs_jobs and (alone := hugepages_alone(spec, settings.cluster_defaults())) is not None:
        problems.append(alone)
    if runs_jobs and (relative := _relative_job_folder(spec)) is not None:
        problems.append(relative)
    if runs_jobs and spec.trial_template.trial_spec is not None:
        problems += relative_pod_folders(spec.trial_template.trial_spec)
    if problems:
        _refuse(definition, problems)
    check_node_pool(spec, settings, runs_jobs)


def missing_working_dir(spec: Study, base: Path) -> Problem | None:
    """The study's ``trialTemplate.workingDir`` where it is no directory of this machine, taken
    relative to ``base`` (the folder the study was first run from, where its trials run): every
    local trial would fail to start there. Only for trials run on this machine (``katuna run``,
    and a service whose trials run as local processes); a container's working directory is
    inside its image. Only for one without placeholders: each trial's own is known once its
    parameters fill it in, and it fails that trial alone."""
    working_dir = spec.trial_template.working_dir
    if working_dir is None or spec.trial_template.trial_spec is not None or "${" in working_dir:
        return None
    folder = base / working_dir
    return None if folder.is_dir() else Problem(TEMPLATE_FOLDER, f"expected a directory; {folder} is none")


def check_working_dir(spec: Study, definition: dict, base: Path) -> None:
    """Refuse, before anything is stored, a study whose local trials' ``workingDir`` is no
    directory relative to ``base`` (:func:`missing_working_dir`), naming the field."""
    missing = missing_working_dir(spec, base)
    if missing is not None:
        _refuse(definition, [missing])


def _relative_job_folder(spec: Study) -> Problem | None:
    """A ``trialTemplate.workingDir`` that names a relative folder for katuna's trial Jobs
    (:func:`functions.core.job.container_folder`), where no placeholder begins it: every
    trial's pod would fail to start. One a placeholder begins is known per trial only."""
    template = spec.trial_template
    folder = template.working_dir
    if template.trial_spec is not None or folder is None or folder.startswith("${"):
        return None
    try:
        container_folder(folder)
    except NotRenderable as refused:
        return Problem(TEMPLATE_FOLDER, str(refused).removeprefix(f"{TEMPLATE_FOLDER}: "))
    return None


def _local_problems(spec: Study) -> list[Problem]:
    """What a study whose trials run on this machine cannot have: a metrics file under a system
    folder or one several trials would write at once, a ``trialSpec`` primary container with no
    ``command`` (a local process runs no image, so the image's entrypoint its ``args`` go to is
    unknown: a cluster runs it) or one reading what an Argo Workflow or Tekton PipelineRun fills
    in (a local process runs it without the engine) or a variable Kubernetes reads from elsewhere
    (a Secret, a ConfigMap, the pod's fields: a local process has no pod), or a field its kind
    does not have (a cluster's dry run refuses it where trials run there:
    :mod:`functions.adapters.kubernetes_access`)."""
    template = spec.trial_template
    path = local_problems(spec) or _shared_metrics_file(spec)
    if template.trial_spec is None:
        return path
    labels = dict(template.primary_pod_labels) or None
    entrypoint = local_entrypoint(template.trial_spec, template.primary_container, labels)
    return (path + ([entrypoint] if entrypoint is not None else [])
            + local_engine_fields(template.trial_spec, template.primary_container, labels)
            + local_env_sources(template.trial_spec, template.primary_container, labels)
            + local_pod_parts(template.trial_spec, template.primary_container, labels) + unknown_workload_fields(spec))


def _shared_metrics_file(spec: Study) -> list[Problem]:
    """A metrics file or event folder every trial writes (Katib's ``/katib/mnist.log``, which
    each pod has on its own volume on a cluster) while several run at once on this machine:
    each attempt is read for what was written there after it started, the lines (or event
    files, told as such) of the trials running beside it too, so trials would get each other's
    metrics, and wrong results."""
    path, runs_in = spec.metrics_collector.path, local_folder(spec.trial_template)
    relative = path is not None and not posixpath.isabs(path)
    if path is None or spec.parallelism < 2 or "${" in path or (relative and runs_in and "${" in runs_in.folder):
        return []
    events = spec.metrics_collector.kind == "tfevent"
    writes, read, own = (("its event files under", "event files", "folder") if events
                         else ("its metrics to", "lines", "file"))
    return [Problem("metricsCollector.path", (
        f"every trial writes {writes} {path}, and {spec.parallelism} would run at once on this machine "
        f"(parallelism): each would read the {read} of the trials running beside it, and take their metrics for its "
        f"own (on Kubernetes each pod has its own {own}); expected a path naming each trial's own {own}, with "
        f"${{trialSpec.Name}} in it (or in {(runs_in.field if runs_in else TEMPLATE_FOLDER)}, where the trial runs, "
        f"for a relative path), or parallelism 1"))]


def unknown_workload_fields(spec: Study) -> list[Problem]:
    """The fields of a ``trialSpec`` that its kind does not have (a Job's ``resource`` for
    ``resources``, a PyTorchJob's ``restartpolicy``), which a cluster's dry run refuses (and
    Katib's webhook, in a Job) where the API server would drop them; Kubernetes' client, which
    knows the types of a Job and of the pod and Job templates operators' kinds hold, is
    imported only for a kind katuna knows the fields of."""
    trial_spec = spec.trial_template.trial_spec
    if trial_spec is None or not fields_known(trial_spec):
        return []
    from functions.adapters.kubernetes_fields import unknown_workload_fields as unknown

    return unknown(trial_spec, PATH)


def check_access(spec: Study, definition: dict, refusal: Callable[[Study], Problem | None]) -> None:
    """A study whose trials the cluster says katuna may not create where they would run
    (``refusal``'s answer), or whose first trial's workload it refuses as invalid (``refusal``
    raises ``InvalidStudy``), is refused, naming the field, before anything is stored."""
    try:
        problem = refusal(spec)
    except InvalidStudy as exc:
        _refuse(definition, list(exc.problems))
    if problem is not None:
        _refuse(definition, [problem])


def _refuse(definition: dict, problems: list[Problem]) -> NoReturn:
    """Refuse the study with ``problems``, their paths those of the definition as submitted."""
    from functions.core.formats import in_definition  # YAML with it: only for a refusal, off the event path

    raise InvalidStudy(in_definition(definition, problems))


def check_node_pool(spec: Study, settings: Settings, runs_jobs: bool) -> None:
    """A study's node pool must be one this process can provision, for trials that run as Jobs,
    with nodes that hold a trial's GPUs."""
    pool = spec.node_pool
    if pool is None:
        return
    if not runs_jobs:
        raise InvalidStudy([Problem("nodePool", "trials run on this machine here; a node pool is for trials run as "
                                                "Kubernetes Jobs (katuna serve --executor kubernetes, or Knative)")])
    if settings.node_pool_provider != pool.provider:
        raise InvalidStudy([Problem("nodePool.provider", f"no {pool.provider} node pools are configured for this "
                                                         f"service; set {_NEEDS[pool.provider]}")])
    unfit = missing_requests(spec, settings.cluster_defaults()) or gpu_misfit(spec, settings.cluster_defaults())
    if unfit is not None:
        raise InvalidStudy([unfit])
