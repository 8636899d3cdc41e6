"""A ``${...}`` that is not katuna's (``${HOME}``, ``${DATA:-/tmp}``) belongs to a shell: left as
written where a shell reads it (a Katib trialSpec, which Katib leaves alone; a command that runs
``sh -c``), refused where nothing would expand it; katuna's own placeholders, misspelt in any
case, are still refused by name, and filled in (and checked) inside a shell's own. In a shell's
script a parameter's value is data: written in where the shell reads it as a plain word, else
read from a variable of the trial."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_study, study_definition
from test_cli import here, katuna, write_study
from test_render import job_for, katib_style, validate

from functions.core.errors import InvalidStudy
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study


def problems(definition: dict) -> list[str]:
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    return [str(p) for p in caught.value.problems]


def test_a_katib_trial_spec_keeps_a_shells_placeholders_as_katib_does(tmp_path: Path):
    definition = katib_style()
    training = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][1]
    training["args"] += ["--data", "${HOME}/data", "--logs", "${LOG_DIR:-/tmp}"]
    job = job_for(definition, {"x": 1.25, "tag": "a"})
    validate(tmp_path, job)
    assert job["spec"]["template"]["spec"]["containers"][1]["args"] == [
        "--x", "1.25", "--mode", "ok", "--data", "${HOME}/data", "--logs", "${LOG_DIR:-/tmp}"]


@pytest.mark.parametrize("placeholder", ["${trialSpec.Uid}", "${trialparameters.x}", "${trialParameter.x}",
                                         "${TrialSpec.Name}", "${trialParams.x}", "${trailParameters.x}",
                                         "${trialSpecName}", "${ trialParameters.x}", "${trial_parameters.x}",
                                         "${trialParameters}", "${trialParams[x]}"])
def test_a_misspelt_placeholder_of_katunas_is_still_refused_in_a_trial_spec(placeholder: str):
    definition = katib_style()
    definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][1]["args"].append(placeholder)
    assert any(f"args[4]: unknown placeholder {placeholder}" in p for p in problems(definition))


def test_a_doubled_dollar_right_before_a_placeholder_is_one_dollar():
    """``$$`` before a placeholder is one ``$``: after an even run of ``$`` the placeholder is
    filled in (``$$${trialParameters.x}`` is ``$`` and the value), after
    an odd run it is its own text; a shell's ``$$`` elsewhere is left alone."""
    definition = study_definition()
    definition["trialTemplate"]["command"] += ["--price=$$${trialParameters.x}", "$${trialParameters.x}",
                                               "$$$${trialSpec.Name}", "pid$$"]
    definition["trialTemplate"]["env"] = {"PRICE": "$$${trialParameters.x}"}
    spec = parse_study(definition)
    launch = trial_launch(StudyRecord(spec, definition, "/somewhere", "uid"), TrialRecord(spec.name, 3, {"x": 1.5}))
    assert launch.argv[-4:] == ["--price=$1.5", "${trialParameters.x}", "$${trialSpec.Name}", "pid$$"]
    assert launch.env["PRICE"] == "$1.5"


def test_a_command_without_a_shell_refuses_a_placeholder_nothing_would_expand():
    definition = study_definition()
    definition["trialTemplate"]["command"] += ["${HOME}"]
    definition["trialTemplate"]["env"] = {"DATA": "${HOME}/data"}
    found = problems(definition)
    assert any(p.startswith("trialTemplate.command[6]: unknown placeholder ${HOME}; ") and "sh -c" in p for p in found)
    assert any(p.startswith("trialTemplate.env.DATA: unknown placeholder ${HOME}; ") for p in found)


def test_only_a_shells_script_is_read_by_it():
    """``bash train.sh --out=${HOME}/x`` gives the script its argument as written: only the
    script of ``-c`` is expanded, so only there is a shell's placeholder taken."""
    definition = study_definition()
    definition["trialTemplate"]["command"] = ["bash", "train.sh", "--out=${HOME}/x", "${trialParameters.x}"]
    assert any(p.startswith("trialTemplate.command[2]: unknown placeholder ${HOME}; ") for p in problems(definition))
    definition["trialTemplate"]["command"] = ["/bin/bash", "-e", "-c", "train --out=${HOME}/x --x=$1", "train",
                                              "${trialParameters.x}"]
    assert parse_study(definition).trial_template.command[3] == "train --out=${HOME}/x --x=$1"
    definition["trialTemplate"]["command"] = ["sh", "-c", "echo ${trialParams.x} ${trialParameters.x}"]
    assert any(p.startswith("trialTemplate.command[2]: unknown placeholder ${trialParams.x}; ") for p in problems(definition))


