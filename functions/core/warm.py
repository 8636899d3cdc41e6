"""Warm start: results known before a study begins, given to its sampler as completed trials.

They come inline (``trials``: parameters and objective values, say from an earlier tool), from
a file the CLI reads (``file``: CSV or JSON, see :func:`functions.core.formats.load_definition`)
or from an earlier study in the same database (``study``). They inform the sampler only: they
are not trials of the new study and do not count toward its trial limits (its Optuna history's
limits count them, :mod:`functions.core.trial_cap`). A problem with a result
read from a file names the file, the line or entry, and the column or field.

An earlier study's results are taken when the new study is stored, in the same transaction
(:func:`study_results`), and kept with it: every sampler the new study builds, in any process,
learns from the same results, however that earlier study changes or whether it is deleted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from functions.core.assignments import from_text, point_problems, text_number
from functions.core.errors import Problem
from functions.core.limits import PREFIX
from functions.core.parameters import Parameter
from functions.core.reader import Reader, is_number, join, listed
from functions.core.records import COMPLETE, TrialRecord
from functions.core.spec import KnownResult, WarmStart

PATH = "warmStart"
FILE_PROBLEMS = 20
"""Problems listed for one file at most; a file of a thousand bad rows gets a count of the rest."""


@dataclass(frozen=True)
class FileResult:
    """A known result read from ``warmStart.file``: the file, where in it (``line 3``, ``entry
    [0]``), and the result (a CSV row's cells as text by column, or a JSON entry as parsed).
    Only the CLI's reading makes these; a study's own text cannot."""

    file: str
    where: str
    data: Any
    csv: bool


def fits(parameters: Sequence[Parameter], params: Mapping[str, Any]) -> bool:
    """Whether ``params`` is a point of the space: each applicable parameter, within its range."""
    return set(params) <= {p.name for p in parameters} and not point_problems(parameters, params)


def _csv_result(row: Mapping[Any, Any], parameters: Sequence[Parameter],
                objectives: Sequence[str]) -> tuple[KnownResult | None, list[tuple[str, str]]]:
    """A CSV row (cells as text by column) as a known result, or its problems by column: a
    column per parameter (an empty cell: a parameter the trial did not have) and per objective."""
    problems = []
    params: dict[str, Any] = {}
    for parameter in parameters:
        cell = (row.get(parameter.name) or "").strip()
        if cell:
            try:
                params[parameter.name] = from_text(parameter, cell)
            except ValueError as exc:
                problems.append((f"column {parameter.name}", str(exc)))
    values = []
    for name in objectives:
        cell = row.get(name)
        number = _number(cell)
        if number is None:
            shown = "no such column" if name not in row else f"got {(cell or '').strip()!r}"
            problems.append((f"column {name}", f"expected the objective's value, a finite number; {shown}"))
        values.append(number or 0.0)
    if not problems:
        columns = ", ".join(str(c) for c in row if c is not None)
        problems = [(f"column {name}", message if name in row else
                     f"no such column (the file has {columns}); expected one per parameter and per objective")
                    for name, message in point_problems(parameters, params)]
    return (None if problems else KnownResult(params, tuple(values))), problems


def _number(cell: Any) -> float | None:
    try:
        number = text_number(cell)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _values_expected(objectives: Sequence[str], one_given: bool) -> str:
    """What a known result's values must be: of several ``objectives``, a list naming none of
    them would leave a reader to guess their order, and ``value`` (``one_given``) holds one."""
    if len(objectives) == 1:
        return "expected value (or values: a list of 1) with finite numbers"
    given = ", got value (one number)" if one_given else ""
    return f"expected values: a list of {len(objectives)} finite numbers, one per objective ({', '.join(objectives)}){given}"


def _entry_result(entry: Any, parameters: Sequence[Parameter],
                  objectives: Sequence[str]) -> tuple[KnownResult | None, list[tuple[str, str]]]:
    """An inline or JSON known result (``params`` and ``value`` or ``values``), or its problems
    by field path within the entry."""
    r = Reader()
    item = r.mapping(entry, "", {"params", "value", "values"})
    params = r.get(item, "params", "", "mapping", required=True) or {}
    values = item.get("values", [item["value"]] if "value" in item else None)
    if "value" in item and "values" in item:
        r.fail("values", "given with value; expected value (one objective's) or values (one per objective), not both")
    elif objectives and (not isinstance(values, list) or len(values) != len(objectives)
                         or not all(map(is_number, values))):
        r.fail("", _values_expected(objectives, "value" in item))
    names = {p.name for p in parameters}
    for name in params:
        if name not in names:
            r.fail(join("params", str(name)), f"not a parameter of the study; expected one of {listed(sorted(names))}")
    if parameters and not r.problems:
        for name, message in point_problems(parameters, params):
            r.fail(join("params", name), message)
    problems = [(p.path, p.message) for p in r.problems]
    return (None if problems else KnownResult(dict(params), tuple(float(v) for v in values or ()))), problems


def _result(raw: Any, parameters: Sequence[Parameter],
            objectives: Sequence[str]) -> tuple[KnownResult | None, list[tuple[str, str]]]:
    if isinstance(raw, FileResult) and raw.csv:
        return _csv_result(raw.data, parameters, objectives)
    return _entry_result(raw.data if isinstance(raw, FileResult) else raw, parameters, objectives)


def _unknown_columns(entries: Sequence[Any], parameters: Sequence[Parameter],
                     objectives: Sequence[str]) -> list[tuple[str, str]]:
    """For each CSV file, its columns that are no parameter or objective of the study, which no
    result would be read from: a misspelt column silently left out would drop what it holds."""
    known = [*(p.name for p in parameters), *objectives]
    headers = {raw.file: list(raw.data) for raw in entries if isinstance(raw, FileResult) and raw.csv}
    return [(file, f"column {name!r} is no parameter or objective of the study; expected columns among "
                   f"{', '.join(known)}") for file, columns in headers.items() for name in columns if name not in known]


def _missing_columns(entries: Sequence[Any], parameters: Sequence[Parameter],
                     objectives: Sequence[str]) -> dict[tuple[str, str], str]:
    """For each CSV file, the columns its header lacks that every row needs (each objective, and
    each parameter every trial has), by file and column: said once, not again at every row."""
    needed = [*(p.name for p in parameters if not p.when), *objectives]
    headers = {raw.file: list(raw.data) for raw in entries if isinstance(raw, FileResult) and raw.csv}
    return {(file, name): f"no column {name!r} (the file has {', '.join(map(str, columns))}); expected one per "
                          "parameter and per objective" for file, columns in headers.items()
            for name in needed if name not in columns}


def parse_warm_start(r: Reader, data: Any, parameters: Sequence[Parameter], objectives: Sequence[str]) -> WarmStart | None:
    if data is None:
        return None
    item = r.mapping(data, PATH, {"study", "trials"})
    study = r.get(item, "study", PATH, "str")
    entries = r.get(item, "trials", PATH, "list") or []
    results = []
    per_file: dict[str, int] = {}
    missing = _missing_columns(entries, parameters, objectives)
    for file, problem in [*_unknown_columns(entries, parameters, objectives),
                          *((file, problem) for (file, _), problem in missing.items())]:
        r.fail(join(PATH, "file"), f"{file} line 1: {problem}")
    for i, raw in enumerate(entries):
        result, problems = _result(raw, parameters, objectives)
        if result is not None:
            results.append(result)
        for where, message in problems:
            if isinstance(raw, FileResult) and (raw.file, where.removeprefix("column ")) in missing:
                continue
            if isinstance(raw, FileResult):
                per_file[raw.file] = per_file.get(raw.file, 0) + 1
                if per_file[raw.file] <= FILE_PROBLEMS:
                    r.fail(join(PATH, "file"), f"{raw.file} {raw.where}{', ' + where if where else ''}: {message}")
            else:
                r.fail(f"{PATH}.trials[{i}]" + (f".{where}" if where else ""), message)
    for file, count in per_file.items():
        if count > FILE_PROBLEMS:
            r.fail(join(PATH, "file"), f"{file}: {count - FILE_PROBLEMS} more problems not listed")
    if study is None and not entries:
        r.fail(PATH, "expected study (an earlier study's name), trials or file")
    return WarmStart(study, tuple(results))


def missing_study(warm: WarmStart | None, exists: bool) -> Problem | None:
    """The problem of a warm start from a study the database does not hold (``exists``: whether
    it holds ``warm.study``): refused at submission, since it would silently start cold."""
    if warm is None or warm.study is None or exists:
        return None
    return Problem(join(PATH, "study"), f"no study named {warm.study!r} in this database; expected the name of an "
                                        "earlier study whose completed trials the sampler learns from")


def unseen_study(warm: WarmStart | None, namespace: str, held: bool) -> Problem | None:
    """The problem of a study resource of ``namespace`` whose warm start names a study that no
    resource of ``namespace`` holds (``held``: whether one does): one of another namespace, one
    sent with the API token, or none at all. katuna reads the earlier study's trials with its own
    access, and another team's parameters and results are not the resource's author's to read,
    nor to learn from through the sampler's suggestions; so each case is refused alike, and the
    refusal tells nothing of what other namespaces hold."""
    if warm is None or warm.study is None or held:
        return None
    return Problem(join(PATH, "study"), f"no study of a resource in namespace {namespace!r} named {warm.study!r}; a "
                                        "study resource takes a warm start only from a study of a resource of its "
                                        "own namespace, whose trials its author may read (study names are shared "
                                        "by every namespace katuna serves): name one of those, or give the known "
                                        "results in warmStart.trials")


def study_results(parameters: Sequence[Parameter], objectives: Sequence[str],
                  trials: Iterable[TrialRecord], most: int | None = None) -> tuple[KnownResult, ...]:
    """The completed ``trials`` of an earlier study as known results of a study with these
    ``parameters`` and ``objectives`` (metric names): those whose parameters are a point of this
    space (a study over another space informs only where the two agree) and whose metrics have a
    finite value of each objective, read by name: the earlier study may order its objectives
    otherwise, or optimise others, and a value taken by its place would be another metric's.
    At most ``most`` of them: ``trials`` is read no further."""
    results: list[KnownResult] = []
    for trial in trials:
        if most is not None and len(results) >= most:
            break
        values = [trial.metrics.get(name) for name in objectives]
        if trial.state == COMPLETE and all(v is not None and math.isfinite(v) for v in values) \
                and fits(parameters, trial.params):
            results.append(KnownResult(dict(trial.params), tuple(cast(float, v) for v in values)))
    return tuple(results)


def nothing_taken(warm: WarmStart, taken: int, objectives: Sequence[str]) -> Problem | None:
    """The problem of a warm start from a study none of whose completed trials could be taken
    (``taken`` is 0): it would start cold without a word."""
    if warm.study is None or taken:
        return None
    names = ", ".join(objectives)
    return Problem(join(PATH, "study"), f"no completed trial of {warm.study!r} fits this study's space with a value "
                                        f"of each of its objectives ({names}); expected a study whose completed "
                                        "trials report them")


def over_limit(warm: WarmStart, taken: int, limit: int) -> Problem | None:
    """The problem of a warm start with more than ``limit`` known results in all: those given
    inline (or in a file) and the ``taken`` of ``warm.study`` (the sampler learns from each at
    every suggestion, as :attr:`functions.core.limits.Limits.warm_start` bounds them). The
    earlier study's are taken only until one more than the limit fits, so ``taken`` is a count
    of at least that many."""
    total = len(warm.trials) + taken
    if total <= limit:
        return None
    inline = f" and {len(warm.trials):,} in warmStart.trials" if warm.trials else ""
    return Problem(join(PATH, "study"), f"expected at most {limit:,} known results (set by {PREFIX}MAX_WARM_START), "
                                        f"got more than {limit:,}: at least {taken:,} completed trials of "
                                        f"{warm.study!r} that fit this space{inline}; give the ones to learn from "
                                        f"in a file (warmStart.file), or raise the limit")


def lost_study(warm: WarmStart) -> str:
    """Why a study stored before katuna kept an earlier study's results with it does not start
    once that study is gone: starting cold would silently change the search it was given."""
    return (f"no study named {warm.study!r} in this database any more (warmStart.study), and this study was "
            f"stored before katuna kept a warm start's results with the study: rather than start cold it fails; "
            f"delete it and submit it again with the warm start it should have")
