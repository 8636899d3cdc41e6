"""Trial template placeholders, substituted field by field.

``${trialParameters.<name>}`` is a parameter's value. ``${trialSpec.Name}`` is the trial's
deterministic name (its Job name on a cluster); in a Katib-style ``trialSpec`` Job template,
``${trialSpec.Namespace|Kind|APIVersion}``, ``${trialSpec.Labels[key]}`` and
``${trialSpec.Annotations[key]}`` are known too.

Substitution works on each string on its own (an argv element, an env value, a string field of
a Job), so a value with spaces, quotes, newlines or YAML syntax stays one literal string: trial
parameters never pass through a shell, and never through serialised YAML. A ``trialSpec`` field
listed as typed (one written as a plain YAML scalar in a template read as text, as Katib's
ConfigMap templates are) is then read as that one scalar: ``2`` becomes the integer 2, as
Katib's substitution into the text gives it, while ``a: b`` stays the string it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from functions.core.documents import Path

PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_PREFIX = "trialParameters."
TRIAL_NAME = "trialSpec.Name"
SPEC_FIELD = re.compile(r"trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[[^\]]+\]|Annotations\[[^\]]+\])")
"""A placeholder (without ``${}``) for a field of the trial's own workload."""
OURS = re.compile(r"(?i)trial_?(?:param|spec)")
"""How a placeholder of katuna's (and Katib's) begins, in any case and spelling, so that a
misspelt one (``${trialParams.x}``, ``${trialSpecName}``) is caught, never left to a shell."""
SHELL_PARAMETER = re.compile(r"[#!]?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(?:\[[^\]]*\])?(?:[-:#%/^,@+=?].*)?",
                             re.DOTALL)
"""What a shell reads between ``${`` and ``}``: a name, a positional or special parameter, an
array's item, then an operator (``${HOME}``, ``${DATA:-/tmp}``, ``${#ARGS[@]}``, ``${1}``)."""
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"})
"""Programs that expand a ``${...}`` of their own in the script they are given with ``-c``."""
SCRIPT_OPTION = re.compile(r"-[A-Za-z]*c[A-Za-z]*")
"""A shell's option cluster that takes the next argument as its script (``-c``, ``-ec``, ``-lc``)."""
KEYED_FIELD = re.compile(r"trialSpec\.(Labels|Annotations)\[(.+)\]")
"""A placeholder (without ``${}``) for one of the workload's labels or annotations, by key."""


def referenced_parameters(text: str, spec_fields: bool = False,
                          read_by_shell: bool = False) -> tuple[list[str], list[str]]:
    """Parameter names referenced by ``text``, and placeholders it may not use (only
    ``${trialSpec.Name}`` of the ``trialSpec`` fields unless ``spec_fields``). Where a shell may
    read ``text`` (``read_by_shell``), a ``${...}`` that is not katuna's and is a shell's parameter
    (:data:`SHELL_PARAMETER`) is the shell's to expand, as Katib leaves it, and is left as written."""
    names: list[str] = []
    unknown: list[str] = []
    for match in PLACEHOLDER.finditer(text):
        inner = match.group(1)
        if inner.startswith(_PREFIX) and len(inner) > len(_PREFIX):
            names.append(inner[len(_PREFIX):])
        elif read_by_shell and not OURS.match(inner) and SHELL_PARAMETER.fullmatch(inner):
            continue
        elif inner != TRIAL_NAME and not (spec_fields and SPEC_FIELD.fullmatch(inner)):
            unknown.append(match.group(0))
    return names, unknown


def shell_script(command: Sequence[str]) -> int | None:
    """The index of the script ``command`` gives a shell (:data:`SHELLS`) to run, the argument
    after its ``-c`` (:data:`SCRIPT_OPTION`): the only argument the shell expands ``${...}`` in.
    None where it runs no shell, or gives it no script."""
    if not command or command[0].rsplit("/", 1)[-1] not in SHELLS:
        return None
    option = next((i for i, arg in enumerate(command[1:], 1) if SCRIPT_OPTION.fullmatch(arg)), None)
    return option + 1 if option is not None and option + 1 < len(command) else None


def keyed_fields(text: str) -> list[str]:
    """The ``trialSpec.Labels[key]`` and ``trialSpec.Annotations[key]`` placeholders (without
    ``${}``) in ``text``."""
    return [m.group(1) for m in PLACEHOLDER.finditer(text) if SPEC_FIELD.fullmatch(m.group(1))
            and KEYED_FIELD.fullmatch(m.group(1))]


