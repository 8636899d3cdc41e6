"""Katib ``kubeflow.org/v1beta1`` Experiments, translated to katuna's native study format.

The translation is structural: field by field, with Katib's defaults and its webhook's
validation rules, and every field katuna cannot honour reported as a problem (never dropped).
The result is a native definition, validated like any other; every problem, of the translation
or of the native study, is reported at once with the Experiment's path (:mod:`katib_paths`).
Here are the spec's own rules (its fields, parallelism, an end); its parts are translated
apart: the metadata in :mod:`katib_metadata`, the objective in :mod:`katib_objective`, the
parameters in :mod:`katib_parameters`, how it searches in :mod:`katib_search`, its metrics
collector in :mod:`katib_collectors`, its trial template in :mod:`katib_template`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from functions.core import (
    katib_collectors,
    katib_grid,
    katib_paths,
    katib_search,
    katib_shapes,
    katib_template,
    validate,
)
from functions.core.errors import InvalidStudy, Problem
from functions.core.katib_metadata import check_name, label_problems, node_pool, typed_fields
from functions.core.katib_objective import native_objective
from functions.core.katib_parameters import native_parameter
from functions.core.katib_search import is_count
from functions.core.limits import DEFAULTS, Limits

API_VERSION = "kubeflow.org/v1beta1"
_SPEC = {"objective", "algorithm", "parallelTrialCount", "maxTrialCount", "maxFailedTrialCount", "parameters",
         "trialTemplate", "metricsCollectorSpec", "earlyStopping", "resumePolicy"}

DEFAULT_PARALLELISM = 3
"""Katib's ``parallelTrialCount`` when an Experiment gives none (its defaulting webhook's)."""


def is_experiment(data: Mapping[str, Any]) -> bool:
    return data.get("apiVersion") == API_VERSION and data.get("kind") == "Experiment"


def from_experiment(data: Mapping[str, Any], limits: Limits = DEFAULTS) -> dict[str, Any]:
    """The native definition of a Katib Experiment, or :class:`InvalidStudy` listing every
    problem with its Experiment path: those of the translation (Katib's webhook rules, fields
    katuna cannot honour) and those the native study they leave would have under ``limits``. A
    field holding the wrong kind of value is refused before anything is translated, as Katib's
    webhook refuses an Experiment it cannot decode (:mod:`katib_shapes`)."""
    shaped = katib_shapes.problems(data)
    if shaped:
        raise InvalidStudy(shaped)
    metadata = data.get("metadata") or {}
    spec = data.get("spec") or {}
    algorithm = (spec.get("algorithm") or {}).get("algorithmName")
    problems = _document_problems(data, metadata, spec)
    native: dict[str, Any] = {
        "name": metadata.get("name"),
        "objective": native_objective(spec.get("objective") or {}, problems),
        "parameters": [native_parameter(p, f"spec.parameters[{i}]", problems) for i, p in enumerate(spec.get("parameters") or [])],
        "algorithm": katib_search.sampler(spec.get("algorithm") or {}, problems),
        "parallelism": _parallelism(spec, problems),
        "trialTemplate": katib_template.translate(spec.get("trialTemplate"), spec.get("parameters") or [], problems),
    }
    typed = typed_fields(metadata, problems)
    if typed and native["trialTemplate"]:
        native["trialTemplate"]["typedFields"] = typed
    _trial_counts(spec, algorithm, native, problems)
    if spec.get("earlyStopping") is not None:
        native["earlyStopping"] = katib_search.early_stopping(spec["earlyStopping"], problems)
    katib_search.algorithm_specifics(algorithm, native, spec, problems)
    pool = node_pool(data, native["parallelism"], problems, limits)
    if pool is not None:
        native["nodePool"] = pool
    native["metricsCollector"] = _metrics_collector(spec, native, problems)
    if metadata.get("namespace"):
        native["kubernetes"] = {"namespace": metadata["namespace"]}
    if problems:
        native_problems, more = _native_problems(native, data, problems, limits)
        raise InvalidStudy(_leading(spec, algorithm, problems) + native_problems, more)
    return native


def _document_problems(data: Mapping[str, Any], metadata: Mapping[str, Any], spec: Mapping[str, Any]) -> list[Problem]:
    """The problems of the Experiment's own fields, found before any is translated: fields
    unknown or given twice, those katuna refuses (``nasConfig``, a ``resumePolicy`` Katib does
    not have), and its name's and labels'."""
    problems = katib_shapes.unknown_document_fields(data) + katib_shapes.repeated_names(spec)
    problems += katib_shapes.unknown_fields(spec)
    problems += [Problem(f"spec.{key}", f"unknown field; expected one of {', '.join(sorted(_SPEC))}")
                 for key in spec if key not in _SPEC | {"nasConfig"}]
    if spec.get("nasConfig") is not None:  # Katib decodes a null nasConfig as none
        problems.append(Problem("spec.nasConfig", katib_search.NAS_CONFIG))
    if spec.get("resumePolicy") not in (None, "", "Never", "LongRunning", "FromVolume"):
        problems.append(Problem("spec.resumePolicy", "expected Never, LongRunning or FromVolume"))
    check_name(metadata.get("name"), problems)
    problems += label_problems(metadata)
    return problems


def _trial_counts(spec: Mapping[str, Any], algorithm: Any, native: dict[str, Any], problems: list[Problem]) -> None:
    """The study's ``maxTrials`` and ``maxFailedTrials`` from the Experiment's counts, with the
    bound an algorithm that needs one sets (:func:`_bounded`)."""
    if spec.get("maxTrialCount") is not None:
        native["maxTrials"] = spec["maxTrialCount"]
    _bounded(spec, algorithm, native["parameters"], problems)
    if spec.get("maxFailedTrialCount") is not None:
        native["maxFailedTrials"] = failures_allowed(spec["maxFailedTrialCount"])


def _metrics_collector(spec: Mapping[str, Any], native: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """The study's ``metricsCollector``: the Experiment's collector, read as Katib's reads."""
    collector = katib_collectors.collector(spec.get("metricsCollectorSpec") or {}, problems)
    # Katib's collector reads no number from loss=nan, and its reduction passes over what is none.
    chosen = {**(collector or {"kind": "stdout"}), "nonFinite": "skip"}
    if (native.get("earlyStopping") or {}).get("algorithm") == "medianstop":
        # Katib's collector counts each report of the objective toward start_step, whatever its line names.
        chosen["steps"] = "reports"
    return chosen