def test_a_shell_command_expands_its_own_placeholders_and_gets_katunas(tmp_path: Path):
    definition = study_definition(name="shelled", maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {"command": [
        "/bin/sh", "-c", 'echo "home=${HOME} dir=${NO_SUCH_DIR:-fallback}"; echo loss=${trialParameters.x}']}
    study = write_study(tmp_path / "study.yaml", definition)
    katuna("run", str(study), "--db", str(tmp_path / "k.db"), cwd=tmp_path)
    [trial] = json.loads(here("trials", "shelled", "--json", "--db", str(tmp_path / "k.db"), cwd=tmp_path).stdout)
    log = katuna("logs", "shelled", "0", "--db", str(tmp_path / "k.db"), cwd=tmp_path).stdout
    assert trial["state"] == "COMPLETE" and trial["values"] == [float(trial["params"]["x"])]
    assert f"home={Path.home()} dir=fallback" in log


@pytest.mark.parametrize("variable", ["${TRIAL_PARAMS_FILE}", "${trialSpecDir}", "${trial_spec_dir:-/tmp}",
                                      "${TRIAL_PARAMS}", "${trialParametersPath}"])
def test_a_shells_variable_that_only_begins_like_a_placeholder_is_the_shells(variable: str):
    definition = study_definition()
    definition["trialTemplate"]["command"] = ["sh", "-c", f"cat {variable}; echo loss=${{trialParameters.x}}"]
    assert parse_study(definition).trial_template.command[2].startswith(f"cat {variable}; ")
    definition = katib_style()
    definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][1]["args"].append(variable)
    parse_study(definition)


def test_a_placeholder_inside_a_shells_own_is_filled_in_and_checked(embedded, tmp_path: Path):
    definition = study_definition(name="nested", maxTrials=2, parallelism=1)
    definition["trialTemplate"] = {"command": ["sh", "-c", 'echo "loss=${LOSS:-${trialParameters.x}}"']}
    study = run_study(embedded, definition, tmp_path)
    assert study.status == "completed"
    assert all(t.values == [t.params["x"]] for t in embedded.store.trials("nested"))
    definition["trialTemplate"]["command"][2] = 'echo "loss=${LOSS:-${trialParameters.y}}"'
    assert any(p.startswith("trialTemplate.command[2]: ${trialParameters.y} names no parameter") for p in problems(definition))
    definition["trialTemplate"]["command"] = ["echo", "loss=${LOSS:-${trialParameters.x}}"]
    assert any(p.startswith("trialTemplate.command[1]: unknown placeholder ${LOSS:-${trialParameters.x}}; ")
               for p in problems(definition))
    definition = katib_style()
    definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][1]["args"][1] = \
        "${X:-${trialParameters.x}}"
    job = job_for(definition, {"x": 1.25, "tag": "a"})
    assert job["spec"]["template"]["spec"]["containers"][1]["args"][:2] == ["--x", "${X:-1.25}"]


def _launch(definition: dict, params: dict):
    spec = parse_study(definition)
    return trial_launch(StudyRecord(spec, definition, "/base", "uid"), TrialRecord(spec.name, 3, params))


def test_a_script_gets_numbers_and_plain_words_as_written_and_any_other_value_from_a_variable():
    definition = study_definition(parameters=[
        {"name": "lr", "type": "float", "min": 0.001, "max": 0.1},
        {"name": "opt", "type": "categorical", "values": ["adam", "a b", "$(reboot)"]},
        {"name": "model/depth", "type": "int", "min": 1, "max": 9}])
    definition["trialTemplate"]["command"] = [
        "sh", "-c", "train --lr=${trialParameters.lr} --opt=\"${trialParameters.opt}\" --depth ${trialParameters.model/depth} "
        "--name '${trialSpec.Name}' --tag ${trialParameters.opt}"]
    launch = _launch(definition, {"lr": 0.01, "opt": "adam", "model/depth": 3})
    assert launch.argv[2] == "train --lr=0.01 --opt=\"adam\" --depth 3 --name 'demo-3' --tag adam"
    launch = _launch(definition, {"lr": 0.01, "opt": "$(reboot)", "model/depth": 3})
    assert launch.argv[2] == ('train --lr=0.01 --opt="${KATUNA_PARAM_opt}" --depth 3 --name \'demo-3\' '
                              '--tag "${KATUNA_PARAM_opt}"')
    assert {k: v for k, v in launch.env.items() if k.startswith("KATUNA_PARAM_")} == {
        "KATUNA_PARAM_lr": "0.01", "KATUNA_PARAM_opt": "$(reboot)", "KATUNA_PARAM_model_2Fdepth": "3"}


