"""Katib ``kubeflow.org/v1alpha1`` StudyJobs (the older format), translated to a native study.

The worker's Go template is rendered once, with placeholders where Katib would put values:
``{{.WorkerID}}`` becomes ``${trialSpec.Name}``, ``{{.NameSpace}}`` ``${trialSpec.Namespace}``,
and each hyperparameter's ``{{.Value}}`` ``${trialParameters.<name>}``. The result is parsed as
YAML into a ``trialSpec``, whose strings are substituted one by one per trial, so no value is
ever spliced into YAML text. The template constructs supported are those these templates use:
fields, ``with``, ``range`` and ``end``, with ``{{-``/``-}}`` trimming. A template is read in
one pass, nests at most :data:`MAX_NESTING` blocks and renders to at most
:data:`~functions.core.yaml_bounds.MAX_CHARS` characters (or four times its own length): a
``range`` over each parameter's value repeats its body once a character, so a few kilobytes
would otherwise stand for gigabytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from functions.core import bounded_yaml, katib_numbers, yaml_bounds
from functions.core.errors import InvalidStudy, Problem
from functions.core.katib_search import typed_setting

API_VERSION = "kubeflow.org/v1alpha1"
ALGORITHMS = {"random": "random", "grid": "grid", "bayesianoptimization": "gp", "tpe": "tpe"}
IMPLIED = {"tpe": {"multivariate": False}}
"""Settings implied by an algorithm's name: ``tpe`` (katuna's own here, as Katib's v1alpha1 had
no tpe service) models each parameter on its own, as Katib's v1beta1 ``tpe`` (hyperopt's) does,
where Optuna's TPE models them jointly by default for one objective."""
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


MAX_NESTING = 32
"""``with`` and ``range`` blocks a template may nest: rendering goes one level deeper for each,
and Katib's worker templates nest two."""


class _Output:
    """The rendered text, refused (:class:`TemplateError`) once past ``most`` characters."""

    def __init__(self, most: int) -> None:
        self.parts: list[str] = []
        self.left = most
        self.most = most

    def add(self, text: str) -> None:
        self.left -= len(text)
        if self.left < 0:
            raise TemplateError(f"renders to more than {self.most:,} characters (a range repeats its body "
                                "for each item)")
        self.parts.append(text)


def render_go_template(text: str, root: Mapping[str, Any]) -> str:
    """``text`` rendered with ``root`` as ``.``, for the subset described above, in at most
    :data:`~functions.core.yaml_bounds.MAX_CHARS` characters (or four times ``text``'s length)."""
    tokens = _tokens(text)
    out = _Output(max(yaml_bounds.MAX_CHARS, 4 * len(text)))
    _render(tokens, _block_ends(tokens), 0, len(tokens), root, out)
    return "".join(out.parts)


def _tokens(text: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", body) pairs, with the trimming markers applied: an action is
    ``{{`` to the first ``}}`` after it, ``-`` just inside either end trimming the space beside it.
    Read in one pass: where no ``}}`` follows a ``{{``, none follows a later one either."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while (start := text.find("{{", position)) >= 0 and (end := text.find("}}", start + 2)) >= 0:
        inner = text[start + 2:end]
        trim_before = inner.startswith("-")
        inner = inner[1:].lstrip() if trim_before else inner.lstrip()
        trim_after = inner.endswith("-")
        chunk = text[position:start]
        tokens.append(("text", chunk.rstrip() if trim_before else chunk))
        tokens.append(("action", (inner[:-1] if trim_after else inner).rstrip()))
        position = end + 2
        if trim_after:
            while position < len(text) and text[position].isspace():
                position += 1
    tokens.append(("text", text[position:]))
    return tokens


def _render(tokens: list[tuple[str, str]], ends: dict[int, int], start: int, stop: int, dot: Any,
            out: _Output) -> None:
    """The tokens from ``start`` to ``stop`` rendered with ``dot`` as ``.`` into ``out``
    (``ends``: the ``{{end}}`` of each block, :func:`_block_ends`)."""
    index = start
    while index < stop:
        kind, body = tokens[index]
        if kind == "text":
            out.add(body)
            index += 1
        elif body.startswith(("with ", "range ")):
            word, _, field = body.partition(" ")
            value = _field(dot, field)
            items = ([value] if value else []) if word == "with" else list(value or [])
            for item in items:
                _render(tokens, ends, index + 1, ends[index], item, out)
            index = ends[index] + 1
        elif body.startswith("."):
            out.add(str(_field(dot, body)))
            index += 1
        else:
            raise TemplateError(f"unsupported template action {{{{{body}}}}}")


def _block_ends(tokens: list[tuple[str, str]]) -> dict[int, int]:
    """The index of each block's ``{{end}}``, by the index of its ``{{with}}`` or ``{{range}}``;
    a :class:`TemplateError` for an ``{{end}}`` or a block left unpaired, or blocks nested
    deeper than :data:`MAX_NESTING`."""
    ends: dict[int, int] = {}
    open_blocks: list[int] = []
    for index, (kind, body) in enumerate(tokens):
        if kind == "action" and body.startswith(("with ", "range ")):
            open_blocks.append(index)
            if len(open_blocks) > MAX_NESTING:
                raise TemplateError(f"{{{{with}}}} and {{{{range}}}} blocks nested deeper than {MAX_NESTING}")
        elif kind == "action" and body == "end":
            if not open_blocks:
                raise TemplateError("{{end}} without {{with}} or {{range}}")
            ends[open_blocks.pop()] = index
    if open_blocks:
        raise TemplateError("{{with}} or {{range}} without {{end}}")
    return ends


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
    """The sampler and its settings, those Katib's service implies first (its ``tpe`` models
    each parameter on its own); ``seed`` or ``random_state`` becomes the study seed."""
    out: dict[str, Any] = {"name": ALGORITHMS.get(name, name), "settings": dict(IMPLIED.get(name, {}))}
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
