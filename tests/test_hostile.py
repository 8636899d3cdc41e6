"""Hostile input against the real service: every malformed or malicious study definition and
event is answered 4xx at once, with a message naming the field, and nothing is stored.

The corpus is data (``STUDIES``, ``TEXTS``, ``EVENTS``); each case is one request to ``katuna
serve`` (gunicorn, loopback). Valid but dangerous values (shell metacharacters, ``${...}`` in a
categorical value) are not in it: they are legitimate, and ``test_injection.py`` proves they
reach the trial literally.
"""

from __future__ import annotations

import copy
import http.client
import json
import sqlite3
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from http_helpers import Service

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT = 20.0
"""Seconds a hostile request may take before the test fails: a request that hangs (a regular
expression that backtracks for ever, a body read without end) is told from one answered slowly
on a loaded machine (answers take milliseconds to a second: 10,001 categorical values as YAML)."""


def _mutated(change: Callable[[dict], None]) -> dict:
    definition = study_definition(name="hostile")
    change(definition)
    return definition


def _set(path: str, value) -> Callable[[dict], None]:
    """A change that sets a dotted path (``parameters.0.min``) to ``value``."""
    def change(definition: dict) -> None:
        *parents, last = path.split(".")
        node = definition
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


def _drop(key: str) -> Callable[[dict], None]:
    return lambda definition: definition.pop(key)


def _command(*argv: str) -> Callable[[dict], None]:
    return _set("trialTemplate.command", [sys.executable, "t.py", "--x", "${trialParameters.x}", *argv])


KATIB = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "hostile"},
         "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                  "algorithm": {"algorithmName": "random"}, "maxTrialCount": 2, "parallelTrialCount": 1,
                  "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
                  "trialTemplate": {"primaryContainerName": "training",
                                    "trialParameters": [{"name": "x", "reference": "x"}],
                                    "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
                                        "spec": {"containers": [{"name": "training", "image": "python",
                                                                 "command": ["python", "t.py", "${trialParameters.x}"]}
                                                                ]}}}}}}}


def _katib(path: str, value) -> dict:
    experiment = copy.deepcopy(KATIB)
    _set(path, value)(experiment)
    return experiment


def _studyjob(template: str, names: int = 1) -> dict:
    """A Katib v1alpha1 StudyJob whose worker template is ``template``, with ``names`` parameters."""
    return {"apiVersion": "kubeflow.org/v1alpha1", "kind": "StudyJob", "metadata": {"name": "hostile"},
            "spec": {"studyName": "hostile", "owner": "crd", "optimizationtype": "minimize",
                     "objectivevaluename": "loss", "requestcount": 2, "metricsnames": ["loss"],
                     "parameterconfigs": [{"name": f"p{i}" + "x" * 1_000, "parametertype": "double",
                                           "feasible": {"min": "0", "max": "1"}} for i in range(names)],
                     "workerSpec": {"goTemplate": {"rawTemplate": template}},
                     "suggestionSpec": {"suggestionAlgorithm": "random", "requestNumber": 1}}}


_RAW_TEMPLATE = "spec.workerSpec.goTemplate.rawTemplate"

