"""Katib-style ``trialSpec`` templates: a whole workload with placeholders, of any kind Katib
runs (a ``batch/v1`` Job, the Training Operator's jobs, TrainJob, JobSet, Argo Workflow, Tekton
PipelineRun; see :mod:`functions.core.trial_kinds`).

Checked when the study is parsed; on a cluster the workload is the template with every string
substituted on its own and katuna's requirements laid over it (for a Job: name, labels, the
preemption policy before the Job's own rules, deadline unless the Job's own is sooner, TTL
unless the Job keeps its own, ``restartPolicy: Never``; for other kinds: name, labels, the
node pool's scheduling); locally the primary container's command and args run as the trial
process (its image is noted and ignored), ended at a Job's own deadline (:func:`active_deadline`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from functions.core import container_scripts, report_token, template, trial_kinds
from functions.core.cluster import MIN_TTL, TTL_WHY
from functions.core.documents import Path
from functions.core.errors import InvalidStudy, Problem, RefusedWorkload
from functions.core.labels import problems as label_problems
from functions.core.reader import Reader

PATH = "trialTemplate.trialSpec"
MAX_POLICY_RULES = 20
"""The most rules Kubernetes takes in a Job's ``podFailurePolicy``."""
OWN_POLICY_RULES = 1
"""The ``podFailurePolicy`` rules katuna puts before a Job template's own (:func:`_required`)."""
_POLICY_RULE = re.compile(r"spec\.podFailurePolicy\.rules\[(\d+)\]")
DEADLINE = ("spec", "activeDeadlineSeconds")
"""Where a Job keeps its deadline, as a path in the ``trialSpec``."""
MAX_DEADLINE = 2**63 - 1
"""The largest ``activeDeadlineSeconds`` a Job holds (an int64): a larger number cannot be decoded."""


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
    known = trial_kinds.kind_of(trial_spec)
    if known is None:
        return
    found = containers(trial_spec)
    container = primary_container(trial_spec, primary, labels)
    if not found:
        r.fail(PATH, f"expected at least one container in the {known.kind}")
    elif container is None:
        listed = ", ".join(sorted({name for _, name, _ in found}))
        r.fail("trialTemplate.primaryContainerName", f"names no container; expected one of {listed}")
    elif not (container.get("command") or container.get("args") or container.get("source")):
        r.fail(PATH, "the primary container needs a command or args")
    if known.kind == "Job":
        restart = pod_spec(trial_spec).get("restartPolicy")
        if restart not in (None, "Never"):
            r.fail(f"{PATH}.spec.template.spec.restartPolicy",
                   f"expected Never, got {restart!r}: katuna gives trial Jobs a podFailurePolicy (a preempted "
                   "pod is no failure), which Kubernetes allows only with Never, and it reads a failed trial's "
                   "metrics and exit code from its pods, which Kubernetes deletes when an OnFailure Job fails")
        replacement = (trial_spec.get("spec") or {}).get("podReplacementPolicy")
        if replacement not in (None, "Failed"):
            r.fail(f"{PATH}.spec.podReplacementPolicy",
                   f"expected Failed or nothing, got {replacement!r}: katuna gives trial Jobs a podFailurePolicy "
                   "(a preempted pod is no failure), with which Kubernetes replaces a pod only once it has failed")
        suspend = (trial_spec.get("spec") or {}).get("suspend")
        if suspend not in (None, False):
            r.fail(f"{PATH}.spec.suspend",
                   f"expected false or nothing, got {suspend!r}: a suspended Job makes no pods, so its trial would "
                   "never run (an admission controller such as Kueue suspends and resumes Jobs itself)")
        _check_kept(r, trial_spec.get("spec") or {})


