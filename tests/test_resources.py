"""Studies as custom resources: the CRDs and their schemas, and `katuna serve` fed with
ApiServerSource CloudEvents (binary mode, the real SDK), writing status to a loopback API."""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import jsonschema
import pytest
import yaml
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent
from conftest import stored_cap, study_definition
from http_helpers import Service, strict_loads
from kube_standin.structural import admitted
from kube_stub import KubeStub
from waiting import eventually

from functions.core import resource_status, resources
from functions.core.errors import InvalidStudy
from functions.core.events import Event, delivery_key
from functions.core.formats import load_definition, load_study
from functions.core.katib_trials import trial_status
from functions.core.metrics import Observation
from functions.core.records import Counts, StudyRecord, TrialRecord
from functions.core.start_failures import image_cause, reason, unstartable
from functions.core.stop import decide
from functions.core.validate import TOP_FIELDS, parse_study

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
KUBE_NAMESPACES = ("team", "other")
"""Where these tests apply study resources, a copy of katuna's Role bound in each."""
CRDS = {doc["spec"]["names"]["kind"]: doc
        for doc in yaml.load_all((ROOT / "knative" / "crds.yaml").read_text(), Loader=yaml.CSafeLoader)}
"""Katuna's CRDs by kind (parsed by libyaml's parser: the same documents as ``yaml.safe_load_all``'s
at a tenth of its CPU, in each test process that collects this module)."""


def schema(kind: str) -> dict:
    return CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def closed(node: object) -> object:
    """The schema as the API server applies it with strict field validation (kubectl's
    default): fields it does not list are errors, except where it preserves unknown fields."""
    if isinstance(node, dict):
        node = {key: closed(value) for key, value in node.items()}
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node.setdefault("additionalProperties", False)
        return node
    if isinstance(node, list):
        return [closed(value) for value in node]
    return node


def check(resource: dict) -> None:
    document = closed(schema(resource["kind"]))
    document["properties"]["metadata"].pop("additionalProperties")
    jsonschema.validate(resource, document)


def as_study(path: Path) -> dict:
    native = yaml.safe_load(path.read_text())
    name = native.pop("name")
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": name, "namespace": "team"},
            "spec": native}


def as_experiment(path: Path) -> dict:
    katib = yaml.safe_load(path.read_text())
    return {**katib, "apiVersion": "katuna.dev/v1"}


# the CRDs


