"""The fields an operator's kind has above its pod and Job templates, as its CRD lists them: the
Training Operator's six jobs (v1.9.0), JobSet (up to v0.9, ``groupName`` included) and Trainer's
TrainJob (``v1alpha1``). The API server drops a field a custom resource's schema does not have
(its structural schema prunes it), so a misspelt one (``restartpolicy``, a replica spec's
``replica``, a TrainJob trainer's ``numNode``) would leave the trial running without what it
meant: refused instead, where a cluster's dry run would not see it (``katuna render``, trials
run on this machine). The templates are Kubernetes' own types, left to its client to check
(:func:`~functions.adapters.kubernetes_fields.unknown_workload_fields`). An Argo Workflow and a
Tekton PipelineRun keep unknown fields (their installed CRDs say so), as does a kind katuna
does not know: nothing is said of theirs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

ANY = None
"""A value whose fields are not looked into (a kind's policy the operator itself validates)."""
POD_TEMPLATE = "PodTemplateSpec"
JOB_TEMPLATE = "JobTemplateSpec"
"""Kubernetes' own types, by their names in its API."""


@dataclass(frozen=True)
class Each:
    """Every value of a map of names (a job's roles) or every item of a list, of one shape."""

    shape: Shape


Shape: TypeAlias = "None | str | Each | Mapping[str, Shape]"
"""A value's shape: :data:`ANY`, a template type, :class:`Each`, or the fields an object has."""

_RUN_POLICY = dict.fromkeys(("activeDeadlineSeconds", "backoffLimit", "cleanPodPolicy", "managedBy", "schedulingPolicy",
                             "suspend", "ttlSecondsAfterFinished"))
_REPLICAS = Each({"replicas": ANY, "restartPolicy": ANY, "template": POD_TEMPLATE})


def _training(replica_specs: str, *own: str) -> Mapping[str, Shape]:
    return {"runPolicy": _RUN_POLICY, replica_specs: _REPLICAS, **dict.fromkeys(own)}


_JOBSET = {"coordinator": ANY, "failurePolicy": ANY, "managedBy": ANY, "network": ANY, "startupPolicy": ANY,
           "successPolicy": ANY, "suspend": ANY, "ttlSecondsAfterFinished": ANY,
           "replicatedJobs": Each({"dependsOn": ANY, "groupName": ANY, "name": ANY, "replicas": ANY,
                                   "template": JOB_TEMPLATE})}
_TRAINJOB = {"annotations": ANY, "datasetConfig": ANY, "labels": ANY, "managedBy": ANY, "modelConfig": ANY,
             "podSpecOverrides": ANY, "suspend": ANY, "runtimeRef": dict.fromkeys(("apiGroup", "kind", "name")),
             "trainer": dict.fromkeys(("args", "command", "env", "image", "numNodes", "numProcPerNode",
                                       "resourcesPerNode"))}
SPECS: dict[tuple[str, str], Mapping[str, Shape]] = {
    ("kubeflow.org/v1", "PyTorchJob"): _training("pytorchReplicaSpecs", "elasticPolicy", "nprocPerNode"),
    ("kubeflow.org/v1", "TFJob"): _training("tfReplicaSpecs", "enableDynamicWorker", "successPolicy"),
    ("kubeflow.org/v1", "MPIJob"): _training("mpiReplicaSpecs", "cleanPodPolicy", "mainContainer", "slotsPerWorker"),
    ("kubeflow.org/v1", "XGBoostJob"): _training("xgbReplicaSpecs"),
    ("kubeflow.org/v1", "PaddleJob"): _training("paddleReplicaSpecs", "elasticPolicy"),
    ("kubeflow.org/v1", "JAXJob"): _training("jaxReplicaSpecs"),
    ("jobset.x-k8s.io/v1alpha2", "JobSet"): _JOBSET,
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"): _TRAINJOB,
}
"""The ``spec`` of each kind whose fields katuna knows, by ``(apiVersion, kind)``."""


def fields_known(trial_spec: Mapping[str, Any]) -> bool:
    """Whether katuna knows the fields of the ``trialSpec``'s kind: a Job's (its type in
    Kubernetes' client), or one of :data:`SPECS`."""
    key = (trial_spec.get("apiVersion"), trial_spec.get("kind"))
    return key == ("batch/v1", "Job") or key in SPECS


def kind_fields(trial_spec: Mapping[str, Any]) -> list[tuple[str, str | None, Any]]:
    """``(path, None, value)`` for each field a ``trialSpec`` of a kind in :data:`SPECS` does
    not have (``spec.pytorchReplicaSpecs.Worker.restartpolicy``), and ``(path, type, value)``
    for each of its templates of Kubernetes' own types (:data:`POD_TEMPLATE`,
    :data:`JOB_TEMPLATE`), to be checked by those types; in the order the ``trialSpec`` has
    them. Nothing for another kind."""
    shape = SPECS.get((str(trial_spec.get("apiVersion")), str(trial_spec.get("kind"))))
    if shape is None:
        return []
    return list(_walk({"apiVersion": ANY, "kind": ANY, "metadata": ANY, "status": ANY, "spec": shape}, trial_spec, ""))


def _walk(shape: Shape, value: Any, path: str) -> Iterator[tuple[str, str | None, Any]]:
    """``(path, None, value)`` for each field ``shape`` does not have, ``(path, type, value)``
    for each template."""
    if isinstance(shape, str):
        yield path, shape, value
    elif isinstance(shape, Each):
        items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            yield from _walk(shape.shape, item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}")
    elif isinstance(shape, Mapping) and isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if key in shape:
                yield from _walk(shape[key], item, where)
            else:
                yield where, None, item
