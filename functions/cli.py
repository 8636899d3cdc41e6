"""The ``katuna`` command: its commands, each imported only when it is the one asked for.

A command's module is imported when the command is run, or its own ``--help`` is asked for;
``katuna --help``, ``--version`` and a misspelt command import none of them, and their one-line
summaries are kept here, beside the modules that hold them (click's lazily loaded
subcommands). A command reading stored studies then imports neither Optuna nor NumPy
(:class:`~functions.cli_common.Command`); one that runs, stops or serves studies loads them as
it starts (:class:`~functions.cli_common.TuningCommand`).
"""

from __future__ import annotations

import importlib
import signal
import sys
from contextlib import suppress
from typing import Any, NamedTuple

import click
from click.shell_completion import CompletionItem

from functions.adapters.log_lines import for_terminal
from functions.cli_common import Command, errors, escape_what_the_output_cannot_encode, fail
from functions.core.errors import InvalidSetting, TemporaryError, UnreadableFile


class Listed(NamedTuple):
    """A command as the list of commands shows it: the module that defines it (as a function
    of its name, ``-`` written ``_``), and its one-line summary."""

    module: str
    summary: str


COMMANDS = {
    "best": Listed("functions.cli_studies", "Show the best trial, or the Pareto front."),
    "convert": Listed("functions.cli_run", "Print the native study a Katib Experiment or StudyJob is."),
    "delete": Listed("functions.cli_stop_delete", "Delete an ended study and its trials."),
    "logs": Listed("functions.cli_logs", "Print what a trial printed."),
    "optuna-dashboard": Listed("functions.cli_servers", "Serve the studies in optuna-dashboard."),
    "render": Listed("functions.cli_run", "Print the Kubernetes Job of a trial."),
    "run": Listed("functions.cli_run", "Run a study to its end, or resume it."),
    "serve": Listed("functions.cli_servers", "Serve the HTTP API, the event functions and the dashboard."),
    "show": Listed("functions.cli_studies", "Show a study: status, counts, best trial."),
    "studies": Listed("functions.cli_studies", "List the stored studies."),
    "stop": Listed("functions.cli_stop_delete", "Stop a running study and its trials."),
    "trials": Listed("functions.cli_trials", "List a study's trials by number."),
}
"""Every ``katuna`` command, by name."""


class _Commands(Command, click.Group):
    """katuna's commands, each loaded from :data:`COMMANDS` when asked for; a file that cannot
    be read, a database that cannot be used (or is busy past ``KATUNA_BUSY_TIMEOUT``, or any
    other temporary failure) or a ``KATUNA_*`` setting that cannot be used ends any of them with
    exit 2 and a one-line message instead of a traceback. Ctrl-C ends any of them with exit 130
    (128 + SIGINT), as it ends ``katuna run``, where click would exit 1, the status of a failed
    study or a missing one. ``--help`` and ``--version``, of it and of each command, fail as
    other output does (:class:`Command`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, its module imported (once: Python keeps it); its summary
        is the one listed, so the list, its shell completion and the command agree."""
        listed = COMMANDS.get(cmd_name)
        if listed is None:
            return None
        command: click.Command = getattr(importlib.import_module(listed.module), cmd_name.replace("-", "_"))
        command.short_help = listed.summary
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        """click's, its "No such command" suggesting the names of :data:`COMMANDS` (click's own
        looks among the commands added to the group, which are none)."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            raise click.exceptions.NoSuchCommand(exc.command_name, possibilities=COMMANDS, ctx=ctx) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of commands with their summaries, no command's module imported."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name].summary) for name in self.list_commands(ctx)])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """The commands a shell completes ``incomplete`` to, with their summaries, no command's
        module imported, then the group's options."""
        commands = [CompletionItem(name, help=COMMANDS[name].summary)
                    for name in self.list_commands(ctx) if name.startswith(incomplete)]
        return commands + click.Command.shell_complete(self, ctx, incomplete)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (UnreadableFile, TemporaryError, InvalidSetting) as exc:
            fail(str(exc), 2)
        except KeyboardInterrupt:
            with suppress(OSError):  # a hung-up terminal is gone
                errors.print("\nInterrupted (SIGINT).", highlight=False, soft_wrap=True)
            sys.exit(128 + signal.SIGINT)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="katuna COMMAND --help shows a command's options, examples and exit codes.")
@click.version_option(package_name="katuna")
def main() -> None:
    """Hyperparameter tuning as event-driven functions."""
    for_terminal()
    escape_what_the_output_cannot_encode()