def _structural_problems(node: dict, path: str = "") -> list[str]:
    problems = []
    if "type" not in node and not (node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")):
        problems.append(f"{path or '.'}: no type")
    for name, child in (node.get("properties") or {}).items():
        problems += _structural_problems(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            problems += _structural_problems(node[key], f"{path}[{key}]")
    return problems


@pytest.mark.parametrize("kind", ["Study", "Experiment"])
def test_the_crds_are_structural_with_status_and_printer_columns(kind: str):
    crd = CRDS[kind]
    assert crd["spec"]["group"] == resources.GROUP and crd["spec"]["names"]["plural"] == resources.PLURALS[kind]
    version = crd["spec"]["versions"][0]
    assert version["name"] == resources.VERSION and version["subresources"] == {"status": {}}
    assert _structural_problems(schema(kind)) == []
    assert set(schema(kind)["properties"]["metadata"]["properties"]) <= {"name", "generateName"}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {"Status": ".status.phase", "Trials": ".status.progress",
                       "Best": ".status.currentOptimalTrial.objectiveValue", "Age": ".metadata.creationTimestamp"}
    assert _structural_problems({"properties": {"x": {"type": "object", "properties": {"y": {}}}}}) == [".: no type", ".x.y: no type"]


def test_the_study_schema_lists_every_field_of_the_native_format():
    assert set(schema("Study")["properties"]["spec"]["properties"]) == TOP_FIELDS
    assert CRDS["Study"]["spec"]["names"]["shortNames"] == ["kst"]


@pytest.mark.parametrize("example,wrap", [("quickstart.yaml", as_study), ("early-stopping.yaml", as_study),
                                          ("katib-experiment.yaml", as_experiment)])
def test_the_examples_are_valid_resources_and_the_same_studies(example: str, wrap):
    resource = wrap(EXAMPLES / example)
    check(resource)
    spec, _ = load_definition(resources.definition(resource))
    assert spec == load_study((EXAMPLES / example).read_text())[0]


def test_the_resource_example_is_valid_and_katuna_takes_it():
    resource = yaml.safe_load((EXAMPLES / "digits-study.yaml").read_text())
    check(resource)
    spec, _ = load_definition(resources.definition(resource))
    assert (spec.name, spec.trial_template.image) == ("digits", "REGISTRY/katuna:0.1.0")
    assert load_study((EXAMPLES / "digits-study.yaml").read_text())[0] == spec, "katuna run takes the file too"


def _broken(change) -> dict:
    resource = as_study(EXAMPLES / "quickstart.yaml")
    change(resource["spec"])
    return resource


BAD = {
    "misspelt field": (_broken(lambda s: s.update(maxTrial=3)), "maxTrial"),
    "direction": (_broken(lambda s: s["objective"].update(direction="maximise")), "maximise"),
    "parallelism below 1": (_broken(lambda s: s.update(parallelism=0)), "minimum"),
    "parameters not a list": (_broken(lambda s: s.update(parameters={"lr": 1})), "is not of type 'array'"),
    "parameter type": (_broken(lambda s: s["parameters"][0].update(type="integer")), "integer"),
    "algorithm": (_broken(lambda s: s["algorithm"].update(name="bayes")), "bayes"),
    "command not strings": (_broken(lambda s: s["trialTemplate"].update(command="python x.py")), "is not of type 'array'"),
    "no trial template": (_broken(lambda s: s.pop("trialTemplate")), "trialTemplate"),
}


@pytest.mark.parametrize("resource,message", BAD.values(), ids=BAD.keys())
def test_obvious_mistakes_are_refused_at_apply_time(resource: dict, message: str):
    with pytest.raises(jsonschema.ValidationError, match=message):
        check(resource)


def test_a_katib_experiment_with_a_wrong_objective_type_is_refused_at_apply_time():
    resource = as_experiment(EXAMPLES / "katib-experiment.yaml")
    resource["spec"]["objective"]["type"] = "max"
    with pytest.raises(jsonschema.ValidationError, match="'max' is not one of"):
        check(resource)
    resource = as_experiment(EXAMPLES / "katib-experiment.yaml")
    resource["spec"]["parameters"][0]["feasibleSpace"]["min"] = 0.1
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        check(resource)


def test_a_study_spec_naming_another_study_is_a_problem():
    resource = as_study(EXAMPLES / "quickstart.yaml")
    resource["spec"]["name"] = "other"
    with pytest.raises(InvalidStudy, match="spec.name"):
        resources.definition(resource)


def test_a_study_resource_read_from_a_file_has_its_problems_named_by_their_paths_in_the_resource():
    """``katuna run`` of a ``katuna.dev/v1`` Study: its native fields are under ``spec``, its
    name is the resource's, as the resource's status names them on a cluster."""
    resource = as_study(EXAMPLES / "quickstart.yaml")
    resource["metadata"]["name"] = "Not_A_Label"
    resource["spec"]["parallelism"] = 0
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(resource))
    assert [p.path for p in caught.value.problems] == ["metadata.name", "spec.parallelism"]


def test_every_way_a_study_ends_has_a_katib_like_reason():
    spec = parse_study(study_definition(maxTrials=2, maxFailedTrials=0, timeBudget=10,
                                        objective={"metric": "loss", "direction": "minimize", "goal": 0.1}))
    best = TrialRecord("demo", 0, {"x": 2.0}, "COMPLETE", values=[0.05])
    ends = {
        "ExperimentFailed": decide(spec, Counts(failed=1), None, 0, cap=stored_cap(spec)),
        "ExperimentGoalReached": decide(spec, Counts(complete=1), best, 0, cap=stored_cap(spec)),
        "StudyTimeBudgetUsed": decide(spec, Counts(complete=1), None, 11, cap=stored_cap(spec)),
        "ExperimentMaxTrialsReached": decide(spec, Counts(complete=2), None, 0, cap=stored_cap(spec)),
        "ExperimentSuggestionEndReached": decide(spec, Counts(complete=1), None, 0, grid_size=1, cap=stored_cap(spec)),
    }
    assert {code: resource_status.end_reason(decision.reason) for code, decision in ends.items()} == {c: c for c in ends}
    assert resource_status.end_reason(resources.DELETED) == "ResourceDeleted"
    assert resource_status.end_reason("stopped by user") == "StoppedByUser"
    imaged = study_definition()
    imaged["trialTemplate"]["image"] = "python:3.12"
    assert resource_status.end_reason(unstartable(parse_study(imaged).trial_template, Counts(failed=3), [TrialRecord(
        "demo", n, {}, "FAIL", reason=reason("its pod ...", image_cause("python:3.12", unparsed=False)))
        for n in range(3)])) == "StudyTrialsCannotStart"


def test_an_experiment_that_ran_out_of_trials_with_none_succeeded_is_succeeded_as_katib_marks_it():
    """Katib's controller checks only ``maxFailedTrialCount`` for failures: an Experiment whose
    trials all failed is ``Succeeded`` once ``maxTrialCount`` trials ended (or its grid ran out).
    The study itself, and katuna's own Study resource, say it failed, and why."""
    definition = study_definition(maxTrials=2)
    spec = parse_study(definition)

    def ended(counts: Counts, origin: resources.Origin, grid_size: int | None = None) -> dict:
        decision = decide(spec, counts, None, 0, grid_size=grid_size, cap=stored_cap(spec))
        assert decision is not None
        record = StudyRecord(spec, definition, ".", "uid-1", status=decision.status, reason=decision.reason,
                             started_at=1.0, completed_at=2.0)
        return resource_status.study_status(record, counts, [], origin)["conditions"][-1]

    study_origin = resources.Origin(resources.Ref("Study", "team", "demo"), "uid-1", 1)
    katuna_experiment = resources.Origin(resources.Ref("Experiment", "team", "demo"), "uid-1", 1)
    for origin in (katib_origin(), katuna_experiment):
        assert {k: ended(Counts(failed=2), origin)[k] for k in ("type", "status", "reason", "message")} == {
            "type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached",
            "message": "max trials reached (2); no trial succeeded"}
        grid = ended(Counts(failed=1), origin, grid_size=1)
        assert (grid["type"], grid["reason"]) == ("Succeeded", "ExperimentSuggestionEndReached")
    assert (ended(Counts(failed=2), study_origin)["type"]) == "Failed"
    failing = parse_study(study_definition(maxTrials=2, maxFailedTrials=0))
    decision = decide(failing, Counts(failed=1), None, 0, cap=stored_cap(failing))
    record = StudyRecord(failing, definition, ".", "uid-1", status=decision.status, reason=decision.reason,
                         started_at=1.0, completed_at=2.0)
    assert resource_status.study_status(record, Counts(failed=1), [], katib_origin())["phase"] == "Failed", \
        "too many failed trials fails an Experiment, as maxFailedTrialCount does in Katib"


def test_an_experiment_a_person_stopped_ends_succeeded_for_katibs_clients_and_stopped_for_katuna():
    """Katib has no stop, and its clients know an Experiment ended only by a ``Succeeded`` or
    ``Failed`` condition: a stopped Experiment's ``Stopped`` condition is followed by
    ``Succeeded``, both with reason ``StoppedByUser`` (the last condition is what ``kubectl get
    experiments`` shows); its phase, katuna's reading, stays ``Stopped``, as does a Study's."""
    definition = study_definition(maxTrials=2)
    record = StudyRecord(parse_study(definition), definition, ".", "uid-1", status="stopped", reason="stopped by user",
                         created_at=1.0, started_at=1.0, completed_at=2.0)
    katuna_experiment = resources.Origin(resources.Ref("Experiment", "team", "demo"), "uid-1", 1)
    for origin in (katib_origin(), katuna_experiment):
        status = resource_status.study_status(record, Counts(complete=1, pruned=1, stopped_at_end=1), [], origin)
        shown = [(c["type"], c["status"], c["reason"]) for c in status["conditions"]]
        assert shown == [("Created", "True", "ExperimentCreated"), ("Running", "False", "ExperimentRunning"),
                         ("Stopped", "True", "StoppedByUser"), ("Succeeded", "True", "StoppedByUser")], shown
        assert status["phase"] == "Stopped" and status["conditions"][-1]["message"] == "stopped by user"
        assert status["completionTime"] == "1970-01-01T00:00:02Z"
    study_origin = resources.Origin(resources.Ref("Study", "team", "demo"), "uid-1", 1)
    status = resource_status.study_status(record, Counts(complete=1), [], study_origin)
    assert [(c["type"], c["status"]) for c in status["conditions"]][-1] == ("Stopped", "True")
    assert "Succeeded" not in {c["type"] for c in status["conditions"]} and status["phase"] == "Stopped"
    refused = resource_status.study_status(record, Counts(complete=1), [], katib_origin(refused="spec.parameters"))
    assert [c["type"] for c in refused["conditions"]][-2:] == ["UpdateRefused", "Succeeded"]


def test_a_long_pareto_front_is_shown_evenly_spread_and_as_the_crd_describes_it():
    """A resource is stored whole, at most 1.5 MiB: the status lists at most 100 trials of a
    front, both ends of the trade-off among them, and counts all of them."""
    objective = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "acc", "direction": "maximize"}]}
    definition = study_definition(objective=objective)
    front = [TrialRecord("demo", n, {"x": n / 10}, "COMPLETE", values=[n / 10, n / 5],
                         metrics={"loss": n / 10, "acc": n / 5}) for n in range(250)]
    status = resource_status.study_status(StudyRecord(parse_study(definition), definition, ".", "uid-1", started_at=1.0),
                                    Counts(complete=250), front, resources.Origin(resources.Ref("Study", "team", "demo"),
                                                                                  "uid-1", 1))
    listed = [t["trialNumber"] for t in status["paretoFront"]]
    assert len(listed) == resource_status.PARETO_FRONT_SHOWN == 100 and (listed[0], listed[-1]) == (0, 249)
    assert listed == sorted(set(listed)) and max(b - a for a, b in zip(listed, listed[1:])) == 3
    assert status["paretoFront"][-1] == {
        "trialName": "demo-249", "trialNumber": 249, "objectiveValues": [24.9, 49.8],
        "parameterAssignments": [{"name": "x", "value": "24.9"}],
        "observation": {"metrics": [{"name": "loss", "value": 24.9}, {"name": "acc", "value": 49.8}]}}
    assert status["paretoFrontSize"] == 250 and "currentOptimalTrial" not in status
    kept, _ = admitted(schema("Study"), {**study("demo"), "status": status}, "studies.katuna.dev", "Strict")
    assert kept["status"]["paretoFront"] == status["paretoFront"], "the CRD lists every field, none is pruned"


def katib_origin(name: str = "demo", refused: str = "") -> resources.Origin:
    return resources.Origin(resources.Ref("Experiment", "team", name, resources.KATIB_API_VERSIONS[0]), "uid-1", 2,
                            refused, 5.0 if refused else None)


@pytest.mark.parametrize("started,ended", [(False, False), (True, False), (True, True)])
def test_a_refused_edit_leaves_the_experiments_state_as_its_last_condition(started: bool, ended: bool):
    """``kubectl get experiments`` (``.status.conditions[-1:]``) and Katib's UI read the last
    condition as the Experiment's state: ``UpdateRefused`` comes before it."""
    definition = study_definition()
    record = StudyRecord(parse_study(definition), definition, ".", "uid-1", created_at=1.0,
                         started_at=2.0 if started else None, status="completed" if ended else "running",
                         completed_at=3.0 if ended else None)
    status = resource_status.study_status(record, Counts(), [], katib_origin(refused="spec.parameters cannot change"))
    types = [c["type"] for c in status["conditions"]]
    assert types[-1] == {(False, False): "Created", (True, False): "Running", (True, True): "Succeeded"}[started, ended]
    assert "UpdateRefused" in types


