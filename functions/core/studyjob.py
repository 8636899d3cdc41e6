"""Katib ``kubeflow.org/v1alpha1`` StudyJobs (the older format), translated to a native study.

The worker's Go template is rendered once, with placeholders where Katib would put values:
``{{.WorkerID}}`` becomes ``${trialSpec.Name}``, ``{{.NameSpace}}`` ``${trialSpec.Namespace}``,
and each hyperparameter's ``{{.Value}}`` ``${trialParameters.<name>}``. The result is parsed as
YAML into a ``trialSpec``, whose strings are substituted one by one per trial, so no value is
ever spliced into YAML text. The template constructs supported are those these templates use:
fields, ``with``, ``range`` and ``end``, with ``{{-``/``-}}`` trimming.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from functions.core import bounded_yaml, katib_numbers
from functions.core.errors import InvalidStudy, Problem
from functions.core.katib_search import typed_setting

API_VERSION = "kubeflow.org/v1alpha1"
ALGORITHMS = {"random": "random", "grid": "grid", "bayesianoptimization": "gp", "tpe": "tpe"}
_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_SPEC = {"studyName", "owner", "optimizationtype", "objectivevaluename", "optimizationgoal", "requestcount",
         "metricsnames", "parameterconfigs", "workerSpec", "suggestionSpec", "metricsCollectorSpec"}


TEMPLATE_PATH = ("names a key of the ConfigMap worker-template in the namespace of the service that runs the "
                 "StudyJob (where Katib's v1alpha1 controller read it), read when the StudyJob is submitted on the "
                 "cluster; there is no cluster here to read it from: copy that key's text into "
                 "spec.workerSpec.goTemplate.rawTemplate (kubectl get configmap worker-template -o yaml shows it) "
                 "and remove templatePath, or submit the StudyJob on the cluster")
"""Why ``templatePath`` is refused where it reaches the translation unread."""


def is_studyjob(data: Mapping[str, Any]) -> bool:
    return data.get("apiVersion") == API_VERSION and data.get("kind") == "StudyJob"


class TemplateError(ValueError):
    """The Go template uses a construct outside the supported subset."""


def render_go_template(text: str, root: Mapping[str, Any]) -> str:
    """``text`` rendered with ``root`` as ``.``, for the subset described above."""
    tokens = _tokens(text)
    out, rest = _render(tokens, 0, root)
    if rest != len(tokens):
        raise TemplateError("{{end}} without {{with}} or {{range}}")
    return out


def _tokens(text: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", body) pairs, with the trimming markers applied."""
    tokens: list[tuple[str, str]] = []
    position = 0
    for match in _ACTION.finditer(text):
        chunk = text[position:match.start()]
        if match.group(1):
            chunk = chunk.rstrip()
        tokens.append(("text", chunk))
        tokens.append(("action", match.group(2)))
        position = match.end()
        if match.group(3):
            while position < len(text) and text[position].isspace():
                position += 1
    tokens.append(("text", text[position:]))
    return tokens


def _render(tokens: list[tuple[str, str]], start: int, dot: Any) -> tuple[str, int]:
    out: list[str] = []
    index = start
    while index < len(tokens):
        kind, body = tokens[index]
        if kind == "text":
            out.append(body)
            index += 1
        elif body == "end":
            return "".join(out), index
        elif body.startswith(("with ", "range ")):
            word, _, field = body.partition(" ")
            value = _field(dot, field)
            end = _block_end(tokens, index + 1)
            items = ([value] if value else []) if word == "with" else list(value or [])
            out.extend(_render(tokens, index + 1, item)[0] for item in items)
            index = end + 1
        elif body.startswith("."):
            out.append(str(_field(dot, body)))
            index += 1
        else:
            raise TemplateError(f"unsupported template action {{{{{body}}}}}")
    return "".join(out), index


def _block_end(tokens: list[tuple[str, str]], start: int) -> int:
    depth = 0
    for index in range(start, len(tokens)):
        kind, body = tokens[index]
        if kind == "action" and body.startswith(("with ", "range ")):
            depth += 1
        elif kind == "action" and body == "end":
            if depth == 0:
                return index
            depth -= 1
    raise TemplateError("{{with}} or {{range}} without {{end}}")


def _field(dot: Any, path: str) -> Any:
    if path == ".":
        return dot
    value = dot
    for name in path.strip(".").split("."):
        if not isinstance(value, Mapping) or name not in value:
            raise TemplateError(f"unknown field .{name}")
        value = value[name]
    return value


