"""Trial template placeholders, substituted field by field.

``${trialParameters.<name>}`` is a parameter's value. ``${trialSpec.Name}`` is the trial's
deterministic name (its Job name on a cluster); in a Katib-style ``trialSpec`` Job template,
``${trialSpec.Namespace|Kind|APIVersion}``, ``${trialSpec.Labels[key]}`` and
``${trialSpec.Annotations[key]}`` are known too. Right before a placeholder, ``$$`` stands
for one ``$``, as in a Makefile: ``$${trialSpec.Name}`` is the text ``${trialSpec.Name}`` in
every trial, and ``$$${trialParameters.lr}`` is ``$`` followed by the value (``$0.01``).

Substitution works on each string on its own (an argv element, an env value, a string field of
a Job), so a value with spaces, quotes, newlines or YAML syntax stays one literal string: trial
parameters never pass through a shell, and never through serialised YAML. The one string a
shell reads, the script a command gives it with ``-c``, gets each value as data: as it is where
the shell reads it as a plain word, else from a variable of the trial (:mod:`shell_quoting`).
Code another program reads (``python -c``) gets no value but a plain one (:mod:`code_placeholders`).
A placeholder inside a shell's own ``${...}`` (``${OUT:-${trialParameters.lr}}``) is filled too,
as Katib fills it. A ``trialSpec`` field
listed as typed (one written as a plain YAML scalar in a template read as text, as Katib's
ConfigMap templates are) is then read as that one scalar: ``2`` becomes the integer 2, as
Katib's substitution into the text gives it, while ``a: b`` stays the string it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from functions.core import inline_code, shell_quoting
from functions.core.documents import Path


class Closed:
    """A pattern of ``${`` and text without ``}`` up to the ``}`` that closes it, searched only up
    to the text's last ``}``: past it no such pattern can end, and Python's regular expressions
    would read from each ``${`` there to the text's end (a study's string of 80,000
    ``${trialSpec.`` took 35 s to check, growing with its square)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.pattern.finditer(text, 0, text.rfind("}") + 1)

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text, 0, text.rfind("}") + 1)

    def sub(self, replacement: str | Callable[[re.Match[str]], str], text: str) -> str:
        cut = text.rfind("}") + 1
        return self.pattern.sub(replacement, text[:cut]) + text[cut:]


class Unescaped(Closed):
    """A :class:`Closed` pattern of katuna's placeholders, each found only where :data:`RUN`
    finds it after an even run of ``$`` (none, or ``$$`` pairs, each one literal ``$``): after
    an odd run the last ``$`` escapes it. Each is read by the pattern where its run ends, so
    its groups and place are the placeholder's own."""

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        for run in RUN.finditer(text):
            if len(run.group(1)) % 2 == 0 and (match := self.pattern.match(text, run.end(1))) is not None:
                yield match

    def search(self, text: str) -> re.Match[str] | None:
        return next(self.finditer(text), None)

    def sub(self, replacement: str | Callable[[re.Match[str]], str], text: str) -> str:
        out, at = [], 0
        for match in self.finditer(text):
            out += [text[at:match.start()], replacement(match) if callable(replacement) else match.expand(replacement)]
            at = match.end()
        return "".join(out) + text[at:]


PLACEHOLDER = Closed(r"\$\{([^}]*)\}")
"""Any ``${...}``: one of katuna's, or another a shell may expand."""
ANY_OWN = Closed(r"\$\{((?:trialParameters|trialSpec)\.[^}]*)\}")
"""A placeholder of katuna's wherever it stands, escaped or not; also, read in a Katib
Experiment's template, each one Katib fills in (its trial generator replaces every
``${trialParameters.<name>}``, whatever precedes it)."""
RUN = Closed(r"(?<!\$)(\$*)" + ANY_OWN.pattern.pattern)
"""A placeholder of katuna's with the run of ``$`` right before it (group 1), which stands for
half as many ``$``: after an even run (``$$${trialParameters.lr}``, ``$`` and the value) it is
a placeholder, after an odd one (``$${trialSpec.Name}``) its own text, which every trial gets as
written, ``${trialSpec.Name}``. A Katib Experiment's ``trialSpec`` that writes
``${trialSpec.Name}`` itself, not through a trial parameter, translates to the latter, as Katib
fills in only ``${trialParameters.<name>}``."""
OWN = Unescaped(ANY_OWN.pattern.pattern)
"""A placeholder of katuna's, wherever it stands: alone, or inside a shell's ``${...}``; not one
escaped by an odd run of ``$`` right before it (:data:`RUN`)."""
_INNERMOST = re.compile(r"\$\{([^{}]*)\}")
MAX_NESTING = 16
"""Levels of ``${...}`` inside one another that are read (a shell's ``${A:-${B:-${C}}}`` nests
three): each level is one more pass over the text, so a string of 200,000 levels would take
hours; a placeholder nested deeper is refused as unknown, saying so."""
_PREFIX = "trialParameters."
TRIAL_NAME = "trialSpec.Name"
SPEC_FIELD = re.compile(r"trialSpec\.(Name|Namespace|Kind|APIVersion|Labels\[[^\]]+\]|Annotations\[[^\]]+\])")
"""A placeholder (without ``${}``) for a field of the trial's own workload."""
NEAR_MISS = re.compile(r"(?i)\s*trial_?(?:param[a-z]*|spec)\s*[.\[]"
                       r"|\s*trial(?:param(?:eter)?s?|spec(?:name|namespace|kind|apiversion|labels|annotations)?)\s*$")