def test_an_experiments_created_and_running_conditions_have_katibs_reasons():
    """Katib's controller writes ``ExperimentCreated`` and ``ExperimentRunning`` (its
    status_util.go), which a script or a dashboard selecting a condition by its reason matches;
    katuna's own Study keeps its words."""
    definition = study_definition()
    record = StudyRecord(parse_study(definition), definition, ".", "uid-1", created_at=1.0, started_at=2.0)
    katuna_experiment = resources.Origin(resources.Ref("Experiment", "team", "demo"), "uid-1", 1)
    for origin in (katib_origin(), katuna_experiment):
        found = {c["type"]: c for c in resource_status.study_status(record, Counts(running=1), [], origin)["conditions"]}
        assert (found["Created"]["reason"], found["Created"]["message"]) == ("ExperimentCreated", "Experiment is created")
        assert (found["Running"]["reason"], found["Running"]["message"]) == ("ExperimentRunning", "Experiment is running")
    study_origin = resources.Origin(resources.Ref("Study", "team", "demo"), "uid-1", 1)
    found = {c["type"]: c for c in resource_status.study_status(record, Counts(running=1), [], study_origin)["conditions"]}
    assert (found["Created"]["reason"], found["Running"]["reason"]) == ("StudyCreated", "StudyRunning")


def test_a_katib_experiment_without_a_completed_trial_has_an_empty_optimal_trial_as_katib_writes():
    """Katib's ``currentOptimalTrial`` is no pointer: its status always has one, and Katib's UI
    reads it without a guard. katuna's own resources leave it out until a trial completes."""
    definition = study_definition()
    record = StudyRecord(parse_study(definition), definition, ".", "uid-1", started_at=1.0)
    assert resource_status.study_status(record, Counts(running=1), [], katib_origin())["currentOptimalTrial"] == {
        "observation": {}}
    study_origin = resources.Origin(resources.Ref("Study", "team", "demo"), "uid-1", 1)
    assert "currentOptimalTrial" not in resource_status.study_status(record, Counts(running=1), [], study_origin)


def test_the_slot_a_metrics_strategy_picks_is_its_value_reduced_over_every_report():
    """The store keeps the first and last reports of a very long output: the minimum of a
    ``min`` metric printed in its middle is still its ``min``, as Katib's controller picks it."""
    definition = study_definition()
    spec = parse_study(definition)
    trial = TrialRecord("demo", 0, {"x": 1.0}, "COMPLETE", values=[0.1], metrics={"loss": 0.1})
    kept = [Observation("loss", v) for v in (0.9, 0.4, 0.6)]
    assert spec.strategy("loss") == "min"
    assert resource_status.katib_metrics(trial, spec, kept) == [
        {"name": "loss", "min": "0.1", "max": "0.9", "latest": "0.6", "value": 0.1}]


def test_a_metric_the_trial_never_reported_is_unavailable_as_katib_lists_it():
    """Katib's status lists every metric of the Experiment's, ``unavailable`` where the trial
    reported none (an additional metric its collector's filter never matched)."""
    spec = parse_study(study_definition(objective={"metric": "loss", "direction": "minimize",
                                                   "additionalMetrics": ["accuracy"]}))
    trial = TrialRecord("demo", 0, {"x": 1.0}, "COMPLETE", values=[0.1], metrics={"loss": 0.1})
    assert resource_status.katib_metrics(trial, spec, [Observation("loss", 0.1)]) == [
        {"name": "loss", "min": "0.1", "max": "0.1", "latest": "0.1", "value": 0.1},
        {"name": "accuracy", "min": "unavailable", "max": "unavailable", "latest": "unavailable"}]


def test_a_nan_or_infinite_metric_is_shown_by_name_in_a_status_a_cluster_takes_and_reads_back_as_written():
    """The API server takes only JSON, which has no NaN: such a metric is written as Katib's
    ``latest`` writes it ("nan", "inf", "-inf"), in a study's status and in a Katib Trial's, and
    the status read back equals the one computed again (so it is not written again and again)."""
    objective = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "acc", "direction": "maximize"}],
                 "additionalMetrics": ["grad", "norm"]}
    definition = study_definition(objective=objective)
    trial = TrialRecord("demo", 0, {"x": 1.0}, "COMPLETE", values=[1.0, 2.0],
                        metrics={"loss": 1.0, "acc": 2.0, "grad": float("nan"), "norm": float("-inf")})
    record = StudyRecord(parse_study(definition), definition, ".", "uid-1", started_at=1.0)
    status = resource_status.study_status(record, Counts(complete=1), [trial],
                                    resources.Origin(resources.Ref("Study", "team", "demo"), "uid-1", 1))
    assert status["paretoFront"][0]["observation"]["metrics"][2:] == [{"name": "grad", "value": "nan"},
                                                                      {"name": "norm", "value": "-inf"}]
    assert strict_loads(json.dumps(status)) == status
    kept, _ = admitted(schema("Study"), {**study("demo"), "status": status}, "studies.katuna.dev", "Strict")
    assert kept["status"] == status, "the CRD takes a metric's name where its number would be"
    written = trial_status(trial, record.spec)
    assert written["observation"]["metrics"][2:] == [
        {"name": "grad", "min": "nan", "max": "nan", "latest": "nan", "value": "nan"},
        {"name": "norm", "min": "-inf", "max": "-inf", "latest": "-inf", "value": "-inf"}]
    assert strict_loads(json.dumps(written)) == written


# the function, fed ApiServerSource events


@pytest.fixture(scope="module", autouse=True)
def study_grants(kube: KubeStub) -> None:
    """katuna's Role in the namespaces the studies live in (its service account writes their status)."""
    with kube.lock:
        for namespace in KUBE_NAMESPACES:
            kube.authorizer.copy_role("katuna", namespace)


@pytest.fixture(scope="module")
def service(kube, tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("resources"), workers=1, KATUNA_K8S_API=kube.url)
    yield running
    running.close()


def study(name: str, namespace: str = "team", **overrides) -> dict:
    native = study_definition(name=name, **overrides)
    del native["name"]
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": name, "namespace": namespace},
            "spec": native}


def added(service: Service, obj: dict, path: str = "/functions/resource") -> None:
    """Deliver a new study resource's add event, its study made: by this delivery, or by the
    service's own look at the cluster's resources (its tick sends the same event for a resource
    the store does not know, and on a loaded machine may send it first, this delivery then
    finding the study made and making nothing)."""
    emitted = send(service, "add", obj, path=path)
    name = obj["metadata"]["name"]
    assert emitted == ["dev.katuna.study.created"] or service.json("GET", f"/studies/{name}")[0] == 200, emitted


def send(service: Service, change: str, obj: dict, path: str = "/", event_id: str | None = None) -> list[str]:
    """Deliver an event as an ApiServerSource in Resource mode sends it; the emitted types."""
    status, headers, body = deliver(service, change, obj, path, event_id)
    assert status == 202 and body == b"", body
    return [named.split(" ", 1)[0] for named in headers.get("Katuna-Emitted", "").split(", ") if named]


