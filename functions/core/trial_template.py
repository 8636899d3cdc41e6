"""A study's ``trialTemplate``: the argv (or Katib-style ``trialSpec``) a trial runs, its
environment and limits, and the placeholders they reference, every one checked against the
study's parameters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from functions.core import container_scripts, inline_code, labels, pod_fields, template, trial_kinds
from functions.core import trial_spec as trial_spec_module
from functions.core.documents import Path, value_at
from functions.core.reader import Reader, join, kind_of, listed
from functions.core.spec import MAX_ATTEMPTS, TrialTemplate

NOT_USED = "is not used by trialTemplate"
"""What the problem of a parameter no placeholder names says."""
NO_SHELL = " (nothing expands another ${...} here: a shell expands its own only in the script it runs, as in sh -c)"
"""Why a placeholder not katuna's is refused where no shell reads it."""
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""Matched whole (``fullmatch``): a ``$`` would also accept a trailing newline."""


def parse_trial_template(r: Reader, data: Any, parameters: list[str | None] | None,
                         unused: bool = False) -> TrialTemplate:
    """The ``trialTemplate`` section; problems go to ``r``. ``parameters`` are the study's
    parameter names by position (None where one has no usable name); each must be used by a
    placeholder, unless ``unused``, or unless the command was refused (a string, say, not an
    argv list): what it references is unknown then, and that parameter's problem would only
    follow from the command's. ``parameters`` None (the study's ``parameters`` misspelt, left
    out or no list) checks no placeholder against them: each would be refused for the one
    problem of ``parameters``."""
    path = "trialTemplate"
    if data is None:
        r.fail(path, "required; expected a mapping with command")
    item = r.mapping(data, path, {"command", "env", "workingDir", "timeout", "image", "resources", "maxAttempts",
                                  "trialSpec", "primaryContainerName", "successCondition", "failureCondition",
                                  "primaryPodLabels", "retain", "typedFields"})
    trial_spec = item.get("trialSpec")
    primary = r.get(item, "primaryContainerName", path, "str")
    before = r.found
    if isinstance(data, Mapping) and (trial_spec is None) == ("command" not in item):
        r.fail(path, "expected either command or trialSpec")
    command = _command(r, item, path) if trial_spec is None and "command" in item else ()
    command_read = isinstance(data, Mapping) and r.found == before
    conditions = _conditions(r, item, path, trial_spec)
    pod_labels = _string_map(r, item, "primaryPodLabels", path, key_pattern=None)
    if pod_labels and trial_spec is None:
        r.fail(join(path, "primaryPodLabels"), "only used with a trialSpec, whose pods it selects")
    for wrong in labels.problems(dict(pod_labels), join(path, "primaryPodLabels")):
        r.fail(wrong.path, wrong.message)
    spec_names = (trial_spec_module.check(r, trial_spec, primary, conditions, dict(pod_labels))
                  if trial_spec is not None else [])
    env, resources = _env(r, item, path), _resources(r, item, path)
    working_dir = r.get(item, "workingDir", path, "str")
    timeout = r.duration(item, "timeout", path)
    image, max_attempts = _image(r, item, path), _max_attempts(r, item, path)
    others = [(f"{path}.env.{name}", value) for name, value in env]
    others += [(join(path, "workingDir"), working_dir)] if working_dir is not None else []
    _check_placeholders(r, command, others, parameters, spec_names, every_used=not unused and command_read)
    retain = bool(r.get(item, "retain", path, "bool"))
    typed = _typed_fields(r, item, path, trial_spec)
    return TrialTemplate(command, env, working_dir, timeout, image, resources, max_attempts or MAX_ATTEMPTS,
                         trial_spec, primary, *conditions, pod_labels, retain, typed)


def _env(r: Reader, item: Mapping[str, Any], path: str) -> tuple[tuple[str, str], ...]:
    """``env``: names katuna does not set itself, and their values."""
    env = _string_map(r, item, "env", path, key_pattern=ENV_NAME)
    for name in (name for name, _ in env if name.startswith(container_scripts.RESERVED)):
        r.fail(f"{path}.env.{name}", f"expected a name not beginning with {container_scripts.RESERVED}: katuna's own "
                                     "variables of a trial are so named (KATUNA_STUDY, KATUNA_TRIAL, KATUNA_PARAM_<name>, "
                                     "...), and it sets them over any of the study's")
    return env


def _resources(r: Reader, item: Mapping[str, Any], path: str) -> tuple[tuple[str, str], ...]:
    """``resources``: names and quantities a pod's container may ask for."""
    resources = _string_map(r, item, "resources", path, key_pattern=None)
    for name, value in resources:
        if (problem := pod_fields.resource_problem(name, value)) is not None:
            r.fail(f"{path}.resources.{name}", problem)
    return resources


def _image(r: Reader, item: Mapping[str, Any], path: str) -> str | None:
    """``image``: a reference the API server takes (no whitespace around it)."""
    image = r.get(item, "image", path, "str")
    if image is not None and image != image.strip():
        r.fail(join(path, "image"), f"expected an image reference without leading or trailing whitespace, got "
                                    f"{image!r}: the API server refuses every pod of such an image")
    return image


