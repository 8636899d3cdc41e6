"""What a ``katuna`` command imports: the list of commands, a command's help, the version, a
misspelt command and the commands that read stored studies load no command they do not run, and
neither Optuna nor NumPy nor what serves or reaches a cluster (the web framework, gunicorn, the
Kubernetes and cloud clients); a command that runs studies loads what it needs. Each is run in a
fresh process, as the console script runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.cli import COMMANDS, main
from functions.core.validate import parse_study
from functions.handlers import Deps
from functions.handlers.submit import store_study

COMMAND_MODULES = {listed.module for listed in COMMANDS.values()} | {"functions.cli_study_files", "functions.cli_study_run"}
"""The modules that define the commands, and what the commands about study files do."""
HEAVY = ("optuna", "numpy", "sqlite_utils", "flask", "gunicorn", "kubernetes", "boto3", "botocore", "google")

PROGRAM = """
import json, sys
import functions.entry
from functions.cli import main

try:
    status = main(sys.argv[1:], prog_name="katuna", standalone_mode=False)
except SystemExit as exc:  # a command's own exit status (best: 1 where no trial completed)
    status = exc.code
heavy = sorted(name for name in json.loads(sys.stdin.read()) if name in sys.modules)
modules = sorted(name for name in sys.modules if name.startswith("functions.cli_"))
print(json.dumps({"heavy": heavy, "commands": modules, "status": status}))
"""
"""The CLI the console script loads, run with the arguments given (click's ``standalone_mode``
off, so that the process goes on once the command returns), then what is loaded."""


def loaded(*args: str, cwd: Path, env: dict[str, str] | None = None) -> dict:
    """What the CLI loaded, its status, and what it printed before (``output``)."""
    done = subprocess.run([sys.executable, "-c", PROGRAM, *args], input=json.dumps(HEAVY), capture_output=True,
                          text=True, timeout=60, cwd=cwd, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr
    *output, last = done.stdout.splitlines()
    return {**json.loads(last), "output": output}


def commands(shown: dict) -> list[str]:
    return [name for name in shown["commands"] if name in COMMAND_MODULES]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a database that holds the study ``listed``."""
    folder = tmp_path_factory.mktemp("imports")
    definition = study_definition(name="listed")
    store = SqliteStore(folder / "katuna.db")
    try:
        store_study(Deps(store, executor=None, clock=time.time, workdir=str(folder)), parse_study(definition),
                    definition)
    finally:
        store.close()
    return folder


@pytest.mark.parametrize("args", [["--help"], ["--version"], *([name, "--help"] for name in COMMANDS)],
                         ids=" ".join)
def test_help_and_the_version_load_no_heavy_module(args: list[str], folder: Path):
    shown = loaded(*args, cwd=folder)
    assert shown["heavy"] == [], args
    expected = [] if len(args) == 1 else [COMMANDS[args[0]].module]
    assert commands(shown) == expected, "no command's module but the one asked for (then its own)"


@pytest.mark.parametrize("args", [["studies"], ["studies", "--json"], ["show", "listed"], ["show", "listed", "--json"],
                                  ["trials", "listed"], ["best", "listed", "--json"]], ids=" ".join)
def test_the_commands_that_read_stored_studies_load_neither_optuna_nor_numpy(args: list[str], folder: Path):
    shown = loaded(*args, cwd=folder)
    assert shown["heavy"] == [] and shown["status"] in (None, 1 if args[0] == "best" else None), args
    assert commands(shown) == [COMMANDS[args[0]].module], "the command's own module, which reads the store"


def test_a_command_that_runs_studies_loads_optuna_and_numpy(folder: Path):
    """``katuna render`` asks the sampler for a trial; loaded as it starts, not with the CLI."""
    study = folder / "render.yaml"
    study.write_text(json.dumps(study_definition(name="rendered", trialTemplate={"image": "python:3.11",
                                                                                    "command": ["echo", "${trialParameters.x}"]})))
    shown = loaded("render", str(study), cwd=folder)
    assert shown["status"] is None, "the Job was printed"
    assert {"optuna", "numpy"} <= set(shown["heavy"]) and "flask" not in shown["heavy"]


def test_a_shell_completes_the_commands_with_their_summaries_loading_none(folder: Path):
    """click's completion (``eval "$(_KATUNA_COMPLETE=zsh_source katuna)"``) asks the CLI for
    the commands a word starts; each comes with its summary, and no command is imported."""
    shown = loaded(cwd=folder, env={"_KATUNA_COMPLETE": "zsh_complete", "COMP_WORDS": "katuna st", "COMP_CWORD": "1"})
    assert shown["output"] == ["plain", "stop", COMMANDS["stop"].summary, "plain", "studies",
                               COMMANDS["studies"].summary]
    assert shown["heavy"] == [] and commands(shown) == []


def test_a_misspelt_command_is_refused_with_the_commands_it_may_have_meant():
    result = CliRunner().invoke(main, ["stuides"])
    assert result.exit_code == 2 and "Error: No such command 'stuides'. Did you mean 'studies'?" in result.output


def test_each_command_is_the_one_its_name_lists():
    """The list's summary is the command's own, as its completion and ``--help`` of the group show it."""
    for name, listed in COMMANDS.items():
        command = main.get_command(click.Context(main), name)
        assert command is not None and command.name == name and command.get_short_help_str() == listed.summary
