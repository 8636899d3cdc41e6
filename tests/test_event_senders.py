"""Who may deliver events with Knative Eventing's OIDC tokens: with ``KATUNA_OIDC_SUBJECTS`` set,
a real ``katuna serve`` takes a valid token (right audience, issuer and signature, checked
against a loopback issuer) only from those senders, the Triggers' OIDC accounts, and refuses
another's with 403 naming it, since any pod can have such a token signed; the manifests allow
every Trigger they deploy, under the names Knative gives their accounts; no trial may run as
one of those accounts in the namespace its trials run in, nor as one a parameter names (the
launch fails); a malformed subject stops the service at start."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import jwt
import pytest
import yaml
from conftest import study_definition, unlined
from http_helpers import Service
from kube_stub import KubeStub
from test_cli import here
from test_web_events import EC_KEY, RSA_KEY, Issuer, _claims, _jwk, _post, completed

from functions.adapters.kubernetes_client import api_client
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.core import senders
from functions.core.errors import InvalidStudy
from functions.core.formats import load_definition
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.trial_identity import study_problems
from functions.settings import Settings

KNATIVE = Path(__file__).parent.parent / "knative"
CONFIG = yaml.load((KNATIVE / "config.yaml").read_text(), Loader=yaml.CSafeLoader)["data"]
SUBJECTS = CONFIG["KATUNA_OIDC_SUBJECTS"]
SUFFIX = "-oidc-eventing.knative.dev-trigger"
COLLECT = f"katuna-collect{SUFFIX}"
PATHS = ("/", "/functions/provision", "/dead-letters")


def current_account(trigger: str) -> str:
    """The OIDC account Knative's current releases make for a Trigger: its name and the suffix,
    or, where that is longer than a label (63), the name's first 31 characters and the MD5 of
    name and suffix."""
    if len(trigger) + len(SUFFIX) <= 63:
        return trigger + SUFFIX
    return trigger[:31] + hashlib.md5((trigger + SUFFIX).encode(), usedforsecurity=False).hexdigest()


def older_account(trigger: str) -> str:
    """The OIDC account older Knative releases made for a Trigger."""
    return f"oidc-eventing.knative.dev-trigger-{trigger}"


def triggers() -> list[str]:
    return sorted({doc["metadata"]["name"] for path in KNATIVE.rglob("*.yaml") if path.name != "kustomization.yaml"
                   for doc in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader)
                   if doc and doc.get("kind") == "Trigger"})


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    issuer = Issuer([_jwk(RSA_KEY, "rsa", jwt.algorithms.RSAAlgorithm), _jwk(EC_KEY, "ec", jwt.algorithms.ECAlgorithm)])
    running = Service(tmp_path_factory.mktemp("senders"), workers=1, KATUNA_EVENTS="reply",
                      KATUNA_OIDC_AUDIENCE=_claims()["aud"], KATUNA_OIDC_ISSUER_URL=issuer.url,
                      KATUNA_OIDC_SUBJECTS=SUBJECTS, KATUNA_K8S_NAMESPACE="katuna")
    yield running
    running.close()
    issuer.close()


def _token(subject: str) -> str:
    return jwt.encode(_claims(sub=subject), RSA_KEY, "RS256", headers={"kid": "rsa"})


@pytest.mark.slow
def test_a_triggers_delivery_token_is_taken(service: Service):
    for account in (COLLECT, current_account("katuna-jobwatch-update-pipelinerun"), older_account("katuna-collect")):
        token = _token(senders.account_subject("katuna", account))
        for path in PATHS:
            assert _post(service, path, completed("any"), Authorization=f"Bearer {token}")[0] == 202, (account, path)


@pytest.mark.slow
@pytest.mark.parametrize("subject", ["system:serviceaccount:katuna:default", "system:serviceaccount:katuna:trainer",
                                     f"system:serviceaccount:team:{COLLECT}", "system:serviceaccount:team:katuna-x"])
def test_a_valid_token_of_another_sender_is_refused_naming_it(service: Service, subject: str):
    """The token is valid (audience, issuer, signature, times): before, it was taken."""
    for path in PATHS:
        status, body = _post(service, path, completed("any"), Authorization=f"Bearer {_token(subject)}")
        assert status == 403, (path, body)
        assert body["error"] == "sender_not_allowed" and repr(subject) in body["message"]
        assert "KATUNA_OIDC_SUBJECTS" in body["message"]


def test_the_manifests_allow_every_trigger_they_deploy_and_no_default_account():
    names = triggers()
    assert len(names) > 20 and all(name.startswith("katuna-") for name in names)
    allowed = Settings.from_env(CONFIG).oidc_subjects
    for name in names:
        for account in (current_account(name), older_account(name)):
            assert senders.allowed(senders.account_subject("katuna", account), allowed), account
    for account in ("default", "katuna", "trainer"):
        assert not senders.allowed(senders.account_subject("katuna", account), allowed), account
    assert not senders.allowed(senders.account_subject("team", COLLECT), allowed), "another namespace's"


@pytest.mark.slow
def test_posting_a_study_whose_trials_run_as_a_triggers_account_is_refused(service: Service):
    native = study_definition(name="as-trigger", kubernetes={"serviceAccountName": COLLECT})
    status, body = service.json("POST", "/studies", body=json.dumps(native), headers={"Content-Type": "application/json"})
    assert status == 422, body
    [problem] = body["problems"]
    assert problem["path"] == "kubernetes.serviceAccountName"
    assert f"{COLLECT!r} in namespace 'katuna'" in problem["message"] and "KATUNA_OIDC_SUBJECTS" in problem["message"]
    assert service.json("GET", "/studies/as-trigger")[0] == 404


def test_a_triggers_account_is_reserved_in_the_trials_namespace_only_wherever_a_pod_names_it():
    defaults = Settings.from_env({**CONFIG, "KATUNA_K8S_NAMESPACE": "katuna"}).cluster_defaults()
    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "serviceAccountName": "katuna-anything", "containers": [{"name": "main", "image": "p",
                                                                 "command": ["t", "${trialParameters.x}"]}]}}}}
    native = study_definition(name="pods", trialTemplate={"trialSpec": job})
    spec, _ = load_definition(native)
    assert [p.path for p in study_problems(spec, defaults)] == [
        "trialTemplate.trialSpec.spec.template.spec.serviceAccountName"]
    elsewhere, _ = load_definition({**native, "kubernetes": {"namespace": "team"}})
    assert study_problems(elsewhere, defaults) == [], "katuna-anything in team sends katuna nothing"


def test_a_malformed_subject_or_one_the_trials_default_account_matches_stops_the_service():
    for subject, message in (("katuna-collect", "expected a service account's subject"),
                             ("system:serviceaccount:*", "expected a service account's subject"),
                             ("system:serviceaccount:katuna:*-trigger", "a \\* may only end a subject")):
        with pytest.raises(ValueError, match=f"KATUNA_OIDC_SUBJECTS: {message}"):
            Settings.from_env({"KATUNA_OIDC_SUBJECTS": subject})
    with pytest.raises(ValueError, match="'system:serviceaccount:katuna:default', the account trials run as"):
        Settings.from_env({"KATUNA_OIDC_SUBJECTS": "system:serviceaccount:katuna:*", "KATUNA_K8S_NAMESPACE": "katuna"})
    with pytest.raises(ValueError, match="KATUNA_OIDC_SUBJECTS: 'system:serviceaccount:katuna:katuna-trainer'"):
        Settings.from_env({**CONFIG, "KATUNA_K8S_SERVICE_ACCOUNT": "katuna-trainer"})


def _chosen_account(name: str) -> dict:
    """A study whose trial pods run as the account a categorical parameter names."""
    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "serviceAccountName": "${trialParameters.sa}",
        "containers": [{"name": "main", "image": "python:3.12", "command": ["t", "${trialParameters.x}"]}]}}}}
    native = study_definition(name=name, trialTemplate={"trialSpec": job})
    native["parameters"].append({"name": "sa", "type": "categorical", "values": ["trainer", COLLECT]})
    return native


def test_a_parameter_that_makes_a_pod_run_as_a_triggers_account_fails_the_launch(tmp_path: Path):
    """The account is known only at launch: ``katuna render`` and the Kubernetes executor (the
    real client, against the loopback API) refuse it then, naming the field; no Job is made."""
    env = {"KATUNA_OIDC_SUBJECTS": SUBJECTS, "KATUNA_K8S_NAMESPACE": "katuna"}
    path = "trialTemplate.trialSpec.spec.template.spec.serviceAccountName"
    study = tmp_path / "study.json"
    study.write_text(json.dumps(_chosen_account("chosen-sender")))
    def render(account: str) -> subprocess.CompletedProcess:
        return here("render", str(study), "--params", "x=1", "--params", f"sa={account}", check=False, env=env)

    refused = render(COLLECT)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"{path}: {COLLECT!r} in namespace 'katuna' is an account katuna takes events from" in " ".join(
        unlined(refused.stderr).split())
    rendered = render("trainer")
    assert rendered.returncode == 0, rendered.stderr
    assert yaml.safe_load(rendered.stdout)["spec"]["template"]["spec"]["serviceAccountName"] == "trainer"
    spec, definition = load_definition(_chosen_account("chosen-sender"))
    defaults = Settings.from_env(env).cluster_defaults()
    assert study_problems(spec, defaults) == [], "the account is known only at launch"
    record = StudyRecord(spec, definition, str(tmp_path), "0123456789ab")
    kube = KubeStub()
    try:
        executor = KubernetesExecutor(defaults, api_client(kube.url))
        with pytest.raises(InvalidStudy) as caught:
            executor.launch(trial_launch(record, TrialRecord(spec.name, 0, {"x": 1.0, "sa": COLLECT})))
        assert [p.path for p in caught.value.problems] == [path]
        assert "KATUNA_OIDC_SUBJECTS" in caught.value.problems[0].message
        assert not kube.created_jobs
        executor.launch(trial_launch(record, TrialRecord(spec.name, 1, {"x": 1.0, "sa": "trainer"})))
        [job] = kube.created_jobs.values()
        assert job["spec"]["template"]["spec"]["serviceAccountName"] == "trainer"
    finally:
        kube.close()
