"""Options given once: what the ``katuna`` commands and the provisioning script share in reading
their command lines.

click keeps the last value of an option given twice (``--limit 5 --limit 50``) and of two
flags that set the same value (``--spot --on-demand``), and says nothing: a command line that
says two things would run as one of them, which the user may not have meant (the API refuses
an argument given twice the same way: ``order: given 2 times; expected it once``). Such a
command line is a usage error (exit 2) naming the options, before anything is done. An option
meant to be repeated (``multiple``, a count) is not one, nor a plain flag given again, which
says the same thing twice."""

from __future__ import annotations

from collections.abc import Sequence

import click


def flag_name(param: click.Parameter) -> str:
    """The option as the user reads it in ``--help``: its long name where it has one."""
    return next((opt for opt in param.opts if opt.startswith("--")), param.opts[0] if param.opts else str(param.name))


def _repeatable(param: click.Parameter) -> bool:
    """Whether giving ``param`` again adds to it (``multiple``, a count) or says the same thing
    again (a flag without an opposite, ``--json --json``)."""
    if not isinstance(param, click.Option):
        return True
    return param.multiple or param.count or (param.is_flag and not param.secondary_opts)


def given_twice(order: Sequence[click.Parameter]) -> str | None:
    """Why the options given, in the ``order`` they came (each as often as it came), say two
    things where the command takes one, or None: an option given twice, or flags setting the
    same value, each named as its ``--help`` names it (:func:`flag_name`)."""
    seen: dict[str, list[click.Parameter]] = {}
    for param in order:
        if isinstance(param, click.Option) and param.name is not None:
            seen.setdefault(param.name, []).append(param)
    for given in seen.values():
        flags = list(dict.fromkeys(given))
        if len(flags) > 1:
            names = [flag_name(flag) for flag in flags]
            return f"{', '.join(names[:-1])} and {names[-1]}: give one of them"
        if len(given) > 1 and not _repeatable(given[0]):
            return f"{flag_name(given[0])}: given {len(given)} times; expected it once"
    return None


class OptionsOnce(click.Command):
    """A command that refuses a command line giving an option twice, or two flags that set the
    same value (:func:`given_twice`), as a usage error (exit 2)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes the list it reads
        rest = super().parse_args(ctx, args)
        if not ctx.resilient_parsing:
            problem = given_twice(self.make_parser(ctx).parse_args(args=given)[2])
            if problem:
                raise click.UsageError(problem, ctx)
        return rest


class OptionsOnceGroup(OptionsOnce, click.Group):
    """A group whose commands and groups are :class:`OptionsOnce` too."""

    command_class = OptionsOnce
    group_class = type
