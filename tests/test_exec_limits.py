"""A study whose trials no kernel would start is refused when submitted: a command argument or
env variable past Linux's ``MAX_ARG_STRLEN``, or all of them past the bound on their total, once
each placeholder is replaced by the longest value its parameter can take. Through the real app
(Flask's test client on a real Runtime, real SQLite, real trial processes); the kernel's own
answer to such strings is checked first, so the bound is the system's, not a guess."""

from __future__ import annotations

import errno
import subprocess
import sys
import time

import pytest
from conftest import TRIAL, study_definition
from test_katib import experiment

from functions.core.exec_limits import MAX_ARG_STRLEN, MAX_ARGS_TOTAL

LONGEST = MAX_ARG_STRLEN - 1
"""Bytes of the longest string the kernel passes (its NUL makes MAX_ARG_STRLEN)."""



def test_the_kernel_starts_no_process_with_a_longer_argument_or_variable():
    assert subprocess.run(["true", "x" * LONGEST]).returncode == 0
    assert subprocess.run(["true"], env={"PAD": "y" * (LONGEST - len("PAD="))}).returncode == 0
    for argv, env in ((["true", "x" * MAX_ARG_STRLEN], None), (["true"], {"PAD": "y" * (MAX_ARG_STRLEN - 4)})):
        with pytest.raises(OSError) as refused:
            subprocess.run(argv, env=env)
        assert refused.value.errno == errno.E2BIG


def _refused(client, definition: dict, path: str, *words: str) -> None:
    answer = client.post("/studies", json=definition)
    assert answer.status_code == 422, answer.get_data(as_text=True)[:300]
    problems = answer.get_json()["problems"]
    assert [p["path"] for p in problems] == [path], problems
    assert all(word in problems[0]["message"] for word in words), problems
    name = definition["metadata"]["name"] if "metadata" in definition else definition["name"]
    assert client.get(f"/studies/{name}").status_code == 404


def _with(name: str, env: dict | None = None, extra: list[str] = (), values: list | None = None) -> dict:
    definition = study_definition(name=name, maxTrials=1, parallelism=1)
    template = definition["trialTemplate"]
    template["command"] += list(extra)
    if env is not None:
        template["env"] = env
    if values is not None:
        definition["parameters"].append({"name": "v", "type": "categorical", "values": values})
    return definition


def test_an_env_variable_past_the_kernel_s_limit_is_refused_naming_it(client):
    _refused(client, _with("pad", {"PAD": "y" * (MAX_ARG_STRLEN - 4)}), "trialTemplate.env.PAD",
             "at most 131,071 bytes as NAME=value", "MAX_ARG_STRLEN", "got 131,072")


