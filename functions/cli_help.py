"""How each ``katuna`` command's ``--help`` ends: a few examples of it, then its exit codes,
the ones the README lists for it, so that a user or a script learns both where the command is
run, not in the docs alone (the provisioning script's commands end the same way)."""

from __future__ import annotations

import textwrap

SETUP = ("bad input or setup, named in one line: an option, a missing or unusable database, one "
         "busy past KATUNA_BUSY_TIMEOUT, a bad KATUNA_* setting")
"""What exit 2 means for every command that reads the database."""
CTRL_C = "interrupted by Ctrl-C"
"""What exit 130 means for a command that runs no study."""
WIDTH = 72
"""Where a code's meaning wraps: click indents the help by 2 more, within 79 columns."""


def ending(examples: tuple[str, ...], codes: tuple[tuple[str, str], ...]) -> str:
    """The epilog of a command's help: its ``examples`` and its exit ``codes`` (each a code
    and what it means), as paragraphs click shows as they are written (``\\b``), each meaning
    wrapped under itself."""
    shown = "\n".join(f"  {example}" for example in examples)
    listed = "\n".join(textwrap.fill(meaning, WIDTH, initial_indent=f"  {code:<6}", subsequent_indent=" " * 8)
                       for code, meaning in codes)
    return f"\b\nExamples:\n{shown}\n\n\b\nExit codes:\n{listed}"


def reading(examples: tuple[str, ...], one: str | None = None) -> str:
    """The epilog of a command that reads or changes stored studies: exit 1 for ``one`` (none
    where the command has no such exit), 2 for bad input or setup, 130 for Ctrl-C."""
    failed = () if one is None else (("1", one),)
    return ending(examples, (("0", "done"), *failed, ("2", SETUP), ("130", CTRL_C)))
