"""Trial templates held in ConfigMaps, read once, when the study is submitted, and inlined.

A Katib Experiment's ``spec.trialTemplate.configMap`` names a ConfigMap (``configMapName``,
``configMapNamespace``) and the key (``templatePath``) whose text is the ``trialSpec``, as Katib's
controller reads it. A ``v1alpha1`` StudyJob without ``goTemplate.rawTemplate`` takes its worker
template from the key ``goTemplate.templatePath`` (else ``defaultWorkerTemplate.yaml``) of the
ConfigMap ``worker-template`` in the controller's own namespace, as Katib's ``v1alpha1``
controller did: katuna's namespace here.

Where there is a cluster to read from, the definition is stored as if it had given the template
inline (``trialSpec``, ``rawTemplate``), with the annotation :data:`SOURCE_ANNOTATION` saying where
it came from: a later change of the ConfigMap changes no running study, and a stored study never
needs the cluster again. Without a cluster, the translators refuse the field, saying why.

Katib substitutes into a ConfigMap template's text and reads the YAML afterwards, so an unquoted
``replicas: ${trialParameters.workers}`` becomes the integer ``2``; the stored definition lists
those unquoted scalars in the annotation :data:`katib_paths.TYPED_FIELDS_ANNOTATION`, and each is
read as one YAML scalar once substituted (a value never adds structure). A quoted one stays a
string, as it does in Katib, and so does one where Kubernetes takes only strings (Katib's
number there is a workload the API server refuses).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from functions.core import bounded_yaml, given_templates, katib, resources, studyjob, template_text
from functions.core.cluster_templates import ClusterTemplates, ConfigMapForbidden, ReadConfigMap
from functions.core.documents import Path
from functions.core.errors import InvalidStudy, Problem
from functions.core.formats import load_definition
from functions.core.katib_paths import TYPED_FIELDS_ANNOTATION
from functions.core.limits import DEFAULTS, Limits
from functions.core.source_annotation import SOURCE_ANNOTATION, annotated_source
from functions.core.spec import Study
from functions.core.study_file import GivenConfigMap
from functions.core.validate import none_stored

CONFIG_MAP = "spec.trialTemplate.configMap"
TEMPLATE_PATH = "spec.workerSpec.goTemplate.templatePath"
RAW_TEMPLATE = "spec.workerSpec.goTemplate.rawTemplate"
WORKER_TEMPLATES = "worker-template"
"""The ConfigMap of Katib ``v1alpha1``'s worker templates, in the controller's namespace."""
DEFAULT_WORKER_TEMPLATE = "defaultWorkerTemplate.yaml"
MAX_NAME = 253

def load(definition: dict[str, Any], cluster: ClusterTemplates | None, limits: Limits = DEFAULTS,
         stored: Callable[[str], bool] = none_stored, given: Sequence[GivenConfigMap] = (),
         read_file: Callable[[str], str] | None = None) -> tuple[Study, dict[str, Any]]:
    """The validated study of ``definition`` with any template held in a ConfigMap read from
    the ConfigMaps ``given`` in its file, else from ``cluster`` (None: no cluster to read from),
    and the definition to store (the template inline). Every problem is reported at once: those
    of reading the template, then the rest. ``stored`` tells whether a study of a name is stored
    already (:func:`functions.core.validate.parse_study`); ``read_file`` reads a warm start's
    file (the CLI's reader)."""
    resolved, problems = inline(definition, cluster, given)
    try:
        study, _ = load_definition(resolved, read_file, limits, stored)
    except InvalidStudy as exc:
        if not problems:
            raise
        raise InvalidStudy(problems + [p for p in exc.problems if p.path not in (CONFIG_MAP, TEMPLATE_PATH,
                                                                                    RAW_TEMPLATE)], exc.more) from exc
    if problems:
        raise InvalidStudy(problems)
    return study, resolved


def inline(definition: dict[str, Any], cluster: ClusterTemplates | None, given: Sequence[GivenConfigMap] = ()
           ) -> tuple[dict[str, Any], list[Problem]]:
    """``definition`` with the template its ConfigMap holds given inline and the source annotated,
    and the problems of reading it (then the definition is returned as it was): from the
    ConfigMaps ``given`` in its file where there are any (:mod:`given_templates`), else from
    ``cluster``. Unchanged without either, or when the template is inline already."""
    kind = _kind(definition)
    if given:
        return _from_file(definition, kind, given)
    if kind is None:
        return definition, []
    out = _unannotated(definition)
    spec = out.get("spec")
    if cluster is None or not isinstance(spec, Mapping):
        return out, []
    if kind == "Experiment":
        return _experiment(out, spec, cluster)
    return _studyjob(out, spec, cluster.read, cluster.home)


def _from_file(definition: dict[str, Any], kind: str | None, given: Sequence[GivenConfigMap]
               ) -> tuple[dict[str, Any], list[Problem]]:
    """The Experiment's template read from the ConfigMap of its file it names, as from a cluster's."""
    out = _unannotated(definition) if kind is not None else definition
    read, found, problems = given_templates.reader(out, kind == "Experiment", given)
    spec = out.get("spec")
    if problems or not isinstance(spec, Mapping):
        return out, problems
    if read is None or found is None:  # the reference lacks a field, which the reading names
        return _experiment(out, spec, ClusterTemplates(lambda namespace, name: None, home=""))
    return _experiment(out, spec, ClusterTemplates(read, home=""), f" (line {found.line} of the file)")


def as_stored(edited: dict[str, Any], stored: Mapping[str, Any], home: str) -> dict[str, Any]:
    """An edited resource's definition with the template the stored study read at submission,
    when the edit names the same source: the ConfigMap is not read again, and the template is
    not a change of the edit."""
    recorded = annotated_source(stored)
    kind = _kind(edited)
    spec = edited.get("spec")
    if recorded is None or kind is None or not isinstance(spec, Mapping):
        return edited
    kept = stored.get("spec") or {}
    swapped = _same_experiment_source(spec, kept, recorded) if kind == "Experiment" else \
        _same_worker_source(spec, kept, recorded, home)
    typed = ((stored.get("metadata") or {}).get("annotations") or {}).get(TYPED_FIELDS_ANNOTATION)
    return edited if swapped is None else _annotated({**_unannotated(edited), "spec": swapped}, recorded, typed)


def _same_experiment_source(spec: Mapping[str, Any], stored: Mapping[str, Any], recorded: str) -> dict[str, Any] | None:
    trial = spec.get("trialTemplate")
    given = trial.get("configMap") if isinstance(trial, Mapping) else None
    if not isinstance(trial, Mapping) or not isinstance(given, Mapping) or \
            _source(given.get("configMapNamespace"), given.get("configMapName"), given.get("templatePath")) != recorded:
        return None
    kept = (stored.get("trialTemplate") or {}).get("trialSpec")
    return {**spec, "trialTemplate": {**{k: v for k, v in trial.items() if k != "configMap"}, "trialSpec": kept}}


def _same_worker_source(spec: Mapping[str, Any], stored: Mapping[str, Any], recorded: str, home: str
                        ) -> dict[str, Any] | None:
    worker = spec.get("workerSpec") or {}
    template = worker.get("goTemplate") or {} if isinstance(worker, Mapping) else None
    if not isinstance(template, Mapping) or template.get("rawTemplate") is not None or \
            _worker_source(template, home) != recorded:
        return None
    kept = ((stored.get("workerSpec") or {}).get("goTemplate") or {}).get("rawTemplate")
    inlined = {**{k: v for k, v in template.items() if k != "templatePath"}, "rawTemplate": kept}
    return {**spec, "workerSpec": {**worker, "goTemplate": inlined}}


def _kind(definition: Mapping[str, Any]) -> str | None:
    """``Experiment`` (Katib's, or katuna's resource of one), ``StudyJob``, or None."""
    if katib.is_experiment(definition) or (resources.is_resource(definition) and definition.get("kind") == "Experiment"):
        return "Experiment"
    return "StudyJob" if studyjob.is_studyjob(definition) else None


def _unannotated(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without :data:`SOURCE_ANNOTATION` and the typed fields' annotation: only katuna's
    own reading of a ConfigMap sets them."""
    out = copy.deepcopy(dict(definition))
    metadata = out.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
        metadata["annotations"].pop(SOURCE_ANNOTATION, None)
        metadata["annotations"].pop(TYPED_FIELDS_ANNOTATION, None)
        if not metadata["annotations"]:
            del metadata["annotations"]
    return out


def _annotated(definition: dict[str, Any], source: str, typed: str | None = None) -> dict[str, Any]:
    """``definition`` saying where its template came from, and which of its fields are typed."""
    metadata = dict(definition.get("metadata") or {})
    added = {SOURCE_ANNOTATION: source, **({TYPED_FIELDS_ANNOTATION: typed} if typed else {})}
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **added}
    return {**definition, "metadata": metadata}


def _source(namespace: Any, name: Any, key: Any) -> str:
    return f"ConfigMap {namespace}/{name}, key {key}"


def _experiment(definition: dict[str, Any], spec: Mapping[str, Any], cluster: ClusterTemplates, where: str = ""
                ) -> tuple[dict[str, Any], list[Problem]]:
    """Katib's ``trialTemplate.configMap``: each of its fields required (Katib's webhook), and,
    as Katib sets no default conditions for a template it has not read, both conditions too; a
    namespace the resource may not take a template from is refused unread
    (:meth:`ClusterTemplates.refusal`). ``where`` follows the ConfigMap's name in messages and in
    the source annotation, for one given in the study's file."""
    trial = spec.get("trialTemplate")
    given = trial.get("configMap") if isinstance(trial, Mapping) else None
    if given is None or not isinstance(trial, Mapping) or trial.get("trialSpec") is not None:
        return definition, []
    if not isinstance(given, Mapping):
        return definition, [Problem(CONFIG_MAP, "expected configMapName, configMapNamespace and templatePath")]
    problems = [Problem(f"{CONFIG_MAP}.{key}", "required: configMapName, configMapNamespace and templatePath "
                                                "name the ConfigMap and the key holding the trialSpec")
                for key in ("configMapName", "configMapNamespace", "templatePath") if not given.get(key)]
    problems += [Problem(f"spec.trialTemplate.{key}", "required with a configMap template (Katib defaults "
                                                      "the conditions only for an inline trialSpec)")
                 for key in ("successCondition", "failureCondition") if not trial.get(key)]
    if problems:
        return definition, problems
    namespace, name, key = given["configMapNamespace"], given["configMapName"], given["templatePath"]
    refused = cluster.refusal(namespace) if isinstance(namespace, str) else None
    if refused is not None:
        return definition, [Problem(f"{CONFIG_MAP}.configMapNamespace", refused)]
    text, problems = _read(cluster.read, namespace, name, key, f"{CONFIG_MAP}.configMapName",
                           f"{CONFIG_MAP}.configMapNamespace", f"{CONFIG_MAP}.templatePath", where)
    if text is None:
        return definition, problems
    if (refused := template_text.first_chunk_refusal(text)) is not None:
        return definition, [Problem(f"{CONFIG_MAP}.templatePath", f"the key {key!r} of ConfigMap {namespace}/{name}{where} "
                                                                   f"{refused}")]
    try:
        trial_spec, plain = template_text.read(text)
    except yaml.YAMLError as exc:
        language = template_text.language(text)
        return definition, [Problem(f"{CONFIG_MAP}.templatePath", f"the key {key!r} of ConfigMap {namespace}/{name}{where} "
                                                                   f"is not valid {language}: {bounded_yaml.describe(exc)}")]
    if not isinstance(trial_spec, Mapping):
        return definition, [Problem(f"{CONFIG_MAP}.templatePath", f"the key {key!r} of ConfigMap {namespace}/{name}{where} "
                                                                   "holds no trialSpec: expected a mapping "
                                                                   "(apiVersion, kind, spec)")]
    inlined = {k: v for k, v in trial.items() if k != "configMap"}
    inlined["trialSpec"] = trial_spec
    typed_paths = [list(path) for path in plain if not _string_only(path)]
    typed = json.dumps(typed_paths) if typed_paths else None
    source = _source(namespace, name, key) + (", given in the submitted file" if where else "")
    return _annotated({**definition, "spec": {**spec, "trialTemplate": inlined}}, source, typed), []


def _string_only(path: Path) -> bool:
    """Whether Kubernetes takes only a string at ``path``: a container's command and args, an
    environment value, a label or an annotation. Katib's typing there (``- ${trialParameters.lr}``
    as a number) makes the API server refuse the trial's workload; katuna keeps the string."""
    return (len(path) >= 2 and (path[-2] in ("command", "args") and isinstance(path[-1], int)
                                or path[-2] in ("labels", "annotations")))\
        or (len(path) >= 3 and path[-3] == "env" and path[-1] == "value")


def _studyjob(definition: dict[str, Any], spec: Mapping[str, Any], read: ReadConfigMap, home: str
              ) -> tuple[dict[str, Any], list[Problem]]:
    """A ``v1alpha1`` worker template from the ``worker-template`` ConfigMap, unless given raw."""
    worker = spec.get("workerSpec") or {}
    template = worker.get("goTemplate") or {} if isinstance(worker, Mapping) else None
    if not isinstance(template, Mapping) or template.get("rawTemplate") is not None:
        return definition, []
    key = template.get("templatePath") or DEFAULT_WORKER_TEMPLATE
    text, problems = _read(read, home, WORKER_TEMPLATES, key, TEMPLATE_PATH, TEMPLATE_PATH, TEMPLATE_PATH)
    if text is None:
        return definition, problems
    inlined = {**{k: v for k, v in template.items() if k != "templatePath"}, "rawTemplate": text}
    return _annotated({**definition, "spec": {**spec, "workerSpec": {**worker, "goTemplate": inlined}}},
                      _source(home, WORKER_TEMPLATES, key)), []


def _worker_source(template: Mapping[str, Any], home: str) -> str:
    return _source(home, WORKER_TEMPLATES, template.get("templatePath") or DEFAULT_WORKER_TEMPLATE)


def _read(read: ReadConfigMap, namespace: Any, name: Any, key: Any, name_path: str, namespace_path: str,
          key_path: str, where: str = "") -> tuple[str | None, list[Problem]]:
    """The text at ``key`` of the ConfigMap, or the problems naming the field at fault."""
    for value, path in ((name, name_path), (namespace, namespace_path), (key, key_path)):
        if not isinstance(value, str) or len(value) > MAX_NAME or "/" in value or value in (".", ".."):
            return None, [Problem(path, f"expected a Kubernetes name, got {value!r}")]
    try:
        data = read(namespace, name)
    except ConfigMapForbidden as exc:
        return None, [Problem(namespace_path, str(exc))]
    if data is None:
        return None, [Problem(name_path, f"no ConfigMap {name!r} in namespace {namespace!r}")]
    if not isinstance(data.get(key), str):
        keys = ", ".join(sorted(map(str, data))) or "none"
        return None, [Problem(key_path, f"ConfigMap {namespace}/{name}{where} has no key {key!r}; its keys: {keys}")]
    return data[key], []