# (case id, definition, a field path the answer must name)
STUDIES: list[tuple[str, dict, str]] = [
    ("name-not-a-string", _mutated(_set("name", 5)), "name"),
    ("name-upper-case", _mutated(_set("name", "Bad_Name")), "name"),
    ("name-too-long", _mutated(_set("name", "a" * 64)), "name"),
    ("name-leading-dash", _mutated(_set("name", "-lead")), "name"),
    ("name-empty", _mutated(_set("name", "")), "name"),
    ("name-nul-byte", _mutated(_set("name", "x\u0000y")), "name"),
    ("name-path-traversal", _mutated(_set("name", "../../etc")), "name"),
    ("name-missing", _mutated(_drop("name")), "name"),
    ("maxTrials-string", _mutated(_set("maxTrials", "10")), "maxTrials"),
    ("maxTrials-negative", _mutated(_set("maxTrials", -1)), "maxTrials"),
    ("maxTrials-fraction", _mutated(_set("maxTrials", 1.5)), "maxTrials"),
    ("maxTrials-boolean", _mutated(_set("maxTrials", True)), "maxTrials"),
    ("maxTrials-null-and-no-other-end", _mutated(_drop("maxTrials")), "maxTrials"),
    ("parallelism-zero", _mutated(_set("parallelism", 0)), "parallelism"),
    ("parallelism-huge", _mutated(_set("parallelism", 10**30)), "parallelism"),
    ("parallelism-over-maxTrials", _mutated(_set("parallelism", 5)), "parallelism"),
    ("maxFailedTrials-negative", _mutated(_set("maxFailedTrials", -3)), "maxFailedTrials"),
    ("min-greater-than-max", _mutated(_set("parameters.0.min", 9.0)), "parameters[0].max"),
    ("min-not-a-number", _mutated(_set("parameters.0.min", "a")), "parameters[0].min"),
    ("max-missing", _mutated(lambda d: d["parameters"][0].pop("max")), "parameters[0].max"),
    ("parameter-type-unknown", _mutated(_set("parameters.0.type", "complex")), "parameters[0].type"),
    ("parameters-empty", _mutated(_set("parameters", [])), "parameters"),
    ("parameters-not-a-list", _mutated(_set("parameters", "x")), "parameters"),
    ("parameter-name-ending-its-placeholder", _mutated(_set("parameters.0.name", "x}y")), "parameters[0].name"),
    ("parameter-duplicated", _mutated(lambda d: d["parameters"].append(dict(d["parameters"][0]))), "parameters"),
    ("step-negative", _mutated(_set("parameters.0.step", -0.5)), "parameters[0].step"),
    ("log-scale-from-zero", _mutated(lambda d: d["parameters"][0].update(log=True, min=0.0)), "parameters[0].min"),
    ("int-with-float-bounds", _mutated(_set("parameters.0.type", "int")), "parameters[0].min"),
    ("categorical-empty", _mutated(_set("parameters.0", {"name": "x", "type": "categorical", "values": []})),
     "parameters[0].values"),
    ("categorical-mapping-value", _mutated(_set("parameters.0", {"name": "x", "type": "categorical",
                                                                  "values": [{"rm": "-rf"}]})),
     "parameters[0].values[0]"),
    ("categorical-repeated", _mutated(_set("parameters.0", {"name": "x", "type": "categorical",
                                                            "values": ["a", "a"]})), "parameters[0].values"),
    ("discrete-string", _mutated(_set("parameters.0", {"name": "x", "type": "discrete", "values": [1, "two"]})),
     "parameters[0].values[1]"),
    ("categorical-equal-to-optuna", _mutated(_set("parameters.0", {"name": "x", "type": "categorical",
                                                                   "values": ["a", 1, True]})), "parameters[0].values[2]"),
    ("categorical-same-text", _mutated(_set("parameters.0", {"name": "x", "type": "categorical",
                                                             "values": [None, "None"]})), "parameters[0].values[1]"),
    ("discrete-same-number", _mutated(_set("parameters.0", {"name": "x", "type": "discrete",
                                                            "values": ["16", 32, 16.0]})), "parameters[0].values[2]"),
    ("algorithm-unknown", _mutated(_set("algorithm.name", "annealing-by-hand")), "algorithm"),
    ("algorithm-not-a-mapping", _mutated(_set("algorithm", 7)), "algorithm"),
    ("algorithm-setting-unknown", _mutated(_set("algorithm.settings", {"warp": 9})), "algorithm"),
    ("direction-sideways", _mutated(_set("objective.direction", "sideways")), "objective.direction"),
    ("objective-missing", _mutated(_drop("objective")), "objective"),
    ("metric-unmatchable", _mutated(_set("objective.metric", "a b")), "objective"),
    ("goal-not-a-number", _mutated(_set("objective.goal", "low")), "objective.goal"),
    ("unknown-top-field", _mutated(_set("maxTrial", 3)), "maxTrial"),
    ("unknown-parameter-field", _mutated(_set("parameters.0.mn", 1)), "parameters[0].mn"),
    ("unknown-template-field", _mutated(_set("trialTemplate.shell", True)), "trialTemplate.shell"),
    ("template-missing", _mutated(_drop("trialTemplate")), "trialTemplate"),
    ("command-empty", _mutated(_set("trialTemplate.command", [])), "trialTemplate.command"),
    ("command-a-shell-string", _mutated(_set("trialTemplate.command", "python t.py ${trialParameters.x}")),
     "trialTemplate.command"),
    ("command-nested-list", _mutated(_set("trialTemplate.command", [["python"], "${trialParameters.x}"])),
     "trialTemplate.command[0]"),
    ("placeholder-undefined-parameter", _mutated(_command("--y", "${trialParameters.y}")),
     "trialTemplate.command[5]"),
    ("placeholder-unknown-kind", _mutated(_command("${env.HOME}")), "trialTemplate.command[4]"),
    ("placeholder-shell-expansion", _mutated(_command("$(touch /tmp/pwned)${HOME}")), "trialTemplate.command[4]"),
    ("env-name-invalid", _mutated(_set("trialTemplate.env", {"1X": "a"})), "trialTemplate.env.1X"),
    ("env-value-mapping", _mutated(_set("trialTemplate.env", {"X": {"a": 1}})), "trialTemplate.env.X"),
    ("timeout-word", _mutated(_set("trialTemplate.timeout", "forever")), "trialTemplate.timeout"),
    ("timeBudget-negative", _mutated(_set("timeBudget", -5)), "timeBudget"),
    ("maxAttempts-zero", _mutated(_set("trialTemplate.maxAttempts", 0)), "trialTemplate.maxAttempts"),
    ("workingDir-number", _mutated(_set("trialTemplate.workingDir", 5)), "trialTemplate.workingDir"),
    ("collector-kind-unknown", _mutated(_set("metricsCollector", {"kind": "socket"})), "metricsCollector.kind"),
    ("collector-non-finite-unknown", _mutated(_set("metricsCollector", {"nonFinite": "ignore"})),
     "metricsCollector.nonFinite"),
    ("collector-steps-unknown", _mutated(_set("metricsCollector", {"steps": "epochs"})), "metricsCollector.steps"),
    ("collector-filter-unclosed", _mutated(_set("metricsCollector", {"filters": ["(unclosed"]})),
     "metricsCollector.filters[0]"),
    ("collector-filter-one-group", _mutated(_set("metricsCollector", {"filters": ["(loss)"]})),
     "metricsCollector.filters[0]"),
    ("earlyStopping-unknown", _mutated(_set("earlyStopping", {"algorithm": "hunch"})), "earlyStopping"),
    ("kubernetes-unknown-field", _mutated(_set("kubernetes", {"hostNetwork": True})), "kubernetes.hostNetwork"),
    ("warmStart-file-on-the-service", _mutated(_set("warmStart", {"file": "/etc/passwd"})), "warmStart.file"),
    ("trialSpec-not-a-job", _mutated(_set("trialTemplate", {"trialSpec": {"kind": "Pod"}})),
     "trialTemplate.trialSpec"),
    ("katib-algorithm-unknown", _katib("spec.algorithm.algorithmName", "darts-by-hand"), "algorithm"),
    ("katib-min-above-max", _katib("spec.parameters.0.feasibleSpace.max", "-1"), "max"),
    ("katib-count-string", _katib("spec.maxTrialCount", "many"), "spec.maxTrialCount"),
    # no trial starts with a NUL character in its argv, environment or working directory
    ("command-nul-byte", _mutated(_command("a\u0000b")), "trialTemplate.command[4]"),
    ("env-value-nul-byte", _mutated(_set("trialTemplate.env", {"X": "a\u0000b"})), "trialTemplate.env.X"),
    ("workingDir-nul-byte", _mutated(_set("trialTemplate.workingDir", "a\u0000b")), "trialTemplate.workingDir"),
    ("categorical-nul-byte", _mutated(_set("parameters.0", {"name": "x", "type": "categorical",
                                                            "values": ["a\u0000b"]})), "parameters[0].values[0]"),
    # nor with a lone surrogate (JSON's "\\ud800"), which UTF-8 cannot hold either
    ("command-lone-surrogate", _mutated(_command("a\ud800b")), "trialTemplate.command[4]"),
    ("env-name-lone-surrogate", _mutated(_set("trialTemplate.env", {"X\udc80": "a"})), "trialTemplate.env.X\\udc80"),
    ("description-lone-surrogate", _mutated(_set("description", "caf\udce9")), "description"),
    ("env-value-lone-surrogate", _mutated(_set("trialTemplate.env", {"X": "a\udfffb"})), "trialTemplate.env.X"),
    # katuna's own variables of a trial are katuna's
    ("env-name-katunas", _mutated(_set("trialTemplate.env", {"KATUNA_TRIAL": "0"})), "trialTemplate.env.KATUNA_TRIAL"),
    # every placeholder names a parameter, and the metrics file is the trial's
    ("workingDir-unknown-parameter", _mutated(_set("trialTemplate.workingDir", "runs/${trialParameters.nope}")),
     "trialTemplate.workingDir"),
    ("collector-path-unknown-parameter", _mutated(_set("metricsCollector", {"kind": "file",
                                                                          "path": "${trialParameters.nope}.log"})),
     "metricsCollector.path"),
    ("collector-path-climbing-out", _mutated(_set("metricsCollector", {"kind": "file", "path": "../../.ssh/id_rsa"})),
     "metricsCollector.path"),
    # names are matched whole: a trailing newline is not part of a name
    ("name-trailing-newline", _mutated(_set("name", "hostile\n")), "name"),
    ("parameter-name-trailing-newline", _mutated(_set("parameters.0.name", "x\n")), "parameters[0].name"),
    ("env-name-trailing-newline", _mutated(_set("trialTemplate.env", {"X\n": "a"})), "trialTemplate.env.X"),
    # what one accepted study may cost: each bound names the field (and the limit, see BOUNDS)
    ("parallelism-past-the-limit", _mutated(lambda d: d.update(parallelism=1_001, maxTrials=2_000)), "parallelism"),
    ("maxTrials-a-billion", _mutated(_set("maxTrials", 10**9)), "maxTrials"),
    ("maxTrials-10e30", _mutated(_set("maxTrials", 10**30)), "maxTrials"),
    ("maxTrials-a-float-billion", _mutated(_set("maxTrials", 1e9)), "maxTrials"),
    ("maxFailedTrials-past-the-limit", _mutated(_set("maxFailedTrials", 10**7)), "maxFailedTrials"),
    ("timeBudget-past-the-limit", _mutated(_set("timeBudget", "1000d")), "timeBudget"),
    ("timeout-past-the-limit", _mutated(_set("trialTemplate.timeout", "1000d")), "trialTemplate.timeout"),
    ("maxAttempts-past-the-limit", _mutated(_set("trialTemplate.maxAttempts", 10**6)), "trialTemplate.maxAttempts"),
    ("parameters-past-the-limit", _mutated(_set("parameters", [{"name": f"p{i}", "type": "float", "min": 0, "max": 1}
                                                              for i in range(257)])), "parameters"),
    ("categorical-values-past-the-limit", _mutated(_set("parameters.0", {"name": "x", "type": "categorical",
                                                                         "values": list(range(10_001))})),
     "parameters[0].values"),
    ("grid-of-10e12-points", _mutated(lambda d: d.update(algorithm={"name": "grid"}, parameters=[
        {"name": "x", "type": "float", "min": 0.0, "max": 1.0, "step": 1e-12}])), "parameters"),
    ("float-step-too-fine", _mutated(lambda d: d["parameters"][0].update(min=0.0, max=1e20, step=1e-10)),
     "parameters[0].step"),
    ("float-bounds-1e308", _mutated(lambda d: d["parameters"][0].update(min=-1e308, max=1e308)), "parameters[0].max"),
    ("filter-backreference", _mutated(_set("metricsCollector", {"filters": [r"(\w+)=(\d+)\1"]})),
     "metricsCollector.filters[0]"),
    ("filter-lookahead", _mutated(_set("metricsCollector", {"filters": [r"(\w+)=(?=(a+)+$)(\d+)"]})),
     "metricsCollector.filters[0]"),
    # settings are converted to the types the sampler takes, and the sampler built once
    ("setting-not-an-integer", _mutated(_set("algorithm", {"name": "tpe", "settings": {"n_startup_trials": "abc"}})),
     "algorithm.settings.n_startup_trials"),
    ("setting-refused-by-the-sampler", _mutated(_set("algorithm", {"name": "cmaes", "settings": {"popsize": -4}})),
     "algorithm.settings.popsize"),
    ("tpe-gamma-out-of-range", _mutated(_set("algorithm", {"name": "tpe", "settings": {"gamma": 5}})),
     "algorithm.settings.gamma"),
    ("pruner-setting-not-an-integer", _mutated(_set("earlyStopping", {"algorithm": "median", "settings": {
        "n_warmup_steps": "abc"}})), "earlyStopping.settings.n_warmup_steps"),
    ("pruner-setting-refused", _mutated(_set("earlyStopping", {"algorithm": "percentile", "settings": {
        "percentile": 150}})), "earlyStopping.settings.percentile"),
    ("katib-maxFailedTrialCount-above-maxTrialCount", _katib("spec.maxFailedTrialCount", 3),
     "spec.maxFailedTrialCount"),
    ("katib-parallelTrialCount-above-maxTrialCount", _katib("spec.parallelTrialCount", 3), "spec.parallelTrialCount"),
    ("katib-metricsFormat-backreference", _katib("spec.metricsCollectorSpec", {"source": {"filter": {
        "metricsFormat": [r"(\w+)=(\d+)\1"]}}}), "spec.metricsCollectorSpec.source.filter.metricsFormat[0]"),
    ("katib-gamma-not-a-number", _katib("spec.algorithm", {"algorithmName": "tpe", "algorithmSettings": [
        {"name": "gamma", "value": "a quarter"}]}), "spec.algorithm.algorithmSettings[0].value"),
    # text whose reading would grow with its square, or a template with its output's
    ("studyjob-template-unclosed-actions", _studyjob("{{" * 400_000), _RAW_TEMPLATE),
    ("studyjob-template-range-per-character", _studyjob(
        "{{range .HyperParameters}}{{range .Value}}" + "y" * 20_000 + "{{end}}{{end}}", names=50), _RAW_TEMPLATE),
    ("studyjob-template-nested-blocks", _studyjob("{{with .}}" * 3_000 + "{{end}}" * 3_000), _RAW_TEMPLATE),
    ("placeholders-unclosed", _mutated(_command("${trialSpec." * 80_000)), "trialTemplate.command[4]"),
    ("placeholders-nested", _mutated(_command("${" * 150_000 + "}" * 150_000)), "trialTemplate.command[4]"),
]