def deliver(service: Service, change: str, obj: dict, path: str = "/",
            event_id: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """Post an ApiServerSource event about ``obj`` as the broker delivers it (the real SDK,
    binary mode); the answer's status, headers and body."""
    metadata = obj["metadata"]
    plural = resources.PLURALS[obj["kind"]]
    event = CloudEvent(attributes={
        "type": f"dev.knative.apiserver.resource.{change}", "source": "https://10.96.0.1:443",
        **({"id": event_id} if event_id else {}),
        "subject": f"/apis/katuna.dev/v1/namespaces/{metadata['namespace']}/{plural}/{metadata['name']}",
        "datacontenttype": "application/json", "kind": obj["kind"], "apiversion": obj["apiVersion"],
        "name": metadata["name"], "namespace": metadata["namespace"]}, data=copy.deepcopy(obj))
    message = ce_http.to_binary_event(event)
    return service.request("POST", path, message.body, message.headers)


def status_of(kube: KubeStub, obj: dict) -> dict:
    plural = resources.PLURALS[obj["kind"]]
    return kube.resources[(plural, obj["metadata"]["namespace"], obj["metadata"]["name"])].get("status") or {}


def wait_status(kube: KubeStub, obj: dict, until, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = status_of(kube, obj)
        if until(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"status never got there: {status}")


def writes(kube: KubeStub, name: str) -> int:
    return sum(1 for _, n, _ in kube.status_writes if n == name)


def settled_writes(kube: KubeStub, name: str, quiet: float = 1.0, timeout: float = 30) -> int:
    """The status writes of the resource once none has come for ``quiet`` seconds: a report of
    trials that started a moment ago may still be on its way."""
    deadline, count, since = time.monotonic() + timeout, writes(kube, name), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.1)
        if writes(kube, name) != count:
            count, since = writes(kube, name), time.monotonic()
    return count


FIRST_OR_SEEN = (["dev.katuna.study.created"], [])
"""What a resource's event emits where the service watches its namespace: the study's start,
or nothing where the watcher's listing (every 2 s) took the resource first."""


def wait_trials(service: Service, name: str, count: int, state: str = "RUNNING", timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = service.json("GET", f"/studies/{name}/trials")[1]
        if sum(t["state"] == state for t in trials) >= count:
            return trials
        time.sleep(0.05)
    raise AssertionError(f"{count} trials never got to {state}: {trials}")


def handled_by(service: Service, event_id: str) -> list[str]:
    """The handlers that recorded the handling of :func:`send`'s event ``event_id``, kept under
    its source and id together (:func:`functions.core.events.delivery_key`)."""
    key = delivery_key(Event("", {}, event_id, "https://10.96.0.1:443"))
    with closing(sqlite3.connect(service.workdir / "katuna.db")) as db:
        return [r[0] for r in db.execute("SELECT handler FROM processed_events WHERE event_id = ?", [key])]


def conditions(status: dict) -> dict[str, dict]:
    return {c["type"]: c for c in status.get("conditions", [])}


@pytest.mark.slow
def test_an_applied_study_runs_and_its_status_follows_it(service: Service, kube: KubeStub):
    obj = kube.apply(study("kst-basic", maxTrials=4))
    assert send(service, "add", obj, event_id="add-kst-basic") == ["dev.katuna.study.created"]
    assert handled_by(service, "add-kst-basic") == ["resource"], "the Job watcher never sees a Study"
    finished = service.wait_for("kst-basic")
    assert (finished["status"], finished["counts"]["complete"]) == ("completed", 4)
    status = wait_status(kube, obj, lambda s: s.get("phase") == "Succeeded")
    found = conditions(status)
    assert found["Succeeded"]["reason"] == "ExperimentMaxTrialsReached"
    assert found["Running"]["status"] == "False" and found["Created"]["status"] == "True"
    assert (status["trials"], status["trialsSucceeded"], status["progress"], status["observedGeneration"]) == (4, 4, "4/4", 1)
    assert status["startTime"] <= status["completionTime"]
    best = min((t for t in service.json("GET", "/studies/kst-basic/trials")[1]), key=lambda t: t["value"])
    optimal = status["currentOptimalTrial"]
    assert optimal["objectiveValue"] == best["value"] and optimal["bestTrialName"] == f"kst-basic-{best['number']}"
    assert optimal["parameterAssignments"] == [{"name": "x", "value": str(best["params"]["x"])}]
    assert "paretoFront" not in status, "one objective: one optimal trial"
    uid = service.json("GET", "/studies/kst-basic")[1]
    assert uid["resource"] == {"kind": "Study", "namespace": "team", "name": "kst-basic"}
    before = writes(kube, "kst-basic")
    assert send(service, "add", obj) == [], "a duplicate add changes nothing"
    assert send(service, "update", kube.apply(study("kst-basic", maxTrials=4))) == [], "nor does a status write's update"
    assert writes(kube, "kst-basic") == before
    assert service.json("GET", "/studies/kst-basic")[1] == uid


@pytest.mark.slow
def test_a_study_of_several_objectives_shows_its_pareto_front_and_no_single_optimal_trial(service: Service, kube: KubeStub):
    """loss = (x - 2)^2 and size = |x|, both minimized: 1.5 and 0.5 trade one for the other,
    3 and 4 are beaten by 1.5 on both. The first objective alone would name 1.5 optimal."""
    objective = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "minimize"}]}
    obj = kube.apply(study("kst-pareto", maxTrials=4, algorithm={"name": "grid"}, objective=objective,
                           parameters=[{"name": "x", "type": "categorical", "values": [0.5, 1.5, 3.0, 4.0]}]))
    send(service, "add", obj)
    status = wait_status(kube, obj, lambda s: s.get("phase") == "Succeeded")
    assert "currentOptimalTrial" not in status, "no one trial is optimal on two objectives"
    front = status["paretoFront"]
    assert [t["trialNumber"] for t in front] == sorted(t["trialNumber"] for t in front), "by number, as every view"
    by_x = {t["parameterAssignments"][0]["value"]: t for t in front}
    assert {x: t["objectiveValues"] for x, t in by_x.items()} == {"1.5": [0.25, 1.5], "0.5": [2.25, 0.5]}
    shown = service.json("GET", "/studies/kst-pareto")[1]["best"]
    assert [(t["trialNumber"], t["trialName"]) for t in front] == [(b["number"], f"kst-pareto-{b['number']}")
                                                                   for b in shown], "the front katuna show gives"
    assert {m["name"]: m["value"] for m in by_x["1.5"]["observation"]["metrics"]} == {"loss": 0.25, "size": 1.5}
    assert status["paretoFrontSize"] == 2


@pytest.mark.slow
def test_a_study_whose_best_trial_has_a_nan_metric_has_its_status_written(service: Service, kube: KubeStub):
    """The Kubernetes client writes a bare NaN as Python's json does, which the API server refuses (400)."""
    obj = kube.apply(study("kst-wild", mode="wild-metrics", maxTrials=1, parallelism=1,
                           objective={"metric": "loss", "direction": "minimize", "additionalMetrics": ["grad", "norm"]}))
    send(service, "add", obj)
    status = wait_status(kube, obj, lambda s: s.get("phase") == "Succeeded")
    shown = {m["name"]: m["value"] for m in status["currentOptimalTrial"]["observation"]["metrics"]}
    assert (shown["grad"], shown["norm"]) == ("nan", "-inf")


@pytest.mark.slow
def test_an_invalid_study_fails_with_every_problem_and_its_field_and_is_not_stored(service: Service, kube: KubeStub):
    bad = study("kst-bad", parameters=[{"name": "x", "type": "float", "min": 5.0, "max": -5.0}], parallelism=9)
    bad["spec"]["trialTemplate"]["command"].append("--y=${trialParameters.y}")
    obj = kube.apply(bad)
    assert send(service, "add", obj) == []
    status = status_of(kube, obj)
    assert status["phase"] == "Failed" and status["observedGeneration"] == 1
    failed = conditions(status)["Failed"]
    assert failed["reason"] == "InvalidSpec"
    fields = [p["field"] for p in status["problems"]]
    assert {"spec.parameters[0].max", "spec.parallelism"} <= set(fields)
    assert any(f.startswith("spec.trialTemplate.command") for f in fields)
    assert all(f in failed["message"] for f in fields)
    assert service.request("GET", "/studies/kst-bad")[0] == 404
    written = writes(kube, "kst-bad")
    assert send(service, "update", kube.apply(bad)) == [], "the update of katuna's own status write"
    assert writes(kube, "kst-bad") == written
    fixed = kube.apply(study("kst-bad", maxTrials=2))
    assert fixed["metadata"]["generation"] == 2
    assert send(service, "update", fixed) == ["dev.katuna.study.created"]
    status = wait_status(kube, fixed, lambda s: s.get("phase") == "Succeeded")
    assert status["observedGeneration"] == 2 and "problems" not in status and "Failed" not in conditions(status)


