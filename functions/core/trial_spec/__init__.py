"""Katib-style ``trialSpec`` templates: a whole workload with placeholders, of any kind Katib
runs (a ``batch/v1`` Job, the Training Operator's jobs, TrainJob, JobSet, Argo Workflow, Tekton
PipelineRun; see :mod:`functions.core.trial_kinds`).

Checked when the study is parsed; on a cluster the workload is the template with every string
substituted on its own and katuna's requirements laid over it (for a Job: name, labels, the
preemption policy before the Job's own rules, deadline unless the Job's own is sooner, TTL
unless the Job keeps its own, ``restartPolicy: Never``; for other kinds: name, labels, the
node pool's scheduling); locally the primary container's command and args run as the trial
process (its image is noted and ignored), ended at a Job's own deadline (:func:`active_deadline`).
"""

from functions.core.trial_spec._check import check
from functions.core.trial_spec._folders import relative_pod_folders
from functions.core.trial_spec._job_fields import template_field
from functions.core.trial_spec._kind_fields import JOB_TEMPLATE, POD_TEMPLATE, fields_known, kind_fields
from functions.core.trial_spec._local import (
    CONTAINER_FOLDER,
    TEMPLATE_FOLDER,
    LocalFolder,
    active_deadline,
    as_the_engine_gives,
    local_engine_fields,
    local_entrypoint,
    local_env_sources,
    local_folder,
    local_pod_parts,
    local_process,
    no_command,
)
from functions.core.trial_spec._render import render, render_workload
from functions.core.trial_spec._shapes import (
    PATH,
    all_containers,
    init_containers,
    located_containers,
    primary_container,
    primary_container_name,
    requests_resources,
    resources_key,
)

__all__ = [
    "CONTAINER_FOLDER", "JOB_TEMPLATE", "PATH", "POD_TEMPLATE", "TEMPLATE_FOLDER", "LocalFolder", "active_deadline", "all_containers", "as_the_engine_gives", "check", "fields_known", "init_containers", "kind_fields", "local_engine_fields", "local_entrypoint", "local_env_sources", "local_pod_parts", "local_folder", "local_process", "located_containers",
    "no_command", "primary_container", "primary_container_name", "relative_pod_folders", "render", "render_workload", "requests_resources", "resources_key", "template_field",
]
