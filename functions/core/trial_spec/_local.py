"""A ``trialSpec`` run where trials run on this machine: its primary container's command and
args as a process, ended at a Job's own deadline; and why a container without a command, or
one that reads what an Argo Workflow or Tekton PipelineRun fills in, cannot run so."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.core import container_scripts, template, trial_kinds, workload_pods
from functions.core.documents import Path
from functions.core.errors import Problem
from functions.core.trial_spec._job_fields import DEADLINE, is_deadline
from functions.core.trial_spec._shapes import PATH, _indexed, located_containers, primary_container

if TYPE_CHECKING:
    from functions.core.spec import TrialTemplate


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
    return no_command(*found, f"{LOCAL}: a local trial runs the container's command and args as a process, and "
                              "outside a cluster its image's entrypoint is not known")


ENGINES = {"Workflow": ("Argo", re.compile(r"\{\{.*?\}\}")),
           "PipelineRun": ("Tekton", re.compile(
               r"\$\((?:params|tasks|context|results|workspaces|steps|step|inputs|outputs)\b[^)]*\)"))}
"""The expressions a workflow engine fills in a step's container before its pod starts, by the
kind of workload that runs it: Argo's ``{{inputs.parameters.epochs}}``, Tekton's
``$(params.lr)`` or ``$(tasks.prep.results.epochs)``. A Kubernetes variable reference,
``$(NAME)``, is no Tekton expression."""

def as_the_engine_gives(trial_spec: Mapping[str, Any], word: str) -> str:
    """``word`` of a step's container as its pod gets it from the workload's engine (where its
    kind has one: :data:`ENGINES`), each expression the engine fills in replaced (by ``_``: its
    value is not known here)."""
    known = trial_kinds.kind_of(trial_spec)
    engine = ENGINES.get(known.kind) if known is not None else None
    return word if engine is None else engine[1].sub("_", word)


LOCAL = "where trials run on this machine (katuna run, or a service whose trials run as local processes)"
"""Where a check of this module applies, as its problems say it."""


def local_engine_fields(trial_spec: Mapping[str, Any], primary: str | None,
                        labels: Mapping[str, str] | None = None) -> list[Problem]:
    """The fields of an Argo Workflow's or Tekton PipelineRun's primary container that hold an
    expression the engine fills in (:data:`ENGINES`). A local trial runs that container's
    command alone, without the engine or the steps before it, so it would get the expression
    as written (``--epochs={{inputs.parameters.epochs}}``) and fail, every trial alike."""
    known = trial_kinds.kind_of(trial_spec)
    kind = known.kind if known is not None else ""
    container = primary_container(trial_spec, primary, labels)
    found = next((path for path, _, _, c in located_containers(trial_spec) if c is container), None)
    if kind not in ENGINES or container is None or found is None:
        return []
    name, expression = ENGINES[kind]
    problems = []
    for path, value in _run_fields(container):
        if (met := expression.search(value)) is not None:
            problems.append(Problem(f"{PATH}.{found}.{path}", (
                f"{value!r:.200} holds {name}'s {met.group()}, which {name} fills in when it runs the {kind} "
                f"(from its parameters or an earlier step's outputs); {LOCAL} the primary container's command runs "
                f"alone, as a process, and would get it as written: expected a value without it here (a number, or "
                f"a ${{trialParameters.<name>}} placeholder), or submit the study where trials run on "
                f"Kubernetes, with {name} installed")))
    return problems


SOURCES = {"fieldRef": "the pod's field {fieldPath}", "resourceFieldRef": "the container's {resource}",
           "secretKeyRef": "key {key} of Secret {name}", "configMapKeyRef": "key {key} of ConfigMap {name}",
           "secretRef": "Secret {name}", "configMapRef": "ConfigMap {name}"}
"""What Kubernetes reads a container's variables from when it starts it, by the field naming it."""


