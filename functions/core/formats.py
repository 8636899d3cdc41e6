"""Study definitions as text: YAML or JSON, in the native format or as a Katib Experiment or StudyJob."""

from __future__ import annotations

from typing import Any

import yaml

from functions.core import katib, studyjob
from functions.core.errors import Problem, UnparseableStudy
from functions.core.spec import Study
from functions.core.validate import parse_study


def parse_text(text: str) -> dict[str, Any]:
    """The definition in ``text`` (YAML, of which JSON is a subset) as a mapping."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UnparseableStudy([Problem("", f"not valid YAML or JSON: {exc}")]) from exc
    if not isinstance(data, dict):
        raise UnparseableStudy([Problem("", "expected a mapping at the top level of the study definition")])
    return data


def native(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition in katuna's native format (Katib Experiments and StudyJobs are translated)."""
    if katib.is_experiment(definition):
        return katib.from_experiment(definition)
    if studyjob.is_studyjob(definition):
        return studyjob.from_studyjob(definition)
    return definition


def load_study(text: str) -> tuple[Study, dict[str, Any]]:
    """The validated study in ``text``, and the definition as submitted."""
    definition = parse_text(text)
    return parse_study(native(definition)), definition