@pytest.mark.slow
def test_a_study_resource_whose_list_values_clash_fails_naming_each_and_is_not_stored(service: Service, kube: KubeStub):
    parameters = [{"name": "x", "type": "categorical", "values": [1, "1", True, "a"]}]
    obj = kube.apply(study("kst-clash", parameters=parameters))
    assert send(service, "add", obj) == []
    status = status_of(kube, obj)
    assert conditions(status)["Failed"]["reason"] == "InvalidSpec"
    assert [p["field"] for p in status["problems"]] == ["spec.parameters[0].values[1]", "spec.parameters[0].values[2]"]
    assert "both reach the trial as '1'" in status["problems"][0]["message"]
    assert service.request("GET", "/studies/kst-clash")[0] == 404


@pytest.mark.slow
def test_deleting_the_resource_stops_the_study_and_reapplying_starts_a_new_one(service: Service, kube: KubeStub):
    obj = kube.apply(study("kst-delete", mode="hang", maxTrials=4))
    send(service, "add", obj)
    wait_trials(service, "kst-delete", 2)
    old_uid = service.json("GET", "/studies/kst-delete")[1]
    kube.delete("Study", "team", "kst-delete")
    assert send(service, "delete", obj) == ["dev.katuna.study.completed"]
    stopped = service.wait_for("kst-delete", timeout=30)
    assert (stopped["status"], stopped["reason"]) == ("stopped", "stopped: its resource was deleted")
    wait_trials(service, "kst-delete", 2, state="STOPPED")
    assert send(service, "delete", obj) == [] and send(service, "add", obj) == [], "late events change nothing"
    assert service.json("GET", "/studies/kst-delete")[1]["status"] == "stopped"
    again = kube.apply(study("kst-delete", maxTrials=2))
    assert again["metadata"]["uid"] != obj["metadata"]["uid"]
    assert send(service, "add", again) == ["dev.katuna.study.created"]
    assert service.wait_for("kst-delete")["status"] == "completed"
    assert service.json("GET", "/studies/kst-delete")[1] != old_uid
    assert [t["state"] for t in service.json("GET", "/studies/kst-delete/trials")[1]] == ["COMPLETE", "COMPLETE"]


def tick(service: Service) -> list[str]:
    """Deliver a tick as the PingSource sends it; the emitted types."""
    event = CloudEvent(attributes={"type": "dev.knative.sources.ping", "source": "/apis/v1/namespaces/team/pingsources/t",
                                   "datacontenttype": "application/json"}, data={})
    message = ce_http.to_binary_event(event)
    status, headers, body = service.request("POST", "/", message.body, message.headers)
    assert status == 202 and body == b"", body
    return [named.split(" ", 1)[0] for named in headers.get("Katuna-Emitted", "").split(", ") if named]


@pytest.mark.slow
def test_a_study_whose_resource_is_there_is_deleted_through_the_resource_only(kube: KubeStub, tmp_path: Path):
    """DELETE /studies/{name} of a study that follows a Study resource is refused (409, naming the
    resource and the kubectl command) and changes nothing, so the tick has nothing to submit
    again; once the resource is deleted (which stops the study), the DELETE goes through and the
    tick brings nothing back. A study submitted over HTTP is deleted as before."""
    kube.add_namespace("kept")
    with kube.lock:
        kube.authorizer.copy_role("katuna", "kept")
    watching = Service(tmp_path, workers=1, KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="kept")
    try:
        obj = kube.apply(study("kst-kept", namespace="kept", mode="hang", maxTrials=4))
        assert send(watching, "add", obj) in FIRST_OR_SEEN
        wait_trials(watching, "kst-kept", 2)
        before = watching.json("GET", "/studies/kst-kept")[1]
        code, body = watching.json("DELETE", "/studies/kst-kept")
        assert code == 409 and body["error"] == "follows_resource", body
        assert "'kst-kept' in namespace 'kept'" in body["message"], body
        assert "kubectl delete studies.katuna.dev kst-kept -n kept" in body["message"], body
        page = " ".join(watching.request("GET", "/ui/studies/kst-kept")[2].decode().split())
        assert ("It follows the Study <code>kst-kept</code> in namespace <code>kept</code>: while the cluster holds "
                "that resource, the delete is refused") in page, "the dashboard's Delete dialog says so"
        assert tick(watching) == [] and watching.json("GET", "/studies/kst-kept")[1] == before
        assert status_of(kube, obj)["phase"] == "Running"

        kube.delete("Study", "kept", "kst-kept")
        assert send(watching, "delete", obj) == ["dev.katuna.study.completed"]
        assert watching.wait_for("kst-kept", timeout=30)["status"] == "stopped"
        assert watching.request("DELETE", "/studies/kst-kept")[0] == 204
        assert tick(watching) == [] and watching.request("GET", "/studies/kst-kept")[0] == 404

        assert watching.request("POST", "/studies", json.dumps(study_definition("http-gone")),
                                {"Content-Type": "application/json"})[0] == 201
        assert watching.request("DELETE", "/studies/http-gone")[0] == 204
        assert watching.request("GET", "/studies/http-gone")[0] == 404
    finally:
        watching.close()


@pytest.mark.slow
def test_a_delete_that_overtakes_its_add_leaves_nothing(service: Service, kube: KubeStub):
    obj = kube.apply(study("kst-gone"))
    kube.delete("Study", "team", "kst-gone")
    assert send(service, "delete", obj) == []
    assert send(service, "add", obj) == []
    assert service.request("GET", "/studies/kst-gone")[0] == 404
    assert writes(kube, "kst-gone") == 0


@pytest.mark.slow
def test_an_update_that_overtakes_its_add_starts_the_study_as_it_is_now(service: Service, kube: KubeStub):
    first = kube.apply(study("kst-late", maxTrials=2, parallelism=1))
    edited = kube.apply(study("kst-late", maxTrials=2, parallelism=2))
    assert send(service, "update", edited) == ["dev.katuna.study.created"]
    assert send(service, "add", first) == []
    assert service.wait_for("kst-late")["definition"]["parallelism"] == 2
    status = wait_status(kube, edited, lambda s: s.get("phase") == "Succeeded")
    assert status["observedGeneration"] == 2 and "UpdateRefused" not in conditions(status)


@pytest.mark.slow
def test_edits_of_parallelism_and_max_trials_apply_and_others_are_refused(service: Service, kube: KubeStub):
    obj = kube.apply(study("kst-edit", mode="hang", parallelism=1, maxTrials=6))
    send(service, "add", obj)
    wait_trials(service, "kst-edit", 1)
    wider = kube.apply(study("kst-edit", mode="hang", parallelism=3, maxTrials=6))
    assert send(service, "update", wider) == ["dev.katuna.trial.suggested"] * 2
    wait_trials(service, "kst-edit", 3)
    assert service.json("GET", "/studies/kst-edit")[1]["definition"]["parallelism"] == 3

    moved = study("kst-edit", mode="hang", parallelism=3, maxTrials=6)
    moved["spec"]["parameters"][0]["max"] = 9.0
    refused = kube.apply(moved)
    assert send(service, "update", refused) == []
    status = status_of(kube, refused)
    assert status["observedGeneration"] == 3 and status["phase"] == "Running"
    condition = conditions(status)["UpdateRefused"]
    assert condition["reason"] == "SpecChangeRefused" and "spec.parameters cannot change" in condition["message"]
    assert service.json("GET", "/studies/kst-edit")[1]["definition"]["parameters"][0]["max"] == 5.0

    written = settled_writes(kube, "kst-edit")
    assert send(service, "update", wider) == [], "an update older than the last one handled changes nothing"
    assert writes(kube, "kst-edit") == written

    fewer = kube.apply(study("kst-edit", mode="hang", parallelism=3, maxTrials=3))
    assert send(service, "update", fewer) == []
    status = status_of(kube, fewer)
    assert status["observedGeneration"] == 4 and "UpdateRefused" not in conditions(status)
    assert status["progress"] == "0/3"
    kube.delete("Study", "team", "kst-edit")
    send(service, "delete", fewer)
    assert service.wait_for("kst-edit", timeout=30)["status"] == "stopped"


