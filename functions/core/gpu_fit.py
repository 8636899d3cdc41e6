"""Studies whose trials ask for more GPUs in one pod than a node of their ``nodePool`` has: the
pool would be made, and paid for, and no node of it could ever hold a trial.

A pod's demand is what the scheduler counts (Kubernetes' ``PodRequests``): its containers'
``nvidia.com/gpu`` together, or an init container's, with the sidecars (init containers that
``restartPolicy: Always`` keeps running) started before it, where that is more. A workload of
several pod templates (a PyTorchJob's Master and Worker) is judged by its largest pod, as each
replica is a pod of its own. A container asks for its request, else for its limit, which stands
for it; ``trialTemplate.resources`` asks in the containers katuna gives them to
(:func:`functions.core.job_resources.added_to_trial_spec`). A placeholder asks for nothing here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from functions.core import eks_ami, eks_gpus, gpus, trial_spec, workload_pods
from functions.core.cluster import Cluster
from functions.core.errors import Problem
from functions.core.job import runs_as_job
from functions.core.job_resources import EXTENDED_RESOURCES, GPU, SIZED, trial_resources
from functions.core.limit_ranges import quantity
from functions.core.nodepool import GKE, NodePool
from functions.core.spec import Study

Asked = tuple[int, tuple[str, ...]]
"""GPUs asked for, and the fields that ask for them."""


def gpu_misfit(spec: Study, defaults: Cluster) -> Problem | None:
    """A study whose trials ask for more ``nvidia.com/gpu`` in one pod than a node of its
    ``nodePool`` offers: a GKE machine type with no or fewer GPUs, an EKS instance type with no
    NVIDIA GPU or fewer than asked (:func:`functions.core.eks_gpus.gpu_count`; a type it does
    not know is left alone)."""
    pool, asked = spec.node_pool, most_gpus(spec, defaults)
    if pool is None or asked is None:
        return None
    count, fields = asked
    wants = (f"{fields[0]} asks" if len(fields) == 1 else f"{', '.join(fields)} ask together") + \
        f" for {count} {GPU} in one pod"
    if pool.provider == GKE:
        return _gke_misfit(pool, count, wants)
    lacking = [t for t in pool.machine_types if not eks_ami.offers_nvidia_gpus(t)]
    if lacking:
        verb = "has" if len(lacking) == 1 else "have"
        return Problem("nodePool.instanceTypes", f"{wants}, but {', '.join(lacking)} {verb} no NVIDIA GPU, so no "
                       "trial would ever be scheduled there; expected NVIDIA GPU instance types (g4dn, g5, g6, p4d, p5)")
    short = [(t, n) for t in pool.machine_types if (n := eks_gpus.gpu_count(t)) is not None and n < count]
    if not short:
        return None
    named = ", ".join(f"{t} has {n}" for t, n in short)
    fits = [f"{t} has {eks_gpus.gpu_count(t)}" for kind, _ in short if (t := eks_gpus.fitting(kind, count))]
    instead = f" ({', '.join(dict.fromkeys(fits))})" if fits else ""
    return Problem("nodePool.instanceTypes", f"{wants}, but a node of {named}, so no trial would ever be scheduled "
                   f"there; expected instance types with at least {count} NVIDIA GPUs{instead}")


def _gke_misfit(pool: NodePool, count: int, wants: str) -> Problem | None:
    """A GKE pool whose node has fewer than ``count`` GPUs, refused naming the field to change:
    the ``accelerators`` of an n1 machine type, which so many GPUs attach to, else the ``machineType``
    (an accelerator-optimized type comes with its own number, other series take none), with a
    machine type of the same family that has enough where there is one."""
    machine = pool.machine_types[0]
    offered = gpus.node_gpus(machine, pool.accelerators)
    if offered is None or offered >= count:
        return None
    has = f"{wants}, but a node of machine type {machine} has {offered}, so no trial would ever be scheduled; expected"
    if machine.startswith("n1-") or gpus.n1_vcpus(machine) is not None:
        attached = _n1_accelerators(machine, count, pool.accelerators[0][0] if pool.accelerators else None)
        if attached:
            return Problem("nodePool.accelerators", f"{has} accelerators enough for one trial's pod ({attached})")
    sibling = gpus.fitting_machine(machine, count)
    instead = f"a machine type of its family with enough ({sibling})" if sibling else gpus.gpu_machines(count)
    return Problem("nodePool.machineType", f"{has} {instead}")


def _n1_accelerators(machine: str, count: int, model: str | None) -> str | None:
    """The accelerators an n1 ``machine`` would need for ``count`` GPUs in one node, as a
    refusal's example: the fewest its vCPUs may have beside them (:data:`functions.core.gpus.N1_MOST_VCPUS`),
    and, where fewer would do beside fewer vCPUs, those with the machine types that take them
    (``4 nvidia-tesla-t4, say, or 1 with a machine type of at most 48 vCPUs``)."""
    cpus = gpus.n1_vcpus(machine)
    fits, fewest = gpus.n1_fit(count, model, cpus), gpus.n1_fit(count, model)
    if fits is None or fewest is None:
        return None
    said = f"{fits[0]} {fits[1]}, say"
    if fewest == fits:
        return said
    return (f"{said}, which its {cpus} vCPUs take; or {fewest[0]} {fewest[1]} with a machine type of at most "
            f"{gpus.N1_MOST_VCPUS[fewest[1]][fewest[0]]} vCPUs")


def most_gpus(spec: Study, defaults: Cluster) -> Asked | None:
    """The most ``nvidia.com/gpu`` one pod of a trial asks for, and the fields asking; None when
    no pod asks for any."""
    template = spec.trial_template
    added = None
    if template.trial_spec is None or not trial_spec.requests_resources(template.trial_spec, SIZED):
        own = trial_resources(dict(template.resources), defaults)
        given = [_whole(v) for k, v in own.items() if EXTENDED_RESOURCES.get(k, k) == GPU]
        added = (given[0], ("trialTemplate.resources",)) if given and given[0] > 0 else None
    if template.trial_spec is None:
        return added
    pods = list(_pods(template.trial_spec, template.primary_container, dict(template.primary_pod_labels), added))
    count, fields = max(pods, key=lambda pod: pod[0], default=(0, ()))
    return (count, fields) if count > 0 else None


def _pods(workload: Mapping[str, Any], primary: str | None, labels: Mapping[str, str],
          added: Asked | None) -> Iterator[Asked]:
    """What each pod of the workload asks for: a pod template's containers as Kubernetes sums
    them; a container a kind describes in its own shape (a TrainJob's trainer, an Argo template,
    a Tekton step), alone."""
    name = trial_spec.primary_container_name(workload, primary, labels or None)
    job_primary = trial_spec.primary_container(workload, primary, labels or None) if runs_as_job(workload) else None
    in_pods: set[int] = set()
    for path, _, pod in workload_pods.pod_specs(workload):
        found: dict[str, list[tuple[Asked, bool]]] = {"containers": [], "initContainers": []}
        for field, asking in found.items():
            for i, container in _indexed(pod.get(field)):
                in_pods.add(id(container))
                asked = _asked(workload, f"{path}.spec.{field}[{i}]", container, job_primary, name, added)
                if asked is not None:
                    asking.append((asked, container.get("restartPolicy") == "Always"))
        yield _pod_total(found["initContainers"], [asked for asked, _ in found["containers"]])
    for path, _, _, container in trial_spec.located_containers(workload):
        if id(container) not in in_pods:
            yield _asked(workload, path, container, job_primary, name, added) or (0, ())


def _asked(workload: Mapping[str, Any], path: str, container: Mapping[str, Any], job_primary: object,
           name: str | None, added: Asked | None) -> Asked | None:
    """The GPUs one container asks for: its request, else its limit; else, where katuna gives
    it ``trialTemplate.resources`` (a Job's primary container, another kind's containers of the
    primary's name without resources of their own), theirs."""
    key = trial_spec.resources_key(workload, path)
    resources = container.get(key)
    for kind in ("requests", "limits"):
        given = resources.get(kind) if isinstance(resources, Mapping) else None
        if isinstance(given, Mapping) and GPU in given:
            count = _whole(given[GPU])
            return (count, (f"{trial_spec.PATH}.{path}.{key}.{kind}",)) if count > 0 else None
    gets = container is job_primary if job_primary is not None else container.get("name") == name and key not in container
    return added if gets else None


def _pod_total(inits: list[tuple[Asked, bool]], mains: list[Asked]) -> Asked:
    """A pod's GPUs as the scheduler counts them: its containers and sidecars together, or an
    init container with the sidecars started before it, whichever is more."""
    sidecars: list[Asked] = []
    peak: Asked = (0, ())
    for asked, sidecar in inits:
        sidecars += [asked] if sidecar else []
        peak = max(peak, _together(sidecars if sidecar else [*sidecars, asked]), key=lambda each: each[0])
    return max(_together([*sidecars, *mains]), peak, key=lambda each: each[0])


def _together(asked: list[Asked]) -> Asked:
    return sum(count for count, _ in asked), tuple(field for _, fields in asked for field in fields)


def _indexed(items: object) -> list[tuple[int, Mapping[str, Any]]]:
    return [(i, item) for i, item in enumerate(items) if isinstance(item, Mapping)] if isinstance(items, list) else []


def _whole(value: object) -> int:
    """A GPU quantity as a whole number; 0 for one that is no quantity (a placeholder)."""
    amount = quantity(value)
    return int(amount) if amount is not None and amount == int(amount) else 0
