"""The README is short and checked: its study is valid, its commands exist, its links lead somewhere."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from doc_blocks import ROOT, block, command_lines, local_links

from functions.cli import COMMANDS, main
from functions.core.formats import load_study

README = "README.md"


def test_the_readme_is_at_most_150_lines():
    assert len((ROOT / README).read_text().splitlines()) <= 150


def test_every_page_the_readme_links_exists():
    links = local_links(README)
    assert {
        "docs/study-format.md",
        "docs/trials.md",
        "docs/api.md",
        "docs/dashboard.md",
        "docs/kubernetes.md",
        "docs/knative.md",
        "docs/katib.md",
        "docs/architecture.md",
        "docs/performance.md",
        "docs/reliability.md",
        "LICENSE",
        "CONTRIBUTING.md",
        "CHANGELOG.md",
    } <= {link.split("#")[0] for link in links}
    for link in links:
        assert (ROOT / link.split("#")[0]).exists(), link


@pytest.mark.slow
def test_the_study_is_a_valid_15_line_study_of_the_quick_start_script():
    text = block(README, "A study", "yaml")
    assert len(text.splitlines()) == 15
    spec, _ = load_study(text)
    assert (spec.name, spec.max_trials, spec.parallelism) == ("digits", 20, 2)
    script = ROOT / spec.trial_template.working_dir / spec.trial_template.command[1]
    usage = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0, usage.stderr
    for argument in spec.trial_template.command[2:]:
        assert argument.split("=")[0] in usage.stdout, argument


def test_every_command_in_the_readme_exists_with_its_options():
    usage = command_lines(block(README, "The command line", "sh"), "katuna")
    assert sorted(words[1] for words in usage) == sorted(COMMANDS), "every command, each once"
    for words in usage:
        result = CliRunner().invoke(main, [words[1], "--help"])
        assert result.exit_code == 0, result.output
        for option in re.findall(r"--[a-z]+", " ".join(words)):
            assert option in result.output, f"{option} of katuna {words[1]}"


def test_each_usage_in_the_readme_gives_the_arguments_its_help_names():
    """``katuna logs NAME NUMBER`` as its ``--help`` says, not ``NAME TRIAL``, an optional one in
    brackets as the help has it (``[NUMBER]``); a file's argument may be an example name
    (``study.yaml`` for ``FILE``)."""
    for words in command_lines(block(README, "The command line", "sh"), "katuna"):
        given = list(itertools.takewhile(lambda word: not word.startswith("[") or re.fullmatch(r"\[[A-Z]+\]", word),
                                         words[2:]))
        usage = CliRunner().invoke(main, [words[1], "--help"]).output.splitlines()[0]
        named = usage.partition("[OPTIONS]")[2].split()
        assert len(given) == len(named), usage
        for word, argument in zip(given, named, strict=True):
            assert word == argument or not word.isupper(), usage


def test_the_readme_says_where_the_katuna_command_is():
    """``make run`` installs ``katuna`` in ``.venv/bin`` only: the README's later commands need
    it on the PATH."""
    assert "`. .venv/bin/activate` puts it on the `PATH`" in (ROOT / README).read_text()


def test_the_readme_names_what_make_clean_deletes():
    """``make clean`` deletes more than the quick start's results: the venv, and every database
    and log folder of the checkout's root."""
    (line,) = [line for line in (ROOT / README).read_text().splitlines() if "`make clean`" in line]
    recipe = re.search(r"^clean:\n\t(.*)$", (ROOT / "Makefile").read_text(), flags=re.M)[1].split()
    for removed, named in (("$(VENV)", "`.venv`"), ("*.db", "`*.db`"), ("*-logs", "`*-logs`")):
        assert removed in recipe and named in line, removed


def test_serves_help_says_where_the_dashboard_is_as_the_readme_does():
    (address,) = re.findall(r"a dashboard at `(http://[^`]+)`", (ROOT / README).read_text())
    assert address in " ".join(CliRunner().invoke(main, ["serve", "--help"]).output.split())


def test_the_render_usage_repeats_the_option_as_the_command_takes_it():
    """``--params a=1 b=2`` is refused (one value per option), so the usage repeats the option
    rather than its value."""
    (render,) = [line for line in block(README, "The command line", "sh").splitlines() if line.startswith("katuna render")]
    assert "[--params NAME=VALUE]..." in render
    assert "NAME=VALUE ..." not in render


def test_the_make_targets_in_the_quick_start_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", block(README, "Quick start", "sh"), flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target


def _script(path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def _venv_made_by(tmp_path, *variables: str) -> str:
    """The command ``make`` would make a new venv with, given ``variables``, with only
    ``tmp_path/bin`` (its ``python3``) before the system's folders on the PATH."""
    venv = tmp_path / "v"
    planned = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), "-W", "pyproject.toml",
                              f"VENV={venv}", *variables, f"{venv}/.katuna-installed"], capture_output=True,
                             text=True, env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}, check=True).stdout
    first = planned.splitlines()[0]
    assert first.endswith(f" -m venv {venv}"), planned
    return first.removesuffix(f" -m venv {venv}")


@pytest.mark.parametrize(("system", "chosen"), [
    ('exec "{python}" "$@"', "system"),
    ("echo '(3, 99)'", "python3"),
    ("exit 1", "python3"),
    (None, "python3"),
])
def test_make_builds_the_venv_on_the_systems_python_only_when_it_is_the_same_version(tmp_path, system, chosen):
    """The system's build is preferred for its speed, never for another Python version nor
    when it cannot make a venv; ``PYTHON`` given picks the interpreter whatever the system has."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").symlink_to(sys.executable)
    fake = _script(tmp_path / "system-python", system.format(python=sys.executable)) if system else str(tmp_path / "none")
    assert _venv_made_by(tmp_path, f"SYSTEM_PYTHON={fake}") == (fake if chosen == "system" else "python3")
    assert _venv_made_by(tmp_path, f"SYSTEM_PYTHON={fake}", "PYTHON=/opt/python") == "/opt/python"


def test_the_values_the_usage_shows_are_the_defaults_the_commands_take():
    """``[--port 8080]`` shows the default, not an example: where a usage gives an option a value
    that is no placeholder (``N``, ``PATH``) nor one of its choices (``--executor kubernetes``),
    it is the value the command uses when the option is left out."""
    import click

    context, checked = click.Context(main), 0
    for words in command_lines(block(README, "The command line", "sh"), "katuna"):
        options = {name: param for param in main.get_command(context, words[1]).params
                   if isinstance(param, click.Option) for name in param.opts}
        for option, value in re.findall(r"\[(--[a-z-]+) ([^\]\s]+)\]", " ".join(words)):
            param = options[option]
            if not re.fullmatch(r"[a-z0-9.]+", value) or isinstance(param.type, click.Choice):
                continue
            assert value == str(param.default), f"katuna {words[1]} {option}: {value}, default {param.default}"
            checked += 1
    assert checked >= 4, checked


def test_the_readmes_exit_1_for_a_missing_study_names_every_command_whose_help_says_so():
    """The README's exit codes name each command that exits 1 for a study (or trial) not stored,
    as its ``--help`` lists the code: not two of the six."""
    text = " ".join((ROOT / README).read_text().split())
    named = set(re.findall(r"`(\w+)`", re.search(r"no such study or trial \(([^)]*)\)", text).group(1)))
    helped = {name for name in COMMANDS if re.search(
        r"^    1 +no such study", CliRunner().invoke(main, [name, "--help"]).output, re.M)}
    assert helped == {"show", "trials", "best", "logs", "stop", "delete"}
    assert named == helped