# (case id, definition, field path, the limit the message must state)
BOUNDS: list[tuple[str, dict, str, str]] = [
    ("parallelism", _mutated(lambda d: d.update(parallelism=1_001, maxTrials=2_000)), "parallelism",
     "at most 1,000 (set by KATUNA_MAX_PARALLELISM)"),
    ("maxTrials", _mutated(_set("maxTrials", 10**9)), "maxTrials", "at most 1,000,000 (set by KATUNA_MAX_TRIALS)"),
    ("maxTrials-beyond-exact-floats", _mutated(_set("maxTrials", 10**30)), "maxTrials", "at most 2**53"),
    ("grid", _mutated(lambda d: d.update(algorithm={"name": "grid"}, parameters=[
        {"name": "x", "type": "float", "min": 0.0, "max": 1.0, "step": 1e-12}])), "parameters",
     "at most 100,000 (KATUNA_MAX_GRID)"),
    ("timeBudget", _mutated(_set("timeBudget", "1000d")), "timeBudget", "at most 31,622,400.0 seconds (set by KATUNA_MAX_DURATION)"),
    ("warmStart", _mutated(_set("warmStart", {"trials": [{"params": {"x": 0.5}, "value": 1.0}] * 1_001})),
     "warmStart.trials", "at most 1,000 (set by KATUNA_MAX_WARM_START)"),
]

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
_VALID_YAML = yaml.safe_dump(study_definition(name="hostile"))
LONG_TEXT_BOMB = f"x: &a \"{'x' * 100_000}\"\n" + f"junk: [{', '.join(['*a'] * 2_000)}]\n"
"""2,000 references to one 100 KB string: a 108 KB body standing for 200 MB of text in 2,000 nodes."""

