"""Study definitions as text: YAML or JSON, in the native format, as a Katib Experiment or
StudyJob, or as a katuna.dev/v1 resource."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import yaml

from functions.core import (
    bounded_yaml,
    katib,
    resources,
    studyjob,
    utf8,
    yaml_bounds,
    yaml_core,
    yaml_documents,
    yaml_streams,
)
from functions.core.errors import InvalidStudy, Problem, UnparseableStudy, UnreadableFile
from functions.core.json_keys import unique_keys
from functions.core.limits import DEFAULTS, Limits
from functions.core.reader import shown
from functions.core.spec import Study
from functions.core.validate import none_stored, parse_study
from functions.core.warm import FileResult


def decode(body: bytes) -> str:
    """A submitted body as text: UTF-8, as YAML and JSON are, and refused (``UnparseableStudy``
    naming the byte) otherwise, never read with its bytes replaced, which would store a name,
    command or value nobody wrote."""
    try:
        return utf8.text(body)
    except utf8.NotUtf8 as exc:
        raise UnparseableStudy([Problem("", f"the body is not UTF-8 text: {exc}; expected YAML or JSON in UTF-8")]) \
            from exc


def parse_text(text: str) -> dict[str, Any]:
    """The definition in ``text`` (YAML, of which JSON is a subset) as a mapping: an empty text
    is unparseable (``UnparseableStudy``), a document of another kind (a list, a number, ``null``)
    an invalid study whose problem is at its top level (path ``""``)."""
    with yaml_problems():
        data = bounded_yaml.load(text)
    if not text.strip():
        raise UnparseableStudy([Problem("", "the definition is empty: expected a study as YAML or JSON")])
    if not isinstance(data, dict):
        raise InvalidStudy([Problem("", "expected a mapping at the top level of the study definition, "
                                        f"got {kind_of(data)}")])
    return data


@contextmanager
def yaml_problems() -> Iterator[None]:
    """The YAML errors of reading a study's text as the study's problems: a value too large or
    one YAML 1.1 and 1.2 read differently at its path, the rest unparseable."""
    try:
        yield
    except yaml_bounds.DuplicateKey as exc:
        raise UnparseableStudy([Problem(exc.path, f"duplicate key {exc.key!r}; each key may appear once{exc.where}")]) \
            from exc
    except yaml_bounds.NumberTooLarge as exc:
        raise InvalidStudy([Problem(exc.path, exc.message)]) from exc
    except yaml_core.Ambiguities as exc:
        raise InvalidStudy([Problem(found.path, found.message) for found in exc.found], exc.more) from exc
    except yaml_bounds.DocumentTooLarge as exc:
        raise UnparseableStudy([Problem("", f"too large to read: the document {exc}")]) from exc
    except (yaml_streams.SeveralDocuments, yaml_documents.InDocument, yaml_documents.TooManyDocuments) as exc:
        raise UnparseableStudy([Problem("", str(exc))]) from exc
    except yaml.YAMLError as exc:
        raise UnparseableStudy([Problem("", f"not valid YAML or JSON: {bounded_yaml.describe(exc)}")]) from exc


def kind_of(data: object) -> str:
    """What a definition's top level holds instead of a mapping, in words."""
    if data is None:
        return "null (or no document)"
    return "a list" if isinstance(data, list) else f"a {type(data).__name__}: {str(data)[:40]!r}"


def native(definition: dict[str, Any], limits: Limits = DEFAULTS) -> dict[str, Any]:
    """The definition in katuna's native format (Katib Experiments and StudyJobs are translated;
    a ``katuna.dev/v1`` resource stands for the study in its spec); ``limits`` bound the node
    pool a Katib Experiment's annotation asks for."""
    if resources.is_resource(definition):
        return native(resources.definition(definition), limits)
    if katib.is_experiment(definition):
        return _translated(lambda experiment: katib.from_experiment(experiment, limits), definition,
                           "Katib Experiment")
    if studyjob.is_studyjob(definition):
        return _translated(studyjob.from_studyjob, definition, "Katib StudyJob")
    if "apiVersion" in definition or "kind" in definition:
        raise InvalidStudy([_unknown_document(definition)])
    return definition


def _unknown_document(definition: dict[str, Any]) -> Problem:
    """The refusal of a document that names an API version and kind katuna does not read (Katib's
    ``kubeflow.org/v1`` say, or ``kind: Trial``), at the field that is wrong: read as a native
    study, it would be refused field by field, none of them the one to mend."""
    version, kind = definition.get("apiVersion"), definition.get("kind")
    read = "; ".join(f"{api} {' or '.join(kinds)}" for api, kinds in resources.KINDS.items())
    field = "kind" if isinstance(version, str) and version in resources.KINDS else "apiVersion"
    return Problem(field, f"expected a document katuna reads ({read}), or a study of its own, which names "
                          f"neither; got apiVersion {_named(version)} and kind {_named(kind)}")


def _named(value: Any) -> str:
    return "none" if value is None else shown(value)


