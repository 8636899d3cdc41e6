"""The programs that run the rest of their argv as a command (:data:`WRAPPERS`: ``env``,
``timeout``, ``nice``, ``tini`` and others), and where, past their options, assignments and
operands, the command they run starts: a program that reads code (:mod:`inline_code`) is
found behind them as at the start of a command."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Wrapper:
    """A program that runs the command its argv goes on with, and how it reads its options."""

    valued: str = ""
    """Short options taking a value (the rest of their cluster, else the next argument)."""
    long_valued: tuple[str, ...] = ()
    """Long options taking a value (``--signal SIG`` or ``--signal=SIG``)."""
    operands: int = 0
    """Operands before the command (``timeout``'s duration)."""
    assignments: bool = False
    """Takes ``NAME=value`` words before the command, and ``-`` for ``-i`` (``env``)."""
    opaque: tuple[str, ...] = ()
    """Options after which the command is one string, no argv of its own (``env -S``)."""
    numeric: bool = False
    """An option of digits is a value (``nice -10``)."""


WRAPPERS = {
    "env": Wrapper(valued="uCS", long_valued=("--unset", "--chdir", "--split-string"), assignments=True,
                   opaque=("S", "--split-string")),
    "timeout": Wrapper(valued="ks", long_valued=("--kill-after", "--signal"), operands=1),
    "nice": Wrapper(valued="n", long_valued=("--adjustment",), numeric=True),
    "nohup": Wrapper(),
    "tini": Wrapper(valued="pe"),
    "dumb-init": Wrapper(valued="r", long_valued=("--rewrite",)),
    "stdbuf": Wrapper(valued="ioe", long_valued=("--input", "--output", "--error")),
    "setsid": Wrapper(),
    "busybox": Wrapper(),
}
"""The programs that run the rest of their argv as a command, after their own options and
operands: ``env`` (and its ``NAME=value`` words), ``timeout``, ``nice``, ``nohup``, ``tini``,
``dumb-init``, ``stdbuf``, ``setsid``, and ``busybox``, which runs the applet named next."""
FLOCK = Wrapper(valued="wE", long_valued=("--timeout", "--conflict-exit-code"))
"""How ``flock`` reads its options, which end at its file."""
_CLEARING = re.compile(r"-[^-]*[iu].*|-|--ignore-environment|--unset(=.*)?")
"""``env``'s options that start the command without (some of) the variables it was given."""


def unwrapped(command: Sequence[str]) -> tuple[int | None, bool]:
    """The index of the command the wrappers at the start of ``command`` run (0 where it starts
    with none), and whether ``env`` clears or unsets variables for it; None where a wrapper is
    given it in a form katuna does not read (``env -S 'bash -c ...'``)."""
    start: int | None = 0
    cleared = False
    while start is not None and start < len(command) \
            and (wrapper := WRAPPERS.get(command[start].rsplit("/", 1)[-1])) is not None:
        found = wrapped(command, start, wrapper)
        cleared |= wrapper.assignments and any(_CLEARING.fullmatch(arg) for arg in command[start + 1:found])
        start = found
    return start, cleared


def wrapped(command: Sequence[str], start: int, wrapper: Wrapper) -> int | None:
    """The index of the command the wrapper at ``start`` runs, past its options, assignments
    and operands; None where an option of it takes the command as one string."""
    i = start + 1
    while i < len(command):
        arg = command[i]
        if arg == "--":
            return i + 1 + wrapper.operands
        if wrapper.assignments and (arg == "-" or arg[:1] not in ("-", "=") and "=" in arg):
            i += 1
            continue
        if arg[:1] != "-" or arg == "-":
            break
        words = option_words(arg, wrapper)
        if words is None:
            return None
        i += words
    return i + wrapper.operands


def option_words(arg: str, wrapper: Wrapper) -> int | None:
    """How many words the wrapper's option ``arg`` takes (itself, and its value where that is
    the next word); None for an option that takes the command as one string."""
    name, equals, _ = arg.partition("=")
    if arg.startswith("--"):
        return None if name in wrapper.opaque else 2 if name in wrapper.long_valued and not equals else 1
    if wrapper.numeric and arg[1:].isdigit():
        return 1
    at = next((j for j, letter in enumerate(arg) if j and letter in wrapper.valued), None)
    if at is not None and arg[at] in wrapper.opaque:
        return None
    return 2 if at == len(arg) - 1 else 1


def split_strings(argv: Sequence[str]) -> list[int]:
    """The index of the string that a wrapper at the start of ``argv`` takes the command as
    (``env -S STRING``, ``env -SSTRING``, ``env --split-string=STRING``)."""
    start: int | None = 0
    while start is not None and start < len(argv) and (wrapper := WRAPPERS.get(argv[start].rsplit("/", 1)[-1])):
        i = start + 1
        while i < len(argv) and argv[i][:1] == "-" and argv[i] not in ("-", "--"):
            words = option_words(argv[i], wrapper)
            if words is None:
                attached = "=" in argv[i] if argv[i].startswith("--") else \
                    next(j for j, letter in enumerate(argv[i]) if j and letter in wrapper.valued) < len(argv[i]) - 1
                return [i] if attached else [i + 1] if i + 1 < len(argv) else []
            i += words
        start = wrapped(argv, start, wrapper)
    return []