def missing_key(field: str, metadata: Mapping[str, Any], where: str) -> str | None:
    """Why the placeholder ``field`` (``trialSpec.Labels[key]``, without ``${}``) has no value:
    the trialSpec's own metadata (``metadata``, at ``where``) has no such label or annotation.
    Only those are read (:func:`spec_context`), so the placeholder would stay as written in
    every trial. None when the key is there, or ``field`` names no key."""
    keyed = KEYED_FIELD.fullmatch(field)
    if keyed is None:
        return None
    kind, key = keyed.groups()
    given = metadata.get(kind.lower())
    keys = sorted(str(k) for k in given) if isinstance(given, Mapping) else []
    if key in keys:
        return None
    return (f"${{{field}}} names {kind[:-1].lower()} {key!r}, which {where}.metadata.{kind.lower()} lacks (it has "
            f"{', '.join(keys) or 'none'})")


def strings(value: Any, path: str) -> list[tuple[str, str]]:
    """Every string in a nested structure, with its field path."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, Mapping):
        return [item for key, child in value.items() for item in strings(child, f"{path}.{key}")]
    if isinstance(value, list):
        return [item for i, child in enumerate(value) for item in strings(child, f"{path}[{i}]")]
    return []


def format_value(value: Any) -> str:
    """A parameter value as a trial receives it: Python's ``repr`` for floats keeps precision."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def spec_context(name: str, namespace: str | None = None, kind: str = "Job", api_version: str = "batch/v1",
                 labels: Mapping[str, str] | None = None,
                 annotations: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``${trialSpec.*}`` values of one trial (a local trial, in no namespace, is in
    ``default``)."""
    context = {"trialSpec.Name": name, "trialSpec.Kind": kind, "trialSpec.APIVersion": api_version,
               "trialSpec.Namespace": namespace or "default"}
    context.update({f"trialSpec.Labels[{k}]": v for k, v in (labels or {}).items()})
    context.update({f"trialSpec.Annotations[{k}]": v for k, v in (annotations or {}).items()})
    return context


def substitute(text: str, params: Mapping[str, Any], context: Mapping[str, str] | str) -> str:
    """``text`` with its placeholders replaced by parameter values and the trial's fields
    (``context``: from :func:`spec_context`, or just the trial's name)."""
    known = spec_context(context) if isinstance(context, str) else context

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner in known:
            return known[inner]
        if inner.startswith(_PREFIX) and inner[len(_PREFIX):] in params:
            return format_value(params[inner[len(_PREFIX):]])
        return match.group(0)

    return PLACEHOLDER.sub(replace, text)


def substitute_tree(value: Any, params: Mapping[str, Any], context: Mapping[str, str],
                    drop_inactive: bool = True, typed: frozenset[Path] = frozenset(), at: Path = ()) -> Any:
    """A copy of a nested structure with every string substituted on its own; list items about
    parameters the trial does not have are left out, unless ``drop_inactive`` is false. A string
    whose path (from ``at``, indexes those of ``value``) is in ``typed`` is then read as one
    plain YAML scalar (:func:`bounded_yaml.plain_scalar`)."""
    if isinstance(value, str):
        text = substitute(value, params, context)
        return _plain_scalar(text) if at in typed else text
    if isinstance(value, Mapping):
        return {key: substitute_tree(child, params, context, drop_inactive, typed, (*at, key))
                for key, child in value.items()}
    if isinstance(value, list):
        return [substitute_tree(child, params, context, drop_inactive, typed, (*at, i)) for i, child in enumerate(value)
                if not (drop_inactive and isinstance(child, str)) or applies(child, params)]
    return value


def _plain_scalar(text: str) -> Any:
    """:func:`bounded_yaml.plain_scalar`, imported only where a template has typed fields: a
    handler renders most trials without loading the YAML library."""
    from functions.core.bounded_yaml import plain_scalar

    return plain_scalar(text)


def applies(text: str, params: Mapping[str, Any]) -> bool:
    """Whether every parameter ``text`` names has a value: an argument or variable about a
    parameter a trial does not have (its conditions do not hold) is left out."""
    return all(name in params for name in referenced_parameters(text, spec_fields=True)[0])


def render_command(command: tuple[str, ...], params: Mapping[str, Any], trial_name: str) -> list[str]:
    """The argv of one trial."""
    return [substitute(arg, params, trial_name) for arg in command if applies(arg, params)]


def render_env(env: tuple[tuple[str, str], ...], params: Mapping[str, Any], trial_name: str) -> dict[str, str]:
    """The extra environment of one trial."""
    return {key: substitute(value, params, trial_name) for key, value in env if applies(value, params)}
