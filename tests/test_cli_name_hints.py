"""What the CLI says to a first-time user's slips between its two kinds of argument: a study
file given to a command that takes a study's name, and several ``--params`` joined by commas."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from test_cli import here, write_study

from functions.adapters.sqlite_store import SqliteStore

NAME_COMMANDS = (["show"], ["trials"], ["best"], ["stop"], ["delete"], ["logs", "{}", "0"])


@pytest.fixture
def database(tmp_path: Path) -> Path:
    SqliteStore(tmp_path / "katuna.db").close()
    return tmp_path / "katuna.db"


@pytest.mark.parametrize("command", NAME_COMMANDS, ids=lambda command: command[0])
def test_a_study_file_given_for_a_name_is_told_the_name_it_defines(tmp_path: Path, database: Path, command):
    """It was told only ``no study named 'study.yaml' in DB``."""
    write_study(tmp_path / "study.yaml", study_definition(name="quick"))
    args = [part.format("study.yaml") for part in command] if len(command) > 1 else [*command, "study.yaml"]
    result = here(*args, "--db", str(database), cwd=tmp_path, check=False)
    assert (result.returncode, result.stderr) == (1, (
        f"error: no study named 'study.yaml' in {database}; study.yaml is a file: this command takes a study's name, "
        "not its file (it defines the study 'quick'; `katuna studies` lists the stored studies)\n"))


def test_a_katib_experiment_file_names_its_metadata_name_and_an_unreadable_one_none(tmp_path: Path, database: Path):
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "random"}}))
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    shown = here("show", "experiment.yaml", "--db", str(database), cwd=tmp_path, check=False).stderr
    assert "(it defines the study 'random';" in shown
    shown = here("show", "broken.yaml", "--db", str(database), cwd=tmp_path, check=False).stderr
    assert "(it defines no study name katuna could read;" in shown
    assert here("show", "nothing.yaml", "--db", str(database), cwd=tmp_path, check=False).stderr == (
        f"error: no study named 'nothing.yaml' in {database}\n"), "a name that is no file is a name"


def _two_parameters(tmp_path: Path) -> Path:
    definition = study_definition(name="pair")
    definition["parameters"].append({"name": "units", "type": "int", "min": 1, "max": 8})
    definition["trialTemplate"]["command"] += ["--units", "${trialParameters.units}"]
    definition["trialTemplate"]["image"] = "python:3.12"
    return write_study(tmp_path / "pair.yaml", definition)


def test_params_joined_by_commas_are_told_to_repeat_the_option(tmp_path: Path):
    """Refused as ``--params x: expected a number, got '1,units=2'`` with no word of the
    option's repetition; commas are not split on, as a list parameter's value may hold one."""
    study = _two_parameters(tmp_path)
    result = here("render", str(study), "--params", "x=1,units=2", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert ("--params x: expected a number, got '1,units=2'; to give several parameters, repeat the option: "
            "--params x=1 --params units=2") in result.stderr
    rendered = here("render", str(study), "--params", "x=1", "--params", "units=2", cwd=tmp_path)
    assert "--units" in rendered.stdout


def test_a_list_value_holding_a_comma_is_taken_as_it_is(tmp_path: Path):
    definition = study_definition(name="commas")
    definition["parameters"] = [{"name": "layers", "type": "categorical", "values": ["64,32", "128"]}]
    definition["trialTemplate"].update(command=["echo", "${trialParameters.layers}"], image="busybox:1.36")
    study = write_study(tmp_path / "commas.yaml", definition)
    assert "64,32" in here("render", str(study), "--params", "layers=64,32", cwd=tmp_path).stdout