def test_a_trial_spec_containers_script_reads_other_values_from_variables_every_container_has(tmp_path: Path):
    definition = katib_style()
    containers = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    containers[0].update(command=["sh", "-c"], args=["echo '${trialParameters.tag}' > /tmp/tag"])
    containers[1]["args"] += ["--then", "${trialParameters.tag}"]
    job = job_for(definition, {"x": 1.25, "tag": "a b"})
    validate(tmp_path, job)
    sidecar, training = job["spec"]["template"]["spec"]["containers"]
    assert sidecar["args"] == ["echo ''\"${KATUNA_PARAM_tag}\"'' > /tmp/tag"]
    variables = [{"name": "KATUNA_PARAM_tag", "value": "a b"}, {"name": "KATUNA_PARAM_x", "value": "1.25"}]
    assert sidecar["env"] == variables
    assert training["args"][-1] == "a b"
    assert [e for e in training["env"] if e["name"].startswith("KATUNA_PARAM_")] == variables


def _options_study(command: list[str], values: list[str]) -> dict:
    return {"name": "options", "objective": {"metric": "loss", "direction": "minimize"},
            "parameters": [{"name": "opt", "type": "categorical", "values": values}],
            "algorithm": {"name": "grid"}, "parallelism": 2, "trialTemplate": {"command": command}}


@pytest.mark.parametrize("command", [["bash", "-c", "-e", "printf '[%s]' ${trialParameters.opt} > \"$0\"; echo loss=1"],
                                     ["bash", "-o", "pipefail", "-c", "--",
                                      "printf '[%s]' ${trialParameters.opt} > \"$0\"; echo loss=1"],
                                     ["env", "A=1", "timeout", "-s", "KILL", "60", "nice", "-n", "1", "stdbuf", "-oL",
                                      "setsid", "sh", "-c", "printf '[%s]' ${trialParameters.opt} > \"$0\"; echo loss=1"]],
                         ids=["options", "a valued option", "wrappers"])
def test_a_shells_script_after_its_options_gets_values_as_data(embedded, tmp_path: Path, command: list[str]):
    """``bash -c -e SCRIPT`` runs SCRIPT, the first operand after ``-c`` and the shell's other
    options, not ``-e``."""
    marker, out = tmp_path / "ran", tmp_path / "out"
    out.mkdir()
    values = [f"$(touch {marker})", f"`touch {marker}`", f"\"; touch {marker}; \"", "a  b", "*"]
    study = run_study(embedded, _options_study([*command, f"{out}/${{trialSpec.Name}}"], values), tmp_path)
    assert study.status == "completed"
    for trial in embedded.store.trials("options"):
        assert (out / f"options-{trial.number}").read_text() == f"[{trial.params['opt']}]"
    assert not marker.exists()


ARITHMETIC_SCRIPTS = ["echo $(( ${trialParameters.opt} + 1 ))", "[[ ${trialParameters.opt} -eq 1 ]]",
                      "a=(1 2); echo ${a[${trialParameters.opt}]}", "(( i = ${trialParameters.opt} ))",
                      "let i=${trialParameters.opt}", "for ((i=0; i<${trialParameters.opt}; i++)); do :; done",
                      "echo ${HOME:${trialParameters.opt}}", "n=${trialParameters.opt}; echo $((n))",
                      "echo \"${trialParameters.opt}\""]


