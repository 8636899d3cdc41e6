"""Which of a study's trials a listing keeps, from its arguments: the dashboard's trial table and
its CSV export, the API's ``GET /studies/{name}/trials`` and ``katuna trials`` parse their
filters here, so that each takes the same and refuses the same, naming the argument.

- ``state``: the states to keep, repeated or as a comma list (``COMPLETE,FAIL``), as a trial's
  ``state`` names them;
- ``field``/``min``/``max``: ranges, repeated as triples, on a field whose values are numbers (a
  metric, the objective's ``value``, a parameter that is not categorical, the duration, a time);
- ``param:<name>``: a categorical parameter's values to keep (:mod:`.trial_labels`);
- ``pareto``: ``true`` (or ``1``) keeps the trials of the study's Pareto front alone, a study of
  several objectives' (one of a single objective has none: the filter is refused there, naming
  it, where silently listing its best trials would hide a mistaken study).

All must hold. The store applies them in SQL (:class:`~functions.core.trial_query.TrialQuery`), the
front as the numbers of the front the process keeps (:func:`.trial_listing.with_front`).
"""

from __future__ import annotations

from collections.abc import Mapping

from functions.core import trial_labels
from functions.core.errors import MalformedRequest
from functions.core.query_args import every_value, one_of
from functions.core.records import PRUNED, SHOWN_STOPPED
from functions.core.spec import Study
from functions.core.trial_fields import (
    STATES,
    bound,
    bound_text,
    fields,
    labelled,
    numeric_fields,
    titles,
    unknown_field,
)
from functions.core.trial_query import TrialQuery

FILTER_ARGUMENTS = ("state", "field", "min", "max", "pareto")
"""The filters' arguments, besides a categorical parameter's values (``param:<name>``)."""
PARETO = {"": False, "0": False, "false": False, "1": True, "true": True}
"""What ``pareto`` takes: whether the listing keeps the Pareto front's trials alone (the
dashboard's box sends ``1``, the API's users write ``true``)."""
RANGED_FIELDS = 8
"""Fields the ranges and values may bound at once. Each is a test of every trial of the study,
run for the count and again for the page: a field's repeated ranges are one (:func:`_ranges`),
and past this many fields a query is refused rather than left to cost seconds of a worker."""
NO_FIELD = "field: a range has a bound but no field: pick the field it bounds"
"""The refusal of a bound that names no field (a ``min`` or ``max`` beside a blank ``field``, or
beyond the ``field`` values given), which would filter nothing: a listing would give every
trial as if filtered."""

Range = tuple[str, float | None, float | None]


def parse_filters(spec: Study, args: Mapping[str, str], aligned: bool = False) -> TrialQuery:
    """The query of the trials ``args`` keep (its states, ranges and values; the rest left as
    :class:`TrialQuery` has it), or ``MalformedRequest`` naming the argument at fault. With
    ``aligned``, ``min`` and ``max`` are each given once per ``field`` or not at all, as the
    API takes them: a bound short of its field's would bound the field after it."""
    states = parse_states(args)
    ranges = _ranges(spec, args, aligned)
    labels = trial_labels.labels(spec, args)
    if len(ranges) + len(labels) > RANGED_FIELDS:
        raise MalformedRequest(f"field: expected ranges and values on at most {RANGED_FIELDS} fields at once, got "
                               f"{len(ranges) + len(labels)} (a field's several ranges count once)")
    return TrialQuery(states=states, ranges=tuple(ranges), labels=labels, pareto=parse_pareto(spec, args))


def parse_pareto(spec: Study, args: Mapping[str, str]) -> bool:
    """Whether ``args`` keep the Pareto front's trials alone (:data:`PARETO`); ``MalformedRequest``
    naming ``pareto`` for another value, or for a study of one objective, which has no front."""
    text = (one_of("pareto", args) or "").strip().lower()
    if text not in PARETO:
        raise MalformedRequest(f"pareto: expected true or 1 (the trials on the Pareto front alone), false or 0, "
                               f"got {text!r:.40}")
    if PARETO[text] and not spec.multi_objective:
        raise MalformedRequest(f"pareto: needs several objectives: this study has one, {spec.objectives[0].metric!r}, "
                               f"and no Pareto front; its best trial is GET /studies/{spec.name}/best (katuna best)")
    return PARETO[text]