def _leading(spec: Mapping[str, Any], algorithm: Any, problems: list[Problem]) -> list[Problem]:
    """The problems that are not mere consequences of another (:func:`_leads`)."""
    return [p for p in problems if _leads(spec, algorithm, p)]


def _leads(spec: Mapping[str, Any], algorithm: Any, problem: Problem) -> bool:
    """Whether ``problem`` is no mere consequence of another: with a ``nasConfig`` (refused),
    the parameters and trial template of neural architecture search, and a NAS algorithm's
    (``algorithm``) refusal, which says the same, are."""
    if spec.get("nasConfig") is None:
        return True
    path = problem.path
    return not (any(path == f or path.startswith((f"{f}.", f"{f}[")) for f in ("spec.parameters", "spec.trialTemplate"))
                or (path == "spec.algorithm.algorithmName"
                    and katib_search.REFUSED.get(str(algorithm)) == katib_search.NAS))


def _native_problems(native: dict[str, Any], data: Mapping[str, Any], found: list[Problem],
                     limits: Limits) -> tuple[list[Problem], int]:
    """The problems the native study would have besides those already ``found``, and how many
    more there are than those kept (:class:`~functions.core.errors.InvalidStudy`), so that a
    translation problem hides none of the others (none about a trial template that is missing,
    or left unread in its ConfigMap: ``found`` says why, and the native study's words for it,
    its ``command``, are no field of an Experiment; none of neural architecture search's,
    :func:`_leads`). Those left out are left out as the study is read, so that the count of
    the others is exact past the problems kept."""
    spec = data.get("spec") or {}
    algorithm = (spec.get("algorithm") or {}).get("algorithmName")
    bare = katib_template.without_trial_spec(spec)
    covered = {p.path for p in found}

    def reported(problem: Problem) -> bool:
        path = katib_paths.katib_path(problem.path, data)
        return (not katib_paths.is_covered(path, covered) and _leads(spec, algorithm, Problem(path, problem.message))
                and not (bare and (path.startswith(katib_template.PATH) or "trialTemplate" in problem.message)))

    try:
        validate.parse_study(native, limits, unused_parameters=True, counted=reported)
    except InvalidStudy as exc:
        return katib_paths.katib_problems([p for p in exc.problems if reported(p)], data), exc.more
    return [], 0