def _max_attempts(r: Reader, item: Mapping[str, Any], path: str) -> int | None:
    """``maxAttempts``: 1 or more."""
    max_attempts = r.get(item, "maxAttempts", path, "int")
    if max_attempts is not None and max_attempts < 1:
        r.fail(join(path, "maxAttempts"), "expected an integer >= 1")
    return max_attempts


def _typed_fields(r: Reader, item: Mapping[str, Any], path: str, trial_spec: Any) -> tuple[Path, ...]:
    """``typedFields``: paths (keys and list indexes) of strings of the ``trialSpec`` holding a
    placeholder, each read as one plain YAML scalar once substituted."""
    raw = r.get(item, "typedFields", path, "list") or []
    if raw and trial_spec is None:
        r.fail(join(path, "typedFields"), "only used with a trialSpec, whose fields it names")
        return ()
    found: list[Path] = []
    for i, given in enumerate(raw):
        steps = tuple(given) if isinstance(given, list) and given and all(
            isinstance(step, (str, int)) and not isinstance(step, bool) for step in given) else None
        value = value_at(trial_spec, steps) if steps is not None else None
        if steps is None or not (isinstance(value, str) and template.PLACEHOLDER.search(value)):
            r.fail(f"{path}.typedFields[{i}]", f"expected the path (keys and list indexes) of a string of the "
                                               f"trialSpec that holds a placeholder, got {given!r}")
        else:
            found.append(steps)
    return tuple(found)


def _conditions(r: Reader, item: Mapping[str, Any], path: str, trial_spec: Any) -> tuple[str | None, str | None]:
    """``successCondition`` and ``failureCondition``: GJSON paths of the subset katuna evaluates,
    only beside a ``trialSpec``."""
    found: list[str | None] = []
    for key in ("successCondition", "failureCondition"):
        value = r.get(item, key, path, "str")
        if value is not None and trial_spec is None:
            r.fail(join(path, key), "applies to a trialSpec; a command's trial ends with its process")
        elif value is not None and (why := trial_kinds.check_condition(value)) is not None:
            r.fail(join(path, key), f"expected a GJSON path katuna evaluates: {why}")
        found.append(value)
    return found[0], found[1]


def _command(r: Reader, item: Mapping[str, Any], path: str) -> tuple[str, ...]:
    raw = r.get(item, "command", path, "list", required=True) or []
    if "command" in item and isinstance(item["command"], list) and not raw:
        r.fail(join(path, "command"), "expected a non-empty argv list")
    command = []
    for i, arg in enumerate(raw):
        if isinstance(arg, bool) or not isinstance(arg, (str, int, float)):
            r.fail(f"{path}.command[{i}]", f"expected a string, got {kind_of(arg)}")
        else:
            command.append(str(arg))
    return tuple(command)


def _string_map(r: Reader, item: Mapping[str, Any], key: str, path: str, key_pattern: re.Pattern[str] | None) -> tuple[tuple[str, str], ...]:
    raw = r.get(item, key, path, "mapping") or {}
    out = []
    for name, value in raw.items():
        where = f"{path}.{key}.{name}"
        if key_pattern is not None and not (isinstance(name, str) and key_pattern.fullmatch(name)):
            r.fail(where, "expected a variable name: letters, digits and '_', not starting with a digit")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            r.fail(where, f"expected a string or number, got {kind_of(value)}")
            continue
        out.append((str(name), str(value)))
    return tuple(sorted(out))


def _check_placeholders(r: Reader, command: tuple[str, ...], others: list[tuple[str, str]],
                        parameters: list[str | None] | None, spec_names: list[str], every_used: bool) -> None:
    """Each placeholder of the command and the ``others`` (strings no shell reads, each with its
    field path: env values, the working directory) names a parameter, and (when ``every_used``)
    each parameter is named by one; where ``parameters`` are unknown (None), only their form."""
    known = {name for name in parameters or [] if name is not None}
    used: set[str] = set(spec_names)
    for name in sorted(set(spec_names) - known if parameters is not None else ()):
        r.fail("trialTemplate.trialSpec", f"${{trialParameters.{name}}} names no parameter; expected one of "
                                          f"{listed(sorted(known))}")
    script = inline_code.shell_script(command)
    fields = [(f"trialTemplate.command[{i}]", arg, i == script) for i, arg in enumerate(command)]
    fields += [(where, text, False) for where, text in others]
    for where, text, read_by_shell in fields:
        names, unknown = template.referenced_parameters(text, read_by_shell=read_by_shell)
        for placeholder in unknown:
            r.fail(where, f"unknown placeholder {placeholder}; expected ${{trialParameters.<name>}} or "
                          f"${{trialSpec.Name}}{'' if read_by_shell else NO_SHELL}")
        for name in names:
            if name not in known and parameters is not None:
                r.fail(where, f"${{trialParameters.{name}}} names no parameter; expected one of {listed(sorted(known))}")
            used.add(name)
    for i, declared in enumerate(parameters if every_used and parameters is not None else []):
        if declared is not None and declared not in used:
            r.fail(f"parameters[{i}]", f"{declared!r} {NOT_USED}: "
                                       f"reference it as ${{trialParameters.{declared}}} in command or env")
