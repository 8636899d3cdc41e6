"""The checks of a ``trialSpec`` made when its study is parsed: each problem goes to the reader
by its path, so a workload the cluster (or Katib's webhook) would refuse is refused before any
trial runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import container_scripts, template, trial_kinds
from functions.core.cluster import MIN_TTL, TTL_WHY
from functions.core.labels import OWN_PREFIX, OWN_PREFIX_EXPECTED
from functions.core.labels import problems as label_problems
from functions.core.reader import Reader
from functions.core.trial_spec._job_fields import (
    DEADLINE,
    MAX_DEADLINE,
    MAX_POLICY_RULES,
    OWN_POLICY_RULES,
    is_deadline,
)
from functions.core.trial_spec._shapes import (
    PATH,
    containers,
    init_containers,
    labelled,
    located_containers,
    pod_spec,
    primary_container,
)
from functions.core.trial_spec._types import type_problems

JOB_CONTROLLER = "kubernetes.io/job-controller"
"""The ``managedBy`` of a Job Kubernetes' own Job controller runs (its default)."""

EMPTY_JOB = {"parallelism": "a Job of parallelism 0 makes no pods",
             "completions": "a Job of 0 completions succeeds at once without a pod"}
"""The Job fields the API server takes at 0, each with what such a Job does."""


def check(r: Reader, trial_spec: Any, primary: str | None, conditions: tuple[str | None, str | None] = (None, None),
          primary_pod_labels: Mapping[str, str] | None = None) -> list[str]:
    """Problems of a ``trialSpec`` go to ``r``; the parameter names it references. A kind katuna
    has no defaults for needs both ``conditions`` (success, failure) from the study."""
    if not isinstance(trial_spec, Mapping):
        r.fail(PATH, "expected a workload (a batch/v1 Job, a Kubeflow job, a JobSet, a Workflow, ...) as a mapping")
        return []
    api_version, kind = trial_spec.get("apiVersion"), trial_spec.get("kind")
    if not (isinstance(api_version, str) and "/" in api_version and isinstance(kind, str) and kind):
        r.fail(PATH, "expected apiVersion (group/version) and kind")
    elif trial_kinds.kind_of(trial_spec) is None and None in trial_kinds.conditions(trial_spec, *conditions):
        known = ", ".join(f"{k.api_versions[0]} {k.kind}" for k in trial_kinds.KINDS.values())
        r.fail("trialTemplate", f"a trialSpec of kind {api_version} {kind} needs successCondition and "
                                f"failureCondition (katuna knows the defaults of {known})")
    for problem in type_problems(trial_spec):
        r.fail(problem.path, problem.message)
    _check_containers(r, trial_spec, primary, primary_pod_labels)
    _check_env_names(r, trial_spec)
    _check_identity(r, trial_spec)
    _check_labels(r, trial_spec)
    used: list[str] = []
    metadata = trial_spec.get("metadata")
    for where, text in template.strings(trial_spec, PATH):
        names, unknown = template.referenced_parameters(text, spec_fields=True, read_by_shell=True)
        used += names
        for placeholder in unknown:
            r.fail(where, f"unknown placeholder {placeholder}; expected ${{trialParameters.<name>}} or "
                          "${trialSpec.Name|Namespace|Kind|APIVersion|Labels[key]|Annotations[key]}")
        _check_keys(r, where, text, metadata if isinstance(metadata, Mapping) else {})
    return used


def _check_keys(r: Reader, where: str, text: str, metadata: Mapping[str, Any]) -> None:
    """A ``${trialSpec.Labels[key]}`` or ``${trialSpec.Annotations[key]}`` in ``text`` names a key
    of the trialSpec's own metadata: only those are read, so any other (katuna's own labels
    included, which a local trial does not have) would stay as written in every trial."""
    for field in template.keyed_fields(text):
        missing = template.missing_key(field, metadata, PATH)
        if missing is not None:
            r.fail(where, f"{missing}: it would stay as written in every trial; add the key there, or use "
                          "${trialSpec.Name} or a parameter instead")


def _check_env_names(r: Reader, trial_spec: Mapping[str, Any]) -> None:
    """No container's variable is named as katuna's own are (:data:`container_scripts.RESERVED`)."""
    located = [(path, c) for path, _, _, c in located_containers(trial_spec)] + init_containers(trial_spec)
    for where, name in container_scripts.reserved_names([(f"{PATH}.{path}", c) for path, c in located]):
        r.fail(where, f"expected a name not beginning with {container_scripts.RESERVED}, got {name!r}: katuna's own "
                      "variables of a trial are so named, and it sets them over any of the template's")