def test_an_edit_raising_max_trials_past_the_history_limit_is_refused_and_changes_nothing(kube: KubeStub,
                                                                                          tmp_path: Path):
    """A running study's edit is held to ``KATUNA_MAX_HISTORY`` as a new study is: refused in
    the status at ``spec.maxTrials``, the study running on with its budget as it was."""
    limited = Service(tmp_path, workers=1, KATUNA_K8S_API=kube.url, KATUNA_MAX_HISTORY="10")
    try:
        obj = kube.apply(study("kst-history", mode="hang", parallelism=1, maxTrials=5))
        send(limited, "add", obj)
        wait_trials(limited, "kst-history", 1)
        raised = kube.apply(study("kst-history", mode="hang", parallelism=1, maxTrials=1_000_000))
        assert send(limited, "update", raised) == []
        status = status_of(kube, raised)
        assert status["observedGeneration"] == 2 and status["phase"] == "Running"
        message = conditions(status)["UpdateRefused"]["message"]
        assert message.startswith("the edit is invalid: spec.maxTrials: a study's Optuna history holds at most 10 "
                                  "trials (set by KATUNA_MAX_HISTORY)"), message
        assert limited.json("GET", "/studies/kst-history")[1]["definition"]["maxTrials"] == 5
        fits = kube.apply(study("kst-history", mode="hang", parallelism=1, maxTrials=10))
        assert send(limited, "update", fits) == []
        assert "UpdateRefused" not in conditions(status_of(kube, fits))
        assert limited.json("GET", "/studies/kst-history")[1]["definition"]["maxTrials"] == 10
        kube.delete("Study", "team", "kst-history")
        send(limited, "delete", fits)
        assert limited.wait_for("kst-history", timeout=30)["status"] == "stopped"
    finally:
        limited.close()

@pytest.mark.slow
def test_a_study_resource_takes_a_warm_start_only_from_a_study_of_its_own_namespace(service: Service, kube: KubeStub):
    """Another team's completed trials are theirs: a resource naming their study in its warm start
    would have katuna read them for its author, who may not read that namespace. Refused as a
    study of no such name is, so the refusal tells nothing of what other namespaces hold."""
    source = kube.apply(study("kst-warm-source", namespace="other", maxTrials=2))
    added(service, source)
    assert service.wait_for("kst-warm-source")["counts"]["complete"] == 2
    service.submit(study_definition("kst-warm-posted", maxTrials=1, parallelism=1))
    service.wait_for("kst-warm-posted")
    for name, earlier in (("kst-warm-thief", "kst-warm-source"), ("kst-warm-operator", "kst-warm-posted"),
                          ("kst-warm-none", "kst-warm-nowhere")):
        obj = kube.apply(study(name, warmStart={"study": earlier}))
        assert send(service, "add", obj) == []
        status = status_of(kube, obj)
        assert (status["phase"], conditions(status)["Failed"]["reason"]) == ("Failed", "InvalidSpec"), name
        [problem] = status["problems"]
        assert problem["field"] == "spec.warmStart.study"
        assert problem["message"].startswith(f"no study of a resource in namespace 'team' named {earlier!r}")
        assert "other" not in problem["message"].replace("other namespace", ""), "the holder is not named"
        assert service.request("GET", f"/studies/{name}")[0] == 404
    neighbour = kube.apply(study("kst-warm-neighbour", namespace="other", maxTrials=1, parallelism=1,
                                 warmStart={"study": "kst-warm-source"}))
    added(service, neighbour)
    taken = service.json("GET", "/studies/kst-warm-neighbour")[1]["warmStart"]
    assert taken["knownResults"] == 2, taken
    service.submit(study_definition("kst-warm-by-token", maxTrials=1, parallelism=1, warmStart={"study": "kst-warm-source"}))



@pytest.mark.slow
def test_a_name_taken_over_http_is_reported_and_the_study_left_alone(service: Service, kube: KubeStub):
    definition = study_definition(name="kst-taken", maxTrials=1, parallelism=1)
    assert service.request("POST", "/studies", json.dumps(definition), {"Content-Type": "application/json"})[0] == 201
    service.wait_for("kst-taken")
    obj = kube.apply(study("kst-taken", namespace="other", maxTrials=3))
    assert send(service, "add", obj) == []
    status = status_of(kube, obj)
    assert conditions(status)["Failed"]["reason"] == "StudyNameTaken"
    assert status["problems"][0]["field"] == "metadata.name"
    assert "over the HTTP API" in status["problems"][0]["message"]
    assert service.json("GET", "/studies/kst-taken")[1]["maxTrials"] == 1


@pytest.mark.slow
def test_a_katib_experiment_resource_runs_and_reports_katib_paths(service: Service, kube: KubeStub):
    katib = as_experiment(EXAMPLES / "katib-experiment.yaml")
    katib["metadata"] = {"name": "kst-katib", "namespace": "team"}
    container = katib["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = study_definition()["trialTemplate"]["command"][:2] + ["--x=${trialParameters.learningRate}"]
    katib["spec"]["objective"].update(type="minimize", objectiveMetricName="loss", additionalMetricNames=[])
    katib["spec"]["objective"].pop("goal")
    katib["spec"].update(maxTrialCount=3, parallelTrialCount=3, parameters=katib["spec"]["parameters"][:1])
    katib["spec"]["trialTemplate"]["trialParameters"] = katib["spec"]["trialTemplate"]["trialParameters"][:1]
    obj = kube.apply(katib)
    added(service, obj)
    status = wait_status(kube, obj, lambda s: s.get("phase") == "Succeeded")
    assert status["progress"] == "3/3" and status["currentOptimalTrial"]["parameterAssignments"][0]["name"] == "lr"

    wrong = copy.deepcopy(katib)
    wrong["metadata"]["name"] = "kst-katib-bad"
    wrong["spec"]["parallelTrialCount"] = 5
    wrong["spec"]["algorithm"]["algorithmName"] = "enas"
    obj = kube.apply(wrong)
    assert send(service, "add", obj) == []
    fields = [p["field"] for p in status_of(kube, obj)["problems"]]
    assert "spec.algorithm.algorithmName" in fields


@pytest.mark.slow
def test_a_resource_study_and_an_http_study_are_the_same_in_the_store(service: Service, kube: KubeStub):
    definition = study_definition(name="twin-http", maxTrials=3)
    assert service.request("POST", "/studies", yaml.safe_dump(definition), {"Content-Type": "application/yaml"})[0] == 201
    send(service, "add", kube.apply(study("twin-kst", maxTrials=3)))
    service.wait_for("twin-http")
    service.wait_for("twin-kst")
    with closing(sqlite3.connect(service.workdir / "katuna.db")) as db:
        db.row_factory = sqlite3.Row
        rows = {r["name"]: dict(r) for r in db.execute("SELECT * FROM studies WHERE name LIKE 'twin-%'")}
        trials = {name: [dict(t, study=None) for t in db.execute(
            "SELECT study, number, params, state, attempt, value, trial_values, metrics, reason, exit_code "
            "FROM trials WHERE study = ? ORDER BY number", [name])] for name in rows}
    http, kst = rows["twin-http"], rows["twin-kst"]
    assert {**json.loads(http["definition"]), "name": None} == {**json.loads(kst["definition"]), "name": None}
    resource_spec = json.loads(kst["normalized"])
    assert resource_spec["kubernetes"].pop("namespace") == "team", "a resource's trials run in its namespace"
    assert {**json.loads(http["normalized"]), "name": None} == {**resource_spec, "name": None}
    assert (http["base_dir"], http["status"], http["reason"]) == (kst["base_dir"], kst["status"], kst["reason"])
    assert http["origin"] is None and service.json("GET", "/studies/twin-http")[1]["resource"] is None
    assert json.loads(kst["origin"])["kind"] == "Study" and json.loads(kst["origin"])["generation"] == 1
    assert trials["twin-http"] == trials["twin-kst"] and len(trials["twin-kst"]) == 3


@pytest.mark.slow
def test_on_the_cluster_deleting_a_study_resource_deletes_its_trial_jobs(kube: KubeStub, tmp_path: Path):
    cluster = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="katuna")
    try:
        resource = study("kst-jobs", namespace="katuna", mode="hang", maxTrials=4)
        resource["spec"]["trialTemplate"]["image"] = "python:3.12"
        obj = kube.apply(resource)
        assert send(cluster, "add", obj) in FIRST_OR_SEEN
        wait_trials(cluster, "kst-jobs", 2)
        assert sorted(n for n in kube.created if n.startswith("kst-jobs-")) == ["kst-jobs-0", "kst-jobs-1"]
        wait_status(kube, obj, lambda s: s.get("phase") == "Running" and s.get("trialsRunning") == 2)
        kube.delete("Study", "katuna", "kst-jobs")
        assert send(cluster, "delete", obj) == ["dev.katuna.study.completed"]
        assert cluster.wait_for("kst-jobs", timeout=30)["status"] == "stopped"
        wait_trials(cluster, "kst-jobs", 2, state="STOPPED")
        eventually(lambda: {name for _, name, _ in kube.deleted if name.startswith("kst-jobs-")}
                   == {"kst-jobs-0", "kst-jobs-1"}, "the Jobs deleted once the trials' verdicts are stored")
        assert not [key for key in kube.jobs if key[1].startswith("kst-jobs-")]
    finally:
        cluster.close()


