"""The stand-in API server validates a Job's failure and completion policies as
``pkg/apis/batch/validation`` does, after batch/v1's defaulting, and its containers' names and
environment as ``pkg/apis/core/validation`` does: what katuna sends from a Katib ``trialSpec``
is refused here where a cluster would refuse it, and nothing more."""

from __future__ import annotations

import copy

import pytest
from kube_standin.validation import defaulted, job_problems

JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": {
    "restartPolicy": "Never", "containers": [{"name": "trainer", "image": "python:3.12"}],
    "initContainers": [{"name": "fetch", "image": "busybox:1.36"}]}}}}


def job(**spec: object) -> dict:
    made = copy.deepcopy(JOB)
    made["spec"].update(spec)
    return made


def policy(*rules: dict) -> dict:
    return {"podFailurePolicy": {"rules": list(rules)}}


@pytest.mark.parametrize("spec", [
    policy({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
           {"action": "FailJob", "onExitCodes": {"containerName": "fetch", "operator": "NotIn", "values": [0, 1, 7]}},
           {"action": "Count", "onPodConditions": [{"type": "example.com/Custom", "status": "Unknown"}]}),
    {"completionMode": "Indexed", "completions": 4, "backoffLimitPerIndex": 1, "maxFailedIndexes": 4,
     **policy({"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}})},
    {"completionMode": "Indexed", "completions": 3, "successPolicy": {"rules": [{"succeededCount": 1}]}},
], ids=["every action but FailIndex, an empty status defaulted", "FailIndex per index", "success policy"])
def test_policies_a_cluster_takes_are_taken(spec: dict):
    assert job_problems(job(**spec)) == []


@pytest.mark.parametrize(("spec", "expected"), [
    (policy({"action": "Fail", "onExitCodes": {"operator": "In", "values": [1]}}),
     [("spec.podFailurePolicy.rules[0].action",
       'Unsupported value: "Fail": supported values: "Count", "FailIndex", "FailJob", "Ignore"')]),
    (policy({"action": "FailJob"}),
     [("spec.podFailurePolicy.rules[0]", "Invalid value: specifying one of OnExitCodes and OnPodConditions is "
                                         "required")]),
    (policy({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]},
             "onPodConditions": [{"type": "Ready"}]}),
     [("spec.podFailurePolicy.rules[0]", "Invalid value: specifying both OnExitCodes and OnPodConditions is not "
                                         "supported")]),
    (policy({"action": "FailJob", "onExitCodes": {"operator": "Is", "values": [3, 3]}}),
     [("spec.podFailurePolicy.rules[0].onExitCodes.operator", 'Unsupported value: "Is": supported values: "In", '
                                                              '"NotIn"'),
      ("spec.podFailurePolicy.rules[0].onExitCodes.values[1]", "Duplicate value: 3")]),
    (policy({"action": "FailJob", "onExitCodes": {"operator": "In", "values": []}}),
     [("spec.podFailurePolicy.rules[0].onExitCodes.values", "Invalid value: []: at least one value is required")]),
    (policy({"action": "Ignore", "onPodConditions": [{"type": "Bad Type", "status": "Yes"}]}),
     [("spec.podFailurePolicy.rules[0].onPodConditions[0].type",
       "Invalid value: \"Bad Type\": name part must consist of alphanumeric characters, '-', '_' or '.', and must "
       "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
       "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
      ("spec.podFailurePolicy.rules[0].onPodConditions[0].status",
       'Unsupported value: "Yes": supported values: "False", "True", "Unknown"')]),
    ({"backoffLimitPerIndex": 1, "maxFailedIndexes": 1},
     [("spec.backoffLimitPerIndex", "Invalid value: 1: requires indexed completion mode"),
      ("spec.maxFailedIndexes", "Invalid value: 1: requires indexed completion mode")]),
    ({"completionMode": "Indexed", "maxFailedIndexes": 5, "completions": 2},
     [("spec.backoffLimitPerIndex", "Required value: when maxFailedIndexes is specified"),
      ("spec.maxFailedIndexes", "Invalid value: 5: must be less than or equal to completions")]),
    ({"completionMode": "Indexed", "parallelism": 2},
     [("spec.completions", "Required value: when completion mode is Indexed")]),
    ({"completionMode": "indexed", "successPolicy": {"rules": [{"succeededCount": 1}]}},
     [("spec.completionMode", 'Unsupported value: "indexed": supported values: "NonIndexed", "Indexed"'),
      ("spec.successPolicy", "Invalid value: requires indexed completion mode")]),
], ids=["unknown action", "no requirement", "both requirements", "operator and duplicate", "no exit codes",
        "condition type and status", "per-index fields of a NonIndexed Job", "maxFailedIndexes alone and too many",
        "Indexed without completions", "completion mode misspelt"])
def test_policies_a_cluster_refuses_are_refused_field_by_field(spec: dict, expected: list[tuple[str, str]]):
    assert job_problems(job(**spec)) == expected


def with_restart(restart: str | None, **spec: object) -> dict:
    made = job(**spec)
    made["spec"]["template"]["spec"]["restartPolicy"] = restart
    return made


@pytest.mark.parametrize(("made", "expected"), [
    (with_restart("OnFailure", **policy({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]})),
     'Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified'),
    (with_restart("OnFailure", podFailurePolicy={}),
     'Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified'),
    (with_restart(None, **policy({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]})),
     'Required value: valid values: "OnFailure", "Never"'),
    (with_restart("Always"), 'Required value: valid values: "OnFailure", "Never"'),
    (with_restart("Sometimes", podFailurePolicy={"rules": []}),
     'Unsupported value: "Sometimes": supported values: "OnFailure", "Never"'),
], ids=["OnFailure with a policy", "OnFailure with an empty policy", "none given (Always) with a policy", "Always",
        "unknown, with a policy"])
def test_a_restart_policy_a_job_refuses_is_refused_once_in_the_api_servers_words(made: dict, expected: str):
    """``validateJobSpec`` judges the template's ``restartPolicy`` once (the pod's defaulting
    makes a missing one ``Always``), a ``podFailurePolicy`` given (even with no rules) allowing
    only ``Never``; ``OnFailure`` alone is taken."""
    assert job_problems(made) == [("spec.template.spec.restartPolicy", expected)]
    assert job_problems(with_restart("OnFailure")) == []


def test_an_empty_pod_failure_policy_defaults_pods_to_be_replaced_only_once_failed():
    assert defaulted(job(podFailurePolicy={}), "u")["spec"]["podReplacementPolicy"] == "Failed"
    assert job_problems(job(podFailurePolicy={}, podReplacementPolicy="TerminatingOrFailed")) == [
        ("spec.podReplacementPolicy", 'Unsupported value: "TerminatingOrFailed": supported values: "Failed"')]


def test_a_job_counting_failures_per_index_is_defaulted_to_no_job_wide_limit():
    assert defaulted(job(completionMode="Indexed", completions=2, backoffLimitPerIndex=1), "u")["spec"][
        "backoffLimit"] == 2**31 - 1
    assert defaulted(job(backoffLimit=None), "u")["spec"]["backoffLimit"] == 6, "a null is no value"


def test_a_container_name_past_63_characters_and_an_env_var_with_value_and_value_from_are_refused():
    made = job()
    container = made["spec"]["template"]["spec"]["containers"][0]
    container["name"] = "t" * 64
    container["env"] = [{"name": "TOKEN", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                        {"name": "OTHER", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    assert job_problems(made) == [
        ("spec.template.spec.containers[0].name", f'Invalid value: "{"t" * 64}": must be no more than 63 characters'),
        ("spec.template.spec.containers[0].env[0].valueFrom", 'Invalid value: "": may not be specified when `value` '
                                                              "is not empty")]


@pytest.mark.parametrize(("manager", "expected"), [
    ("kubernetes.io/job-controller", []),
    ("kueue.x-k8s.io/multikueue", []),
    ("multikueue", [("spec.managedBy", 'Invalid value: "multikueue": must be a domain-prefixed path (such as '
                                       '"acme.io/foo")')]),
    ("Kueue.io/x", [("spec.managedBy", 'Invalid value: "Kueue.io": a lowercase RFC 1123 subdomain must consist of '
                                       "lower case alphanumeric characters, '-' or '.'")]),
    ("example.com/" + "x" * 60, [("spec.managedBy", "Too long: may not be more than 63 bytes")]),
])
def test_a_jobs_manager_is_a_domain_prefixed_path_of_at_most_63_characters(manager: str, expected: list):
    """``validateManagedBy``: any controller may be named, in the shape of a domain-prefixed path."""
    assert job_problems(job(managedBy=manager)) == expected