# (case id, content type, body, expected status, a word the answer must contain)
TEXTS: list[tuple[str, str, bytes, int, str]] = [
    ("not-yaml", "application/yaml", b"name: [unclosed", 400, "YAML"),
    ("top-level-list", "application/yaml", b"- name: hostile\n", 422, "mapping"),
    ("top-level-scalar", "application/json", b'"hostile"', 422, "mapping"),
    ("empty-body", "application/json", b"", 400, "empty"),
    ("json-nan-literal", "application/json", json.dumps(study_definition(name="hostile", maxTrials=float("nan")))
     .encode(), 422, "maxTrials"),
    ("yaml-nan", "application/yaml", _VALID_YAML.replace("min: -5.0", "min: .nan").encode(), 422,
     "parameters[0].min"),
    ("yaml-infinity", "application/yaml", _VALID_YAML.replace("max: 5.0", "max: .inf").encode(), 422,
     "parameters[0].max"),
    ("float-overflow", "application/yaml", _VALID_YAML.replace("max: 5.0", "max: 1.0e+400").encode(), 422,
     "parameters[0].max"),
    # plain scalars YAML 1.1 and 1.2 read differently: refused by their path, never read one way
    ("yaml-1.1-sexagesimal", "application/yaml", (_VALID_YAML + "timeBudget: 1:30\n").encode(), 422,
     'timeBudget: 1:30 (line 23, column 13) is 90 in YAML 1.1 but the text \\"1:30\\" in YAML 1.2; quote it'),
    ("yaml-1.1-octal", "application/yaml", _VALID_YAML.replace("maxTrials: 4", "maxTrials: 010").encode(), 422,
     "maxTrials: 010 (line 4, column 12) is 8 in YAML 1.1 but 10 in YAML 1.2"),
    ("yaml-1.1-boolean", "application/yaml", _VALID_YAML.replace("- ok", "- on").encode(), 422,
     '"path": "trialTemplate.command[5]"'),
    ("yaml-1.1-underscore", "application/yaml", _VALID_YAML.replace("seed: 1", "seed: 1_000").encode(), 422,
     "algorithm.seed: 1_000 (line 3, column 9) is 1000 in YAML 1.1 but the text"),
    ("yaml-1.1-boolean-key", "application/yaml", _VALID_YAML.replace("  seed: 1", "  seed: 1\n  off: 1").encode(),
     422, "the key off (line 4, column 3) is false in YAML 1.1"),
    ("billion-laughs", "application/yaml", (BOMB + _VALID_YAML).encode(), 400, "aliases"),
    ("billion-laughs-in-trialSpec", "application/yaml", (
        "trialTemplate:\n  trialSpec:\n    apiVersion: batch/v1\n    kind: Job\n    metadata:\n      annotations:\n"
        + "".join(f"        {line}\n" for line in BOMB.splitlines())
        + _VALID_YAML.split("trialTemplate:")[0]).encode(), 400, "aliases"),
    ("long-text-laughs", "application/yaml", (LONG_TEXT_BOMB + _VALID_YAML).encode(), 400,
     "more than 4,194,304 characters of text once its aliases are expanded"),
    ("deep-json-list", "application/json", b"[" * 50_000 + b"]" * 50_000, 400,
     "too large to read: the document is nested deeper than 64 levels"),
    ("json-too-many-values", "application/json", json.dumps({**study_definition(name="hostile"),
                                                              "junk": [0] * 100_001}).encode(), 400,
     "too large to read: the document holds more than 100,000 values (each mapping, list and scalar counts one)"),
    ("deep-yaml-mapping", "application/yaml", b"{a: " * 5_000 + b"1" + b"}" * 5_000, 400, "nested"),
    ("deep-json-in-a-field", "application/json", json.dumps(study_definition(name="hostile")).replace(
        '"maxTrials": 4', '"maxTrials": ' + "[" * 1000 + "]" * 1000).encode(), 400, "nested"),
    ("python-object-tag", "application/yaml",
     b"!!python/object/apply:os.system ['touch pwned-by-yaml']\n", 400, "YAML"),
    ("python-name-tag", "application/yaml", _VALID_YAML.replace("name: hostile", "name: !!python/name:os.system")
     .encode(), 400, "YAML"),
    ("non-utf8-bytes", "application/yaml", _VALID_YAML.encode().replace(b"hostile", b"host\xff\xfeile"), 400,
     "(0xff) cannot be decoded; expected YAML or JSON in UTF-8"),
    ("non-utf8-bytes-in-a-command", "application/yaml", _VALID_YAML.encode().replace(b"--mode", b"--mo\xffde"), 400,
     "not UTF-8"),
    ("latin1-body", "application/yaml", "name: h\u00f6stile\n".encode("latin-1"), 400, "byte 7 (0xf6)"),
    ("xml", "application/xml", b"<study name='hostile'/>", 415, "application/json"),
    ("int-of-5001-digits", "application/yaml", _VALID_YAML.replace("maxTrials: 4", "maxTrials: 1" + "0" * 5000)
     .encode(), 422, '"path": "maxTrials"'),
    ("json-int-of-5000-digits", "application/json", json.dumps(study_definition(name="hostile")).replace(
        '"maxTrials": 4', '"maxTrials": ' + "9" * 5000).encode(), 422, '"path": "maxTrials"'),
    ("int-past-a-float", "application/yaml", _VALID_YAML.replace("max: 5.0", f"max: {10**400}").encode(), 422,
     '"path": "parameters[0].max"'),
    ("yaml-recursive-alias", "application/yaml", (_VALID_YAML + "description: &d [1, {a: *d}]\n").encode(), 400,
     "may not hold itself"),
    ("study-resource-metadata-a-string", "application/json", json.dumps({
        "apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": "x", "spec": study_definition(name="hostile")})
     .encode(), 422, '"path": "metadata"'),
    ("yaml-set", "application/yaml", (_VALID_YAML + "description: !!set {a, b}\n").encode(), 400, "no JSON form"),
    ("yaml-duplicate-key", "application/yaml", (_VALID_YAML + "name: other\n").encode(), 400,
     "duplicate key 'name'"),
    ("json-duplicate-key", "application/json", json.dumps(study_definition(name="hostile")).replace(
        '"maxTrials": 4', '"maxTrials": 4, "maxTrials": 400').encode(), 400, "duplicate key 'maxTrials'"),
    ("json-duplicate-nested-key", "application/json", json.dumps(study_definition(name="hostile")).replace(
        '"type": "float"', '"type": "float", "type": "int"').encode(), 400, '"path": "parameters[0].type"'),
]