@pytest.mark.parametrize("script", ARITHMETIC_SCRIPTS)
@pytest.mark.parametrize("value", ["a[$(touch /tmp/x)]", "a[`id`]", "b[a[${HOME}]]"])
def test_a_value_a_shells_arithmetic_would_run_is_refused_wherever_its_script_reads_it(script: str, value: str):
    """bash evaluates a value its arithmetic reads, and runs what the index of an array named
    there expands: refused at submission, naming the script's field and the parameter, whether
    the placeholder stands in the arithmetic or reaches it through a variable of the script."""
    found = problems(_options_study(["bash", "-c", script + "; echo loss=1"], ["1", value]))
    assert found == [f"trialTemplate.command[2]: parameter 'opt' can be {value!r}, which a shell's script reads here: "
                     "where its arithmetic ($((...)), ((...)), let, [[ -eq ]], an array's index) evaluates the value, "
                     "bash expands the array index in it and could run a command, so a value a shell's script reads "
                     "holds no '[' followed by '$(', '${', '$name' or '`'"]


@pytest.mark.parametrize("command", [["bash", "-c", "echo $(( $1 + 1 )); echo loss=1", "bash", "${trialParameters.opt}"],
                                     ["bash", "-c", "echo $(( KATUNA_PARAM_opt + 1 )); echo loss=1"],
                                     ["sh", "-c", "echo $(( N + 1 )); echo loss=1"]],
                         ids=["an argument after the script", "the variable every trial has", "a variable of env"])
def test_a_value_a_shells_arithmetic_would_run_is_refused_however_it_reaches_the_script(command: list[str]):
    """bash ran ``touch`` for a value given the script as ``$1`` or through a variable as surely
    as for one in a placeholder: refused wherever the trial runs a shell's script."""
    definition = _options_study(command, ["1", "a[$(touch /tmp/x)]"])
    definition["trialTemplate"]["env"] = {"N": "${trialParameters.opt}"}
    assert [p.partition(": ")[0] for p in problems(definition)] == ["trialTemplate.command[2]"]


@pytest.mark.parametrize(("command", "values"), [
    (["bash", "-c", "echo $(( ${trialParameters.opt} + 1 )); echo loss=1"], ["1", "KATUNA_PARAM_tag"]),
    (["bash", "-c", "echo $(( ${trialParameters.opt} + 1 )); echo loss=1"], ["1", "x[KATUNA_PARAM_tag]"]),
    (["bash", "-c", "echo $(( ${trialParameters.opt} + 1 )); echo loss=1"], ["1", "TAG"]),
    (["bash", "train.sh", "${trialParameters.opt}"], ["1", "KATUNA_PARAM_tag"]),
    (["bash", "-c", "echo $(( ${trialParameters.opt} + 1 )); echo loss=1"], ["1", "KATUNA_PARAM_hop"]),
    (["bash", "-c", "echo $(( ${trialParameters.opt} + 1 )); echo loss=1"], ["1", "CHAIN"]),
    (["bash", "-c", "echo $(( CHAIN + ${trialParameters.opt} )); echo loss=1"], ["1", "2"]),
], ids=["the variable of another parameter", "an index naming it", "a variable of env holding it", "a script file",
        "through a third parameter", "through a variable of env naming one holding it",
        "a script reading a variable of env naming one holding it"])
def test_a_value_a_shells_arithmetic_would_run_is_refused_where_a_value_the_script_reads_names_it(
        command: list[str], values: list[str]):
    """bash's arithmetic evaluates the variable a value names, and what that variable holds in
    turn: reading ``KATUNA_PARAM_tag`` as ``$(( KATUNA_PARAM_tag + 1 ))``, bash ran the ``touch``
    of tag's value ``a[$(touch /tmp/x)]`` though no script read tag itself. Refused at the
    script, naming the parameter reached and the one read."""
    definition = _options_study(command, values)
    definition["parameters"] += [{"name": "tag", "type": "categorical", "values": ["a", "a[$(touch /tmp/x)]"]},
                                 {"name": "hop", "type": "categorical", "values": ["1", "KATUNA_PARAM_tag"]}]
    definition["trialTemplate"]["env"] = {"TAG": "${trialParameters.tag}", "HOP": "${trialParameters.hop}",
                                          "CHAIN": "TAG"}
    found = problems(definition)
    assert [p.partition(": ")[0] for p in found] == ["trialTemplate.command[2]"], found
    assert ("parameter 'tag' can be 'a[$(touch /tmp/x)]', and a shell's script here reads parameter 'opt'" in found[0]
            or "parameter 'tag' can be 'a[$(touch /tmp/x)]', which a shell's script reads here" in found[0]), found