@pytest.mark.slow
def test_without_knative_a_study_resource_applied_or_deleted_is_seen_within_seconds(kube: KubeStub, tmp_path: Path):
    """No ApiServerSource tells ``katuna serve`` of a resource outside Knative: its watcher lists
    them every few seconds, so a deleted study's trial Jobs do not run on (billing) for a minute."""
    cluster = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="katuna")
    try:
        resource = study("kst-unsent", namespace="katuna", mode="hang", maxTrials=4)
        resource["spec"]["trialTemplate"]["image"] = "python:3.12"
        kube.apply(resource)
        eventually(lambda: cluster.request("GET", "/studies/kst-unsent")[0] == 200, "the study stored", timeout=20)
        wait_trials(cluster, "kst-unsent", 2, timeout=20)
        kube.delete("Study", "katuna", "kst-unsent")
        assert cluster.wait_for("kst-unsent", timeout=20)["reason"] == "stopped: its resource was deleted"
        eventually(lambda: not [key for key in kube.jobs if key[1].startswith("kst-unsent-")],
                   "the Jobs deleted", timeout=20)
    finally:
        cluster.close()


def test_on_the_cluster_a_study_resource_where_katuna_may_not_create_jobs_is_refused_until_it_may(
        kube: KubeStub, tmp_path: Path):
    """The resource's namespace, where katuna's Role was copied (it writes the status there) but
    the katuna-trials ClusterRole never bound: refused in the status naming the namespace, as the
    cluster answers a SelfSubjectAccessReview, with nothing stored or launched; once an operator
    binds it, the next generation runs."""
    kube.add_namespace("unbound", grant=False)
    with kube.lock:
        kube.authorizer.copy_role("katuna", "unbound")
    cluster = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="katuna")
    try:
        resource = study("kst-unbound", namespace="unbound", maxTrials=1, parallelism=1)
        resource["spec"]["trialTemplate"]["image"] = "python:3.12"
        obj = kube.apply(resource)
        assert send(cluster, "add", obj) == []
        status = status_of(kube, obj)
        assert (status["phase"], conditions(status)["Failed"]["reason"]) == ("Failed", "Forbidden"), status
        assert status["problems"] == [{"field": "metadata.namespace", "message": (
            "katuna may not create jobs.batch in namespace 'unbound': bind the katuna-trials ClusterRole to its "
            "account there, or run the trials in a namespace where it is bound")}], status
        assert cluster.request("GET", "/studies/kst-unbound")[0] == 404
        assert not [name for name in kube.created if name.startswith("kst-unbound-")]
        with kube.lock:
            kube.authorizer.grant_in("unbound")
        resource["spec"]["maxTrials"] = 2
        assert send(cluster, "update", kube.apply(resource)) in FIRST_OR_SEEN
        assert cluster.wait_for("kst-unbound", timeout=30)["status"] == "completed"
    finally:
        cluster.close()


