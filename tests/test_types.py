"""The package's version and its types: one version everywhere, and a tree that mypy accepts."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import study_definition

import functions
import infra
from functions.core.grid import grid_values
from functions.core.parameters import CategoricalParameter, DiscreteParameter, FloatParameter, IntParameter
from functions.core.space import distribution
from functions.core.stored import study_from_dict
from functions.core.validate import parse_study

ROOT = Path(__file__).resolve().parent.parent


def declared_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_both_packages_state_the_version_pyproject_declares():
    assert functions.__version__ == infra.__version__ == declared_version()
    assert importlib.metadata.version("katuna") == functions.__version__


def test_katuna_version_prints_it():
    shown = subprocess.run([sys.executable, "-m", "functions", "--version"], capture_output=True, text=True,
                           check=True, timeout=60)
    assert functions.__version__ in shown.stdout


@pytest.mark.slow
def test_mypy_finds_no_error_in_the_whole_tree():
    mypy = pytest.importorskip("mypy.api")
    stdout, stderr, status = mypy.run(["--config-file", str(ROOT / "pyproject.toml"),
                                       "--cache-dir", str(ROOT / ".mypy_cache"),
                                       str(ROOT / "functions"), str(ROOT / "infra")])
    assert status == 0, stdout + stderr


def test_each_kind_of_parameter_has_its_own_fields():
    definition = study_definition()
    definition["parameters"] = [
        {"name": "x", "type": "float", "min": -5, "max": 5},
        {"name": "n", "type": "int", "min": 1, "max": 9, "step": 2},
        {"name": "act", "type": "categorical", "values": ["relu", "tanh"]},
        {"name": "batch", "type": "discrete", "values": [16, 32]},
    ]
    definition["trialTemplate"]["command"] += ["${trialParameters.n}", "${trialParameters.act}",
                                                     "${trialParameters.batch}"]
    x, n, act, batch = parse_study(definition).parameters
    assert x == FloatParameter("x", -5, 5)
    assert n == IntParameter("n", 1, 9, step=2)
    assert act == CategoricalParameter("act", ("relu", "tanh"))
    assert batch == DiscreteParameter("batch", (16, 32))
    assert grid_values(n) == [1, 3, 5, 7, 9]
    assert distribution(batch).choices == (16, 32)


def test_a_spec_stored_before_parameters_had_kinds_loads_as_it_was():
    stored = parse_study(study_definition()).to_dict()
    stored["parameters"] = [
        {"name": "x", "type": "float", "min": -5, "max": 5},
        {"name": "n", "type": "int", "min": 1, "max": 9, "step": 1, "when": {"act": ["relu"]}},
        {"name": "act", "type": "categorical", "values": ["relu", "tanh"]},
        {"name": "batch", "type": "discrete", "values": [16, 32]},
    ]
    study = study_from_dict(stored)
    assert study.parameters == (
        FloatParameter("x", -5, 5),
        IntParameter("n", 1, 9, when=(("act", ("relu",)),)),
        CategoricalParameter("act", ("relu", "tanh")),
        DiscreteParameter("batch", (16, 32)),
    )
    assert study_from_dict(study.to_dict()) == study