def test_a_value_naming_a_parameter_whose_values_run_nothing_is_taken_by_a_shells_script():
    """A value that names the variable of a parameter whose own values run nothing in arithmetic
    (numbers, words) is taken: bash evaluates them and runs nothing."""
    definition = _options_study(["bash", "-c", "echo $(( ${trialParameters.opt} + 1 )); echo loss=1"],
                                ["1", "KATUNA_PARAM_tag", "TAG"])
    definition["parameters"].append({"name": "tag", "type": "categorical", "values": ["2", "a[0]"]})
    definition["trialTemplate"]["env"] = {"TAG": "${trialParameters.tag}"}
    parse_study(definition)


@pytest.mark.parametrize("value", ["a[0]", "$HOME", "price: $5", "[x] y", "[A-Za-z]+$", "a[1]$ b", "[$]", "[0-9]+$/$"])
def test_a_value_without_an_expanding_array_index_is_taken_by_a_shells_script(value: str):
    """A ``$`` after a ``[`` that starts no expansion (a regex's end, ``$`` before a space or a
    ``]``) runs nothing in bash's arithmetic."""
    parse_study(_options_study(["bash", "-c", "echo $(( ${trialParameters.opt} )); echo loss=1"], ["1", value]))


@pytest.mark.parametrize("command", [["sh", "-c", "test -f /tmp/ready && echo loss=1", "x", "${trialParameters.other}"],
                                     ["bash", "-c", "echo $(( KATUNA_PARAM_other )); echo loss=$((N))"],
                                     ["python3", "-c", "print('loss=1')", "${trialParameters.opt}"]],
                         ids=["a script given other values", "a script naming other variables", "no shell"])
def test_a_value_a_shells_arithmetic_would_run_is_taken_where_no_script_reads_it(command: list[str]):
    """A shell's script that is given no value of the parameter, and names neither its variable
    nor one of ``env`` that holds it, cannot evaluate it."""
    definition = _options_study(command, ["1", "a[$(touch /tmp/x)]"])
    definition["parameters"].append({"name": "other", "type": "categorical", "values": ["1", "2"]})
    definition["trialTemplate"]["env"] = {"N": "${trialParameters.other}", "M": "${trialParameters.opt}"}
    parse_study(definition)


def test_a_long_value_of_brackets_is_checked_in_one_pass():
    """Checking a value for an array index that expands something takes one pass over it: a
    value of 120,000 ``[`` took a worker most of a minute to check where the check backtracked
    from each ``[``, and one past ``MAX_ARG_STRLEN`` is refused by its length alone."""
    command = ["bash", "-c", "echo $(( $1 )); echo loss=1", "x", "${trialParameters.opt}"]
    parse_study(_options_study(command, ["1", "[" * 120_000 + "$"]))
    found = problems(_options_study(command, ["1", "[" * 120_000 + "$(id)"]))
    assert [p.partition(": ")[2][:24] for p in found] == ["parameter 'opt' can be '"]
    found = problems(_options_study(command, ["1", "[" * 200_000 + "$(id)"]))
    assert found and all("MAX_ARG_STRLEN" in p for p in found), [p[:120] for p in found]


@pytest.mark.parametrize(("command", "field"), [
    (["env", "-i", "A=1", "bash", "-c", "echo $(( $1 ))", "x", "${trialParameters.opt}"], 5),
    (["timeout", "-s", "KILL", "9", "bash", "-c", "echo $(( $1 ))", "x", "${trialParameters.opt}"], 6),
    (["nice", "-n", "5", "sh", "-c", "echo $(( KATUNA_PARAM_opt ))"], 5),
    (["tini", "-g", "--", "nohup", "bash", "-c", "echo $(( N ))"], 6),
    (["dumb-init", "setsid", "-w", "stdbuf", "-oL", "bash", "-c", "echo $(( N ))"], 7),
    (["env", "N=${trialParameters.opt}", "bash", "-c", "echo $(( N ))"], 4),
    (["bash", "-c", "for v in ${!KATUNA_PARAM_*}; do echo $(( ${!v} )); done"], 2),
    (["bash", "train.sh", "--opt", "${trialParameters.opt}"], 3),
    (["bash", "-s", "${trialParameters.opt}"], 2),
], ids=["env", "timeout", "nice", "tini and nohup", "dumb-init, setsid and stdbuf", "env's variable", "an indirection",
        "a script file", "standard input's script"])
