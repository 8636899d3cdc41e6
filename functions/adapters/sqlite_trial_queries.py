"""A query of a study's trials (:class:`functions.core.trial_query.TrialQuery`) as SQL: its filters
as a ``WHERE`` condition and its order as an ``ORDER BY``, each with its arguments, so that the
filtering, ordering and paging of a listing all happen in SQLite and a page costs the same at
any study size. Field names travel as arguments, never as SQL text.
"""

from __future__ import annotations

import json
from typing import Any

from functions.core.parameters import DiscreteParameter
from functions.core.spec import Study
from functions.core.trial_query import TrialQuery

_TRIAL_COLUMNS = {"number": "number", "state": "state", "value": "value", "startedAt": "started_at",
                  "finishedAt": "finished_at", "duration": "MAX(finished_at - started_at, 0)",
                  "generation": "generation", "parent": "parent"}


_METRICS_AS_JSON = "replace(replace(replace(metrics, ': NaN', ': null'), ': Infinity', ': 1e999'), ': -Infinity', ': -1e999')"
"""A trial's metrics as JSON that SQLite reads: they are stored as Python writes them, a NaN or an
infinity as ``NaN``, ``Infinity`` or ``-Infinity``, which is no JSON, and SQLite reads no value
of a text that holds one. Here a NaN is null (no value, as no order holds it) and an infinity
``1e999``, which SQLite reads as the infinity of its sign, so that a trial whose objective
diverged, or whose other metric did, keeps its other metrics for a filter or an order."""


def _trial_field(field: str, spec: Study) -> tuple[str, list[str]]:
    """A query field as an SQL expression and its arguments (names travel as arguments). A
    discrete parameter's values are numbers, which a Katib Experiment writes as strings (kept as
    written, ``"16"``): they sort and compare as the numbers they spell, not as text. A metric
    is read from the stored text where it is JSON, else from :data:`_METRICS_AS_JSON`."""
    kind, _, name = field.partition(":")
    path = '$."' + name + '"'
    if kind == "metric" and name:
        return (f"CASE WHEN json_valid(metrics) THEN json_extract(metrics, ?) "
                f"WHEN json_valid({_METRICS_AS_JSON}) THEN json_extract({_METRICS_AS_JSON}, ?) END"), [path, path]
    if kind == "param" and name:
        value, args = _param(name, "value")
        if any(isinstance(p, DiscreteParameter) and p.name == name for p in spec.parameters):
            value = f"CAST({value} AS REAL)"
        return f"CASE WHEN json_valid(params) THEN {value} END", args
    if field in _TRIAL_COLUMNS:
        return _TRIAL_COLUMNS[field], []
    raise ValueError(f"unknown trial field {field!r}")


def _param(name: str, column: str) -> tuple[str, list[str]]:
    """The SQL of a trial's parameter ``name``'s ``value`` or JSON ``type`` (as ``json_type``
    names it), with its arguments. A name JSON writes as it is is read by its path; one it
    writes escaped (a letter past ASCII, ``α``, a backslash) is read by its key from
    ``json_each``: params are stored with such names escaped (``"\\u03b1"``), and SQLite before
    3.45 matches a path's quoted label against a key as written, so ``$."α"`` found no value."""
    if json.dumps(name)[1:-1] == name:
        return f"json_{'extract' if column == 'value' else 'type'}(params, ?)", ['$."' + name + '"']
    return f"(SELECT {column} FROM json_each(params) WHERE key = ?)", [name]


_JSON_TYPES = {True: "'true'", False: "'false'", None: "'null'"}
"""The JSON type of a parameter's value that is its value alone, as SQLite's ``json_type`` names it."""


def _one_of(field: str, values: tuple[Any, ...]) -> tuple[str, list[Any]]:
    """The condition that a trial's parameter ``field`` (``param:<name>``) holds one of
    ``values`` (text, numbers, booleans or null, as stored), with its arguments. Each value is
    matched with its JSON type, so the text ``"1"`` is not the number 1, nor 1 the boolean true."""
    name = field.partition(":")[2]
    (of_type, type_args), (valued, value_args) = _param(name, "type"), _param(name, "value")
    conditions: list[str] = []
    args: list[Any] = []
    for value in values:
        if isinstance(value, bool) or value is None:
            conditions.append(f"{of_type} = {_JSON_TYPES[value]}")
            args += type_args
            continue
        kind = "= 'text'" if isinstance(value, str) else "IN ('integer', 'real')"
        conditions.append(f"({of_type} {kind} AND {valued} = ?)")
        args += [*type_args, *value_args, value]
    return f"CASE WHEN json_valid(params) THEN ({' OR '.join(conditions) or '0'}) END", args