def from_studyjob(data: Mapping[str, Any]) -> dict[str, Any]:
    """The native definition of a StudyJob, or :class:`InvalidStudy` listing every problem."""
    problems: list[Problem] = []
    metadata = data.get("metadata") or {}
    spec = data.get("spec") or {}
    problems += [Problem(f"spec.{key}", f"unknown field; expected one of {', '.join(sorted(_SPEC))}")
                 for key in spec if key not in _SPEC]
    if spec.get("metricsCollectorSpec"):
        problems.append(Problem("spec.metricsCollectorSpec", "not supported: metrics are read from the worker's output"))
    objective_name = spec.get("objectivevaluename")
    suggestion = spec.get("suggestionSpec") or {}
    per_round = suggestion.get("requestNumber", 1)
    parameters = [_parameter(p, f"spec.parameterconfigs[{i}]", problems)
                  for i, p in enumerate(spec.get("parameterconfigs") or [])]
    algorithm = suggestion.get("suggestionAlgorithm", "random")
    if algorithm not in ALGORITHMS:
        problems.append(Problem("spec.suggestionSpec.suggestionAlgorithm",
                                f"{algorithm!r} is not supported; expected one of {', '.join(ALGORITHMS)}"))
    native: dict[str, Any] = {
        "name": spec.get("studyName") or metadata.get("name"),
        "objective": {"metric": objective_name, "direction": spec.get("optimizationtype"),
                      **({"goal": spec["optimizationgoal"]} if spec.get("optimizationgoal") is not None else {}),
                      **({"additionalMetrics": [m for m in spec.get("metricsnames") or [] if m != objective_name]}
                         if spec.get("metricsnames") else {})},
        "parameters": parameters,
        "algorithm": _algorithm(algorithm, suggestion.get("suggestionParameters") or []),
        "parallelism": per_round,
        "maxTrials": spec.get("requestcount", 1) * per_round,
        "trialTemplate": {"trialSpec": _worker(spec.get("workerSpec") or {}, parameters, problems)},
    }
    if metadata.get("namespace"):
        native["kubernetes"] = {"namespace": metadata["namespace"]}
    if problems:
        raise InvalidStudy(problems)
    return native


def _algorithm(name: str, settings: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The sampler and its settings; ``seed`` or ``random_state`` becomes the study seed."""
    out: dict[str, Any] = {"name": ALGORITHMS.get(name, name), "settings": {}}
    for setting in settings:
        key, value = setting.get("name"), typed_setting(setting.get("value"))
        if key in ("seed", "random_state"):
            out["seed"] = value
        else:
            out["settings"][key] = value
    return out


def _parameter(config: Mapping[str, Any], path: str, problems: list[Problem]) -> dict[str, Any]:
    kind = {"int": "int", "double": "float", "categorical": "categorical"}.get(str(config.get("parametertype")))
    feasible = config.get("feasible") or {}
    out: dict[str, Any] = {"name": config.get("name"), "type": kind}
    if kind is None:
        problems.append(Problem(f"{path}.parametertype", "expected int, double or categorical"))
    elif kind == "categorical":
        out["values"] = list(feasible.get("list") or [])
    else:
        for key in ("min", "max"):
            out[key], problem = katib_numbers.parse(feasible.get(key), kind)
            if problem is not None:
                problems.append(Problem(f"{path}.feasible.{key}", problem))
    return out


def _worker(worker: Mapping[str, Any], parameters: list[dict[str, Any]], problems: list[Problem]) -> Any:
    path = "spec.workerSpec.goTemplate.rawTemplate"
    go_template = worker.get("goTemplate") or {}
    raw = go_template.get("rawTemplate")
    if go_template.get("templatePath") is not None:
        problems.append(Problem("spec.workerSpec.goTemplate.templatePath",
                                "give rawTemplate or templatePath, not both" if raw is not None else TEMPLATE_PATH))
        return None
    if not isinstance(raw, str):
        problems.append(Problem(path, "required: the worker Job as a Go template (on the cluster, without it, "
                                      "the key defaultWorkerTemplate.yaml of the ConfigMap worker-template is read)"))
        return None
    root = {"WorkerID": "${trialSpec.Name}", "NameSpace": "${trialSpec.Namespace}",
            "HyperParameters": [{"Name": p["name"], "Value": f"${{trialParameters.{p['name']}}}"} for p in parameters]}
    try:
        return _own_identity(bounded_yaml.load(render_go_template(raw, root)))
    except (TemplateError, yaml.YAMLError) as exc:
        problems.append(Problem(path, f"cannot be rendered: {exc}"))
        return None


_IDENTITY = {"name": "${trialSpec.Name}", "namespace": "${trialSpec.Namespace}"}


def _own_identity(worker: Any) -> Any:
    """The worker without the ``metadata.name`` and ``namespace`` that v1alpha1 templates give
    it as ``{{.WorkerID}}`` and ``{{.NameSpace}}``: every trial's workload has just those, and a
    ``trialSpec`` may name neither (any other name or namespace is left, to be refused)."""
    metadata = worker.get("metadata") if isinstance(worker, dict) else None
    if isinstance(metadata, dict):
        for key, own in _IDENTITY.items():
            if metadata.get(key) == own:
                del metadata[key]
    return worker