"""A placeholder of katuna's (and Katib's) misspelt, in any case and spelling (``${trialParams.x}``,
``${trial_parameters.x}``, ``${trialSpecName}``): caught, never left to a shell. A shell's own
variable that merely begins alike (``${TRIAL_PARAMS_FILE}``, ``${trialSpecDir}``) is the shell's."""
SHELL_PARAMETER = re.compile(r"[#!]?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(?:\[[^\]]*\])?(?:[-:#%/^,@+=?].*)?",
                             re.DOTALL)
"""What a shell reads between ``${`` and ``}``: a name, a positional or special parameter, an
array's item, then an operator (``${HOME}``, ``${DATA:-/tmp}``, ``${#ARGS[@]}``, ``${1}``)."""
KEYED_FIELD = re.compile(r"trialSpec\.(Labels|Annotations)\[(.+)\]")
"""A placeholder (without ``${}``) for one of the workload's labels or annotations, by key."""


def referenced_parameters(text: str, spec_fields: bool = False,
                          read_by_shell: bool = False) -> tuple[list[str], list[str]]:
    """Parameter names referenced by ``text``, and placeholders it may not use (only
    ``${trialSpec.Name}`` of the ``trialSpec`` fields unless ``spec_fields``). Where a shell may
    read ``text`` (``read_by_shell``), a ``${...}`` that is not katuna's and is a shell's parameter
    (:data:`SHELL_PARAMETER`) is the shell's to expand, as Katib leaves it, and is left as written;
    katuna's own are found inside it too."""
    names: list[str] = []
    unknown: list[tuple[int, str]] = []
    for match in OWN.finditer(text):
        inner = match.group(1)
        if inner.startswith(_PREFIX) and len(inner) > len(_PREFIX):
            names.append(inner[len(_PREFIX):])
        elif inner != TRIAL_NAME and not (spec_fields and SPEC_FIELD.fullmatch(inner)):
            unknown.append((match.start(), match.group(0)))
    unknown += _foreign(text, read_by_shell)
    return names, [placeholder for _, placeholder in sorted(unknown)]


def parameter_names(text: str) -> list[str]:
    """The names of the parameters ``text`` references (``${trialParameters.<name>}``)."""
    return [m.group(1)[len(_PREFIX):] for m in OWN.finditer(text) if m.group(1).startswith(_PREFIX)
            and len(m.group(1)) > len(_PREFIX)]


def _foreign(text: str, read_by_shell: bool) -> list[tuple[int, str]]:
    """The ``${...}`` not katuna's that ``text`` may not hold, each with where it begins, read
    innermost first (each read one, and each of katuna's, then stands as plain text): any where
    no shell reads ``text``; where one does, any that is no shell's parameter, or is one of
    katuna's misspelt (:data:`NEAR_MISS`)."""
    found: list[tuple[int, str]] = []
    masked = ANY_OWN.sub(_blank, text)
    for _ in range(MAX_NESTING):
        if not (matches := list(_INNERMOST.finditer(masked))):
            return found
        found += [(m.start(), text[m.start():m.end()]) for m in matches
                  if not (read_by_shell and not NEAR_MISS.match(m.group(1)) and SHELL_PARAMETER.fullmatch(m.group(1)))]
        masked = _INNERMOST.sub(_blank, masked)
    return found + [(m.start(), f"{text[m.start():m.end()]} (in ${{...}} nested more than {MAX_NESTING} deep)")
                    for m in _INNERMOST.finditer(masked)]


def _blank(match: re.Match[str]) -> str:
    """A placeholder read already, as plain text of its length (no ``$``, ``{`` or ``}``)."""
    return "_" * len(match.group(0))