def katib_problems(problems: Iterable[Problem], data: Mapping[str, Any]) -> list[Problem]:
    """The problems of the native study an Experiment translated to, with the Experiment's paths."""
    return katib_paths.katib_problems(problems, data)


def failures_allowed(max_failed: Any) -> Any:
    """``maxFailedTrialCount`` as the native ``maxFailedTrials``: Katib fails an Experiment once
    its failed trials (those without metrics included) *reach* the count, and 0 fails it at the
    first failure like 1; the native rule fails a study when they *exceed* it. Any other value
    (negative, not an integer) goes through unchanged, for validation to report as written."""
    return max(max_failed - 1, 0) if is_count(max_failed) and max_failed >= 0 else max_failed


def _parallelism(spec: Mapping[str, Any], problems: list[Problem]) -> Any:
    """``parallelTrialCount``, by default 3, as Katib's defaulting webhook sets it; as its
    validating webhook then requires, neither it (given or defaulted) nor
    ``maxFailedTrialCount`` may exceed ``maxTrialCount``."""
    given = spec.get("parallelTrialCount")
    parallelism = DEFAULT_PARALLELISM if given is None else given
    limit = spec.get("maxTrialCount")
    if not is_count(limit):
        return parallelism
    if is_count(parallelism) and parallelism > limit and (given is not None or limit >= 1):  # else the limit is wrong
        defaulted = "" if given is not None else (f" (defaulted to {DEFAULT_PARALLELISM}, as Katib's webhook "
                                                  f"defaults it; give a parallelTrialCount of at most {limit})")
        problems.append(Problem("spec.parallelTrialCount", f"expected at most spec.maxTrialCount ({limit}), "
                                                           f"got {parallelism}{defaulted}"))
    failures = spec.get("maxFailedTrialCount")
    if is_count(failures) and failures > limit:
        problems.append(Problem("spec.maxFailedTrialCount", f"expected at most spec.maxTrialCount ({limit}), "
                                                            f"got {failures}"))
    return parallelism


def _bounded(spec: Mapping[str, Any], algorithm: Any, parameters: list[dict[str, Any]],
             problems: list[Problem]) -> None:
    """katuna runs no study without an end (every request's cost is bounded): an Experiment needs
    ``maxTrialCount`` unless its goal (or the grid, which runs out) ends it, where Katib runs one
    with neither until it is deleted. A grid's is at most its points (of the translated
    ``parameters``), as Katib's grid service refuses more."""
    if algorithm == "grid":
        problems += katib_grid.problems(spec.get("maxTrialCount"), parameters)
    elif spec.get("maxTrialCount") is None and (spec.get("objective") or {}).get("goal") is None:
        problems.append(Problem("spec.maxTrialCount", "required unless spec.objective.goal is set: katuna runs no "
                                                      f"Experiment without an end ({_katibs_end(spec)})"))


def _katibs_end(spec: Mapping[str, Any]) -> str:
    """How Katib ends an Experiment with neither ``maxTrialCount`` nor a goal: when it is deleted,
    or once ``maxFailedTrialCount`` trials failed where it gives one (Katib's resume guide)."""
    failed = spec.get("maxFailedTrialCount")
    if failed is None:
        return "Katib would run this one until it is deleted"
    return (f"Katib would run this one until {failed} of its trials failed (spec.maxFailedTrialCount) or it is "
            "deleted, however many succeed")