def _check_kept(r: Reader, spec: Mapping[str, Any]) -> None:
    """The Job fields :func:`render` keeps beside katuna's: a deadline (:func:`_check_deadline`),
    a TTL long enough for katuna to read the finished trial's log (:data:`MIN_TTL`), and
    ``podFailurePolicy`` rules that leave room for katuna's own (Kubernetes takes at most
    :data:`MAX_POLICY_RULES`)."""
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
    """A Job's own ``activeDeadlineSeconds`` is a whole number of seconds Kubernetes takes
    (:func:`_seconds`), or a placeholder filled in per trial: a local trial ends there
    (:func:`active_deadline`), so one Kubernetes would refuse is refused here, not ignored."""
    if deadline is None or _seconds(deadline) or isinstance(deadline, str) and template.PLACEHOLDER.search(deadline):
        return
    r.fail(f"{PATH}.{'.'.join(DEADLINE)}", f"expected a whole number of seconds from 0 to {MAX_DEADLINE}, as "
                                           f"Kubernetes takes a Job's (0 fails it at once), got {deadline!r}")


def containers(trial_spec: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], str, Mapping[str, Any]]]:
    """``(pod labels, name in the pod, container)`` of every container the workload runs, in the
    shape each kind describes them: pod templates' containers; a TrainJob's ``trainer`` (the
    ``node`` container); an Argo Workflow's templates (``main``, labelled as the template says);
    a Tekton PipelineRun's steps (``step-<name>``, in pods labelled with their task)."""
    return [(labels, name, container) for _, labels, name, container in located_containers(trial_spec)]


def located_containers(trial_spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], str, Mapping[str, Any]]]:
    """Every container the workload runs (:func:`containers`), each with its path in the
    ``trialSpec`` first (``spec.template.spec.containers[0]``)."""
    found = [(f"{path}.spec.containers[{i}]", labels, str(c.get("name")), c)
             for path, labels, pod in trial_kinds.pod_specs(trial_spec)
             for i, c in _indexed(pod.get("containers"))]
    known = trial_kinds.kind_of(trial_spec)
    given = trial_spec.get("spec")
    spec: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    tasks = spec.get("pipelineSpec")
    if known is not None and known.kind == "TrainJob" and isinstance(spec.get("trainer"), Mapping):
        found.append(("spec.trainer", trial_kinds.TRAINJOB_PRIMARY, "node", spec["trainer"]))
    elif known is not None and known.kind == "Workflow":
        for i, item in _indexed(spec.get("templates")):
            metadata = item.get("metadata")
            labels = (metadata.get("labels") if isinstance(metadata, Mapping) else None) or {}
            for key in ("container", "script"):
                if isinstance(item.get(key), Mapping):
                    found.append((f"spec.templates[{i}].{key}", labels, "main", item[key]))
    elif known is not None and known.kind == "PipelineRun":
        for i, task in _indexed(tasks.get("tasks") if isinstance(tasks, Mapping) else None):
            task_spec = task.get("taskSpec")
            for j, step in _indexed(task_spec.get("steps") if isinstance(task_spec, Mapping) else None):
                found.append((f"spec.pipelineSpec.tasks[{i}].taskSpec.steps[{j}]",
                              {"tekton.dev/pipelineTask": str(task.get("name"))}, f"step-{step.get('name')}", step))
    return found


def init_containers(trial_spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(path in the trialSpec, container)`` of each init container of the workload's pod templates."""
    return [(f"{path}.spec.initContainers[{i}]", c) for path, _, pod in trial_kinds.pod_specs(trial_spec)
            for i, c in _indexed(pod.get("initContainers"))]


def _indexed(value: Any) -> list[tuple[int, Mapping[str, Any]]]:
    """The mappings of a list, each with its index in it (none where ``value`` is no list)."""
    return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)] if isinstance(value, list) else []


