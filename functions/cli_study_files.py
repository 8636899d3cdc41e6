"""What the ``katuna`` commands about study files do (:mod:`functions.cli_run`): read and check
a study file, convert it to a native study, render one of its trials' Job. ``katuna run``, which
runs one to its end with the embedded runner, reads it here too (:mod:`functions.cli_study_run`).
Imported as one of them runs, Optuna with it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from functions.cli_common import errors, fail, writing_output
from functions.core import bounded_yaml, template_sources
from functions.core.assignments import parse_assignments
from functions.core.documents import Path as DocumentPath
from functions.core.errors import InvalidStudy, KatunaError
from functions.core.field_lines import field_lines, located
from functions.core.formats import in_definition
from functions.core.job import render_trial
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.samplers import first_suggestion
from functions.core.spec import Study
from functions.core.study_file import parse_file
from functions.core.trial_identity import study_problems
from functions.core.validate import none_stored
from functions.pools import unknown_workload_fields
from functions.settings import Settings
from functions.terminal import markup, printable
from functions.userfiles import read_text

STUDY_FIELDS = {"objective", "parameters", "trialTemplate", "algorithm", "maxTrials", "parallelism",
                "metricsCollector", "earlyStopping", "warmStart", "timeBudget", "apiVersion", "kind"}
"""Fields of which a document given as a study holds at least one, or else a ``name``: a document
with neither is not a study, and its keys (a credentials file's, say) are not echoed back as
unknown fields. One with a ``name`` is read as a study whose other fields may all be misspelt."""


@dataclass(frozen=True)
class StudyFile:
    """A study file as the command read it: its name as given, and its text, whose lines its
    problems are listed with (:func:`refuse_study`)."""

    name: str
    text: str


def load_study(file: str, settings: Settings, stored: Callable[[str], bool] = none_stored
               ) -> tuple[Study, dict[str, Any], StudyFile]:
    """The study in FILE (the warm-start file it names read the same way, relative to the
    current directory), its definition and the file; exit 2 with the problems when it is not a
    valid study. ``stored`` tells whether a study of a name is stored already
    (:func:`functions.core.validate.parse_study`)."""
    def read(path: str) -> str:
        return read_text(path, settings.max_body, "a CSV or JSON text file")

    source = StudyFile(file, read_text(file, settings.max_body, "a YAML or JSON text file"))
    try:
        definition, given = parse_file(source.text)
        if "name" not in definition and not STUDY_FIELDS & definition.keys():
            fail(f"{file} is not a study: expected a YAML or JSON mapping with a study's fields "
                  "(name, objective, parameters, trialTemplate, ...), a Katib Experiment or a StudyJob", 2)
        return *template_sources.load(definition, None, settings.limits, stored, given, read), source
    except InvalidStudy as exc:
        refuse_study(source, exc)


def convert_study(file: str) -> None:
    """``katuna convert FILE``: the native study FILE is, printed as YAML."""
    spec, _, _ = load_study(file, Settings.from_env())
    with writing_output():
        click.echo(_plain_yaml(spec.to_dict()), nl=False)


class _Plain(bounded_yaml.Dumper):
    """YAML written out whole: an object met twice (a toleration every replica takes) is written
    again, not as an anchor and an alias, which a reader of ``kubectl apply`` input would not expect;
    a string any reader would take for something else is quoted."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


IDENTITY = ("apiVersion", "kind", "metadata")
"""What a printed workload starts with, as ``kubectl get -o yaml`` prints one: a ``trialSpec``
gets its ``metadata`` from katuna after its ``spec``."""


def _identity_first(workload: dict[str, Any]) -> dict[str, Any]:
    return {**{key: workload[key] for key in IDENTITY if key in workload}, **workload}


def _plain_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Plain, sort_keys=False)


def refuse_study(file: StudyFile, exc: InvalidStudy) -> NoReturn:
    """Exit 2 with the problems of the study in ``file``, each with the line of its field."""
    _listed(f"{file.name} is not a valid study:", exc, field_lines(file.text))


def _listed(heading: str, exc: InvalidStudy, lines: dict[DocumentPath, int] | None = None) -> NoReturn:
    """Exit 2 with ``heading`` and each problem of ``exc`` listed on a line of its own (never wrapped,
    so a long path or message stays one line a script can read), with the line of its field
    where ``lines`` has it (:func:`~functions.core.field_lines.located`)."""
    errors.print(f"[red]error:[/red] {markup(heading)}", highlight=False, soft_wrap=True)
    for problem in exc.listed:
        errors.print(f"  - {printable(located(problem, lines or {}))}", highlight=False, markup=False, soft_wrap=True)
    if exc.unlisted:
        errors.print(f"  ({exc.unlisted:,} more problems not listed)", highlight=False, markup=False)
    sys.exit(2)


def render_job(file: str, assignments: tuple[str, ...]) -> None:
    """``katuna render FILE``: the Job of the trial ``assignments`` name (or of the sampler's
    first suggestion), printed as YAML."""
    settings = Settings.from_env()
    spec, definition, source = load_study(file, settings)
    # A field its kind does not have: the workload printed would be refused by the cluster's
    # dry run (and by Katib, in a Job), where the API server would drop it.
    refused = study_problems(spec, settings.cluster_defaults()) + unknown_workload_fields(spec)
    if refused:
        refuse_study(source, InvalidStudy(in_definition(definition, refused)))
    try:
        params = parse_assignments(spec.parameters, list(assignments)) if assignments else first_suggestion(spec)
    except InvalidStudy as exc:
        _listed(f"the --params are not a trial of {file}:", exc)
    try:
        record = StudyRecord(spec, definition, str(Path.cwd()), uid="render")
        launch = trial_launch(record, TrialRecord(spec.name, 0, params))
        job = render_trial(launch, settings.cluster_defaults())
    except InvalidStudy as exc:
        refuse_study(source, exc)
    except KatunaError as exc:
        fail(str(exc), 2)
    with writing_output():
        click.echo(_plain_yaml(_identity_first(job)), nl=False)
