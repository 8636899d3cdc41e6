"""The broker's EventPolicies (``knative/oidc``): with Eventing's OIDC on, the broker takes events
from katuna's own senders only (its sources, its service, its Triggers' replies) and trial Jobs'
progress reports, and refuses (403) every other account, the trial's own and those of katuna's
namespace included. The policies match the upstream CRD's schema strictly and pass the checks of
Eventing's webhook; the ingress's decision is :mod:`knative_authz`'s model of it."""

from __future__ import annotations

import copy

import jsonschema
import pytest
from knative_authz import NotReady, authorize, oidc_account, subjects, webhook_problems
from test_deploy import selects
from test_deploy_kustomize import KNATIVE, render
from test_knative import crd_schema, strict

from functions.core.events import ROUTES
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.settings import Settings

DEPLOYED = render(KNATIVE, components=("oidc", "katib-api", "trial-kinds/training-operator"))
WITHOUT_POLICY = render(KNATIVE, components=("katib-api", "trial-kinds/training-operator"))
POLICIES = [doc for doc in DEPLOYED if doc["kind"] == "EventPolicy"]


def account(name: str) -> str:
    return f"system:serviceaccount:katuna:{name}"


def of(doc: dict) -> str:
    """The OIDC subject Knative gives an object's deliveries."""
    return account(oidc_account(doc["metadata"]["name"], doc["apiVersion"], doc["kind"]))


def event(event_type: str) -> dict[str, str]:
    return {"type": event_type, "source": "/katuna", "id": "1", "specversion": "1.0"}


def objects_of(kind: str) -> list[dict]:
    return [doc for doc in DEPLOYED if doc["kind"] == kind]


KATUNA_TYPES = sorted(t for t in ROUTES if t.startswith("dev.katuna."))


def test_the_policies_match_the_crd_schema_strictly_and_pass_the_webhook():
    assert {p["metadata"]["name"] for p in POLICIES} == {"katuna", "katuna-trial-progress"}
    for doc in DEPLOYED:
        if "knative.dev" in doc["apiVersion"]:
            jsonschema.validate(doc, strict(crd_schema(doc["apiVersion"], doc["kind"])))
    assert [problem for policy in POLICIES for problem in webhook_problems(policy)] == []
    assert all(subjects(policy, DEPLOYED) for policy in POLICIES), "every ref names an object the manifests deploy"


def test_the_component_has_the_service_verify_the_triggers_audience():
    [service] = [d for d in DEPLOYED if d["kind"] == "Service" and "serving" in d["apiVersion"]]
    env = {e["name"]: e.get("value") for e in service["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {t["spec"]["subscriber"]["audience"] for t in objects_of("Trigger")} == {env["KATUNA_OIDC_AUDIENCE"]}


def test_a_trigger_without_delivery_dead_letters_with_the_audience_the_service_verifies():
    """A Trigger without its own dead-letter sink uses the Broker's, with the Broker's audience
    (eventing's broker filter falls back to the Broker's ``deadLetterSinkAudience``): without one
    the letter goes without a token, and the service refuses it (401)."""
    [service] = [d for d in DEPLOYED if d["kind"] == "Service" and "serving" in d["apiVersion"]]
    env = {e["name"]: e.get("value") for e in service["spec"]["template"]["spec"]["containers"][0]["env"]}
    [broker] = objects_of("Broker")
    users = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "katuna-mine"},
             "spec": {"broker": "katuna", "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1",
                                                                 "kind": "Service", "name": "katuna"}}}}
    jsonschema.validate(users, strict(crd_schema(users["apiVersion"], users["kind"])))

    def dead_letter_sink(trigger: dict) -> dict:
        own = trigger["spec"].get("delivery", {}).get("deadLetterSink")
        return own if own is not None else broker["spec"]["delivery"]["deadLetterSink"]

    sinks = [dead_letter_sink(trigger) for trigger in [*objects_of("Trigger"), users]]
    assert all(sink["ref"]["name"] == service["metadata"]["name"] and sink["uri"] == "/dead-letters" for sink in sinks)
    assert {sink.get("audience") for sink in sinks} == {env["KATUNA_OIDC_AUDIENCE"]}


def test_an_unknown_field_fails_the_schema():
    broken = copy.deepcopy(POLICIES[0])
    broken["spec"]["from"][0]["ref"]["nmae"] = broken["spec"]["from"][0]["ref"].pop("name")
    with pytest.raises(jsonschema.ValidationError, match="nmae"):
        jsonschema.validate(broken, strict(crd_schema(broken["apiVersion"], broken["kind"])))
    broken = copy.deepcopy(POLICIES[0])
    broken["spec"]["senders"] = broken["spec"].pop("from")
    with pytest.raises(jsonschema.ValidationError, match="senders"):
        jsonschema.validate(broken, strict(crd_schema(broken["apiVersion"], broken["kind"])))