def _check_containers(r: Reader, trial_spec: Mapping[str, Any], primary: str | None,
                      labels: Mapping[str, str] | None) -> None:
    """The workload of a kind katuna knows has the primary container its trials run
    (:func:`_check_primary`), and a Job the fields its trials need (:func:`_check_job`)."""
    known = trial_kinds.kind_of(trial_spec)
    if known is None:
        return
    _check_primary(r, known, trial_spec, primary, labels)
    if known.kind == "Job":
        given = trial_spec.get("spec")
        _check_job(r, trial_spec, given if isinstance(given, Mapping) else {})


def _check_primary(r: Reader, known: trial_kinds.TrialKind, trial_spec: Mapping[str, Any], primary: str | None,
                   labels: Mapping[str, str] | None) -> None:
    """The workload has containers, one of them the primary (``primaryContainerName``) with a
    command or args to run, in a pod its kind's default ``primaryPodLabels`` select where the
    study gives none (:func:`_check_primary_pods`)."""
    found = containers(trial_spec)
    container = primary_container(trial_spec, primary, labels)
    if not found:
        r.fail(PATH, f"expected at least one container in the {known.kind}")
    elif container is None:
        listed = ", ".join(sorted({name for _, name, _ in found}))
        r.fail("trialTemplate.primaryContainerName", f"names no container; expected one of {listed}")
    elif not (container.get("command") or container.get("args") or container.get("source")):
        r.fail(PATH, "the primary container needs a command or args")
    elif not labels:
        _check_primary_pods(r, known, found)


def _check_job(r: Reader, trial_spec: Mapping[str, Any], spec: Mapping[str, Any]) -> None:
    """A Job's fields that would keep its trial from running or being read: a restart or pod
    replacement policy other than katuna's podFailurePolicy allows, another controller, a Job
    of no pods, a suspended Job; then the fields kept beside katuna's (:func:`_check_kept`)."""
    restart = pod_spec(trial_spec).get("restartPolicy")
    if restart not in (None, "Never"):
        r.fail(f"{PATH}.spec.template.spec.restartPolicy",
               f"expected Never, got {restart!r}: katuna gives trial Jobs a podFailurePolicy (a preempted "
               "pod is no failure), which Kubernetes allows only with Never, and it reads a failed trial's "
               "metrics and exit code from its pods, which Kubernetes deletes when an OnFailure Job fails")
    replacement = spec.get("podReplacementPolicy")
    if replacement not in (None, "Failed"):
        r.fail(f"{PATH}.spec.podReplacementPolicy",
               f"expected Failed or nothing, got {replacement!r}: katuna gives trial Jobs a podFailurePolicy "
               "(a preempted pod is no failure), with which Kubernetes replaces a pod only once it has failed")
    manager = spec.get("managedBy")
    if manager not in (None, JOB_CONTROLLER):
        r.fail(f"{PATH}.spec.managedBy",
               f"expected {JOB_CONTROLLER} or nothing, got {manager!r}: Kubernetes' Job controller leaves a Job "
               "another controller manages (MultiKueue runs it on another cluster), so katuna would see none "
               "of its pods and no log, and its trial would wait for ever")
    for field, why in EMPTY_JOB.items():
        if type(spec.get(field)) is int and spec[field] == 0:
            r.fail(f"{PATH}.spec.{field}", f"expected at least 1 (or nothing), got 0: {why}, so its trial would "
                                           "never run")
    suspend = spec.get("suspend")
    if suspend not in (None, False):
        r.fail(f"{PATH}.spec.suspend",
               f"expected false or nothing, got {suspend!r}: a suspended Job makes no pods, so its trial would "
               "never run (an admission controller such as Kueue suspends and resumes Jobs itself)")
    _check_kept(r, spec)