def test_a_value_a_shells_arithmetic_would_run_is_refused_past_the_programs_that_start_the_shell(
        command: list[str], field: int):
    """A shell started by ``env``, ``timeout``, ``nice``, ``tini`` and the like runs its script as
    one at the start of the command does; a shell whose script katuna cannot read is refused
    the values given it as arguments."""
    definition = _options_study(command, ["1", "a[$(touch /tmp/x)]"])
    definition["trialTemplate"]["env"] = {"N": "${trialParameters.opt}"}
    assert [p.partition(": ")[0] for p in problems(definition)] == [f"trialTemplate.command[{field}]"]


def test_only_the_script_that_reads_a_value_is_blamed_for_it():
    """A probe's script that reads nothing of the parameter is no reason to refuse it; the
    container's script that does is named."""
    definition = katib_style()
    containers = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"]
    containers[0]["readinessProbe"] = {"exec": {"command": ["sh", "-c", "test -f /tmp/ready"]}}
    definition["parameters"] = [{**p, "values": ["a", "[a-z]+$", "z[$(id)]"]} if p["name"] == "tag" else p
                                for p in definition["parameters"]]
    parse_study(definition)
    containers[1]["command"] = ["sh", "-c", 'exit $(( TAG ))']
    containers[1]["env"] = [{"name": "TAG", "value": "${trialParameters.tag}"}]
    assert [p.partition(": ")[0] for p in problems(definition)] == [
        "trialTemplate.trialSpec.spec.template.spec.containers[1].command[2]"]


def test_a_containers_script_refuses_a_value_its_arithmetic_would_run():
    definition = katib_style()
    container = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][1]
    container["command"] = ["sh", "-c", "exit $(( ${trialParameters.tag} ))"]
    definition["parameters"] = [{**p, "values": ["a", "z[$(id)]"]} if p["name"] == "tag" else p
                                for p in definition["parameters"]]
    assert any("trialSpec.spec.template.spec.containers[1].command[2]: parameter 'tag' can be 'z[$(id)]'" in p
               for p in problems(definition)), problems(definition)


def test_a_containers_probe_and_hook_scripts_get_values_as_data(tmp_path: Path):
    """A probe's or hook's ``sh -c`` script runs in its container: it reads a value from the
    container's variable as its command's script does, never pasted in."""
    marker = tmp_path / "ran"
    value = f"' ; touch {marker} #"
    definition = katib_style()
    definition["parameters"][1]["values"].append(value)
    training = definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][1]
    training["readinessProbe"] = {"exec": {"command": ["sh", "-c", "printf '[%s]' '${trialParameters.tag}'"]}}
    training["lifecycle"] = {"postStart": {"exec": {"command": ["/bin/sh", "-ec", "printf '[%s]' ${trialParameters.tag}"]}},
                             "preStop": {"exec": {"command": ["sleep", "1"]}}}
    job = job_for(definition, {"x": 1.25, "tag": value})
    validate(tmp_path, job)
    rendered = job["spec"]["template"]["spec"]["containers"][1]
    env = {e["name"]: e["value"] for e in rendered["env"] if "value" in e}
    assert env["KATUNA_PARAM_tag"] == value
    for command in (rendered["readinessProbe"]["exec"]["command"], rendered["lifecycle"]["postStart"]["exec"]["command"]):
        assert "${KATUNA_PARAM_tag}" in command[-1]
        ran = subprocess.run(command, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, check=True)
        assert ran.stdout == f"[{value}]"
    assert rendered["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "1"]
    assert not marker.exists()


def test_every_container_of_a_trial_spec_gets_each_parameters_variable_once():
    job = job_for(katib_style(), {"x": 1.25, "tag": "a b"})
    for container in job["spec"]["template"]["spec"]["containers"]:
        env = [e for e in container["env"] if e["name"].startswith("KATUNA_PARAM_")]
        assert env == [{"name": "KATUNA_PARAM_tag", "value": "a b"}, {"name": "KATUNA_PARAM_x", "value": "1.25"}], \
            container["name"]
