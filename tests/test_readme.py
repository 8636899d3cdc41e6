"""The README is checked: its study example is valid and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from functions.cli import main
from functions.core.formats import load_study

README = (Path(__file__).parent.parent / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_study_format_example_is_a_valid_study():
    spec, definition = load_study(next(b for b in _blocks("yaml") if b.startswith("name:")))
    assert spec.name == "digits-mlp"
    assert set(definition) == {"name", "objective", "parameters", "algorithm", "parallelism", "maxTrials",
                               "maxFailedTrials", "timeBudget", "trialTemplate", "metricsCollector"}


def test_the_early_stopping_example_is_valid():
    section = next(b for b in _blocks("yaml") if b.startswith("earlyStopping:"))
    spec, _ = load_study(next(b for b in _blocks("yaml") if b.startswith("name:")) + section)
    assert spec.early_stopping.algorithm == "median" and spec.early_stopping.patience == 2


def test_every_command_in_the_readme_exists_with_its_options():
    usage = [line.split("#")[0].split() for line in _blocks("sh")[1].splitlines() if line.startswith("katuna ")]
    assert len(usage) == 10
    for words in usage:
        result = CliRunner().invoke(main, [words[1], "--help"])
        assert result.exit_code == 0, result.output
        for option in re.findall(r"--[a-z]+", " ".join(words)):
            assert option in result.output, f"{option} of katuna {words[1]}"


def test_the_make_targets_in_the_quick_start_exist():
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", _blocks("sh")[0], flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target


def test_the_node_pool_example_is_valid():
    section = next(b for b in _blocks("yaml") if b.startswith("nodePool:"))
    spec, _ = load_study(next(b for b in _blocks("yaml") if b.startswith("name:")) + section)
    pool = spec.node_pool
    assert (pool.provider, pool.capacity, pool.machine_types, pool.max_nodes) == ("gke", "spot", ("n2-standard-8",), 8)
    assert dict(spec.trial_cluster.node_selector) == {"cloud.google.com/gke-nodepool": "katuna-digits"}


def test_every_provisioning_command_in_the_readme_uses_flags_the_script_has():
    from infra.provision import main as provision

    lines = [line.split() for block in _blocks("sh") for line in block.splitlines()
             if line.startswith("python -m infra.provision ")]
    assert {tuple(words[3:5]) for words in lines} >= {("gke", "up"), ("gke", "status"), ("eks", "up"), ("eks", "down")}
    for words in lines:
        result = CliRunner().invoke(provision, [*words[3:5], "--help"])
        assert result.exit_code == 0, result.output
        for option in re.findall(r"--[a-z-]+", " ".join(words)):
            assert option in result.output, f"{option} of {' '.join(words[3:5])}"