def keyed_fields(text: str) -> list[str]:
    """The ``trialSpec.Labels[key]`` and ``trialSpec.Annotations[key]`` placeholders (without
    ``${}``) in ``text``."""
    return [m.group(1) for m in OWN.finditer(text) if SPEC_FIELD.fullmatch(m.group(1))
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


def substitute(text: str, params: Mapping[str, Any], context: Mapping[str, str] | str, script: bool = False) -> str:
    """``text`` with its placeholders replaced by parameter values and the trial's fields
    (``context``: from :func:`spec_context`, or just the trial's name); where ``text`` is a
    shell's ``script``, each parameter's value as data (:func:`shell_quoting.as_data`), read
    from its variable (:func:`parameter_env`) unless the shell reads it as a plain word. Text
    without a ``${`` (most of a command's arguments) is returned as it is, unscanned: every
    launch of a trial renders its whole template."""
    if "${" not in text:
        return text
    known = spec_context(context) if isinstance(context, str) else context
    spots = iter(shell_quoting.spots(text, [m.start() for m in OWN.finditer(text)]) if script else [])

    def replace(match: re.Match[str]) -> str:
        run, inner = match.group(1), match.group(2)
        dollars = "$" * ((len(run) + 1) // 2)
        if len(run) % 2:
            return f"{dollars}{{{inner}}}"
        spot, name = next(spots, None), inner[len(_PREFIX):]
        if inner in known:
            return dollars + known[inner]
        if not inner.startswith(_PREFIX) or name not in params:
            return f"{dollars}${{{inner}}}"
        value = format_value(params[name])
        return dollars + (value if spot is None else shell_quoting.as_data(value, shell_quoting.variable(name), spot))

    return RUN.sub(replace, text)


def resolved(text: str, references: Mapping[str, str]) -> str:
    """Katib's template ``text`` in the native format: each ``${trialParameters.<name>}`` that
    ``references`` maps (by its inner part) replaced by what it maps it to, whatever precedes it,
    as Katib's trial generator fills it in; each ``${trialSpec.*}`` escaped, as Katib, which
    fills in only its trial parameters, leaves it; and each ``$`` of the run right before a
    placeholder doubled (:data:`RUN`), so ``$${trialParameters.lr}`` gives every trial ``$`` and
    the value, as in Katib."""
    def one(match: re.Match[str]) -> str:
        run, inner = "$" * 2 * len(match.group(1)), match.group(2)
        if inner.startswith("trialSpec."):
            return f"{run}$${{{inner}}}"
        return run + references.get(inner, f"${{{inner}}}")

    return RUN.sub(one, text) if "${" in text else text


def parameter_env(params: Mapping[str, Any]) -> dict[str, str]:
    """The variables every process of a trial gets, one for each of its parameters
    (:func:`shell_quoting.variable`), holding its value: a shell's script substituted by
    :func:`substitute` reads them, and any program may."""
    return {shell_quoting.variable(name): format_value(value) for name, value in params.items()}


def substitute_tree(value: Any, params: Mapping[str, Any], context: Mapping[str, str],
                    drop_inactive: bool = True, typed: frozenset[Path] = frozenset(), at: Path = (),
                    scripts: frozenset[Path] = frozenset()) -> Any:
    """A copy of a nested structure with every string substituted on its own; list items about
    parameters the trial does not have are left out, unless ``drop_inactive`` is false. A string
    whose path (from ``at``, indexes those of ``value``) is in ``typed`` is then read as one
    plain YAML scalar (:func:`bounded_yaml.plain_scalar`); one in ``scripts`` is a shell's script
    (:func:`substitute`)."""
    if isinstance(value, str):
        text = substitute(value, params, context, script=at in scripts)
        return _plain_scalar(text) if at in typed else text
    if isinstance(value, Mapping):
        return {key: substitute_tree(child, params, context, drop_inactive, typed, (*at, key), scripts)
                for key, child in value.items()}
    if isinstance(value, list):
        return [substitute_tree(child, params, context, drop_inactive, typed, (*at, i), scripts)
                for i, child in enumerate(value)
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
    return "${" not in text or all(name in params for name in parameter_names(text))


def render_command(command: tuple[str, ...], params: Mapping[str, Any], trial_name: str) -> list[str]:
    """The argv of one trial (its shell's script, if it starts one, read as a script)."""
    script = inline_code.shell_script(command)
    return [substitute(arg, params, trial_name, script=i == script) for i, arg in enumerate(command)
            if applies(arg, params)]


def render_env(env: tuple[tuple[str, str], ...], params: Mapping[str, Any], trial_name: str) -> dict[str, str]:
    """The extra environment of one trial."""
    return {key: substitute(value, params, trial_name) for key, value in env if applies(value, params)}
