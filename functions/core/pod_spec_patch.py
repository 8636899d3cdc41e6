"""What an Argo Workflow's ``podSpecPatch`` sets in the pods it patches, read as Argo reads it.

A ``podSpecPatch`` (of a Workflow's ``spec``, of each template, of ``templateDefaults``, of the
workflow-level ``artifactGC``) is a string holding a fragment of a pod spec, which Argo's
controller merges into each pod it makes (a strategic merge patch: the Workflow's, then the
template's), after the pod's service account and volumes are set. Argo reads it as JSON when it
begins with ``{`` and as YAML otherwise, and fails the pod when it is no pod spec. It decodes
the fields with Go's JSON decoder, which takes a field name in any case
(``ServiceAccountName``) and folds some letters outside ASCII to ASCII ones (``ſ`` to ``s``).
Argo fills its expressions (``{{inputs.parameters.x}}``, ``{{=...}}``) into the patch's text
before reading it, from the Workflow's arguments or from an earlier step's outputs, which trial
code writes; their values are spliced into the text, so they could add any field.

So that the fields a patch sets can be checked as any pod spec's
(:mod:`functions.core.trial_identity`), a patch is read here, within the bounds of
:mod:`functions.core.bounded_yaml`, and refused, naming it, when it is not a mapping (or empty),
holds an Argo expression, or has a field name outside ASCII (every other name compares with its
case ignored, as Argo matches it). katuna's own placeholders (``${trialParameters.x}``) are
filled in before the launch, where the workload's patches are read again; at submission each
stands for ``-1``, which is no Kubernetes name, so the rest of the patch is checked then.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from functions.core import template
from functions.core.errors import Problem

FIELD = "podspecpatch"
"""The key of a patch (lower-cased)."""
STAND_IN = "-1"
"""What a placeholder reads as at submission: a number in JSON or YAML, and no object's name."""
_UNREADABLE = "expected a pod spec fragment as JSON or YAML (Argo fails a pod whose patch it cannot read)"
_EXPRESSION = ("an Argo expression ({{...}}) is filled into the patch after katuna checks it, and could make it set "
               "any field: write the value, or a ${trialParameters.<name>} placeholder, which katuna fills in first")
_NOT_ASCII = ("expected a field name in ASCII: Argo takes a field whatever the case of its name, and folds some other "
              "letters to ASCII ones")


def fields(strings: Iterable[tuple[str, str]], filled: bool) -> tuple[list[tuple[str, str]], list[Problem]]:
    """The strings the patches among ``strings`` (every string of a workload, with its path) set,
    each with its path (the patch's, then the field's in it); and why a patch cannot be read.
    Unless ``filled`` (a trial's workload, its placeholders filled in), each placeholder is read
    as :data:`STAND_IN`."""
    found: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for path, text in strings:
        if path.rpartition(".")[2].lower() != FIELD:
            continue
        patch, problem = _read(path, text, filled)
        found += template.strings(patch, path)
        problems += [problem] if problem is not None else [Problem(where, _NOT_ASCII) for where in _foreign(patch, path)]
    return found, problems


def patches(strings: Iterable[tuple[str, str]], filled: bool) -> list[tuple[str, Mapping[str, Any]]]:
    """The readable patches among ``strings`` (every string of a workload, with its path), each
    with its path, read as :func:`fields` reads them; those that cannot be read are left out
    (:func:`fields` says why)."""
    read = [(path, _read(path, text, filled)[0]) for path, text in strings if path.rpartition(".")[2].lower() == FIELD]
    return [(path, patch) for path, patch in read if isinstance(patch, Mapping)]


def _read(path: str, text: str, filled: bool) -> tuple[Any, Problem | None]:
    """The patch in ``text`` (None for an empty one), or why it cannot be read."""
    if "{{" in text:
        return None, Problem(path, _EXPRESSION)
    import yaml  # only for a workload with a patch: a handler renders most trials without the YAML library

    from functions.core import bounded_yaml

    try:
        patch = bounded_yaml.load(text if filled else template.PLACEHOLDER.sub(STAND_IN, text))
    except yaml.YAMLError as exc:
        return None, Problem(path, f"{_UNREADABLE}: {bounded_yaml.describe(exc)}")
    if patch is not None and not isinstance(patch, Mapping):
        return None, Problem(path, f"{_UNREADABLE}: got {type(patch).__name__}, not a mapping of pod spec fields")
    return patch, None


def _foreign(value: Any, path: str) -> Iterator[str]:
    """The paths of the keys in ``value`` holding a character outside ASCII."""
    if isinstance(value, Mapping):
        for key, child in value.items():
            if not str(key).isascii():
                yield f"{path}.{key}"
            yield from _foreign(child, f"{path}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _foreign(child, f"{path}[{index}]")