def test_bytes_count_not_characters(client):
    _refused(client, _with("wide", {"PAD": "é" * (MAX_ARG_STRLEN // 2)}), "trialTemplate.env.PAD", "got 131,076")


def test_a_command_argument_past_the_kernel_s_limit_is_refused_naming_it(client):
    _refused(client, _with("long-arg", extra=["x" * MAX_ARG_STRLEN]), "trialTemplate.command[6]", "got 131,072")


def test_an_argument_past_the_limit_once_its_placeholders_are_replaced_is_refused(client):
    values = ["a", "b" * 70_000]
    _refused(client, _with("rendered", extra=["--v=${trialParameters.v}${trialParameters.v}"], values=values),
             "trialTemplate.command[6]", "got 140,004 with each placeholder at its longest value")


def test_a_value_too_long_for_the_variable_every_trial_gets_is_refused_at_its_parameter(client):
    """Every process of a trial gets each parameter's value in a variable of its own,
    ``KATUNA_PARAM_v=...``, which the kernel bounds as any other: however the command uses the
    value, a trial could not start."""
    values = ["a", "b" * (LONGEST - 10)]
    definition = _with("scripted", values=values)
    for command in (["sh", "-c", "echo ${trialParameters.v}", "${trialParameters.x}"],
                    ["sh", "-c", 'echo "$1"', "${trialParameters.v}", "${trialParameters.x}"]):
        definition["trialTemplate"]["command"] = command
        _refused(client, definition, "parameters[1].values", "as the variable KATUNA_PARAM_v=value",
                 "which every process of a trial gets",
                 f"got {LONGEST - 10 + len('KATUNA_PARAM_v='):,} with each placeholder at its longest value")
    definition["parameters"][1]["values"] = ["a", "b" * (LONGEST - len("KATUNA_PARAM_v="))]
    assert client.post("/studies", json=definition).status_code == 201
    assert client.delete("/studies/scripted").status_code in (200, 204)


def test_arguments_and_env_past_their_total_are_refused(client):
    env = {f"V{i}": "${trialParameters.v}" for i in range(11)}
    _refused(client, _with("total", env, extra=["${trialParameters.v}"], values=["c" * 100_000, "d"]),
             "trialTemplate", f"at most {MAX_ARGS_TOTAL:,} bytes in all")


def test_a_variable_at_the_kernel_s_limit_is_taken_and_its_trial_runs(client):
    definition = _with("at-limit", {"PAD": "y" * (LONGEST - len("PAD="))})
    assert client.post("/studies", json=definition).status_code == 201
    deadline = time.monotonic() + 60
    while (study := client.get("/studies/at-limit").get_json())["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert study["counts"]["complete"] == 1, client.get("/studies/at-limit/trials").get_json()


# a trialSpec's containers: each is a process of its own, its placeholders substituted alike

CONTAINERS = "trialTemplate.trialSpec.spec.template.spec.containers"


def _job(name: str, values: list | None, *containers: dict) -> dict:
    """A study whose trial is a Job of the ``containers`` given after its primary one, with a
    categorical parameter ``v`` of ``values`` (if any)."""
    primary = {"name": "main", "image": "python:3.12", "command": [sys.executable, str(TRIAL)],
               "args": ["--x=${trialParameters.x}"]}
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "spec": {"template": {"spec": {"containers": [primary, *containers], "restartPolicy": "Never"}}}}
    definition = study_definition(name=name, maxTrials=1, parallelism=1, trialTemplate={"trialSpec": job})
    if values is not None:
        definition["parameters"].append({"name": "v", "type": "categorical", "values": values})
    return definition


def test_a_trialspec_argument_past_the_limit_once_its_placeholders_are_replaced_is_refused_naming_it(client):
    doc = experiment(maxTrialCount=1, parallelTrialCount=1)
    doc["metadata"]["name"] = "spec-arg"
    doc["spec"]["parameters"].append({"name": "v", "parameterType": "categorical",
                                      "feasibleSpace": {"list": ["a", "b" * 70_000]}})
    template = doc["spec"]["trialTemplate"]
    template["trialParameters"].append({"name": "value", "reference": "v"})
    container = template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["--quiet", "--v=${trialParameters.value}${trialParameters.value}"]
    _refused(client, doc, f"spec.{CONTAINERS}[0].args[1]", "at most 131,071 bytes", "MAX_ARG_STRLEN",
             "got 140,004 with each placeholder at its longest value")


def test_a_trialspec_env_value_of_any_container_past_the_limit_is_refused_naming_it(client):
    sidecar = {"name": "side", "image": "busybox", "command": ["sleep", "1"],
               "env": [{"name": "KEEP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                       {"name": "PAD", "value": "y" * (MAX_ARG_STRLEN - 8) + "${trialSpec.Name}"}]}
    _refused(client, _job("spec-env", None, sidecar), f"{CONTAINERS}[1].env[1].value",
             "at most 131,071 bytes as NAME=value", "got 131,131 with each placeholder at its longest value")


def test_a_trialspec_container_past_the_total_is_refused_naming_it(client):
    sidecar = {"name": "side", "image": "busybox", "command": ["echo"], "args": ["${trialParameters.v}"] * 6,
               "env": [{"name": f"V{i}", "value": "${trialParameters.v}"} for i in range(5)]}
    _refused(client, _job("spec-total", ["c" * 100_000, "d"], sidecar), f"{CONTAINERS}[1]",
             f"expected command, args, env and parameter variables of at most {MAX_ARGS_TOTAL:,} bytes in all")


def test_containers_each_within_the_total_are_taken_though_together_past_it():
    """Each container is a process of its own: the total bounds each, not their sum (checked
    where the sidecars run: trials on a cluster; a local trial runs the primary container alone
    and refuses the others, as ``tests/test_katib.py`` shows)."""
    from functions.core.validate import parse_study
    from functions.pools import check_study
    from functions.settings import Settings

    half = {"name": "side", "image": "busybox", "command": ["echo"], "args": ["${trialParameters.v}"] * 6}
    definition = _job("spec-split", ["c" * 100_000, "d"], half, {**half, "name": "other"})
    check_study(parse_study(definition), definition, Settings(), runs_jobs=True)
