"""``metricsCollector.path``: the file (the folder, for the tfevent collector) a trial writes its
metrics to, its placeholders filled in per trial as its command's are (``${trialSpec.Name}``, a
parameter's value), checked when the study is submitted.

A relative path is read from the trial's working directory (``trialTemplate.workingDir``), so it
stays inside that folder: a ``..`` segment, written or brought by a parameter's value, would have
katuna read a file of the machine's that no trial wrote.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from functions.core import template
from functions.core.errors import Problem
from functions.core.parameters import CategoricalParameter, DiscreteParameter, Parameter
from functions.core.reader import listed

FIELD = "metricsCollector.path"


def problems(path: str, parameters: Sequence[Parameter]) -> list[Problem]:
    """The problems of ``path`` in a study of ``parameters``: each placeholder names a parameter
    or the trial, and the path stays inside the trial's working directory."""
    names, unknown = template.referenced_parameters(path)
    found = [Problem(FIELD, f"unknown placeholder {placeholder}; expected ${{trialParameters.<name>}} or "
                            "${trialSpec.Name} (nothing expands another ${...} here)") for placeholder in unknown]
    known = {parameter.name: parameter for parameter in parameters}
    for name in names:
        if name not in known:
            found.append(Problem(FIELD, f"${{trialParameters.{name}}} names no parameter; expected one of "
                                        f"{listed(sorted(known))}"))
    if posixpath.isabs(path):
        return found
    if _climbs(path):
        found.append(Problem(FIELD, f"expected a path inside the trial's working directory (trialTemplate.workingDir), "
                                    f"without '..' segments, got {path!r}"))
    for name in dict.fromkeys(n for n in names if n in known):
        climbing = next((v for v in _texts(known[name]) if _climbs(v)), None)
        if climbing is not None:
            found.append(Problem(FIELD, f"${{trialParameters.{name}}} may be {climbing!r}, which would take the path "
                                        f"out of its folder; expected a parameter whose values hold no '..' segment"))
    return found


def _climbs(text: str) -> bool:
    """Whether ``text`` holds a ``..`` path segment."""
    return ".." in text.split("/")


def _texts(parameter: Parameter) -> list[str]:
    """The values of a list parameter as a trial gets them (a number parameter's are numbers)."""
    if isinstance(parameter, (CategoricalParameter, DiscreteParameter)):
        return [template.format_value(value) for value in parameter.values]
    return []
