"""A ``${...}`` that is not katuna's (``${HOME}``, ``${DATA:-/tmp}``) belongs to a shell: left as
written where a shell reads it (a Katib trialSpec, which Katib leaves alone; a command that runs
``sh -c``), refused where nothing would expand it; katuna's own placeholders, misspelt in any
case, are still refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import study_definition
from test_cli import katuna, write_study
from test_render import job_for, katib_style, validate

from functions.core.errors import InvalidStudy
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
                                         "${trialSpecName}", "${ trialParameters.x}"])
def test_a_misspelt_placeholder_of_katunas_is_still_refused_in_a_trial_spec(placeholder: str):
    definition = katib_style()
    definition["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][1]["args"].append(placeholder)
    assert any(f"args[4]: unknown placeholder {placeholder}" in p for p in problems(definition))


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
    [trial] = json.loads(katuna("trials", "shelled", "--json", "--db", str(tmp_path / "k.db"), cwd=tmp_path).stdout)
    log = katuna("logs", "shelled", "0", "--db", str(tmp_path / "k.db"), cwd=tmp_path).stdout
    assert trial["state"] == "COMPLETE" and trial["values"] == [float(trial["params"]["x"])]
    assert f"home={Path.home()} dir=fallback" in log
