"""A study is refused, naming ``name``, where a trial it may run would get a workload name its
kind's operator refuses: the Training Operator's and JobSet's webhooks take only DNS-1035
labels, so the stand-in's (:mod:`kube_standin.webhooks`), as a cluster's, would refuse it."""

from __future__ import annotations

import pytest
from conftest import study_definition

from functions.core.errors import InvalidStudy
from functions.core.validate import parse_study

PYTORCHJOB = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
    "Master": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "pytorch", "image": "python:3.12", "command": ["train", "${trialParameters.x}"]}]}}}}}}


def jobset(replicas: int, completions: int) -> dict:
    job = {"completionMode": "Indexed", "completions": completions, "parallelism": completions, "template": {
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "node", "image": "python:3.12", "command": ["train", "${trialParameters.x}"]}]}}}
    return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "spec": {"replicatedJobs": [
        {"name": "workers", "replicas": replicas, "template": {"spec": job}}]}}


def study(name: str, spec: dict, **overrides) -> dict:
    definition = study_definition(name=name, **overrides)
    definition["trialTemplate"] = {"trialSpec": spec, "maxAttempts": 3}
    return definition


def problems(definition: dict) -> list[str]:
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("spec", [PYTORCHJOB, jobset(1, 1)], ids=["PyTorchJob", "JobSet"])
def test_a_name_beginning_with_a_digit_is_refused_for_a_kind_whose_operator_takes_dns_1035_labels(spec: dict):
    parse_study(study("b7-sweep", spec, maxTrials=10))
    assert problems(study("7b-sweep", spec, maxTrials=10)) == [
        f"name: expected a name beginning with a letter for a {spec['kind']} trialSpec: "
        f"{'the Training Operator' if spec['kind'] == 'PyTorchJob' else 'JobSet'}'s webhook refuses a {spec['kind']} "
        f"whose name is no DNS-1035 label, and each trial's is named after the study (7b-sweep-0); got '7b-sweep'"]


def test_a_jobset_leaves_room_in_every_trials_name_for_its_last_jobs_and_pods_names():
    """``<study>-<last trial>-a<last attempt>-<replicatedJob>-<replicas-1>-<completions-1>-abcde``
    is at most 63 characters, for the last trial of ``maxTrials`` (the first trial's dry run
    cannot tell: its name is the shortest)."""
    fits = "f" * (63 - len("-99-a3-workers-9-9-abcde"))
    parse_study(study(fits, jobset(10, 10), maxTrials=100))
    assert problems(study(fits + "x", jobset(10, 10), maxTrials=100)) == [
        f"name: expected at most {len(fits)} characters for this JobSet trialSpec: trial 99's attempt 3 would name a "
        f"Job or pod {fits}x-99-a3-workers-9-9-abcde (64 characters), and JobSet's webhook refuses a JobSet whose "
        "Jobs' or pods' names pass the 63 of a DNS-1035 label; shorten the name by 1 characters, or lower maxTrials, "
        "trialTemplate.maxAttempts, or a replicated Job's name, replicas or completions"]
    assert len(problems(study(fits, jobset(10, 11), maxTrials=100))) == 1, "the pod index 10 is a character longer"
    unbounded = study(fits, jobset(10, 10), timeBudget="1h")
    del unbounded["maxTrials"]
    assert "trial 999999's attempt 3" in problems(unbounded)[0], "without maxTrials, up to KATUNA_MAX_TRIALS"


def test_a_training_operator_job_leaves_room_in_every_trials_name_for_its_services():
    """The Training Operator names each replica's pod and Service ``<job>-<role>-<index>``, and
    the API server takes a Service only under a DNS-1035 label: ``<study>-<last trial>-a<last
    attempt>-<role>-<replicas-1>`` is at most 63 characters."""
    workers = {**PYTORCHJOB, "spec": {"pytorchReplicaSpecs": {
        **PYTORCHJOB["spec"]["pytorchReplicaSpecs"], "Worker": {"replicas": 10, "template": {"spec": {"containers": [
            {"name": "pytorch", "image": "python:3.12"}]}}}}}}
    fits = "f" * (63 - len("-99-a3-worker-9"))
    parse_study(study(fits, workers, maxTrials=100))
    assert problems(study(fits + "x", workers, maxTrials=100)) == [
        f"name: expected at most {len(fits)} characters for this PyTorchJob trialSpec: the Training Operator names "
        f"each replica's pod and Service <trial's name>-<role>-<index>, trial 99's attempt 3 {fits}x-99-a3-worker-9 "
        "(64 characters), and the API server refuses a Service whose name passes the 63 of a DNS-1035 label; "
        "shorten the name by 1 characters, or lower maxTrials, trialTemplate.maxAttempts or the replicas"]