MAX_BODY = 1 << 20


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hostile")
    running = Service(workdir, workers=2)
    yield running
    running.close()


@pytest.fixture(scope="module")
def target(service: Service) -> dict:
    """A finished study that hostile events aim at, as the API shows it."""
    definition = study_definition(name="target", maxTrials=1, parallelism=1)
    status, _, body = service.request("POST", "/studies", json.dumps(definition),
                                      {"Content-Type": "application/json"})
    assert status == 201, body
    service.wait_for("target")
    return _snapshot(service)


def _uid(service: Service) -> str:
    with closing(sqlite3.connect(service.workdir / "katuna.db")) as db:
        return db.execute("SELECT uid FROM studies WHERE name = 'target'").fetchone()[0]


def _snapshot(service: Service) -> dict:
    return {"studies": service.json("GET", "/studies")[1], "trials": service.json("GET", "/studies/target/trials")[1]}


def _post(service: Service, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """The status and the JSON answer; for an answer with no body (an event function's that
    replies nothing), the headers that say what it emitted."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if not answer:
            return response.status, {name: value for name, value in response.getheaders() if name.startswith("Katuna-")}
        return response.status, json.loads(answer)
    finally:
        connection.close()


def test_the_corpus_is_large():
    assert len(STUDIES) + len(TEXTS) + len(EVENTS) + len(OVERSIZED) >= 60


@pytest.mark.parametrize("case, definition, field", STUDIES, ids=[c[0] for c in STUDIES])
def test_a_bad_study_is_refused_naming_its_field(service: Service, target: dict, case: str, definition: dict,
                                                 field: str):
    for content_type, body in (("application/json", json.dumps(definition)),
                               ("application/yaml", yaml.safe_dump(definition))):
        status, answer = _post(service, "/studies", body.encode(), {"Content-Type": content_type})
        assert status == 422, (case, answer)
        paths = [p["path"] for p in answer["problems"]]
        assert any(field in p for p in paths), (case, answer)
    assert _snapshot(service) == target


@pytest.mark.parametrize("case, definition, field, limit", BOUNDS, ids=[c[0] for c in BOUNDS])
def test_a_study_past_a_bound_is_refused_naming_the_limit(service: Service, target: dict, case: str,
                                                          definition: dict, field: str, limit: str):
    status, answer = _post(service, "/studies", json.dumps(definition).encode(), {"Content-Type": "application/json"})
    assert status == 422, (case, answer)
    assert any(p["path"] == field and limit in p["message"] for p in answer["problems"]), (case, answer)
    assert _snapshot(service) == target


@pytest.mark.parametrize("case, content_type, body, expected, word", TEXTS, ids=[c[0] for c in TEXTS])
def test_hostile_text_is_refused(service: Service, target: dict, case: str, content_type: str, body: bytes,
                                 expected: int, word: str):
    status, answer = _post(service, "/studies", body, {"Content-Type": content_type})
    assert status == expected, (case, answer)
    assert word in json.dumps(answer), (case, answer)
    assert _snapshot(service) == target
    assert not (service.workdir / "pwned-by-yaml").exists()


OVERSIZED = [("studies-10MB", "/studies", "application/yaml"), ("event-10MB", "/functions/collect",
                                                                   "application/cloudevents+json"),
             ("studies-just-over", "/studies", "application/json")]


@pytest.mark.parametrize("case, path, content_type", OVERSIZED, ids=[c[0] for c in OVERSIZED])
def test_a_body_over_the_limit_is_refused_from_its_headers(service: Service, target: dict, case: str, path: str,
                                                           content_type: str):
    size = MAX_BODY + 1 if case.endswith("just-over") else 10 << 20
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(size))
        connection.endheaders(b" " * 1024)
        response = connection.getresponse()
        assert response.status == 413, case
        assert b"too large" in response.read().lower()
    finally:
        connection.close()
    assert _snapshot(service) == target


def _ce(event_type: str, data, **extra: str) -> tuple[bytes, dict[str, str]]:
    headers = {"ce-specversion": "1.0", "ce-id": "hostile-1", "ce-source": "/hostile", "ce-type": event_type,
               "Content-Type": "application/json", **extra}
    return (data if isinstance(data, bytes) else json.dumps(data).encode()), headers


FINISHED = "dev.katuna.trial.finished"
_GOOD = {"study": "target", "uid": "UID", "trial": 0, "attempt": 1, "outcome": "exited", "exitCode": 0,
         "message": ""}


def _structured_end(attributes: bytes) -> tuple[bytes, dict[str, str]]:
    """A trial's end in structured mode, with ``attributes`` written as given (JSON text)."""
    return (b'{"specversion": "1.0", ' + attributes + b', "type": "' + FINISHED.encode() + b'", "data": '
            + json.dumps(_GOOD).encode() + b"}", {"Content-Type": "application/cloudevents+json"})


def _finished(**changes) -> dict:
    data = {**_GOOD, **changes}
    return {k: v for k, v in data.items() if v is not ...}


STUDY_RESOURCE = json.dumps({"apiVersion": "katuna.dev/v1", "kind": "Study",
                             "metadata": {"name": "target", "namespace": "team"},
                             "spec": study_definition(name="target")}).encode()
"""A Study resource as an ApiServerSource sends it (the event's data is the object)."""

LATIN1 = STUDY_RESOURCE.replace(b'"target"', b'"t\xe4rget"')
"""The resource with its name in Latin-1, as a client that is not UTF-8 writes it."""

SURROGATE = STUDY_RESOURCE.replace(b"--mode", b"--m\xed\xa0\x80de")
"""The resource with an encoded UTF-16 surrogate in a command: not UTF-8 either."""


def _structured(data: bytes) -> tuple[bytes, dict[str, str]]:
    """A CloudEvent in structured mode, the whole event in the body, ``data`` its JSON data."""
    envelope = (b'{"specversion": "1.0", "id": "hostile-1", "source": "/hostile", '
                b'"type": "dev.knative.apiserver.resource.add", "datacontenttype": "application/json", "data": ')
    return envelope + data + b"}", {"Content-Type": "application/cloudevents+json"}


def _first_bad(body: bytes) -> str:
    start = body.index(b"\xe4") if b"\xe4" in body else body.index(b"\xed")
    return f"not UTF-8 text: byte {start} (0x{body[start]:02x}) cannot be decoded"


# (case id, path, (body, headers), expected status, a word the answer must contain)
EVENTS: list[tuple[str, str, tuple[bytes, dict[str, str]], int, str]] = [
    ("no-ce-headers", "/", (b"{}", {"Content-Type": "application/json"}), 415, "CloudEvent"),
    ("data-not-json", "/", _ce(FINISHED, b"\xff\xfe not json"), 400, "JSON data"),
    ("study-resource-latin1-binary", "/", _ce("dev.knative.apiserver.resource.add", LATIN1), 400,
     _first_bad(LATIN1)),
    ("study-resource-latin1-structured", "/", _structured(LATIN1), 400, _first_bad(_structured(LATIN1)[0])),
    ("study-resource-surrogate-binary", "/functions/resource", _ce("dev.knative.apiserver.resource.add", SURROGATE),
     400, _first_bad(SURROGATE)),
    ("study-resource-surrogate-structured", "/", _structured(SURROGATE), 400, _first_bad(_structured(SURROGATE)[0])),
    ("data-a-list", "/", _ce(FINISHED, [1, 2]), 400, "study"),
    ("structured-garbage", "/", (b'{"specversion": "1.0", "type": 5',
                                 {"Content-Type": "application/cloudevents+json"}), 400, "CloudEvent"),
    ("structured-a-list", "/", (b"[]", {"Content-Type": "application/cloudevents+json"}), 400,
     "not a CloudEvent: expected a JSON object of its attributes (structured mode), got JSON of another kind"),
    ("unknown-type", "/", _ce("x.trial.exploded", _GOOD), 422, "unknown event type"),
    ("newer-type", "/", _ce("dev.katuna.trial.exploded", _GOOD), 503, "is not one this katuna knows"),
    ("unknown-function", "/functions/eval", _ce(FINISHED, _GOOD), 503, "no function"),
    ("wrong-function", "/functions/spawn", _ce(FINISHED, _GOOD), 503, "does not handle"),
    ("trial-missing", "/", _ce(FINISHED, _finished(trial=...)), 400, "data.trial"),
    ("trial-a-string", "/", _ce(FINISHED, _finished(trial="0; rm -rf /")), 400, "data.trial"),
    ("trial-negative", "/", _ce(FINISHED, _finished(trial=-1)), 400, "data.trial"),
    ("attempt-boolean", "/", _ce(FINISHED, _finished(attempt=True)), 400, "data.attempt"),
    ("attempt-zero", "/", _ce(FINISHED, _finished(attempt=0)), 400, "data.attempt"),
    ("outcome-unknown", "/", _ce(FINISHED, _finished(outcome="vanished")), 400, "data.outcome"),
    ("exitCode-string", "/", _ce(FINISHED, _finished(exitCode="0")), 400, "data.exitCode"),
    ("running-a-string", "/", _ce(FINISHED, _finished(running="yes")), 400,
     "data.running: expected true (the workload still runs), or no field, got 'yes'"),
    ("peakMemory-negative", "/", _ce(FINISHED, _finished(peakMemory=-1)), 400,
     "data.peakMemory: expected an integer from 0 to"),
    ("message-missing", "/", _ce(FINISHED, _finished(message=...)), 400, "data.message"),
    ("uid-missing", "/", _ce(FINISHED, _finished(uid=...)), 400, "data.uid"),
    ("study-a-number", "/", _ce(FINISHED, _finished(study=7)), 400, "study"),
    ("study-a-lone-surrogate", "/", _ce(FINISHED, _finished(study="\ud800")), 400,
     "data.study: expected Unicode text, got a lone surrogate"),
    ("study-not-a-study-name", "/", _ce(FINISHED, _finished(study="Target")), 400,
     "data.study: expected a study's name: a DNS-1123 label"),
    ("message-a-lone-surrogate", "/", _ce(FINISHED, _finished(message="done \udc80")), 400, "data.message"),
    ("job-label-a-lone-surrogate", "/", _ce("dev.knative.apiserver.resource.update", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"labels": {
            "katuna.dev/study": "target", "katuna.dev/study-uid": "\udfff", "katuna.dev/trial": "0",
            "katuna.dev/attempt": "1"}}}), 400, "data.metadata.labels.katuna.dev/study-uid"),
    ("no-ce-id", "/", (json.dumps(_GOOD).encode(), {k: v for k, v in _ce(FINISHED, _GOOD)[1].items() if k != "ce-id"}),
     400, "has no id"),
    ("structured-no-id", "/", _structured_end(b'"source": "/hostile"'), 400, "has no id"),
    ("structured-id-a-lone-surrogate", "/", _structured_end(b'"id": "\\ud800", "source": "/hostile"'), 400,
     "attributes.id"),
    ("structured-id-a-line-end", "/dead-letters", _structured_end(b'"id": "x\\nFORGED", "source": "/hostile"'), 400,
     "attributes.id: expected a CloudEvents String, which holds no control character"),
    ("structured-source-a-terminal-escape", "/", _structured_end(b'"id": "x", "source": "/h\\u001b[31m"'), 400,
     "attributes.source"),
    ("structured-id-given-twice", "/", _structured_end(b'"id": "x", "id": "y", "source": "/hostile"'), 400,
     "duplicate key 'id'; expected the event as JSON (structured mode) with each key once"),
    ("data-study-given-twice", "/", _ce(FINISHED, b'{"study": "target", "study": "other"}'), 400,
     "duplicate key 'study'; expected the event's JSON data with each key once"),
    ("structured-time-not-a-time", "/", _structured_end(b'"id": "x", "source": "/hostile", "time": "yesterday"'), 400,
     "attributes.time: expected an RFC 3339 timestamp"),
    ("ce-time-not-a-time", "/", (json.dumps(_GOOD).encode(), {**_ce(FINISHED, _GOOD)[1], "ce-time": "2026-12-05"}),
     400, "ce-time: expected an RFC 3339 timestamp"),
    ("progress-value-string", "/", _ce("dev.katuna.trial.progress", _finished(step=1, value="NaN")), 400,
     "data.value"),
    ("progress-step-float", "/", _ce("dev.katuna.trial.progress", _finished(step=1.5, value=1.0)), 400,
     "data.step"),
    ("progress-value-bare-nan", "/", _ce("dev.katuna.trial.progress", _finished(step=1, value=float("nan"))), 400,
     "data.value: expected a finite number"),
    ("progress-value-bare-infinity", "/", _ce("dev.katuna.trial.progress", _finished(step=1, value=float("-inf"))),
     400, "data.value: expected a finite number"),
    ("completed-status-missing", "/", _ce("dev.katuna.study.completed", {"study": "target", "uid": "UID",
                                                                          "reason": "x"}), 400, "data.status"),
    ("completed-status-unknown", "/", _ce("dev.katuna.study.completed", {"study": "target", "uid": "UID",
                                                                          "status": "banana", "reason": "x"}), 400,
     "data.status: expected one of completed, failed, stopped, got 'banana'"),
    ("trial-past-the-store", "/", _ce(FINISHED, _finished(trial=2**63)), 400, "data.trial"),
    ("attempt-past-the-store", "/", _ce(FINISHED, _finished(attempt=2**63)), 400, "data.attempt"),
    ("exitCode-past-32-bits", "/", _ce(FINISHED, _finished(exitCode=2**31)), 400, "data.exitCode"),
    ("suggested-trial-past-the-store", "/", _ce("dev.katuna.trial.suggested", {"study": "target", "uid": "UID",
                                                                              "trial": 2**70, "attempt": 1}), 400,
     "data.trial"),
    ("progress-step-past-the-store", "/", _ce("dev.katuna.trial.progress", _finished(step=2**63, value=1.0)), 400,
     "data.step"),
    ("suggested-attempt-huge-string", "/", _ce("dev.katuna.trial.suggested", _finished(attempt="9" * 5000)), 400,
     "data.attempt"),
    ("deep-event-data", "/", _ce(FINISHED, b'{"study": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), 400,
     "CloudEvent"),
    ("job-event-labels-not-numbers", "/", _ce("dev.knative.apiserver.resource.update", {
        "metadata": {"labels": {"katuna.dev/study": "target", "katuna.dev/study-uid": "UID",
                                "katuna.dev/trial": "zero", "katuna.dev/attempt": "1"}}}), 202,
     '{"Katuna-Emitted-Count": "0"}'),
    ("job-event-metadata-a-string", "/", _ce("dev.knative.apiserver.resource.update", {"metadata": "x"}), 400,
     "data.metadata: expected a mapping"),
    ("study-event-metadata-a-list", "/", _ce("dev.knative.apiserver.resource.update", {
        "apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": ["target"]}), 400,
     "data.metadata: expected a mapping"),
    ("experiment-event-kind-a-number", "/", _ce("dev.knative.apiserver.resource.add", {
        "apiVersion": "kubeflow.org/v1beta1", "kind": 7, "metadata": {"name": "target"}}), 400, "data.kind"),
]