def parse_states(args: Mapping[str, str]) -> tuple[str, ...]:
    """The ``state`` values, each repeated or a comma list, blank ones left out (a form sends
    none), each once; ``MalformedRequest`` naming ``state`` for one no trial has."""
    given = [part.strip() for text in every_value("state", args) for part in text.split(",")]
    states = tuple(dict.fromkeys(state for state in given if state))
    unknown = [state for state in states if state not in STATES]
    if unknown:
        shown = (f": a trial shown {SHOWN_STOPPED} (stopped as its study ended) is stored {PRUNED}, the state that "
                 "lists it, with the trials early stopping pruned") if unknown[0].upper() == SHOWN_STOPPED else ""
        raise MalformedRequest(f"state: expected one of {', '.join(STATES)}, got {unknown[0]!r:.40}{shown}")
    return states


def _ranges(spec: Study, args: Mapping[str, str], aligned: bool) -> list[Range]:
    """The ``field``/``min``/``max`` triples that name a bound, one range per field in the order
    the fields first come: since all must hold, a field's several ranges are the one of their
    tightest bounds. A field of labels (the state, a categorical parameter) has no order a
    number could bound, so a range on it is refused; so is a bound of no field (:data:`NO_FIELD`),
    one above its range's other bound (no trial could match), and more than
    :data:`RANGED_FIELDS` fields."""
    names, labels = titles(spec), labelled(spec)
    known = fields(spec)
    bounds: dict[str, tuple[float | None, float | None]] = {}
    lows, highs = every_value("min", args), every_value("max", args)
    given = every_value("field", args)
    if aligned and given:
        _check_aligned(len(given), len(lows), len(highs))
    if any(text.strip() for text in lows[len(given):] + highs[len(given):]):
        raise MalformedRequest(NO_FIELD)
    for index, field in enumerate(given):
        named = f"of {names.get(field, field)}" if field else "of a range with no field"
        low = bound(lows[index] if index < len(lows) else "", f"min {named}", field)
        high = bound(highs[index] if index < len(highs) else "", f"max {named}", field)
        if low is None and high is None:
            continue
        if not field:
            raise MalformedRequest(NO_FIELD)
        if field not in known:
            raise MalformedRequest(unknown_field("field", field, numeric_fields(spec)))
        if field in labels:
            raise MalformedRequest(f"field: {field!r} takes labels, not numbers, so it has no min/max range: "
                                   "expected a metric, a time, or a parameter that is not categorical "
                                   "(param:<name>=<value> keeps a categorical parameter's values)")
        low, high = bounds[field] = _tightest(bounds.get(field, (None, None)), low, high)
        if low is not None and high is not None and low > high:
            raise MalformedRequest(f"min {named}: expected at most its max, {bound_text(field, high)}, got "
                                   f"{bound_text(field, low)} "
                                   "(no trial could match)")
    if len(bounds) > RANGED_FIELDS:
        raise MalformedRequest(f"field: expected ranges on at most {RANGED_FIELDS} fields at once, got {len(bounds)} "
                               "(a field's several ranges count once)")
    return [(field, low, high) for field, (low, high) in bounds.items()]


def _check_aligned(fields_given: int, lows: int, highs: int) -> None:
    """``MalformedRequest`` naming ``min`` or ``max`` where it is given, but not once per
    ``field``: which field a bound was meant for is not for katuna to guess."""
    for name, count in (("min", lows), ("max", highs)):
        if count and count != fields_given:
            raise MalformedRequest(f"{name}: given {count} times for {fields_given} field values; expected it once "
                                   f"per field, in the fields' order (blank for no {name}), or not at all")


def _tightest(bounds: tuple[float | None, float | None], low: float | None,
              high: float | None) -> tuple[float | None, float | None]:
    """The bounds that hold where both ``bounds`` and ``low``..``high`` hold (None: no bound)."""
    lows = [b for b in (bounds[0], low) if b is not None]
    highs = [b for b in (bounds[1], high) if b is not None]
    return max(lows, default=None), min(highs, default=None)