def local_env_sources(trial_spec: Mapping[str, Any], primary: str | None,
                      labels: Mapping[str, str] | None = None) -> list[Problem]:
    """The primary container's variables that Kubernetes fills in when it starts the pod (an
    ``env`` entry's ``valueFrom``, an ``envFrom`` source: a Secret, a ConfigMap, the pod's own
    fields or the container's resources). A local trial has no pod, and nothing here to read
    them from, so its process would start without them, every trial alike, and run on as if
    they were unset, where the same trial on a cluster gets them."""
    container = primary_container(trial_spec, primary, labels)
    found = next((path for path, _, _, c in located_containers(trial_spec) if c is container), None)
    if container is None or found is None:
        return []
    problems = []
    for field, name, source in _env_sources(container):
        problems.append(Problem(f"{PATH}.{found}.{field}", (
            f"{name} is read from {source} when Kubernetes starts the container; {LOCAL} the primary container's "
            f"command runs as a process, with no pod and nothing to read that from, so the trial would run without "
            f"it: expected a plain value here (env[].value), or submit the study where trials run on Kubernetes")))
    return problems


def local_pod_parts(trial_spec: Mapping[str, Any], primary: str | None,
                    labels: Mapping[str, str] | None = None) -> list[Problem]:
    """What the primary container's pod gives it besides its own fields, which a local trial,
    its command run alone as a process, would run without: the pod's init containers (which
    would prepare its data first), its other containers (a sidecar it talks to) and each volume
    it mounts that holds content of its own (a claim, a ConfigMap, a Secret, a host folder: all
    but an ``emptyDir``, which starts empty as the folder of this machine may stand for it). Each
    trial would run on without them, and its results mean something else than on a cluster."""
    container = primary_container(trial_spec, primary, labels)
    found = next((path for path, _, _, c in located_containers(trial_spec) if c is container), None)
    pod = next((spec for path, _, spec in workload_pods.pod_specs(trial_spec)
                if found is not None and found.startswith(f"{path}.spec.containers[")), None)
    if container is None or found is None or pod is None:
        return []
    pod_path = found.rsplit(".containers[", 1)[0]
    remedy = "or submit the study where trials run on Kubernetes, where the pod runs whole"
    problems = [Problem(f"{PATH}.{pod_path}.initContainers[{i}]", (
        f"init container {c.get('name')!r:.100} would not run: {LOCAL} the primary container's command runs alone, "
        f"as a process, so the trial would start without what the init container prepares; expected no init "
        f"containers here, {remedy}")) for i, c in _indexed(pod.get("initContainers"))]
    problems += [Problem(f"{PATH}.{pod_path}.containers[{i}]", (
        f"container {c.get('name')!r:.100} would not run beside the primary container "
        f"{container.get('name')!r:.100}: {LOCAL} the primary container's command runs alone, as a process; "
        f"expected the primary container alone in its pod here, {remedy}"))
        for i, c in _indexed(pod.get("containers")) if c is not container]
    return problems + _local_mounts(container, pod, f"{PATH}.{found}", remedy)


def _local_mounts(container: Mapping[str, Any], pod: Mapping[str, Any], where: str, remedy: str) -> list[Problem]:
    """The primary container's mounts of volumes that hold content of their own (all but an
    ``emptyDir``), each a problem: a local process sees this machine's folder at the mount's
    path, not the volume."""
    volumes = {v.get("name"): v for _, v in _indexed(pod.get("volumes"))}
    problems = []
    for i, mount in _indexed(container.get("volumeMounts")):
        volume = volumes.get(mount.get("name")) or {}
        if "emptyDir" in volume:
            continue
        source = next((key for key in volume if key != "name"), "a volume the pod does not define")
        problems.append(Problem(f"{where}.volumeMounts[{i}]", (
            f"mounts volume {mount.get('name')!r:.100} ({source}) at {mount.get('mountPath')!r:.200}: {LOCAL} the "
            f"primary container's command runs as a process, with no pod and no volume, and would read and write "
            f"this machine's folder of that path instead; expected no such mount here (an emptyDir is taken), "
            f"{remedy}")))
    return problems


