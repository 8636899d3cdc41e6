"""A Katib Experiment's ``trialTemplate``, translated with Katib's webhook rules.

Katib's ``trialParameters`` name the placeholders of the ``trialSpec``: each refers either to a
parameter (its value is substituted) or to the trial's own metadata (``${trialSpec.Name}``,
``${trialSpec.Namespace}``, ``${trialSpec.Labels[key]}``, ...). The translation resolves every
``${trialParameters.<name>}`` to what it refers to, so the native template names parameters and
metadata directly; a ``${trialSpec.*}`` written in the trialSpec itself, which Katib leaves as it
is, is escaped, and so reaches every trial as written; a ``$`` right before a placeholder is
written ``$$``, so ``$${trialParameters.lr}`` gives ``$`` and the value, as Katib gives it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from functions.core import template, trial_kinds
from functions.core.errors import Problem
from functions.core.katib_shell import expanded_by_katibs_shell, unquote_primary_words

PATH = "spec.trialTemplate"
FIELDS = {"retain", "trialSpec", "configMap", "trialParameters", "primaryPodLabels", "primaryContainerName",
          "successCondition", "failureCondition"}
NO_CLUSTER = ("a trial template held in a ConfigMap is read from the cluster when the Experiment is submitted "
              "there (as a resource, or to a service whose trials run on Kubernetes), and there is no cluster "
              "here to read it from: copy the template into spec.trialTemplate.trialSpec, or submit the "
              "Experiment on the cluster")
"""Why ``configMap`` is refused where it reaches the translation unread (``katuna run``, ``katuna
convert``, a service whose trials run as local processes)."""
KUBERNETES_BACKOFF_LIMIT = 6
"""The ``backoffLimit`` Kubernetes gives a Job that sets none."""
ADDED_TO_JOB_PODS = frozenset({
    "job-name", "controller-uid", "batch.kubernetes.io/job-name", "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-completion-index", "katib.kubeflow.org/experiment", "katib.kubeflow.org/trial"})
"""The labels a Job's pod gets besides its template's: Kubernetes' Job controller's, and Katib's
(its pod webhook copies the Trial's labels onto the pod before it looks for the primary pods)."""
META_REFERENCE = re.compile(r"\$\{(.*)\}")
"""A reference to the trial's metadata; its inner part must match :data:`template.SPEC_FIELD`."""


def translate(trial: Any, parameters: list[Any], problems: list[Problem]) -> dict[str, Any]:
    """The native ``trialTemplate``; problems, with Katib's paths, go to ``problems``."""
    if not isinstance(trial, Mapping) or not trial:
        problems.append(Problem(PATH, "required; expected trialSpec, trialParameters and primaryContainerName"))
        return {}
    problems += [Problem(f"{PATH}.{key}", f"unknown field; expected one of {', '.join(sorted(FIELDS))}")
                 for key in trial if key not in FIELDS]
    _source(trial, problems)
    if not trial.get("primaryContainerName"):
        problems.append(Problem(f"{PATH}.primaryContainerName", "required: the container whose output holds the metrics"))
    for key in ("successCondition", "failureCondition"):
        why = trial_kinds.check_condition(trial[key]) if isinstance(trial.get(key), str) and trial[key] else None
        if why is not None:
            problems.append(Problem(f"{PATH}.{key}", f"expected a GJSON path katuna evaluates: {why}"))
    references = _references(trial, parameters, problems)
    out: dict[str, Any] = {"trialSpec": _resolved(trial.get("trialSpec"), references)}
    _retried_as_in_katib(out["trialSpec"])
    unquote_primary_words(trial, out["trialSpec"])
    problems += _unlabelled_primary_pods(trial)
    problems += expanded_by_katibs_shell(trial)
    for key in ("primaryContainerName", "successCondition", "failureCondition", "primaryPodLabels", "retain"):
        if trial.get(key):
            out[key] = trial[key]
    return out


def _resolved(value: Any, references: Mapping[str, str]) -> Any:
    """A copy of the trialSpec with each trial parameter resolved to what it refers to, and each
    ``${trialSpec.*}`` written in it escaped (:func:`template.resolved`): Katib fills in only
    ``${trialParameters.<name>}``, so the trial's metadata reaches the workload through a trial
    parameter that references it, and a ``${trialSpec.Name}`` written directly as it is written."""
    if isinstance(value, str):
        return template.resolved(value, references)
    if isinstance(value, Mapping):
        return {key: _resolved(child, references) for key, child in value.items()}
    if isinstance(value, list):
        return [_resolved(child, references) for child in value]
    return value


def _unlabelled_primary_pods(trial: Mapping[str, Any]) -> list[Problem]:
    """A ``primaryPodLabels`` entry no pod of a ``batch/v1`` Job trial carries: Katib's pod
    webhook puts its metrics collector only into pods carrying every primary pod label, so no
    trial of such an Experiment would get its metrics (and katuna, on a cluster, reads the pods
    carrying them). A label a pod gets besides its template's, or one whose value in the template
    is filled in per trial, is taken as it may match."""
    labels, trial_spec = trial.get("primaryPodLabels"), trial.get("trialSpec")
    known = trial_kinds.kind_of(trial_spec) if isinstance(trial_spec, Mapping) else None
    if not labels or not isinstance(labels, Mapping) or known is None or known.kind != "Job":
        return []
    pod: Any = trial_spec
    for key in ("spec", "template", "metadata", "labels"):
        pod = pod.get(key) if isinstance(pod, Mapping) else None
    pod = pod if isinstance(pod, Mapping) else {}
    missing = [f"{key}: {value}" for key, value in labels.items() if key not in ADDED_TO_JOB_PODS
               and not (key in pod and (pod[key] == value or "${" in str(pod[key])))]
    if not missing:
        return []
    return [Problem(f"{PATH}.primaryPodLabels", f"no pod of the trial's Job carries {', '.join(missing)}: Katib "
                    "collects metrics only from pods carrying every primary pod label, so no trial would get its "
                    f"metrics; add it to {PATH}.trialSpec.spec.template.metadata.labels, or remove it")]


def _retried_as_in_katib(trial_spec: Any) -> None:
    """A Job that sets no ``backoffLimit`` gets Kubernetes' default, as Katib creates it: a failed
    pod is replaced up to :data:`KUBERNETES_BACKOFF_LIMIT` times before the trial fails (a native
    study's Job is not retried unless it says so)."""
    known = trial_kinds.kind_of(trial_spec) if isinstance(trial_spec, Mapping) else None
    spec = trial_spec.get("spec") if known is not None and known.kind == "Job" else None
    if isinstance(spec, dict) and spec.get("backoffLimit") is None:
        spec["backoffLimit"] = KUBERNETES_BACKOFF_LIMIT


def without_trial_spec(spec: Mapping[str, Any]) -> bool:
    """Whether the Experiment's trial template has no ``trialSpec`` to translate: none given, or
    one held in a ConfigMap that was not read (the translation tells which)."""
    trial = spec.get("trialTemplate")
    return isinstance(trial, Mapping) and trial.get("trialSpec") is None


def _source(trial: Mapping[str, Any], problems: list[Problem]) -> None:
    """Exactly one source of the trial's workload, and it inline."""
    if trial.get("trialSpec") is None and trial.get("configMap") is None:
        problems.append(Problem(f"{PATH}.trialSpec", "required: the trial's workload (or a configMap holding it)"))
    elif trial.get("trialSpec") is not None and trial.get("configMap") is not None:
        problems.append(Problem(f"{PATH}.configMap", "only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap can be given"))
    elif trial.get("configMap") is not None:
        problems.append(Problem(f"{PATH}.configMap", NO_CLUSTER))


def _references(trial: Mapping[str, Any], parameters: list[Any], problems: list[Problem]) -> dict[str, str]:
    """``trialParameters.<name>`` to the placeholder it stands for, checked as Katib's webhook
    checks them: a name and a reference each, neither given twice, the reference a parameter or
    the trial's metadata, every name used in the trialSpec and every use declared, and every
    parameter referred to (:func:`_unreferenced`)."""
    items = trial.get("trialParameters")
    if items is None:
        problems.append(Problem(f"{PATH}.trialParameters", "required: one entry per placeholder of the trialSpec"))
        items = []
    parameter_names = {p.get("name") for p in parameters if isinstance(p, Mapping)}
    unread = trial.get("trialSpec") is None  # nothing to check the names against (an unread ConfigMap's, or none)
    metadata = None if unread else _metadata(trial.get("trialSpec"))
    used = _used_names(trial.get("trialSpec"))
    references: dict[str, str] = {}
    seen: dict[Any, str] = {}
    for i, item in enumerate(items):
        where = f"{PATH}.trialParameters[{i}]"
        name, reference = (item.get("name"), item.get("reference")) if isinstance(item, Mapping) else (None, None)
        if not name or not reference or not isinstance(name, str) or "{" in name or "}" in name:
            problems.append(Problem(where, "expected a name (without '{' or '}') and a reference"))
        elif f"trialParameters.{name}" in references:
            problems.append(Problem(f"{where}.name", f"{name!r} is given twice"))
        elif reference in seen:  # its uses stand for the first entry's: the reference is the one problem
            problems.append(Problem(f"{where}.reference", f"{reference!r} is referenced twice"))
            references[f"trialParameters.{name}"] = seen[reference]
        else:
            placeholder = _placeholder(str(reference), parameter_names, metadata, f"{where}.reference", problems)
            seen[reference] = placeholder
            references[f"trialParameters.{name}"] = placeholder
            if name not in used and not unread:
                problems.append(Problem(f"{where}.name", _unused(name)))
    undeclared = [] if unread else sorted(used - {key.removeprefix("trialParameters.") for key in references}
                        - {item.get("name") for item in items if isinstance(item, Mapping)})
    problems += [Problem(f"{PATH}.trialSpec", f"${{trialParameters.{name}}} is not declared in spec.trialTemplate.trialParameters")
                 for name in undeclared]
    if trial.get("trialParameters") is not None and not any(
            p.path.startswith(f"{PATH}.trialParameters") for p in problems):  # a mistaken reference is cause enough
        problems += _unreferenced(parameters, {item.get("reference") for item in items if isinstance(item, Mapping)})
    return references


def _unreferenced(parameters: list[Any], referenced: set[Any]) -> list[Problem]:
    """A parameter no ``trialParameters`` entry refers to: Katib's webhook takes it, then its
    trial generator fails every trial, finding more parameter assignments than trial parameters
    (``applyParameters`` in ``pkg/controller.v1beta1/experiment/manifest/generator.go``), so the
    Experiment never starts one."""
    names = [(i, p.get("name")) for i, p in enumerate(parameters) if isinstance(p, Mapping)]
    return [Problem(f"spec.parameters[{i}].name", f"{name!r} is referred to by no entry of {PATH}.trialParameters, "
                                                  "so no trial would get its value (Katib makes no trial of such an "
                                                  "Experiment): refer to it, or remove it")
            for i, name in names if isinstance(name, str) and name and name not in referenced]


def _placeholder(reference: str, parameter_names: set[Any], metadata: Mapping[str, Any] | None, where: str,
                 problems: list[Problem]) -> str:
    """What a trial parameter's reference stands for: a parameter's placeholder, or the trial's
    metadata field as it is (Katib's ``trial-metadata-substitution``); nothing for a reference
    refused (its problem is the only one)."""
    meta = META_REFERENCE.fullmatch(reference)
    if meta and template.SPEC_FIELD.fullmatch(meta.group(1)):
        missing = _missing_key(meta.group(1), metadata)
        if missing is not None:
            problems.append(Problem(where, missing))
            return ""
        return reference
    if meta or reference not in parameter_names:
        problems.append(Problem(where, f"names no parameter: {reference!r}; expected a parameter name or one of "
                                       "${trialSpec.Name|Namespace|Kind|APIVersion|Labels[key]|Annotations[key]}"))
        return ""
    return f"${{trialParameters.{reference}}}"


def _metadata(trial_spec: Any) -> Mapping[str, Any]:
    """The trialSpec's own ``metadata`` (empty when it has none)."""
    metadata = trial_spec.get("metadata") if isinstance(trial_spec, Mapping) else None
    return metadata if isinstance(metadata, Mapping) else {}


def _missing_key(field: str, metadata: Mapping[str, Any] | None) -> str | None:
    """Why a ``Labels[key]`` or ``Annotations[key]`` reference is refused: the trialSpec's own
    metadata has no such key (:func:`template.missing_key`). Katib's trial generator reads the
    key from the trialSpec's labels or annotations, and fails every trial that lacks it ("illegal
    reference of trial metadata: ...; failed to fetch Label", ``applyParameters`` in
    ``pkg/controller.v1beta1/experiment/manifest/generator.go``). None when the key is there, or
    there is no trialSpec to look in (an unread ConfigMap's)."""
    missing = None if metadata is None else template.missing_key(field, metadata, f"{PATH}.trialSpec")
    if missing is None:
        return None
    noun = "Label" if field.startswith("trialSpec.Labels[") else "Annotation"
    return f"{missing}: Katib fails every trial of such an Experiment (failed to fetch {noun})"


def _used_names(trial_spec: Any) -> set[str]:
    """The ``${trialParameters.<name>}`` names the trialSpec uses, after a ``$`` too: Katib's
    webhook finds each name's placeholder anywhere in the template's text, and its trial
    generator fills every one in (``$${trialParameters.lr}`` gives ``$`` and the value)."""
    prefix = "trialParameters."
    return {m.group(1)[len(prefix):] for _, text in template.strings(trial_spec, "")
            for m in template.ANY_OWN.finditer(text) if m.group(1).startswith(prefix) and len(m.group(1)) > len(prefix)}


def _unused(name: str) -> str:
    """Why a trial parameter no placeholder of the trialSpec names is refused, as Katib's webhook
    refuses it: its value would reach no trial."""
    return (f"${{trialParameters.{name}}} is not used in spec.trialTemplate.trialSpec, so its value would reach no "
            f"trial (Katib's webhook refuses it too: parameter name not found in spec.trialTemplate); expected the "
            f"trialSpec to use ${{trialParameters.{name}}} where the trial takes the value, or the entry left out")
