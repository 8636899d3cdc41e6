"""The options of ``katuna trials`` that filter and order the listing as the API's
``GET /studies/{name}/trials`` does, read by the same parsing
(:func:`functions.core.trial_listing.parse_listing`): each option is written as the API's
argument it stands for, and a refusal names the option."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import click

from functions.core.errors import MalformedRequest
from functions.core.query_args import Arguments
from functions.core.spec import Study
from functions.core.trial_fields import STATES
from functions.core.trial_listing import parse_listing
from functions.core.trial_order import TrialKey
from functions.core.trial_query import TrialQuery

OPTIONS = (
    click.option("--state", "states", multiple=True, metavar="STATE",
                 help=f"Only the trials in STATE ({', '.join(STATES)}, in any case; PRUNED also lists those shown "
                      "STOPPED, stopped as the study ended; INTERRUPTED: the running trials of an interrupted study); "
                      "repeated, or a comma list, for several."),
    click.option("--min", "lows", multiple=True, nargs=2, metavar="FIELD BOUND",
                 help="Only the trials whose FIELD is at least BOUND: metric:NAME, param:NAME, value, duration "
                      "(90s, 5m, 1.5h), startedAt, finishedAt (2026-12-05T19:46:40Z, or seconds since the epoch), "
                      "number (pbt: generation, parent); repeated for several fields."),
    click.option("--max", "highs", multiple=True, nargs=2, metavar="FIELD BOUND",
                 help="Only the trials whose FIELD is at most BOUND (as --min)."),
    click.option("--param", "labels", multiple=True, metavar="NAME=VALUE",
                 help="Only the trials whose categorical parameter NAME is VALUE; repeated: any of its VALUEs."),
    click.option("--pareto", is_flag=True,
                 help="Only the trials on the Pareto front of a study of several objectives."),
    click.option("--order", metavar="FIELD[:desc]",
                 help="Order by FIELD (a number: value, duration, metric:NAME, ...), :desc for descending; by "
                      "number when left out. Trials without a value for it come last."),
    click.option("--after", metavar="KEY",
                 help="Only the trials after KEY, as the API's after: a trial's number, or with --order its "
                      "value and number (0.25~17)."),
)
"""The options, for :func:`filter_options` to give a command."""

_OPTION_OF = {"state": "--state", "order": "--order", "after": "--after", "min": "--min", "max": "--max",
              "field": "--min/--max", "param": "--param", "pareto": "--pareto"}
"""The option a refusal's argument (its first word) stands for."""


def filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with the options of :data:`OPTIONS`."""
    for option in reversed(OPTIONS):
        command = option(command)
    return command


def asked_listing(spec: Study, states: Sequence[str], lows: Sequence[tuple[str, str]],
                  highs: Sequence[tuple[str, str]], labels: Sequence[str], order: str | None,
                  after: str | None, pareto: bool = False) -> tuple[TrialQuery, TrialKey | None]:
    """The listing the options ask for, as the API's arguments of the same names (a state in
    any case: ``complete`` is ``COMPLETE``, as a person types it); a usage error (exit 2) naming
    the option at fault."""
    _refuse_blanks(states, lows, highs, order)
    pairs = [("state", state.upper()) for state in states]
    pairs += [pair for field, low in lows for pair in (("field", field), ("min", low), ("max", ""))]
    pairs += [pair for field, high in highs for pair in (("field", field), ("min", ""), ("max", high))]
    for label in labels:
        name, equals, value = label.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"expected NAME=VALUE, a categorical parameter's NAME and one of its values, "
                                     f"got {label!r:.40}", param_hint="'--param'")
        pairs.append((f"param:{name}", value))
    pairs += [(name, text) for name, text in (("order", order), ("after", after)) if text is not None]
    pairs += [("pareto", "true")] if pareto else []
    try:
        return parse_listing(spec, Arguments(pairs))
    except MalformedRequest as exc:
        argument = str(exc).split(":")[0].split()[0]
        raise click.BadParameter(_in_options_words(str(exc), argument),
                                 param_hint=f"'{_OPTION_OF.get(argument, argument)}'") from None


def _refuse_blanks(states: Sequence[str], lows: Sequence[tuple[str, str]], highs: Sequence[tuple[str, str]],
                   order: str | None) -> None:
    """A usage error naming the option given an empty value (or an empty state in a comma
    list): a mistake on a command line, where the API takes an empty argument for an absent
    one, as a form sends its empty fields, and the listing would be another than asked for."""
    if order is not None and not order.strip():
        raise click.BadParameter("expected FIELD[:desc], got an empty value", param_hint="'--order'")
    for state in states:
        if not all(part.strip() for part in state.split(",")):
            raise click.BadParameter(f"expected STATE, or a comma list of them ({', '.join(STATES)}), got {state!r:.40}",
                                     param_hint="'--state'")
    for option, bounds in (("--min", lows), ("--max", highs)):
        for field, bound in bounds:
            if not bound.strip():
                raise click.BadParameter(f"expected FIELD BOUND, got an empty BOUND for {field!r:.40}",
                                         param_hint=f"'{option}'")


_PARAM_WORDS = ((re.compile(r"^param:|(?:(?<=expected )|(?<=, ))param:"), ""),
                (re.compile(r"a min/max range filters \(field (param:[^)]*)\)"), r"--min/--max \1 filters"),
                (re.compile(r"param:<name> takes"), "--param takes"))
"""A refusal of ``param:<name>`` in the words of ``--param``, which takes the parameter's name alone."""


def _in_options_words(message: str, argument: str) -> str:
    """The API's refusal of ``argument`` as the option standing for it says it, which click
    names before it: without the argument's name (``order: ...``), and a categorical
    parameter's name without the API's ``param:`` (:data:`_PARAM_WORDS`)."""
    if argument != "param":
        return message.removeprefix(f"{argument}: ")
    for pattern, words in _PARAM_WORDS:
        message = pattern.sub(words, message)
    return message