@pytest.mark.parametrize("change,problem", [
    (lambda s: s["from"][0]["ref"].pop("kind"), "spec.from[0].ref.kind: missing field"),
    (lambda s: s["to"][0]["ref"].pop("apiVersion"), "spec.to[0].ref.apiVersion: missing field"),
    (lambda s: s["from"][0].update(sub="system:serviceaccount:katuna:x"), "spec.from[0]: expected exactly one of ref, sub"),
    (lambda s: s["from"].append({"sub": ""}), "spec.from[5]: expected exactly one of ref, sub"),
    (lambda s: s["from"].append({"sub": "system:serviceaccount:*:katuna"}), "spec.from[5].sub: 'system:serviceaccount:*:katuna'"),
    (lambda s: s["to"][0].update(selector={"apiVersion": "eventing.knative.dev/v1", "kind": "Broker"}),
     "spec.to[0]: expected exactly one of ref, selector"),
    (lambda s: s.update(filters=[{"exact": {"type": "a"}, "prefix": {"type": "b"}}]), "spec.filters[0]"),
], ids=["ref-without-kind", "to-without-apiVersion", "ref-and-sub", "empty-sub", "star-inside", "ref-and-selector",
        "two-dialects"])
def test_what_the_webhook_refuses_is_named_by_field(change, problem: str):
    """The CRD's schema requires nothing; Eventing's webhook refuses these, naming the field."""
    broken = copy.deepcopy(next(p for p in POLICIES if p["metadata"]["name"] == "katuna"))
    jsonschema.validate(broken, strict(crd_schema(broken["apiVersion"], broken["kind"])))
    change(broken["spec"])
    assert any(p.startswith(problem) for p in webhook_problems(broken)), webhook_problems(broken)


def test_the_sources_and_the_service_post_to_the_broker():
    for source in objects_of("ApiServerSource"):
        for verb in ("add", "update", "delete"):
            assert authorize(DEPLOYED, "katuna", of(source), event(f"dev.knative.apiserver.resource.{verb}")) == 202
    [tick] = objects_of("PingSource")
    assert authorize(DEPLOYED, "katuna", of(tick), event("dev.knative.sources.ping")) == 202
    [service_binding] = [b for b in objects_of("SinkBinding") if b["spec"]["subject"].get("name") == "katuna"]
    assert all(authorize(DEPLOYED, "katuna", of(service_binding), event(t)) == 202 for t in KATUNA_TYPES)


def test_every_triggers_reply_re_enters_the_broker():
    """The broker's filter posts a subscriber's reply to the ingress as the Trigger's account."""
    triggers = objects_of("Trigger")
    assert len(triggers) > 19, "the components' Triggers too"
    for trigger in triggers:
        assert all(authorize(DEPLOYED, "katuna", of(trigger), event(t)) == 202 for t in KATUNA_TYPES)


def test_trial_jobs_are_bound_and_post_progress_reports_only():
    """The binding selects the Jobs katuna makes with the component's settings, and none it made
    before: Knative would patch such a Job's template, which the API server refuses, and
    Eventing's reconciler stops there, minting no token for the binding (psbinding's
    reconcile runs the sub-resources only after every subject is patched)."""
    [binding] = [b for b in objects_of("SinkBinding") if b["spec"]["subject"].get("kind") == "Job"]
    [service] = [d for d in DEPLOYED if d["kind"] == "Service" and "serving" in d["apiVersion"]]
    env = {e["name"]: e["value"] for e in service["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}
    launch = TrialLaunch("digits", "u1", 3, 1, "digits-3", ["python", "t.py"], {}, ".", None, image="python:3.12")
    selector = binding["spec"]["subject"]["selector"]
    assert selects(selector, render_job(launch, Settings.from_env(env).cluster_defaults())["metadata"]["labels"])
    assert not selects(selector, render_job(launch)["metadata"]["labels"]), "a Job made before the component"
    assert binding["spec"]["sink"]["ref"]["name"] == "katuna"
    assert authorize(DEPLOYED, "katuna", of(binding), event("dev.katuna.trial.progress")) == 202
    for forged in ("dev.katuna.trial.finished", "dev.katuna.study.completed", "dev.knative.sources.ping"):
        assert authorize(DEPLOYED, "katuna", of(binding), event(forged)) == 403


@pytest.mark.parametrize("mode", ["allow-same-namespace", "allow-all"])
def test_any_other_account_is_refused(mode: str):
    others = [account("default"), account("trainer"), "system:serviceaccount:team-a:default",
              "system:serviceaccount:knative-eventing:eventing-controller"]
    for subject in others:
        assert authorize(DEPLOYED, "katuna", subject, event("dev.katuna.trial.finished"), mode) == 403
    if mode == "allow-same-namespace":
        assert authorize(WITHOUT_POLICY, "katuna", account("default"), event("dev.katuna.trial.finished"), mode) == 202, \
            "what the policies close: without them a trial pod of katuna's namespace is taken"
    else:
        assert authorize(WITHOUT_POLICY, "katuna", others[2], event("dev.katuna.trial.finished"), mode) == 202


def test_a_ref_to_an_object_not_deployed_is_not_ready():
    """Knative leaves such a policy unready and the broker ignores it (the default mode applies)."""
    policy = copy.deepcopy(next(p for p in POLICIES if p["metadata"]["name"] == "katuna-trial-progress"))
    policy["spec"]["from"][0]["ref"]["name"] = "trial-progres"
    with pytest.raises(NotReady, match="trial-progres does not exist"):
        subjects(policy, DEPLOYED)
