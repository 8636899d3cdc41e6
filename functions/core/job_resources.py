"""The resources of a trial's containers, and the studies whose resources Kubernetes would refuse
or the autoscaler could not size nodes by.

A trial container gets the study's ``trialTemplate.resources``, with the service's defaults
where they name neither cpu nor memory (a pod without either is BestEffort); a ``trialSpec``'s
primary containers get them as requests only. Apart from the Job's rendering
(:mod:`functions.core.job`), as the same rules judge a study at submission.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import trial_spec
from functions.core.cluster import Cluster
from functions.core.errors import Problem
from functions.core.launch import TrialLaunch
from functions.core.spec import Study

GPU = "nvidia.com/gpu"
EXTENDED_RESOURCES = {"gpu": GPU}
SIZED = frozenset({"cpu", "memory"})


def container_resources(resources: Mapping[str, str], unlimited: frozenset[str] = frozenset()) -> dict[str, dict[str, str]]:
    """Requests of every resource, limits of all but cpu, ``ephemeral-storage`` and ``unlimited``."""
    requests = {EXTENDED_RESOURCES.get(k, k): v for k, v in resources.items()}
    limits = {k: v for k, v in requests.items() if k not in {"cpu", "ephemeral-storage", *unlimited}}
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def added_to_trial_spec(request: TrialLaunch, cluster: Cluster) -> dict[str, dict[str, str]]:
    """The resources added to a ``trialSpec``'s primary containers: none when they request cpu
    or memory themselves; else the study's ``trialTemplate.resources``, and the service's
    defaults as requests only. Katib runs such a container with no limit, so a default memory
    limit would kill a trial (a PyTorchJob's, a GPU one) that Katib runs to its end; the requests
    still keep its pods out of the BestEffort class and size nodes for the autoscaler."""
    if trial_spec.requests_resources(request.trial_spec or {}, SIZED):
        return {}
    own = request.resources or {}
    defaulted = frozenset() if is_sized(own) else SIZED
    return container_resources(trial_resources(own, cluster), unlimited=defaulted)


def is_sized(resources: Mapping[str, Any]) -> bool:
    """Whether ``resources`` name cpu or memory: what keeps a pod out of the BestEffort class,
    and what the cluster autoscaler sizes nodes by."""
    return bool(SIZED & set(resources))


def trial_resources(template: Mapping[str, str], defaults: Cluster) -> dict[str, str]:
    """A trial container's resources: the template's, with the service's default resources
    added when the template names neither cpu nor memory (a pod without them is BestEffort)."""
    return dict(template) if is_sized(template) else {**dict(defaults.default_resources), **template}


def missing_requests(spec: Study, defaults: Cluster) -> Problem | None:
    """A study with a ``nodePool`` whose trials would request no cpu or memory: the scheduler
    would pack its BestEffort pods onto one node, and the pool's autoscaler would never grow."""
    template = spec.trial_template
    if spec.node_pool is None or is_sized(trial_resources(dict(template.resources), defaults)):
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
    if template.trial_spec is not None or not huge or is_sized(resources):
        return None
    return Problem("trialTemplate.resources", f"{huge[0]} needs cpu or memory beside it: Kubernetes refuses a "
                   "container asking for hugepages alone; expected cpu or memory in trialTemplate.resources (or a "
                   "service default in KATUNA_K8S_DEFAULT_RESOURCES)")