def test_on_the_cluster_a_study_resource_whose_trial_spec_the_api_server_refuses_is_refused_in_its_status(
        kube: KubeStub, tmp_path: Path):
    """The first trial's Job is created in a dry run in the resource's namespace: a field the API
    server refuses is refused in the status (``InvalidSpec``) at its place in the resource, and
    nothing is stored or launched."""
    cluster = Service(tmp_path, workers=1, KATUNA_EXECUTOR="kubernetes", KATUNA_K8S_API=kube.url,
                      KATUNA_K8S_NAMESPACE="katuna")
    try:
        resource = study("kst-pull", maxTrials=1, parallelism=1)
        command = resource["spec"]["trialTemplate"].pop("command")
        resource["spec"]["trialTemplate"] = {"trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "trial", "image": "python:3.12", "imagePullPolicy": "sometimes", "command": command}]}}}}}
        obj = kube.apply(resource)
        assert send(cluster, "add", obj) == []
        status = status_of(kube, obj)
        assert (status["phase"], conditions(status)["Failed"]["reason"]) == ("Failed", "InvalidSpec"), status
        assert status["problems"] == [{
            "field": "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].imagePullPolicy",
            "message": 'Unsupported value: "sometimes": supported values: "Always", "IfNotPresent", "Never": the API '
                       "server refuses the first trial's Job (a dry run of its create)"}], status
        assert cluster.request("GET", "/studies/kst-pull")[0] == 404
        assert not [name for _, name in kube.create_requests if name.startswith("kst-pull-")]
    finally:
        cluster.close()


# the uid guard on status writes


def test_a_merge_patch_of_the_status_ignores_metadata_as_the_api_does(kube: KubeStub):
    from kubernetes import client

    from functions.adapters.kubernetes_client import api_client

    obj = kube.apply(study("kst-merge"))
    api = client.CustomObjectsApi(api_client(kube.url))
    api.patch_namespaced_custom_object_status("katuna.dev", "v1", "team", "studies", "kst-merge",
                                              {"metadata": {"uid": "someone-else"}, "status": {"phase": "Running"}},
                                              _content_type="application/merge-patch+json")
    current = kube.resources[("studies", "team", "kst-merge")]
    assert (current["metadata"]["uid"], current["status"]) == (obj["metadata"]["uid"], {"phase": "Running"})


def test_a_status_never_reaches_a_resource_made_again_under_the_same_name(kube: KubeStub):
    from functions.adapters.kubernetes_client import api_client
    from functions.adapters.kubernetes_resources import KubernetesResources

    target = KubernetesResources(lambda: api_client(kube.url))
    old = kube.apply(study("kst-guard"))
    ref = resources.ref_of(old)
    assert target.write_status(ref, old["metadata"]["uid"], lambda: {"phase": "Running", "problems": None}) is True
    assert status_of(kube, old) == {"phase": "Running"}, "written whole, None left out"
    kube.delete("Study", "team", "kst-guard")
    assert target.write_status(ref, old["metadata"]["uid"], lambda: {"phase": "Succeeded"}) is False, "gone"
    new = kube.apply(study("kst-guard", maxTrials=2))
    assert target.write_status(ref, old["metadata"]["uid"], lambda: {"phase": "Succeeded"}) is False, "another resource"
    assert status_of(kube, new) == {}
    assert target.write_status(ref, new["metadata"]["uid"], lambda: {"phase": "Created"}) is True
    assert status_of(kube, new) == {"phase": "Created"}


def test_a_status_computed_before_the_study_ended_never_lands_over_its_end(kube: KubeStub, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch):
    """Knative delivers ``trial.suggested`` and ``study.completed`` to writeback in parallel: the
    first report computes Running and, before its write reaches the API, the study is stopped and
    the second report writes Stopped. The late write is refused (the resource changed since it was
    read) and computed again from the store: the resource stays Stopped. The API server holds the
    late write until the stop is done: no sleeps, the same order on every run."""
    from functions.adapters.sqlite_store import SqliteStore
    from functions.cluster_ports import ClusterResources
    from functions.core.events import Event, study_completed
    from functions.dispatch import Dispatcher
    from functions.embedded import Embedded
    from functions.handlers import Deps
    from functions.settings import Settings

    settings = Settings(db=tmp_path / "katuna.db")
    runner = Embedded(settings)
    cluster = ClusterResources(kube.url, "team")

    def dispatcher(store) -> Dispatcher:
        return Dispatcher(Deps(store, runner.executor, time.time, resources=cluster, workdir=str(tmp_path)))

    arrived, go = threading.Event(), threading.Event()
    serve = kube.serve

    def held(call):
        """The API server, holding the first status write of the study until told to go on."""
        if call.subresource == "status" and call.name == "kst-race" and not arrived.is_set():
            arrived.set()
            go.wait(30)
        return serve(call)

    def late(event: Event) -> None:
        store = SqliteStore(settings.db)
        try:
            dispatcher(store).deliver_to("writeback", event)
        finally:
            store.close()

    try:
        main = dispatcher(runner.store)
        obj = kube.apply(study("kst-race", mode="hang", maxTrials=4))
        created = main.deliver(Event("dev.knative.apiserver.resource.add", copy.deepcopy(obj), subject="kst-race"))
        suggested = main.deliver_to("suggest", created[0])
        assert status_of(kube, obj)["phase"] == "Created"
        monkeypatch.setattr(kube, "serve", held)
        worker = threading.Thread(target=late, args=(suggested[0],))
        worker.start()
        assert arrived.wait(30), "the late report wrote nothing"
        record = runner.store.get_study("kst-race")
        main.deliver(study_completed("kst-race", record.uid, "stopped", "stopped by user", record.restarts))
        assert status_of(kube, obj)["phase"] == "Stopped"
        go.set()
        worker.join(30)
        status = status_of(kube, obj)
        assert (status["phase"], conditions(status)["Running"]["status"]) == ("Stopped", "False"), status
    finally:
        go.set()
        runner.close()


@pytest.mark.slow
def test_a_study_whose_resource_was_made_again_unseen_never_writes_its_status_there(service: Service, kube: KubeStub):
    old = kube.apply(study("kst-again", mode="hang", maxTrials=1, parallelism=1))
    assert send(service, "add", old) == ["dev.katuna.study.created"]
    wait_trials(service, "kst-again", 1)
    kube.delete("Study", "team", "kst-again")
    new = kube.apply(study("kst-again", maxTrials=3))  # the delete and add events are lost
    service.json("POST", "/studies/kst-again/stop")
    assert service.wait_for("kst-again", timeout=30)["status"] == "stopped"
    assert status_of(kube, new) == {}, "the old study's status never lands on the new resource"


@pytest.mark.slow
def test_a_resource_asking_for_a_pool_without_requests_is_refused_naming_the_field(kube: KubeStub, tmp_path: Path):
    """Where the operator took away the service's default resources (``none``)."""
    unsized = Service(tmp_path, workers=1, KATUNA_K8S_API=kube.url, KATUNA_K8S_DEFAULT_RESOURCES="none")
    try:
        obj = kube.apply(study("kst-unsized", nodePool={"provider": "gke"}))
        assert send(unsized, "add", obj) == []
        status = status_of(kube, obj)
        assert status["phase"] == "Failed" and conditions(status)["Failed"]["reason"] == "InvalidSpec"
        assert [p["field"] for p in status["problems"]] == ["spec.trialTemplate.resources"]
        assert "KATUNA_K8S_DEFAULT_RESOURCES" in status["problems"][0]["message"]
        assert unsized.request("GET", "/studies/kst-unsized")[0] == 404
    finally:
        unsized.close()


def katib_resource(name: str, mode: str = "ok", **spec) -> dict:
    katib = as_experiment(EXAMPLES / "katib-experiment.yaml")
    katib["metadata"] = {"name": name, "namespace": "team"}
    container = katib["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = study_definition(mode=mode)["trialTemplate"]["command"][:2] + [
        "--x=${trialParameters.learningRate}", "--mode", mode]
    katib["spec"]["objective"].update(type="minimize", objectiveMetricName="loss", additionalMetricNames=[])
    katib["spec"]["objective"].pop("goal")
    katib["spec"].update({"maxTrialCount": 3, "parallelTrialCount": 1, "parameters": katib["spec"]["parameters"][:1],
                          **spec})
    katib["spec"]["trialTemplate"]["trialParameters"] = katib["spec"]["trialTemplate"]["trialParameters"][:1]
    return katib


def annotate(kube: KubeStub, obj: dict, pool: dict) -> dict:
    """Set the node-pool annotation (metadata changes leave the generation as it is)."""
    with kube.lock:
        current = kube.resources[("experiments", obj["metadata"]["namespace"], obj["metadata"]["name"])]
        current["metadata"].setdefault("annotations", {})["katuna.dev/node-pool"] = json.dumps(pool)
        return copy.deepcopy(current)


@pytest.mark.slow
def test_an_experiment_resource_names_its_node_pool_annotation_in_problems(service: Service, kube: KubeStub):
    resource = katib_resource("kst-pool-bad")
    resource["metadata"]["annotations"] = {"katuna.dev/node-pool": json.dumps({"provider": "gke", "maxNodes": 0})}
    check(resource)
    obj = kube.apply(resource)
    assert send(service, "add", obj) == []
    fields = [p["field"] for p in status_of(kube, obj)["problems"]]
    assert fields == ['metadata.annotations["katuna.dev/node-pool"].maxNodes']


@pytest.mark.slow
def test_a_running_experiment_refuses_a_changed_node_pool_annotation(service: Service, kube: KubeStub):
    obj = kube.apply(katib_resource("kst-pool-edit", mode="hang"))
    assert send(service, "add", obj) == ["dev.katuna.study.created"]
    wait_trials(service, "kst-pool-edit", 1)
    annotate(kube, obj, {"provider": "gke"})
    edited = kube.apply(katib_resource("kst-pool-edit", mode="hang", maxTrialCount=2))
    assert send(service, "update", edited) == []
    condition = conditions(status_of(kube, edited))["UpdateRefused"]
    assert 'metadata.annotations["katuna.dev/node-pool"] cannot change while the study runs' in condition["message"]
    assert service.json("GET", "/studies/kst-pool-edit")[1]["nodePool"] is None
    kube.delete("Experiment", "team", "kst-pool-edit")
    send(service, "delete", edited)
    assert service.wait_for("kst-pool-edit", timeout=30)["status"] == "stopped"


def test_katibs_api_versions_are_the_ones_its_importers_read():
    from functions.core import katib, resources, studyjob

    assert resources.KATIB_API_VERSIONS == (katib.API_VERSION, studyjob.API_VERSION)


def test_the_running_condition_turns_false_at_the_end_as_katib_times_a_changed_condition():
    """Katib's ``setCondition`` gives a condition whose status changes a new
    ``lastTransitionTime``: an ended Experiment's and an ended Trial's ``Running`` condition,
    False, is timed at the end (``kubectl describe`` shows when it stopped running), not when it
    started; a running one keeps its start."""
    definition = study_definition(maxTrials=2)
    spec = parse_study(definition)
    for status, completed, when in (("completed", 50.0, "1970-01-01T00:00:50Z"), ("running", None,
                                                                                   "1970-01-01T00:00:10Z")):
        record = StudyRecord(spec, definition, ".", "uid-1", status=status, reason="max trials reached (2)",
                             created_at=10.0, started_at=10.0, completed_at=completed)
        written = resource_status.study_status(record, Counts(complete=2), [], katib_origin())
        running = next(c for c in written["conditions"] if c["type"] == "Running")
        assert (running["status"], running["lastTransitionTime"]) == ("False" if completed else "True", when)
    ended = TrialRecord("demo", 0, {"x": 1.0}, "COMPLETE", values=[0.1], metrics={"loss": 0.1}, created_at=10.0,
                        started_at=11.0, finished_at=40.0)
    running = next(c for c in trial_status(ended, spec)["conditions"] if c["type"] == "Running")
    assert (running["status"], running["lastTransitionTime"]) == ("False", "1970-01-01T00:00:40Z")
    assert trial_status(ended, spec)["completionTime"] == "1970-01-01T00:00:40Z"
