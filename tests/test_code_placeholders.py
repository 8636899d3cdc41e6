"""A parameter's value never becomes code. Pasted into code a program reads (``python -c``,
``perl -e``, ``node --eval``, a shell's script katuna does not quote, ``eval``, a here-document
``python -`` reads, an Argo ``source`` or Tekton ``script`` of another program), a value that
is not one token of the language would run: such a study is refused when submitted, naming the
field and the parameter, before any trial runs. The value reaches the same code as data when
passed as an argument after the code, or read from ``KATUNA_PARAM_<name>``, which every trial
has. Through the real app (Flask's test client on a real Runtime, real SQLite, real trial
processes), and real interpreters."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_study, study_definition
from test_katib import experiment
from test_render import katib_style

from functions.core.errors import InvalidStudy
from functions.core.validate import parse_study

PYTHON = sys.executable
CONTAINERS = "trialTemplate.trialSpec.spec.template.spec.containers"



def hostile(marker: Path) -> list[str]:
    """Values that create ``marker`` if Python code, a shell or Perl reads them as code."""
    return [f"'); import pathlib; pathlib.Path({str(marker)!r}).touch(); ('", f"$(touch {marker})",
            f"\"; touch {marker}; \"", f"qx,touch {marker},", "a b", "it's"]


def _study(name: str, command: list[str], values: list) -> dict:
    return {"name": name, "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": [{"name": "opt", "type": "categorical", "values": values}],
            "algorithm": {"name": "grid"}, "parallelism": 2, "trialTemplate": {"command": command}}


def _refused(client, definition: dict, path: str) -> str:
    """The one problem of a study the app refuses, at ``path``; nothing is stored."""
    answer = client.post("/studies", json=definition)
    assert answer.status_code == 422, answer.get_data(as_text=True)[:500]
    [problem] = answer.get_json()["problems"]
    assert problem["path"] == path, problem
    name = definition["metadata"]["name"] if "metadata" in definition else definition["name"]
    assert client.get(f"/studies/{name}").status_code == 404
    return problem["message"]


def problems(definition: dict) -> list[str]:
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    return [str(p) for p in caught.value.problems]


def test_a_value_pasted_into_pythons_code_is_refused_and_no_trial_runs_it(client, tmp_path: Path):
    marker = tmp_path / "ran"
    code = "print('loss=1 opt=${trialParameters.opt}')"
    pasted = code.replace("${trialParameters.opt}", hostile(marker)[0])
    assert subprocess.run([PYTHON, "-c", pasted], capture_output=True).returncode == 0 and marker.exists(), \
        "pasted in, the value is code Python runs"
    marker.unlink()
    message = _refused(client, _study("pasted", [PYTHON, "-c", code], ["adam", *hostile(marker)]),
                       "trialTemplate.command[2]")
    assert message.startswith("the value of parameter 'opt' is pasted into the code python")
    assert "'opt' can be " in message and "which is not a plain word" in message
    assert "sys.argv[1]" in message and "os.environ['KATUNA_PARAM_opt']" in message
    assert not marker.exists()
    accepted = _study("pasted", [PYTHON, "-c", code], ["adam", "sgd/momentum:0.9", "-1.5e-05"])
    assert client.post("/studies", json=accepted).status_code == 201, "plain words are one token of Python"
    assert client.delete("/studies/pasted").status_code in (200, 204)


def test_pythons_code_gets_any_value_exactly_as_an_argument_or_from_its_variable(embedded, tmp_path: Path):
    marker, out = tmp_path / "ran", tmp_path / "out"
    out.mkdir()
    code = ("import os, pathlib, sys; pathlib.Path(os.environ['OUT'], os.environ['KATUNA_TRIAL'])"
            ".write_text(sys.argv[1] + '|' + os.environ['KATUNA_PARAM_opt']); print('loss=1')")
    definition = _study("as-data", [PYTHON, "-c", code, "${trialParameters.opt}"], hostile(marker))
    definition["trialTemplate"]["env"] = {"OUT": str(out)}
    assert run_study(embedded, definition, tmp_path).status == "completed"
    trials = embedded.store.trials("as-data")
    assert len(trials) == len(hostile(marker))
    for trial in trials:
        value = trial.params["opt"]
        assert (out / str(trial.number)).read_text() == f"{value}|{value}"
    assert not marker.exists()


@pytest.mark.parametrize("command", [
    ["python3", "-c", "print('${trialParameters.opt}')"],
    ["python3.12", "-Bc", "print('${trialParameters.opt}')"],
    ["/usr/bin/python3", "-W", "ignore", "-X", "dev", "-c", "print('${trialParameters.opt}')"],
    ["python3", "-cprint('${trialParameters.opt}')"],
    ["env", "A=1", "timeout", "60", "python3", "-c", "print('${trialParameters.opt}')"],
    ["perl", "-lne", "print '${trialParameters.opt}'"],
    ["perl", "-I", "lib", "-e", "1", "-e", "print '${trialParameters.opt}'"],
    ["ruby", "-r", "json", "-e", "puts '${trialParameters.opt}'"],
    ["node", "-e", "console.log('${trialParameters.opt}')"],
    ["node", "--eval=console.log('${trialParameters.opt}')"],
    ["nodejs", "-p", "'${trialParameters.opt}'"],
    ["Rscript", "-e", "print('${trialParameters.opt}')"],
    ["php", "-d", "x=1", "-r", "echo '${trialParameters.opt}';"],
    ["lua", "-e", "print('${trialParameters.opt}')"],
    ["julia", "--eval", "println(\"${trialParameters.opt}\")"],
    ["env", "-i", "sh", "-c", "echo ${trialParameters.opt}"],
    ["env", "-u", "HOME", "tini", "--", "bash", "-ec", "echo ${trialParameters.opt}"],
    ["awk", "BEGIN{system(\"echo ${trialParameters.opt}\")}"],
    ["gawk", "-F", ",", "-v", "n=1", "{print \"${trialParameters.opt}\"}", "data.csv"],
    ["mawk", "-e", "BEGIN{print \"${trialParameters.opt}\"}"],
    ["sed", "-n", "1e echo ${trialParameters.opt}", "/etc/hostname"],
    ["sed", "-i.bak", "-e", "s/lr=.*/lr=${trialParameters.opt}/", "config.ini"],
    ["/bin/sed", "--expression=s/a/${trialParameters.opt}/e", "config.ini"],
    ["env", "-S", "bash -c 'echo ${trialParameters.opt}'"],
    ["env", "-iSbash -c 'echo ${trialParameters.opt}'"],
    ["timeout", "60", "env", "--split-string=sh -c 'echo ${trialParameters.opt}'"],
    ["su", "-c", "echo ${trialParameters.opt}", "trainer"],
    ["runuser", "trainer", "--command=echo ${trialParameters.opt}"],
    ["flock", "-w", "5", "/tmp/gpu.lock", "-c", "python3 train.py --opt=${trialParameters.opt}"],
    ["script", "-q", "-c", "python3 train.py --opt=${trialParameters.opt}", "/dev/null"],
])
def test_code_of_each_language_refuses_a_value_that_is_not_one_token(command: list[str]):
    index = next(i for i, arg in enumerate(command) if "${" in arg)
    found = problems(study_definition(parameters=[{"name": "opt", "type": "categorical", "values": ["adam", "a b"]}],
                                      trialTemplate={"command": command}))
    assert found == [found[0]] and found[0].startswith(f"trialTemplate.command[{index}]: the value of parameter 'opt' "
                                                       "is pasted into the code "), found
    assert "KATUNA_PARAM_opt" in found[0] and "'a b'" in found[0]


@pytest.mark.parametrize("command", [
    ["python3", "train.py", "-c", "${trialParameters.opt}"],
    ["python3", "-m", "train", "-c", "${trialParameters.opt}"],
    ["python3", "-c", "import sys; print(sys.argv[1])", "${trialParameters.opt}"],
    ["perl", "-e", "print $ARGV[0]", "--", "${trialParameters.opt}"],
    ["node", "-r", "ts-node/register", "train.ts", "--eval", "${trialParameters.opt}"],
    ["sh", "-c", "train --opt ${trialParameters.opt}; python3 -c 'print(1)'"],
    ["sh", "-c", "python3 train.py -c '${trialParameters.opt}'"],
    ["sh", "-c", "cat <<EOF\nprint('${trialParameters.opt}')\nEOF"],
    ["awk", "-f", "report.awk", "${trialParameters.opt}"],
    ["sed", "-f", "edit.sed", "${trialParameters.opt}"],
    ["sh", "-c", "sed 's/a/b/' <<EOF\n${trialParameters.opt}\nEOF"],
    ["flock", "/tmp/gpu.lock", "python3", "train.py", "-c", "${trialParameters.opt}"],
    ["env", "-S", "python3 train.py", "${trialParameters.opt}"],
    ["su", "-c", "train \"$0\"", "trainer", "${trialParameters.opt}"],
])
def test_a_value_given_to_a_program_as_data_is_taken(command: list[str]):
    parse_study(study_definition(parameters=[{"name": "opt", "type": "categorical", "values": ["adam", "a b"]}],
                                 trialTemplate={"command": command}))


@pytest.mark.parametrize("command", [
    ["env", "-S", "sh -c 'echo loss=1 ${trialParameters.opt}'"],
    ["flock", "{lock}", "-c", "echo loss=1 ${trialParameters.opt}"],
    ["script", "-qec", "echo loss=1 ${trialParameters.opt}", "/dev/null"],
], ids=["env -S", "flock -c", "script -c"])
def test_a_command_line_a_program_has_a_shell_run_refuses_a_value_and_no_trial_runs_it(client, tmp_path: Path,
                                                                                       command: list[str]):
    """``env -S``, ``flock FILE -c`` and ``script -c`` give their string to a shell (``env`` splits
    it first), which ran a pasted ``$(touch ...)``: refused when submitted, and nothing runs."""
    marker = tmp_path / "ran"
    argv = [arg.replace("{lock}", str(tmp_path / "lock")) for arg in command]
    index = next(i for i, arg in enumerate(argv) if "${" in arg)
    message = _refused(client, _study("line", argv, ["adam", *hostile(marker)]), f"trialTemplate.command[{index}]")
    assert message.startswith("the value of parameter 'opt' is pasted into the code "), message
    assert not marker.exists()
    runnable = [arg.replace("${trialParameters.opt}", f"$(touch {marker})") for arg in argv]
    if shutil.which(runnable[0]) is None:
        pytest.skip(f"the refusal holds; showing that {runnable[0]} runs the value needs {runnable[0]}")
    subprocess.run(runnable, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert marker.exists(), "pasted in, the value is code the shell runs"


def test_numbers_are_one_token_of_every_language():
    definition = study_definition(parameters=[
        {"name": "lr", "type": "float", "min": 1e-6, "max": 0.1, "log": True},
        {"name": "depth", "type": "int", "min": -3, "max": 9},
        {"name": "size", "type": "discrete", "values": [16, "32", 6.5e-05]}])
    for program, option in (("python3", "-c"), ("perl", "-e"), ("ruby", "-e"), ("node", "-e"), ("Rscript", "-e")):
        definition["trialTemplate"] = {"command": [program, option, "f(${trialParameters.lr}, ${trialParameters.depth}, "
                                                                    "${trialParameters.size})"]}
        parse_study(definition)


@pytest.mark.skipif(shutil.which("perl") is None, reason="needs perl")
def test_perl_code_refuses_a_word_a_shell_reads_as_plain_as_perl_runs_it(client, tmp_path: Path):
    """``qx,/path/to/script,`` is a plain word to a shell (as ``%x/id/`` is), and a command Perl
    runs: only a number or a word of letters, digits and ``_`` is one token of Perl."""
    marker = tmp_path / "ran"
    script = tmp_path / "pwn"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    value = f"qx,{script},"
    assert subprocess.run(["perl", "-e", f"print {value}"], check=True) and marker.exists(), "Perl runs it"
    marker.unlink()
    message = _refused(client, _study("perl", ["perl", "-e", "print ${trialParameters.opt}; print qq(loss=1\\n)"],
                                      ["adam", value]), "trialTemplate.command[2]")
    assert "not a number or a word of ASCII letters, digits and _" in message and "$ENV{KATUNA_PARAM_opt}" in message
    assert not marker.exists()


# a shell's script gets values as data (shell_quoting), but may pass them on to a program as code

@pytest.mark.parametrize("script", [
    "python3 -c \"print('${trialParameters.opt}')\"",
    "cd /tmp && exec python3 -u -c 'print(\"${trialParameters.opt}\")' > out",
    "x=$(python3 -c \"print('${trialParameters.opt}')\"); echo $x",
    "if true; then\n  perl -e 'print \"${trialParameters.opt}\"'\nfi",
    "python3 - <<EOF\nprint('${trialParameters.opt}')\nEOF",
    "python3 <<'EOF'\nprint('${trialParameters.opt}')\nEOF",
    "bash -s <<EOF\necho ${trialParameters.opt}\nEOF",
    "eval \"train --opt ${trialParameters.opt}\"",
    "sh -c \"train --opt ${trialParameters.opt}\"",
])
def test_a_shells_script_refuses_a_value_it_would_give_a_program_as_code(script: str):
    found = problems(study_definition(parameters=[{"name": "opt", "type": "categorical", "values": ["adam", "a b"]}],
                                      trialTemplate={"command": ["sh", "-c", script]}))
    assert found == [found[0]] and found[0].startswith("trialTemplate.command[2]: the value of parameter 'opt' is "
                                                       "pasted into the code "), found


def test_a_value_a_shells_script_gives_python_as_code_is_refused_and_no_trial_runs_it(client, tmp_path: Path):
    marker = tmp_path / "ran"
    script = f"{PYTHON} -c \"print('loss=1 opt=${{trialParameters.opt}}')\""
    message = _refused(client, _study("nested", ["sh", "-c", script], ["adam", *hostile(marker)]),
                       "trialTemplate.command[2]")
    assert "(given it by a command of this shell script)" in message
    assert not marker.exists()


# a trialSpec's containers: command and args, probes and hooks, Argo and Tekton scripts

def test_a_trial_spec_container_refuses_a_value_pasted_into_its_code(client):
    doc = experiment(maxTrialCount=1, parallelTrialCount=1)
    doc["metadata"]["name"] = "spec-code"
    doc["spec"]["parameters"].append({"name": "opt", "parameterType": "categorical",
                                      "feasibleSpace": {"list": ["adam", "a b"]}})
    template = doc["spec"]["trialTemplate"]
    template["trialParameters"].append({"name": "optimizer", "reference": "opt"})
    container = template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python3"]
    container["args"] = ["-c", "print('${trialParameters.optimizer}')", "--x=${trialParameters.position}"]
    message = _refused(client, doc, f"spec.{CONTAINERS}[0].args[1]")
    assert "parameter 'opt' is pasted" in message and "'opt' can be 'a b'" in message and "KATUNA_PARAM_opt" in message


@pytest.mark.parametrize("field, container", [
    ("readinessProbe.exec.command[2]", {"readinessProbe": {"exec": {"command": [
        "python3", "-c", "import sys; sys.exit('${trialParameters.tag}' == '')"]}}}),
    ("lifecycle.preStop.exec.command[4]", {"lifecycle": {"preStop": {"exec": {"command": [
        "env", "-i", "sh", "-c", "echo ${trialParameters.tag}"]}}}}),
    ("livenessProbe.exec.command[2]", {"livenessProbe": {"exec": {"command": [
        "sh", "-c", "perl -e 'exit length(\"${trialParameters.tag}\") == 0'"]}}}),
])
def test_a_containers_probe_or_hook_refuses_a_value_pasted_into_its_code(field: str, container: dict):
    definition = katib_style()
    definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][1].update(container)
    found = problems(definition)
    assert any(p.startswith(f"{CONTAINERS}[1].{field}: the value of parameter 'tag' is pasted into the code ")
               for p in found), found


def test_an_argo_source_or_tekton_script_another_program_runs_refuses_a_value_pasted_into_it():
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "script": {"image": "python:3.12", "command": ["python"],
                                    "source": "print('loss=1 ${trialParameters.opt}')"}}]}}
    pipeline = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "spec": {"pipelineSpec": {"tasks": [
        {"name": "train", "taskSpec": {"steps": [
            {"name": "prepare", "image": "python:3.12", "script": "#!/usr/bin/env python3\nprint('${trialParameters.opt}')"},
            {"name": "main", "image": "python:3.12", "command": ["python3", "train.py"]}]}}]}}}
    for workload, primary, field in ((workflow, "main", "spec.templates[0].script.source"),
                                     (pipeline, "step-main", "spec.pipelineSpec.tasks[0].taskSpec.steps[0].script")):
        definition = study_definition(parameters=[{"name": "opt", "type": "categorical", "values": ["adam", "a b"]}],
                                      trialTemplate={"primaryContainerName": primary, "trialSpec": workload})
        found = problems(definition)
        assert any(p.startswith(f"trialTemplate.trialSpec.{field}: the value of parameter 'opt' is pasted into the "
                                "code python") for p in found), found
        definition["parameters"][0]["values"] = ["adam", "sgd"]
        parse_study(definition)