def _translated(translate: Callable[[dict[str, Any]], dict[str, Any]], definition: dict[str, Any],
                kind: str) -> dict[str, Any]:
    """The translators read Katib's documents as Katib does; a document of the wrong shape (a
    list where a mapping belongs, a number where a string does) is a problem of the document."""
    try:
        return translate(definition)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise InvalidStudy([Problem("spec", f"not shaped like a {kind}: a field holds the wrong kind of value "
                                            f"({type(exc).__name__}: {exc})")]) from exc


def load_study(text: str, read_file: Callable[[str], str] | None = None) -> tuple[Study, dict[str, Any]]:
    """The validated study in ``text``, and the definition as submitted.

    ``read_file`` reads the file a ``warmStart.file`` names (the CLI's reader); without one, a
    file is a problem: a service cannot read the submitter's files. The study may ask of the
    service what the default limits allow (:data:`functions.core.limits.DEFAULTS`).
    """
    return load_definition(parse_text(text), read_file)


def load_definition(definition: dict[str, Any], read_file: Callable[[str], str] | None = None,
                    limits: Limits = DEFAULTS, stored: Callable[[str], bool] = none_stored
                    ) -> tuple[Study, dict[str, Any]]:
    """The validated study a parsed definition (native, Katib Experiment, StudyJob or resource) stands for,
    and the definition itself; ``stored`` tells whether a study of a name is stored already
    (:func:`functions.core.validate.parse_study`)."""
    study = native(definition, limits)
    warm = study.get("warmStart")
    if isinstance(warm, dict) and "file" in warm:
        study = {**study, "warmStart": _inline(warm, read_file)}
    try:
        return parse_study(study, limits, stored, unused_parameters=katib.is_experiment(_submitted(definition))), definition
    except InvalidStudy as exc:
        raise InvalidStudy(in_definition(definition, exc.problems), exc.more) from exc


def in_definition(definition: dict[str, Any], problems: Sequence[Problem]) -> list[Problem]:
    """Problems of the native study, with paths into the definition as submitted (a Katib
    Experiment's own fields for one, a study resource's ``spec`` for one)."""
    experiment = _submitted(definition)
    if katib.is_experiment(experiment):
        return katib.katib_problems(problems, experiment)
    return resources.spec_paths(definition["kind"], problems) if resources.is_resource(definition) else list(problems)


def _submitted(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition a resource stands for, else the definition itself."""
    return resources.definition(definition) if resources.is_resource(definition) else definition


def _inline(warm: dict[str, Any], read_file: Callable[[str], str] | None) -> dict[str, Any]:
    """``warmStart`` with the results of its file (JSON: a list of trials; CSV: a column per
    parameter and per objective) given inline, each marked with the file and its place there."""
    path = warm["file"]
    if read_file is None or not isinstance(path, str):
        raise InvalidStudy([Problem("warmStart.file", "only the CLI reads files; give the trials inline")])
    try:
        text = read_file(path)
    except UnreadableFile as exc:
        raise InvalidStudy([Problem("warmStart.file", str(exc))]) from exc
    except OSError as exc:
        raise InvalidStudy([Problem("warmStart.file", f"cannot read {path}: {exc.strerror or exc}")]) from exc
    rest = {k: v for k, v in warm.items() if k != "file"}
    results = _csv_results(path, text) if path.endswith(".csv") else _json_results(path, text)
    if not results:
        raise InvalidStudy([Problem("warmStart.file", f"{path} holds no known results; expected at least one")])
    return {**rest, "trials": [*rest.get("trials", []), *results]}


def _csv_results(path: str, text: str) -> list[FileResult]:
    """Each row of a CSV file, with the line it ends on (the header is line 1), where the header
    names each column once and every row has a cell for each. A byte-order mark (a spreadsheet's
    "CSV UTF-8") is no part of the first column's name."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    try:
        columns = reader.fieldnames or []
        twice = sorted({name for name in columns if columns.count(name) > 1})
        if twice:
            raise _csv_problem(path, 1, f"the header names {', '.join(map(repr, twice))} more than once; expected each "
                                        "column once")
        rows = []
        for row in reader:
            cells = len(columns) + len(row.get(None) or []) - list(row.values()).count(None)
            if cells != len(columns):
                raise _csv_problem(path, reader.line_num, f"{cells} cell{'s' * (cells != 1)}; expected {len(columns)}, "
                                                          "one per column of the header (an empty one for a parameter "
                                                          "a trial did not have)")
            rows.append(FileResult(path, f"line {reader.line_num}", row, csv=True))
        return rows
    except csv.Error as exc:
        raise _csv_problem(path, reader.line_num, f"not CSV: {exc}") from exc


def _csv_problem(path: str, line: int, message: str) -> InvalidStudy:
    return InvalidStudy([Problem("warmStart.file", f"{path} line {line}: {message}")])


def _json_results(path: str, text: str) -> list[FileResult]:
    """Each entry of a JSON file's list (or its one object)."""
    try:
        trials = json.loads(text, object_pairs_hook=unique_keys)
    except (ValueError, RecursionError) as exc:
        raise InvalidStudy([Problem("warmStart.file", f"{path} is not JSON: {exc}")]) from exc
    entries = trials if isinstance(trials, list) else [trials]
    return [FileResult(path, f"entry [{i}]", entry, csv=False) for i, entry in enumerate(entries)]