def _check_primary_pods(r: Reader, known: trial_kinds.TrialKind,
                        found: list[tuple[Mapping[str, Any], str, Mapping[str, Any]]]) -> None:
    """Some pod of the workload carries its kind's default ``primaryPodLabels``, with which the
    study leaves them: a PaddleJob of Workers alone has no pod its operator labels ``job-role:
    master``, so no pod's output would be the trial's and each trial would end without metrics."""
    wanted = known.primary_pod_labels
    if wanted and not any(all(labels.get(k) == v for k, v in wanted.items()) for labels, _, _ in found):
        roles = " or ".join(role.capitalize() for role in known.masters)
        r.fail("trialTemplate.primaryPodLabels",
               f"expected labels selecting the pods whose output is the trial's: the {known.kind} has no {roles} "
               f"role, and its operator labels none of its pods {_selector(wanted)} (the default); give it a "
               f"{roles}, or primaryPodLabels such as training.kubeflow.org/replica-type: worker and "
               "training.kubeflow.org/replica-index: \"0\"")


def _selector(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in labels.items())


def _check_kept(r: Reader, spec: Mapping[str, Any]) -> None:
    """The Job fields :func:`~functions.core.trial_spec.render` keeps beside katuna's: a deadline
    (:func:`_check_deadline`), a TTL long enough for katuna to read the finished trial's log
    (:data:`MIN_TTL`), and ``podFailurePolicy`` rules that leave room for katuna's own
    (Kubernetes takes at most :data:`MAX_POLICY_RULES`)."""
    _check_deadline(r, spec.get(DEADLINE[-1]))
    ttl = spec.get("ttlSecondsAfterFinished")
    if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl < MIN_TTL:
        r.fail(f"{PATH}.spec.ttlSecondsAfterFinished",
               f"expected at least {MIN_TTL} (or none), got {ttl}: {TTL_WHY}")
    policy = spec.get("podFailurePolicy")
    rules = policy.get("rules") if isinstance(policy, Mapping) else None
    if isinstance(rules, list) and len(rules) > MAX_POLICY_RULES - OWN_POLICY_RULES:
        r.fail(f"{PATH}.spec.podFailurePolicy.rules", f"expected at most {MAX_POLICY_RULES - OWN_POLICY_RULES}, "
                                                      f"got {len(rules)}: "
                                                      "katuna adds its own rule first (a preempted pod is no "
                                                      f"failure), and Kubernetes takes at most {MAX_POLICY_RULES}")


def _check_deadline(r: Reader, deadline: Any) -> None:
    """A Job's own ``activeDeadlineSeconds`` is a whole number of seconds Kubernetes takes and
    counts (:func:`is_deadline`), or a placeholder filled in per trial: a local trial ends there
    (:func:`~functions.core.trial_spec.active_deadline`), so one Kubernetes would refuse, or
    would fail every Job with at once, is refused here, not ignored."""
    if deadline is None or is_deadline(deadline) or isinstance(deadline, str) and template.PLACEHOLDER.search(deadline):
        return
    r.fail(f"{PATH}.{'.'.join(DEADLINE)}", f"expected a whole number of seconds from 0 to {MAX_DEADLINE}, as "
                                           f"Kubernetes counts a Job's (0 fails it at once, and so does a longer "
                                           f"one: the Job controller's clock cannot hold it), got {deadline!r}")


def _check_identity(r: Reader, trial_spec: Mapping[str, Any]) -> None:
    """A ``trialSpec`` names neither its workload nor its namespace: each trial's is named after
    the trial and made in the study's namespace, so a name or namespace given would be silently
    replaced. Katib's webhook refuses both ("metadata.name and metadata.namespace in
    spec.trialTemplate must be omitted", validator.go, validateTrialTemplate)."""
    metadata = trial_spec.get("metadata")
    for key in ("name", "namespace"):
        if isinstance(metadata, Mapping) and metadata.get(key) not in (None, ""):
            r.fail(f"{PATH}.metadata.{key}", "must be omitted, as Katib's webhook requires: each trial's workload is "
                                             "named after its trial and made in the study's namespace "
                                             "(kubernetes.namespace; a resource's own)")


def _check_labels(r: Reader, trial_spec: Mapping[str, Any]) -> None:
    """Labels the API server would refuse whatever the trial: a bad key, or a bad value without
    placeholders (one with placeholders is checked once they are filled in, at launch); and
    labels of katuna's own prefix. Labels that are no mapping are :func:`type_problems`."""
    for path, found in labelled(trial_spec):
        literal = {k: "" if isinstance(v, str) and template.PLACEHOLDER.search(v) else v for k, v in found.items()}
        for problem in label_problems(literal, path):
            r.fail(problem.path, problem.message)
        for key in sorted(k for k in found if isinstance(k, str) and k.startswith(OWN_PREFIX)):
            r.fail(f"{path}.{key}", OWN_PREFIX_EXPECTED)
