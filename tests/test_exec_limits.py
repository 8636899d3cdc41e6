"""A study whose trials no kernel would start is refused when submitted: a command argument or
env variable past Linux's ``MAX_ARG_STRLEN``, or all of them past the bound on their total, once
each placeholder is replaced by the longest value its parameter can take. Through the real app
(Flask's test client on a real Runtime, real SQLite, real trial processes); the kernel's own
answer to such strings is checked first, so the bound is the system's, not a guess."""

from __future__ import annotations

import errno
import subprocess
import time
from collections.abc import Iterator

import pytest
from conftest import study_definition

from functions.adapters.web import create_app
from functions.core.exec_limits import MAX_ARG_STRLEN, MAX_ARGS_TOTAL
from functions.runtime import Runtime
from functions.settings import Settings

LONGEST = MAX_ARG_STRLEN - 1
"""Bytes of the longest string the kernel passes (its NUL makes MAX_ARG_STRLEN)."""


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    runtime = Runtime(Settings(db=tmp_path_factory.mktemp("exec") / "katuna.db"))
    try:
        yield create_app(runtime).test_client()
    finally:
        runtime.close()


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
    assert client.get(f"/studies/{definition['name']}").status_code == 404


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
