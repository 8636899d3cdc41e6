"""What the kernel lets a trial's process start with: each argument and environment string at
most ``MAX_ARG_STRLEN``, and all of them together within a bound.

Linux refuses an ``execve`` any of whose argv or envp strings is longer than ``MAX_ARG_STRLEN``
(32 pages: 131,072 bytes with its NUL), and one whose strings and pointers together pass a
quarter of the stack limit (2 MiB under the usual 8 MiB; execve(2), "Limits on size of arguments
and environment"). Either way every trial of the study would fail with "Argument list too long",
an error that names no field, and the same kernel starts a container's process on a cluster. So a
study whose command or env could pass them once its placeholders are replaced (each by the
longest value its parameter can take, known from the search space) is refused when submitted.
"""

from __future__ import annotations

from functions.core.errors import Problem
from functions.core.naming import MAX_NAME
from functions.core.parameters import CategoricalParameter, DiscreteParameter, Parameter
from functions.core.spec import Study
from functions.core.template import PLACEHOLDER, TRIAL_NAME, format_value

MAX_ARG_STRLEN = 32 * 4096
"""Bytes of one argv or envp string, its NUL included (Linux's ``MAX_ARG_STRLEN``)."""

MAX_ARGS_TOTAL = 1 << 20
"""Bytes of the study's command and env together, a NUL and a pointer for each string included:
half of the 2 MiB the kernel takes under the usual 8 MiB stack, leaving the other half to what
the service adds (``PATH``, ``HOME``, the locale, ``KATUNA_TRIAL_ENV``, katuna's trial variables)."""

POINTER = 8
"""Bytes of the pointer to each string in the new process's argv or envp."""

NUMBER_TEXT = 24
"""The longest text of a number parameter's value: a float's ``repr`` (``-2.2250738585072014e-308``)."""

_PARAMETER = "trialParameters."


def exec_problems(study: Study) -> list[Problem]:
    """A problem for each command argument or env variable (``NAME=value``) that could be past
    ``MAX_ARG_STRLEN``, else one for the whole when it could be past :data:`MAX_ARGS_TOTAL`."""
    widths = {p.name: _widest(p) for p in study.parameters}
    template = study.trial_template
    strings = [(f"trialTemplate.command[{i}]", arg, "") for i, arg in enumerate(template.command)]
    strings += [(f"trialTemplate.env.{name}", f"{name}={value}", " as NAME=value") for name, value in template.env]
    problems, total = [], 0
    for path, text, form in strings:
        size, widened = _longest(text, widths)
        total += size + 1 + POINTER
        if size >= MAX_ARG_STRLEN:
            problems.append(Problem(path, f"expected at most {MAX_ARG_STRLEN - 1:,} bytes{form} (Linux's "
                                          f"MAX_ARG_STRLEN, {MAX_ARG_STRLEN:,} with its NUL: no process starts with "
                                          f"a longer argument or variable), got {size:,}{widened}"))
    if not problems and total > MAX_ARGS_TOTAL:
        problems.append(Problem("trialTemplate", f"expected command and env of at most {MAX_ARGS_TOTAL:,} bytes in "
                                                 f"all (a NUL and a {POINTER}-byte pointer each), got {total:,}, "
                                                 "each placeholder at its longest value: the kernel refuses to start "
                                                 "a process whose arguments and environment pass 2 MiB, and the "
                                                 "service's own variables need the rest"))
    return problems


def _widest(parameter: Parameter) -> int:
    """Bytes of the longest text a value of ``parameter`` is substituted as."""
    if isinstance(parameter, (CategoricalParameter, DiscreteParameter)):
        return max((len(_utf8(format_value(v))) for v in parameter.values), default=0)
    return NUMBER_TEXT


def _longest(text: str, widths: dict[str, int]) -> tuple[int, str]:
    """Bytes of ``text`` with each placeholder replaced by its longest value, and a note saying so
    when there were placeholders."""
    size, placeholders = len(_utf8(text)), 0
    for match in PLACEHOLDER.finditer(text):
        inner = match.group(1)
        width = MAX_NAME if inner == TRIAL_NAME else widths.get(inner.removeprefix(_PARAMETER), 0)
        size += width - len(_utf8(match.group(0)))
        placeholders += 1
    return size, " with each placeholder at its longest value" if placeholders else ""


def _utf8(text: str) -> bytes:
    """``text`` as the process receives it (a lone surrogate, which no trial can start with, counted as
    three bytes rather than raising here)."""
    return text.encode("utf-8", "surrogatepass")