def pod_spec(trial_spec: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec of the primary pod template; empty where the workload has none."""
    return next((pod for _, _, pod in trial_kinds.pod_specs(trial_spec)), {})


def primary_container(trial_spec: Mapping[str, Any], name: str | None,
                      labels: Mapping[str, str] | None = None) -> Mapping[str, Any] | None:
    """The container that runs the trial: the named one (else the first) of the pods
    ``labels`` select (the kind's primary pods by default), else of any pod."""
    wanted = trial_kinds.primary_pod_labels(trial_spec, labels)
    found = containers(trial_spec)
    primary = [item for item in found if all(item[0].get(k) == v for k, v in wanted.items())]
    for pool in (primary, found) if primary else (found,):
        for _, own, container in pool:
            if name is None or own == name:
                return container
    return None


def no_command(path: str, container: str, needed: str) -> Problem:
    """The problem of the container at ``path`` (in the ``trialSpec``) that gives no ``command``
    where katuna ``needed`` one: it runs its image's entrypoint, which Katib reads from the
    image's registry and katuna does not read at all."""
    return Problem(f"{PATH}.{path}.command", (
        f"required {needed}; container {container!r} has none (it runs its image's entrypoint, which katuna does "
        f"not read from the image as Katib does): give it the command the entrypoint runs"))


def local_entrypoint(trial_spec: Mapping[str, Any], primary: str | None,
                     labels: Mapping[str, str] | None = None) -> Problem | None:
    """Why the ``trialSpec``'s primary container cannot run as a local process: it gives no
    ``command`` (``args`` alone run the image's entrypoint, which only a cluster knows), so its
    first argument would be run as the program. None when it can, or has no container katuna
    can find (a kind it has no shape of)."""
    container = primary_container(trial_spec, primary, labels)
    found = next(((path, own) for path, _, own, c in located_containers(trial_spec) if c is container), None)
    if found is None or container is None or container.get("command"):
        return None
    return no_command(*found, "where trials run on this machine (katuna run, or a service whose trials run as local "
                              "processes): a local trial runs the container's command and args as a process, and "
                              "outside a cluster its image's entrypoint is not known")


def primary_container_name(trial_spec: Mapping[str, Any], name: str | None,
                           labels: Mapping[str, str] | None = None) -> str | None:
    """The primary container's name in its pod (Argo's ``main``, Tekton's ``step-<name>``)."""
    container = primary_container(trial_spec, name, labels)
    return next((own for _, own, c in containers(trial_spec) if c is container), None)


def local_process(trial_spec: Mapping[str, Any], primary: str | None, params: Mapping[str, Any],
                  name: str, labels: Mapping[str, str] | None = None,
                  namespace: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment of the primary container, to run as a local process (an
    empty argv where the workload has no container katuna can find, a kind it has no shape of;
    ``${trialSpec.Namespace}`` is the study's namespace)."""
    context = template.spec_context(name, namespace, labels=(trial_spec.get("metadata") or {}).get("labels"),
                                    annotations=(trial_spec.get("metadata") or {}).get("annotations"),
                                    kind=str(trial_spec.get("kind")), api_version=str(trial_spec.get("apiVersion")))
    found = primary_container(trial_spec, primary, labels) or {}
    container = container_scripts.fill(found, [found], params, context)
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    env = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
    return argv, env


def active_deadline(trial_spec: Mapping[str, Any], params: Mapping[str, Any],
                    typed: frozenset[Path] = frozenset()) -> int | None:
    """A Job's own ``spec.activeDeadlineSeconds`` (its placeholder filled in, read as a number
    where the field is typed): Kubernetes fails the Job there (``DeadlineExceeded``), counting
    from its start, so a local trial, which has no Job, ends there too (at once for 0). None for
    another kind, or without a deadline Kubernetes takes there."""
    known = trial_kinds.kind_of(trial_spec)
    spec = trial_spec.get("spec")
    if known is None or known.kind != "Job" or not isinstance(spec, Mapping):
        return None
    value = template.substitute_tree(spec.get(DEADLINE[-1]), params, {}, typed=typed, at=DEADLINE)
    return value if _seconds(value) else None


def _seconds(value: Any) -> bool:
    """Whether ``value`` is a Job deadline Kubernetes takes: a whole number of seconds, not
    negative (the batch API's validation, ``ValidateNonnegativeField``), that its int64 field
    holds (:data:`MAX_DEADLINE`). With 0 the Job controller fails the Job at its first sync
    (``DeadlineExceeded``), and a local trial is ended at once."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_DEADLINE


def resources_key(trial_spec: Mapping[str, Any], path: str) -> str:
    """The field that holds the resources of the container at ``path`` (:func:`located_containers`):
    a TrainJob's trainer asks them per node (``resourcesPerNode``), a Tekton v1 step names them
    ``computeResources`` (v1beta1's ``resources`` went in v1), any other container ``resources``."""
    if path == "spec.trainer":
        return "resourcesPerNode"
    if path.startswith("spec.pipelineSpec.") and trial_spec.get("apiVersion") == "tekton.dev/v1":
        return "computeResources"
    return "resources"


def requests_resources(trial_spec: Mapping[str, Any], names: frozenset[str]) -> bool:
    """Whether a container of the template requests (or limits, which implies a request) one of
    the resources ``names``."""
    for path, _, _, container in located_containers(trial_spec):
        resources = container.get(resources_key(trial_spec, path))
        for kind in ("requests", "limits"):
            given = resources.get(kind) if isinstance(resources, Mapping) else None
            if isinstance(given, Mapping) and names & set(given):
                return True
    return False


def render(trial_spec: Mapping[str, Any], primary: str | None, params: Mapping[str, Any],
           metadata: Mapping[str, Any], required: Mapping[str, Any], env: Mapping[str, str],
           resources: Mapping[str, Mapping[str, str]], typed: frozenset[Path] = frozenset()) -> dict[str, Any]:
    """The Job from the template: ``metadata`` (name, namespace, labels) and the ``required``
    Job spec fields of katuna win (the template's ``backoffLimit`` and TTL are kept, and its
    ``podFailurePolicy`` rules follow katuna's: :func:`_required`); the pod template gets the ``required`` one's annotations where
    it sets none of them; katuna's node selector and tolerations (a node pool's, say)
    are added to the template's; ``env`` is added to the primary container, and ``resources``
    (requests and limits) where it names none of them; the ``typed`` strings are read as YAML
    scalars once substituted."""
    context, labels = _context(trial_spec, params, metadata)
    job = container_scripts.fill(trial_spec, _every_container(trial_spec), params, context, typed)
    job["metadata"] = {**(job.get("metadata") or {}), **metadata, "labels": labels}
    spec = job.setdefault("spec", {})
    for key, value in required.items():
        if key != "template":
            spec[key] = _required(key, value, spec.get(key), spec)
    pod_template = spec.setdefault("template", {})
    pod_template.setdefault("metadata", {})
    pod_template["metadata"]["labels"] = {**(pod_template["metadata"].get("labels") or {}), **metadata["labels"]}
    pod_template["metadata"]["annotations"] = {**required["template"]["metadata"].get("annotations", {}),
                                               **(pod_template["metadata"].get("annotations") or {})}
    pod = pod_template.setdefault("spec", {})
    for key, value in required["template"]["spec"].items():
        if key == "nodeSelector":
            pod[key] = {**(pod.get(key) or {}), **value}
        elif key == "tolerations":
            pod[key] = [*(pod.get(key) or []), *(t for t in value if t not in (pod.get(key) or []))]
        elif key == "restartPolicy" or key not in pod:
            pod[key] = value
    container = primary_container(job, primary)
    if not isinstance(container, dict):
        raise InvalidStudy([Problem("trialTemplate.primaryContainerName", "names no container of the trialSpec")])
    _add_env(container, env, metadata["name"])
    if resources:
        own = container.setdefault("resources", {})
        for kind, values in resources.items():
            own[kind] = {**values, **(own.get(kind) or {})}
    _refuse_bad_labels(job)
    return job


def _required(key: str, value: Any, own: Any, spec: Mapping[str, Any]) -> Any:
    """A Job spec field as katuna requires it, given the template's ``own`` and its whole
    ``spec``: the template's ``backoffLimit``, and its TTL unless katuna keeps the Job for good
    (``retain``: none), are kept (:func:`check` refused a TTL too short); no ``backoffLimit``
    where the template counts failures per index (``backoffLimitPerIndex``: Kubernetes then
    limits none Job-wide, where katuna's would end the Job at its first failure); its own
    ``activeDeadlineSeconds`` where it is sooner than katuna's backstop (the Job then fails
    there, as on Katib); its ``podFailurePolicy`` rules follow katuna's, which Kubernetes
    matches first; katuna's value of any other field."""
    if key == "backoffLimit" and own is None and spec.get("backoffLimitPerIndex") is not None:
        return None
    if key == "backoffLimit" or (key == "ttlSecondsAfterFinished" and value is not None):
        return value if own is None else own
    if key == DEADLINE[-1] and _seconds(own) and own < value:
        return own
    if key == "podFailurePolicy" and isinstance(own, Mapping) and isinstance(own.get("rules"), list):
        return {**own, "rules": [*value["rules"], *own["rules"]]}
    return value


def template_field(field: str) -> str:
    """The field of a Job template that the API server's refusal of the rendered Job names at
    ``field``: the Job's ``podFailurePolicy`` rules begin with katuna's own, so its rule
    ``i + OWN_POLICY_RULES`` is the template's rule ``i``; any other field is the template's own."""
    rule = _POLICY_RULE.match(field)
    if rule is None or int(rule[1]) < OWN_POLICY_RULES:
        return field
    return f"spec.podFailurePolicy.rules[{int(rule[1]) - OWN_POLICY_RULES}]{field[rule.end():]}"


def render_workload(trial_spec: Mapping[str, Any], primary: str | None, primary_labels: Mapping[str, str] | None,
                    params: Mapping[str, Any], metadata: Mapping[str, Any], pod: Mapping[str, Any],
                    env: Mapping[str, str], resources: Mapping[str, Mapping[str, str]],
                    ttl: int | None = None, typed: frozenset[Path] = frozenset(),
                    pod_annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A workload of a kind other than Job from the template: katuna's ``metadata`` (name,
    namespace, labels) wins; its pods get ``pod_annotations`` where the template sets none of
    them (:func:`~functions.core.trial_kinds.pod_annotated`); the node selector and tolerations in
    ``pod`` are added to every pod template (an Argo Workflow takes them for all its pods; a
    TrainJob and a PipelineRun where :func:`~functions.core.trial_kinds.scheduled_elsewhere`
    says); ``env`` is added to the primary container, and ``resources`` to every container of
    the primary's name (each replica's: a worker's pods need requests as the master's do, for
    the scheduler and the autoscaler) that names none, in the field its kind reads them from
    (:func:`resources_key`); ``ttl`` goes where the kind keeps one, unless the template sets its
    own; the pod templates of a kind whose pods need no API token get ``pod``'s ``automountServiceAccountToken``
    where they set none (:func:`~functions.core.trial_kinds.closes_tokens`). The
    kind's controller makes the pods, with katuna's labels where the kind takes pod labels
    (:func:`~functions.core.trial_kinds.pod_labelled`), so pods tell the attempt they are of;
    the ``typed`` strings are read as YAML scalars once substituted."""
    context, labels = _context(trial_spec, params, metadata)
    workload = container_scripts.fill(trial_spec, _every_container(trial_spec), params, context, typed)
    workload["metadata"] = {**(workload.get("metadata") or {}), **metadata, "labels": labels}
    trial_kinds.pod_labelled(workload, metadata["labels"])
    trial_kinds.pod_annotated(workload, pod_annotations or {})
    pod_specs = [spec for _, _, spec in trial_kinds.pod_specs(workload)]
    if getattr(trial_kinds.kind_of(workload), "kind", None) == "Workflow":
        pod_specs.append(workload.setdefault("spec", {}))
    if pod.get("nodeSelector") or pod.get("tolerations"):
        pod_specs += trial_kinds.scheduled_elsewhere(workload)
    for spec in pod_specs:
        _schedule(spec, pod)  # type: ignore[arg-type]
    if trial_kinds.closes_tokens(workload):
        for _, _, spec in trial_kinds.pod_specs(workload):
            spec.setdefault("automountServiceAccountToken", bool(pod.get("automountServiceAccountToken")))  # type: ignore[attr-defined]
    container = primary_container(workload, primary, primary_labels)
    if isinstance(container, dict):
        _add_env(container, env, metadata["name"])
    name = primary_container_name(workload, primary, primary_labels)
    for path, _, own, each in located_containers(workload):
        key = resources_key(workload, path)
        if resources and own == name and isinstance(each, dict) and key not in each:
            each[key] = {kind: dict(values) for kind, values in resources.items()}
    _keep_finished_for(workload, ttl)
    _refuse_bad_labels(workload)
    return workload


def _add_env(container: dict[str, Any], env: Mapping[str, str], workload: str) -> None:
    """katuna's variables ``env`` added to the primary ``container`` of ``workload``, over those
    of the same name it has (the parameters' variables, which every container gets already)."""
    own = [e for e in container.get("env") or [] if not (isinstance(e, Mapping) and e.get("name") in env)]
    container["env"] = [*own, *report_token.env_entries(env, workload)]


def _every_container(trial_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every container of the workload, init containers too: each runs a script of its own."""
    return [c for *_, c in located_containers(trial_spec)] + [c for _, c in init_containers(trial_spec)]


def _context(trial_spec: Mapping[str, Any], params: Mapping[str, Any],
             metadata: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The ``${trialSpec.*}`` values of the trial's workload, and its labels: the template's,
    their placeholders filled in first (a label may carry a parameter's value, and
    ``${trialSpec.Labels[key]}`` then reads the filled-in value), with katuna's over them."""
    given = trial_spec.get("metadata") or {}
    kind, api_version = str(trial_spec.get("kind")), str(trial_spec.get("apiVersion"))
    plain = template.spec_context(metadata["name"], metadata["namespace"], kind, api_version,
                                  annotations=given.get("annotations"))
    labels = {**template.substitute_tree(dict(given.get("labels") or {}), params, plain), **metadata["labels"]}
    return template.spec_context(metadata["name"], metadata["namespace"], kind, api_version, labels,
                                 given.get("annotations")), labels


def _labelled(workload: Mapping[str, Any]) -> list[tuple[str, Mapping[Any, Any]]]:
    """``(path, labels)`` of the workload's own labels and of each of its pod templates' (with
    those the kind's controller adds to the pods)."""
    metadata = workload.get("metadata")
    own = metadata.get("labels") if isinstance(metadata, Mapping) else None
    found: list[tuple[str, Mapping[Any, Any]]] = [(f"{PATH}.metadata.labels", own if isinstance(own, Mapping) else {})]
    found += [(f"{PATH}.{path}.metadata.labels", pod) for path, pod, _ in trial_kinds.pod_specs(workload)]
    return found


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
    placeholders (one with placeholders is checked once they are filled in, at launch)."""
    metadata = trial_spec.get("metadata")
    if isinstance(metadata, Mapping) and not isinstance(metadata.get("labels") or {}, Mapping):
        r.fail(f"{PATH}.metadata.labels", "expected a mapping of label keys to values")
    for path, found in _labelled(trial_spec):
        literal = {k: "" if isinstance(v, str) and template.PLACEHOLDER.search(v) else v for k, v in found.items()}
        for problem in label_problems(literal, path):
            r.fail(problem.path, problem.message)


def _refuse_bad_labels(workload: Mapping[str, Any]) -> None:
    """Refuse (for good: every attempt of the trial would be refused) a workload whose labels,
    placeholders filled in, the API server would refuse with 422, naming each label."""
    found = [problem for path, own in _labelled(workload) for problem in label_problems(own, path)]
    if found:
        raise RefusedWorkload([Problem(p.path, f"{p.message} (its placeholders filled in)") for p in found])


def _keep_finished_for(workload: dict[str, Any], ttl: int | None) -> None:
    """Set the kind's TTL of a finished workload to ``ttl`` where the template sets none."""
    known = trial_kinds.kind_of(workload)
    if ttl is None or known is None or not known.ttl:
        return
    *parents, last = known.ttl
    node = workload
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            return
        node = child
    node.setdefault(last, ttl)


def _schedule(spec: dict[str, Any], pod: Mapping[str, Any]) -> None:
    """Add katuna's node selector and tolerations to a pod spec's own."""
    if pod.get("nodeSelector"):
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **pod["nodeSelector"]}
    if pod.get("tolerations"):
        own = spec.get("tolerations") or []
        spec["tolerations"] = [*own, *(t for t in pod["tolerations"] if t not in own)]
