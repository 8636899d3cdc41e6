"""Trial template placeholders substituted field by field.

``${trialParameters.<name>}`` is a parameter's value; ``${trialSpec.Name}`` the trial's
deterministic name (its Job name on a cluster), for per-trial file names.

Substitution works on each argv element and env value separately, so a value with spaces,
quotes or shell syntax stays one literal argument: trial parameters never pass through a shell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_PREFIX = "trialParameters."
TRIAL_NAME = "trialSpec.Name"


def referenced_parameters(text: str) -> tuple[list[str], list[str]]:
    """Names referenced by ``text``, and placeholders that are not trial parameters."""
    names: list[str] = []
    unknown: list[str] = []
    for match in PLACEHOLDER.finditer(text):
        inner = match.group(1)
        if inner.startswith(_PREFIX) and len(inner) > len(_PREFIX):
            names.append(inner[len(_PREFIX):])
        elif inner != TRIAL_NAME:
            unknown.append(match.group(0))
    return names, unknown


def format_value(value: Any) -> str:
    """A parameter value as a trial receives it: Python's ``repr`` for floats keeps precision."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def substitute(text: str, params: Mapping[str, Any], trial_name: str) -> str:
    """``text`` with its placeholders replaced by parameter values and the trial name."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner == TRIAL_NAME:
            return trial_name
        if inner.startswith(_PREFIX) and inner[len(_PREFIX):] in params:
            return format_value(params[inner[len(_PREFIX):]])
        return match.group(0)

    return PLACEHOLDER.sub(replace, text)


def render_command(command: tuple[str, ...], params: Mapping[str, Any], trial_name: str) -> list[str]:
    """The argv of one trial."""
    return [substitute(arg, params, trial_name) for arg in command]


def render_env(env: tuple[tuple[str, str], ...], params: Mapping[str, Any], trial_name: str) -> dict[str, str]:
    """The extra environment of one trial."""
    return {key: substitute(value, params, trial_name) for key, value in env}