@pytest.mark.parametrize("case, path, request_, expected, word", EVENTS, ids=[c[0] for c in EVENTS])
def test_a_hostile_event_is_refused_naming_its_field(service: Service, target: dict, case: str, path: str,
                                                     request_: tuple[bytes, dict[str, str]], expected: int,
                                                     word: str):
    uid = _uid(service)
    body, headers = request_
    status, answer = _post(service, path, body.replace(b'"UID"', json.dumps(uid).encode()), headers)
    assert status == expected, (case, answer)
    assert word in json.dumps(answer), (case, answer)
    assert _snapshot(service) == target
    assert "Traceback" not in (service.workdir / "serve.log").read_text()


def test_the_service_log_holds_no_traceback(service: Service, target: dict):
    assert "Traceback" not in (Path(service.workdir) / "serve.log").read_text()


def test_a_large_document_without_aliases_is_read_whatever_its_text_and_one_with_them_is_bounded():
    """The bound on text is on what aliases add: a document of 5 MB written out (a service whose
    ``KATUNA_MAX_BODY`` was raised) is read, while 2,000 references to a 100 KB string are not."""
    from functions.core import bounded_yaml, yaml_bounds

    written = json.dumps({"description": "x" * 5_300_000})
    assert len(bounded_yaml.load(written)["description"]) == 5_300_000
    with pytest.raises(yaml_bounds.DocumentTooLarge, match="characters of text once its aliases are expanded"):
        bounded_yaml.load(LONG_TEXT_BOMB)