def _env_sources(container: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """``(field, what it sets, where from)`` of each variable of ``container`` read from
    elsewhere: each ``env[i].valueFrom`` and ``envFrom[i]``."""
    for i, variable in enumerate(container.get("env") or []):
        if isinstance(variable, Mapping) and isinstance(variable.get("valueFrom"), Mapping):
            yield f"env[{i}].valueFrom", f"variable {variable.get('name')!r:.100}", _source(variable["valueFrom"])
    for i, source in enumerate(container.get("envFrom") or []):
        if isinstance(source, Mapping):
            yield f"envFrom[{i}]", "every variable it names", _source(source)


def _source(given: Mapping[str, Any]) -> str:
    """Where a ``valueFrom`` or ``envFrom`` entry reads from, as a person names it."""
    for key, text in SOURCES.items():
        if isinstance(given.get(key), Mapping):
            fields = {k: repr(str(v))[:100] for k, v in given[key].items()}
            return text.format_map({"fieldPath": "?", "resource": "resources", "key": "?", "name": "?", **fields})
    return "a source of the pod's"


def _run_fields(container: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(path in the container, text)`` of what a local process gets: its command and args,
    its variables' values and its working folder."""
    for key in ("command", "args"):
        for i, item in enumerate(container.get(key) or []):
            yield f"{key}[{i}]", str(item)
    for i, variable in enumerate(container.get("env") or []):
        if isinstance(variable, Mapping) and "value" in variable:
            yield f"env[{i}].value", str(variable["value"])
    if container.get("workingDir") is not None:
        yield "workingDir", str(container["workingDir"])


CONTAINER_FOLDER = "the workingDir of the trialSpec's primary container"
TEMPLATE_FOLDER = "trialTemplate.workingDir"


@dataclass(frozen=True)
class LocalFolder:
    """The folder a local trial runs in, as its template names it (placeholders not filled in),
    and the field that names it."""

    folder: str
    field: str

    @property
    def in_container(self) -> bool:
        """Whether it is the trialSpec primary container's ``workingDir`` (filled in as the
        container's other fields are: :func:`local_process`)."""
        return self.field == CONTAINER_FOLDER


def local_folder(template: TrialTemplate) -> LocalFolder | None:
    """Where a trial of ``template`` run on this machine runs, relative to the study's folder:
    the ``workingDir`` of its trialSpec's primary container, where Kubernetes runs its command,
    else ``trialTemplate.workingDir``; None for the study's folder. The launch runs the trial
    there, and the checks at submission resolve a relative metrics path against it, so what is
    checked is what is read."""
    if template.trial_spec is not None:
        container = primary_container(template.trial_spec, template.primary_container,
                                      dict(template.primary_pod_labels) or None) or {}
        folder = container.get("workingDir")
        if folder not in (None, ""):
            return LocalFolder(str(folder), CONTAINER_FOLDER)
    return None if template.working_dir is None else LocalFolder(template.working_dir, TEMPLATE_FOLDER)


def local_process(trial_spec: Mapping[str, Any], primary: str | None, params: Mapping[str, Any],
                  name: str, labels: Mapping[str, str] | None = None,
                  namespace: str | None = None) -> tuple[list[str], dict[str, str], str | None]:
    """The argv, extra environment and working directory (None where the container names none)
    of the primary container, to run as a local process (an empty argv where the workload has
    no container katuna can find, a kind it has no shape of; ``${trialSpec.Namespace}`` is the
    study's namespace). The container's ``workingDir`` is where Kubernetes runs its command, so
    the process runs there too, not in the study's folder."""
    context = template.spec_context(name, namespace, labels=(trial_spec.get("metadata") or {}).get("labels"),
                                    annotations=(trial_spec.get("metadata") or {}).get("annotations"),
                                    kind=str(trial_spec.get("kind")), api_version=str(trial_spec.get("apiVersion")))
    found = primary_container(trial_spec, primary, labels) or {}
    container = container_scripts.fill(found, [found], params, context)
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    env = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
    working_dir = container.get("workingDir")
    return argv, env, None if working_dir in (None, "") else str(working_dir)


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
    return value if is_deadline(value) else None
