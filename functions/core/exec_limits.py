"""What the kernel lets a trial's process start with: each argument and environment string at
most ``MAX_ARG_STRLEN``, and all of them together within a bound.

Linux refuses an ``execve`` any of whose argv or envp strings is longer than ``MAX_ARG_STRLEN``
(32 pages: 131,072 bytes with its NUL), and one whose strings and pointers together pass a
quarter of the stack limit (2 MiB under the usual 8 MiB; execve(2), "Limits on size of arguments
and environment"). Either way every trial of the study would fail with "Argument list too long",
an error that names no field, and the same kernel starts a container's process on a cluster. So a
study whose command or env could pass them once its placeholders are replaced (each by the
longest value its parameter can take, known from the search space) is refused when submitted,
and so is one whose ``trialSpec`` has a container whose command, args or env values could
(each container is a process of its own, on a cluster or, the primary one, run locally). Each
process also gets a variable for each parameter (``KATUNA_PARAM_<name>``), counted with the
rest: one too long for any process is told once, at the parameter's values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from functions.core import trial_spec as trial_spec_shapes
from functions.core.errors import Problem
from functions.core.naming import MAX_NAME
from functions.core.parameters import CategoricalParameter, DiscreteParameter, Parameter
from functions.core.shell_quoting import variable
from functions.core.spec import Study
from functions.core.template import OWN, TRIAL_NAME, format_value

MAX_ARG_STRLEN = 32 * 4096
"""Bytes of one argv or envp string, its NUL included (Linux's ``MAX_ARG_STRLEN``)."""

MAX_ARGS_TOTAL = 1 << 20
"""Bytes of the study's command and env together (or of one container's command, args and env),
a NUL and a pointer for each string included: half of the 2 MiB the kernel takes under the
usual 8 MiB stack, leaving the other half to what the service (or the image and the kubelet) adds (``PATH``, ``HOME``, the locale, ``KATUNA_TRIAL_ENV``, katuna's trial variables)."""

POINTER = 8
"""Bytes of the pointer to each string in the new process's argv or envp."""

NUMBER_TEXT = 24
"""The longest text of a number parameter's value: a float's ``repr`` (``-2.2250738585072014e-308``)."""

_PARAMETER = "trialParameters."
_LABELS = "trialSpec.Labels["
LABEL_VALUE = 63
"""Characters of a Kubernetes namespace name or label value at most: ``${trialSpec.Namespace}``
and ``${trialSpec.Labels[key]}`` at their longest."""

Strings = list[tuple[str, str, str]]
"""``(field path, string the process gets, how it is counted)`` of one process's argv and envp."""


def exec_problems(study: Study) -> list[Problem]:
    """A problem for each command argument or env variable (``NAME=value``) that could be past
    ``MAX_ARG_STRLEN``, else one for the whole when it could be past :data:`MAX_ARGS_TOTAL`: of
    the study's command and env, and of each container of its ``trialSpec``, whose command,
    args and env values katuna substitutes the same placeholders in."""
    widths = {p.name: _widest(p) for p in study.parameters}
    template = study.trial_template
    variables = _parameter_variables(study.parameters)
    strings = [(f"trialTemplate.command[{i}]", arg, "") for i, arg in enumerate(template.command)]
    strings += [(f"trialTemplate.env.{name}", f"{name}={value}", " as NAME=value") for name, value in template.env]
    problems = _process_problems("trialTemplate", "command, env and parameter variables", strings + variables, widths)
    if template.trial_spec is not None:
        widths.update(_spec_widths(template.trial_spec))
        for path, container in trial_spec_shapes.all_containers(template.trial_spec):
            problems += _process_problems(path, "command, args, env and parameter variables",
                                          _container_strings(path, container) + variables, widths)
    return list(dict.fromkeys(problems))


def _process_problems(path: str, what: str, strings: Strings, widths: dict[str, int]) -> list[Problem]:
    """The problems of one process started with ``strings`` (its ``what``, at ``path``)."""
    problems, total = [], 0
    for where, text, form in strings:
        size, widened = _longest(text, widths)
        total += size + 1 + POINTER
        if size >= MAX_ARG_STRLEN:
            problems.append(Problem(where, f"expected at most {MAX_ARG_STRLEN - 1:,} bytes{form} (Linux's "
                                           f"MAX_ARG_STRLEN, {MAX_ARG_STRLEN:,} with its NUL: no process starts with "
                                           f"a longer argument or variable), got {size:,}{widened}"))
    if not problems and total > MAX_ARGS_TOTAL:
        problems.append(Problem(path, f"expected {what} of at most {MAX_ARGS_TOTAL:,} bytes in all (a NUL and a "
                                      f"{POINTER}-byte pointer each), got {total:,}, each placeholder at its longest "
                                      "value: the kernel refuses to start a process whose arguments and environment "
                                      "pass 2 MiB, and the service's own variables need the rest"))
    return problems


def _container_strings(path: str, container: Mapping[str, Any]) -> Strings:
    """The container's command and args, and its env variables given a value (``NAME=value``);
    a string where a list of strings belongs is left to the API server to refuse."""
    strings = [(f"{path}.{key}[{i}]", arg, "") for key in ("command", "args")
               for i, arg in enumerate(_listed(container.get(key))) if isinstance(arg, str)]
    return strings + [(f"{path}.env[{i}].value", f"{e.get('name')}={e['value']}", " as NAME=value")
                      for i, e in enumerate(_listed(container.get("env")))
                      if isinstance(e, Mapping) and isinstance(e.get("value"), str)]


def _parameter_variables(parameters: Sequence[Parameter]) -> Strings:
    """The variables every process of a trial gets, one for each parameter
    (:func:`functions.core.template.parameter_env`), as ``NAME=value`` strings, each told at
    its parameter's values."""
    return [(f"parameters[{i}].values", f"{variable(p.name)}=${{trialParameters.{p.name}}}",
             f" as the variable {variable(p.name)}=value, which every process of a trial gets")
            for i, p in enumerate(parameters)]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _spec_widths(trial_spec: Mapping[str, Any]) -> dict[str, int]:
    """Bytes of the longest text each ``${trialSpec.*}`` field of the workload is substituted as
    (keyed ``trialSpec.<field>``, as :func:`_longest` looks them up): the trial's name and
    namespace, any label value at their longest, the template's own kind, apiVersion and annotations."""
    metadata = trial_spec.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    widths = {"trialSpec.Namespace": LABEL_VALUE, "trialSpec.Kind": len(_utf8(str(trial_spec.get("kind")))),
              "trialSpec.APIVersion": len(_utf8(str(trial_spec.get("apiVersion"))))}
    if isinstance(annotations, Mapping):
        widths.update({f"trialSpec.Annotations[{k}]": len(_utf8(str(v))) for k, v in annotations.items()})
    return widths


def _widest(parameter: Parameter) -> int:
    """Bytes of the longest text a value of ``parameter`` is substituted as."""
    if isinstance(parameter, (CategoricalParameter, DiscreteParameter)):
        return max((len(_utf8(format_value(v))) for v in parameter.values), default=0)
    return NUMBER_TEXT


def _longest(text: str, widths: dict[str, int]) -> tuple[int, str]:
    """Bytes of ``text`` with each placeholder replaced by its longest value, and a note saying so
    when there were placeholders."""
    size, placeholders = len(_utf8(text)), 0
    for match in OWN.finditer(text):
        inner = match.group(1)
        width = MAX_NAME if inner == TRIAL_NAME else LABEL_VALUE if inner.startswith(_LABELS) \
            else widths.get(inner.removeprefix(_PARAMETER), 0)
        size += width - len(_utf8(match.group(0)))
        placeholders += 1
    return size, " with each placeholder at its longest value" if placeholders else ""


def _utf8(text: str) -> bytes:
    """``text`` as the process receives it (a lone surrogate, which no trial can start with, counted as
    three bytes rather than raising here)."""
    return text.encode("utf-8", "surrogatepass")