def where_and_order(study: str, spec: Study, query: TrialQuery) -> tuple[str, list[Any], str, list[Any]]:
    """The ``WHERE`` condition of ``query`` on the trials of ``study`` (whose ``spec`` tells which
    parameters are discrete) with its arguments, and its ``ORDER BY`` with its own: the trials
    without a value for the field last; by number alone, the table's own order,
    which SQLite reads from its key with no sort."""
    where: list[str] = ["study = ?"]
    args: list[Any] = [study]
    if query.states:
        where.append(f"state IN ({', '.join('?' * len(query.states))})")
        args += list(query.states)
    if query.pareto:
        if query.front is None:
            raise ValueError("a query of the Pareto front's trials without the front's numbers")
        where.append("number IN (SELECT value FROM json_each(?))")  # one argument, however large the front
        args.append(json.dumps(query.front))
    for field, values in query.labels:
        condition, label_args = _one_of(field, values)
        where.append(condition)
        args += label_args
    for field, low, high in query.ranges:
        expression, field_args = _trial_field(field, spec)
        if low is not None and high is not None:  # the field's value read once per trial, not twice
            where.append(f"{expression} BETWEEN ? AND ?")
            args += [*field_args, low, high]
            continue
        for bound, operator in ((low, ">="), (high, "<=")):
            if bound is not None:
                where.append(f"{expression} {operator} ?")
                args += [*field_args, bound]
    expression, sort_args = _trial_field(query.sort, spec)
    direction = "DESC" if query.descending else "ASC"
    if query.sort == "number":
        return " AND ".join(where), args, f"number {direction}", []
    order = f"({expression}) IS NULL, {expression} {direction}, number {direction}"
    return " AND ".join(where), args, order, [*sort_args, *sort_args]


KEY_COLUMN = "katuna_order_key"
"""The column of a keyed page's statement that holds each trial's value of the order's field."""


def keyed_page(study: str, spec: Study, query: TrialQuery, after: tuple[Any, int] | None) -> tuple[str, list[Any]]:
    """The statement (with its arguments) that reads up to ``query.limit`` of the trials of
    ``study`` that ``query`` matches, in its order, after the trial keyed ``after`` (its value
    of the order's field and its number; None: from the first), each with that value in
    :data:`KEY_COLUMN` for the key of the page after it. The trials without a value come last,
    as :func:`where_and_order` orders them, so a key without one (None) goes on among them."""
    condition, args, order, order_args = where_and_order(study, spec, query)
    expression, field_args = _trial_field(query.sort, spec)
    if after is not None:
        value, number = after
        later = "<" if query.descending else ">"
        if query.sort == "number":
            condition, args = f"{condition} AND number {later} ?", [*args, number]
        elif value is None:
            condition, args = f"{condition} AND ({expression}) IS NULL AND number {later} ?", [*args, *field_args, number]
        else:
            condition += (f" AND (({expression}) IS NULL OR {expression} {later} ? "
                          f"OR ({expression} = ? AND number {later} ?))")
            args += [*field_args, *field_args, value, *field_args, value, number]
    sql = f"SELECT *, {expression} AS {KEY_COLUMN} FROM trials WHERE {condition} ORDER BY {order} LIMIT ?"
    return sql, [*field_args, *args, *order_args, query.limit]


def order_key(study: str, spec: Study, query: TrialQuery, number: int) -> tuple[str, list[Any]]:
    """The statement (with its arguments) that reads trial ``number``'s value of the order's
    field (no row where the study has no such trial): the key a page of :func:`page_numbers` starts from."""
    expression, field_args = _trial_field(query.sort, spec)
    return f"SELECT {expression} FROM trials WHERE study = ? AND number = ?", [*field_args, study, number]


def page_numbers(study: str, spec: Study, query: TrialQuery, key: tuple[Any, int] | None = None,
                 forward: bool = True) -> tuple[str, list[Any]]:
    """The statement (with its arguments) that reads the numbers of up to ``query.limit`` trials
    ``query`` matches from its ``offset`` (not ``forward``: in the reverse order), or, given the
    ``key`` of a trial (its value of the order's field and its number), just after that trial in
    its order, or, not ``forward``, just before it, nearest first (the page's rows reversed). The field is read once per trial, in a
    subquery: a metric is parsed from each trial's JSON, and the condition and the order would
    otherwise parse it again for each term. The subquery's ``LIMIT -1`` (no limit) keeps SQLite
    from merging it into the statement around it, which would put the field's expression back
    in each term."""
    condition, args, _, _ = where_and_order(study, spec, query)
    expression, field_args = _trial_field(query.sort, spec)
    ahead = "<" if query.descending == forward else ">"
    direction = "DESC" if query.descending == forward else "ASC"
    page, page_args = ("LIMIT ?", [query.limit]) if key is not None else ("LIMIT ? OFFSET ?", [query.limit, query.offset])
    if query.sort == "number":  # read from the table's key, in its order
        beyond, key_args = ("1", []) if key is None else (f"number {ahead} ?", [key[1]])
        return (f"SELECT number FROM trials WHERE {condition} AND {beyond} ORDER BY number {direction} {page}",
                [*args, *key_args, *page_args])
    beyond, key_args = _beyond(key, forward, ahead)
    nulls = "ASC" if forward else "DESC"
    return (f"SELECT number FROM (SELECT number, {expression} AS k FROM trials WHERE {condition} LIMIT -1) "
            f"WHERE {beyond} ORDER BY k IS NULL {nulls}, k {direction}, number {direction} {page}",
            [*field_args, *args, *key_args, *page_args])


def _beyond(key: tuple[Any, int] | None, forward: bool, ahead: str) -> tuple[str, list[Any]]:
    """The condition (on a trial's value ``k`` of the order's field and its ``number``) that a
    trial lies beyond the one keyed ``key`` (after it, or, not ``forward``, before it), with its
    arguments; the trials without a value come last. Every trial where there is no key."""
    if key is None:
        return "1", []
    value, number = key
    if value is None:
        return ("k IS NULL AND" if forward else "k IS NOT NULL OR") + f" number {ahead} ?", [number]
    return (("k IS NULL OR" if forward else "k IS NOT NULL AND") + f" (k {ahead} ? OR (k = ? AND number {ahead} ?))",
            [value, value, number])
