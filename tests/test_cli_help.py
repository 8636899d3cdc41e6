"""Each ``katuna`` command's ``--help`` ends with examples of it, which its own parser takes,
and with its exit codes, as the provisioning script's commands do."""

from __future__ import annotations

import contextlib
import re
import shlex
from pathlib import Path

import click
from click.testing import CliRunner

from functions.cli import COMMANDS, main


def _section(shown: str, title: str) -> list[str]:
    """The lines of the help's section ``title``, up to the next blank line."""
    assert f"\n  {title}:\n" in shown, shown
    return shown.split(f"\n  {title}:\n")[1].split("\n\n")[0].splitlines()


def _command_line(example: str) -> list[str]:
    """An example's words after ``katuna``: its variables, pipes, redirections and the command
    chained after it left out."""
    words = shlex.split(re.split(r"\||>|&&", example)[0])
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        words.pop(0)
    assert words[0] == "katuna", example
    return words[1:]


def test_every_commands_help_shows_examples_of_it_that_its_parser_takes(tmp_path: Path):
    context = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(context, name)
        examples = _section(CliRunner().invoke(main, [name, "--help"]).output, "Examples")
        assert examples, name
        for example in examples:
            words = _command_line(example.strip())
            assert words[0] == name, example
            for word in words:
                if word.endswith(".yaml"):
                    (tmp_path / word).touch()
            with contextlib.chdir(tmp_path):
                command.make_context(name, words[1:])


def test_every_commands_help_ends_with_its_exit_codes_done_and_bad_input_among_them():
    for name in COMMANDS:
        listed = _section(CliRunner().invoke(main, [name, "--help"]).output, "Exit codes")
        codes = [line.split()[0] for line in listed if not line.startswith(" " * 6)]
        assert codes[0] == "0" and "2" in codes, (name, listed)
        assert all(re.fullmatch(r"\d+|128\+N", code) for code in codes), (name, codes)
        assert ("128+N" in codes) == (name == "run"), name


def test_the_list_of_commands_says_where_each_commands_examples_and_exit_codes_are():
    shown = CliRunner().invoke(main, ["--help"]).output
    assert "katuna COMMAND --help shows a command's options, examples and exit codes." in shown


def test_best_says_what_shape_its_json_has_for_one_objective_and_for_several():
    """``best --json`` prints one trial (an object, or null) for one objective and the Pareto
    front as a list for several, where ``GET /studies/{name}/best`` always answers a list: a
    script reading either learns the difference from the option's help."""
    shown = " ".join(CliRunner().invoke(main, ["best", "--help"]).output.split())
    assert "for a study of one objective the best trial itself, an object; for several, a list of the Pareto " \
           "front's trials; null where no trial completed" in shown, shown
    assert "GET /studies/NAME/best answers a list" in shown, shown
