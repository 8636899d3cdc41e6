"""A security review of the deployment, as tests: least-privilege RBAC derived from the code,
no secret in any manifest, a hardened container and trial Job, the API token enforced on every
route, and nothing from the network unpickled, evaluated or run through a shell."""

from __future__ import annotations

import ast
import base64
import contextlib
import html
import http.client
import itertools
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import tracemalloc
import urllib.parse
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from importlib.resources import files
from pathlib import Path
from typing import TypeVar

import jwt
import pytest
import yaml
from conftest import study_definition
from http_helpers import KATUNA, NOBODY, Service, free_port, raw_request, refused_start, run_katuna
from standin_server import StandInServer
from test_web_events import AUDIENCE, OTHER_KEY, RSA_KEY, Issuer, _claims, _jwk, _post, completed
from test_web_events import TOKEN as EVENTS_TOKEN
from tls_sink import Authority
from waiting import eventually

from functions.adapters.web import create_app, paging
from functions.adapters.web.attempts import FAILURES
from functions.adapters.web.oidc import Verifier
from functions.adapters.web.openapi import document
from functions.core import pod_security
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy, TemporaryError
from functions.core.job import render_job
from functions.core.launch import TrialLaunch
from functions.core.pod_fields import is_dns_subdomain
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.resources import API_VERSION, GROUP, KINDS, PLURALS
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

ROOT = Path(__file__).parent.parent
KNATIVE = ROOT / "knative"
FUNCTIONS = ROOT / "functions"
API_GROUPS = {"BatchV1Api": "batch", "CoreV1Api": "", "EventsV1Api": "events.k8s.io"}
KATIB = "kubeflow.org"
KUEUE = "kueue.x-k8s.io"
STUDY_PLURALS = [PLURALS[kind] for kind in KINDS[API_VERSION]]
CUSTOM_OBJECT_CALLS = {
    "get_namespaced_custom_object": {(GROUP, p, "get") for p in STUDY_PLURALS}
    | {(KATIB, p, "get") for p in ("experiments", "studyjobs", "trials", "suggestions")},
    "list_namespaced_custom_object": {(GROUP, p, "list") for p in STUDY_PLURALS} | {(KUEUE, "workloads", "list")},
    "patch_namespaced_custom_object": {(KUEUE, "workloads", "patch"), (KATIB, "suggestions", "patch")},
    "patch_namespaced_custom_object_status": {(GROUP, f"{p}/status", "patch") for p in STUDY_PLURALS}
    | {(KATIB, f"{p}/status", "patch") for p in ("experiments", "studyjobs", "trials", "suggestions")},
    "list_cluster_custom_object": {(KATIB, p, "list") for p in ("experiments", "studyjobs")},
    "create_namespaced_custom_object": {(KATIB, p, "create") for p in ("trials", "suggestions")},
    "delete_namespaced_custom_object": {(KATIB, p, "delete") for p in ("trials", "suggestions")},
}
"""What each custom-object call reaches: study resources (katuna.dev), with the
``knative/katib-api`` overlay Katib's kinds (kubeflow.org), and Kueue's Workloads of trial Jobs.
Written by hand, as a call names its resource by variables: the walk of katuna's calls on
Katib's kinds through the loopback API (tests/test_katib_trial_writes.py) holds it to them."""
CLUSTER_CALLS = {"list_node": ("", "nodes", "list")}
"""Cluster-scope reads, granted by a ClusterRole of their own."""
VERBS = {"create": "create", "read": "get", "list": "list", "delete": "delete", "patch": "patch",
         "replace": "update", "watch": "watch", "deletecollection": "deletecollection"}


def _docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def used_permissions() -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every Kubernetes API call the executor (with its pod-log
    reader and its report tokens' Secrets) and resources adapters make, read from their source: ``self._batch = client.BatchV1Api(...)`` then
    ``self._batch.create_namespaced_job``; a custom-object call reaches what
    :data:`CUSTOM_OBJECT_CALLS` says. (The trial kinds' workloads get their grants from the
    kinds' components.)"""
    apis: dict[str, str] = {}
    used: set[tuple[str, str, str]] = set()
    for module in sorted((FUNCTIONS / "adapters").glob("kubernetes_*.py")):
        if module.name != "kubernetes_workloads.py":
            used |= _calls(ast.parse(module.read_text()), apis)
    return used


def _calls(tree: ast.Module, apis: dict[str, str]) -> set[tuple[str, str, str]]:
    """The (API group, resource, verb) of the calls in one adapter module's source."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Attribute) and node.value.func.attr in API_GROUPS):
            apis[node.targets[0].attr] = API_GROUPS[node.value.func.attr]
    used: set[tuple[str, str, str]] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr in apis):
            verb, _, rest = node.attr.replace("delete_collection", "deletecollection").partition("_")
            # A list across namespaces is the same verb on the same resource, granted everywhere
            # by a ClusterRoleBinding of the ClusterRole that grants it in a namespace.
            resource = rest.removeprefix("namespaced_").removesuffix("_for_all_namespaces").replace(
                "config_map", "configmap").replace("limit_range", "limitrange")  # one word each in the API
            resource, _, sub = resource.partition("_")
            used.add((apis[node.value.attr], resource + "s" + (f"/{sub}" if sub else ""), VERBS[verb]))
        if isinstance(node, ast.Attribute) and "custom_object" in node.attr:
            used |= CUSTOM_OBJECT_CALLS[node.attr]
        if isinstance(node, ast.Attribute) and node.attr.removesuffix("_with_http_info") in CLUSTER_CALLS:
            used.add(CLUSTER_CALLS[node.attr.removesuffix("_with_http_info")])
    return used


def granted_permissions(role: str, manifest: Path = KNATIVE / "rbac.yaml") -> set[tuple[str, str, str]]:
    roles = [d for d in _docs(manifest) if d["kind"] in ("Role", "ClusterRole")
             and d["metadata"]["name"] == role]
    assert len(roles) == 1
    return {(group, resource, verb) for rule in roles[0]["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_the_derivation_sees_every_call_the_executor_makes():
    assert used_permissions() >= {("batch", "jobs", "create"), ("", "pods/log", "get")}


def test_the_service_role_grants_exactly_what_the_code_uses():
    katib = granted_permissions("katuna-katib", KNATIVE / "katib-api" / "rbac.yaml")
    assert granted_permissions("katuna") | granted_permissions("katuna-trials") | granted_permissions("katuna-nodes") \
        | katib == used_permissions()


def test_no_role_grants_wildcards_a_read_of_secrets_or_cluster_scope_beyond_listing_nodes():
    """A ClusterRole is bound with a ClusterRoleBinding only to list nodes: the trials' and the
    source's are bound with RoleBindings, which grant them in one namespace each, and the trial
    templates' (``get`` on ConfigMaps alone) is left for the operator to bind in a namespace of
    shared templates. Of Secrets, only the trials' role grants anything: to create and delete
    its attempts' report tokens' Secrets (by a collection delete selecting katuna's own by
    label), never to read one."""
    docs = [d for path in KNATIVE.glob("*.yaml") for d in _docs(path)]
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRoleBinding"] == ["katuna-nodes"]
    cluster_roles = {d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"}
    assert cluster_roles == {"katuna-nodes", "katuna-trials", "katuna-jobs-source", "katuna-trial-templates"}
    assert {d["roleRef"]["name"] for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["kind"] == "ClusterRole"} \
        == cluster_roles - {"katuna-nodes", "katuna-trial-templates"}
    assert granted_permissions("katuna-nodes") == {("", "nodes", "list")}
    assert granted_permissions("katuna-trial-templates") == {("", "configmaps", "get")}
    for doc in (d for d in docs if d["kind"] in ("Role", "ClusterRole")):
        for rule in doc["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], doc["metadata"]["name"]
            if "secrets" in rule["resources"]:
                assert doc["metadata"]["name"] == "katuna-trials" and set(rule["verbs"]) == {"create", "deletecollection"}
    source = granted_permissions("katuna-jobs-source")
    assert {verb for _, _, verb in source if _ == "batch"} <= {"get", "list", "watch"}


SECRET_PATTERNS = [re.compile(p) for p in (r"AKIA[0-9A-Z]{16}", r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
                                            r"gh[pousr]_[A-Za-z0-9]{30,}", r"xox[abp]-[A-Za-z0-9-]{10,}",
                                            r"eyJ[A-Za-z0-9_-]{10,}\.eyJ")]
SECRET_NAMES = re.compile(r"(?i)token|password|passwd|secret|api[_-]?key|credential|private")
NAMES_OF_SECRETS = frozenset({"KATUNA_SERVICE_SECRETS", "KATUNA_K8S_IMAGE_PULL_SECRETS"})
"""Settings whose values are the names of Secrets, never what a Secret holds."""


def _env_entries(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield from value
            else:
                yield from _env_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_entries(value)


def test_no_manifest_holds_a_secret_value():
    for path in [*(p for p in KNATIVE.rglob("*") if p.is_file()), *(ROOT / "examples").rglob("*.yaml")]:
        text = path.read_text()
        for pattern in SECRET_PATTERNS:
            assert not pattern.search(text), f"{path.name}: looks like a credential"
        if path.suffix != ".yaml":
            continue
        for doc in _docs(path):
            assert doc.get("kind") != "Secret" or not (doc.get("data") or doc.get("stringData")), path.name
            for name, value in (doc.get("data") or {}).items() if doc.get("kind") == "ConfigMap" else ():
                if name in NAMES_OF_SECRETS:
                    assert all(is_dns_subdomain(s) for s in value.split(",")), f"{path.name}: {name} names Secrets"
                else:
                    assert not SECRET_NAMES.search(name), f"{path.name}: {name} belongs in a Secret"
            for entry in _env_entries(doc):
                if SECRET_NAMES.search(entry["name"]):
                    assert "value" not in entry and "secretKeyRef" in entry.get("valueFrom", {}), \
                        f"{path.name}: {entry['name']} must come from a Secret"


def test_the_service_container_runs_as_non_root_on_a_read_only_root_file_system():
    service = next(d for d in _docs(KNATIVE / "service.yaml") if d["kind"] == "Service")
    container = service["spec"]["template"]["spec"]["containers"][0]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True and context.get("runAsUser", 1) != 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    writable = {m["mountPath"] for m in container["volumeMounts"]}
    config = next(d for d in _docs(KNATIVE / "config.yaml") if d["kind"] == "ConfigMap")["data"]
    for setting in ("KATUNA_DB", "KATUNA_LOG_DIR"):
        assert any(config[setting].startswith(path + "/") for path in writable), f"{setting} is on the read-only root"


def test_the_namespace_enforces_the_baseline_pod_security_standard_its_own_pods_meet():
    """Pod Security Admission refuses what katuna's own check refuses, for pods katuna does not
    create too; the pods the manifests put there (the service's; the ApiServerSource adapters and
    Knative's queue-proxy set no host or privileged field) meet the baseline."""
    namespace = next(d for d in _docs(KNATIVE / "namespace.yaml") if d["kind"] == "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
    service = next(d for d in _docs(KNATIVE / "service.yaml") if d["kind"] == "Service")
    assert pod_security.study_problems(service["spec"]["template"]) == []
    for manifest in KNATIVE.rglob("*.yaml"):
        for item in _docs(manifest):
            assert not _host_fields(item), f"{manifest}: {item.get('kind')} asks for the node"


def _host_fields(tree) -> list[str]:
    """The names of fields granting the node that the baseline forbids, anywhere in ``tree``."""
    if isinstance(tree, dict):
        found = [k for k, v in tree.items() if k in ("privileged", "hostNetwork", "hostPID", "hostIPC", "hostPath")
                 and v not in (False, None)]
        return found + [f for v in tree.values() for f in _host_fields(v)]
    if isinstance(tree, list):
        return [f for v in tree for f in _host_fields(v)]
    return []


def test_the_service_answers_its_cluster_names_and_cannot_start_without_its_token():
    service = next(d for d in _docs(KNATIVE / "service.yaml") if d["kind"] == "Service")
    env = {e["name"]: e for e in service["spec"]["template"]["spec"]["containers"][0]["env"]}
    namespace = next(d for d in _docs(KNATIVE / "namespace.yaml") if d["kind"] == "Namespace")["metadata"]["name"]
    name = service["metadata"]["name"]
    allowed = env["KATUNA_ALLOWED_HOSTS"]["value"].split(",")
    assert {f"{name}.{namespace}.svc.cluster.local", f"{name}.{namespace}.svc"} <= set(allowed)
    assert env["KATUNA_API_TOKEN"]["valueFrom"]["secretKeyRef"].get("optional", False) is False


def test_the_image_drops_root_before_it_runs_anything():
    lines = [line.strip() for line in (KNATIVE / "Dockerfile").read_text().splitlines()]
    users = [i for i, line in enumerate(lines) if line.startswith("USER ")]
    assert users, "the image names a user"
    user, _, group = lines[users[-1]].split()[1].partition(":")
    assert user.isdigit() and int(user) != 0, "a numeric non-root uid (runAsNonRoot can check it)"
    assert not group or group.isdigit(), "a numeric group"
    assert not [line for line in lines[users[-1]:] if line.startswith("RUN ")]
    command = " ".join(lines[next(i for i, line in enumerate(lines) if line.startswith("CMD")):])
    assert '"--worker-tmp-dir", "/dev/shm"' in command, "gunicorn's heartbeat files off the read-only root"


def _launch(**overrides) -> TrialLaunch:
    fields = dict(study="sec", uid="u1", number=0, attempt=1, job_name="sec-0", argv=["python", "t.py"], env={},
                  working_dir=".", timeout=None, image="python:3.12")
    return TrialLaunch(**{**fields, **overrides})


def test_a_trial_job_cannot_escalate_privileges():
    pod = render_job(_launch())["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False,
                                            "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False, "a trial without a service account gets no API token"
    assert not {"hostNetwork", "hostPID", "hostIPC", "volumes"} & pod.keys()


def test_a_katib_trial_spec_gets_the_pod_hardening_unless_it_says_otherwise():
    spec = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "containers": [{"name": "training", "image": "python", "command": ["python", "t.py"]}]}}}}
    pod = render_job(_launch(trial_spec=spec, primary_container="training"))["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    spec["spec"]["template"]["spec"]["serviceAccountName"] = "trainer"
    pod = render_job(_launch(trial_spec=spec, primary_container="training"))["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False, "naming an account (for its cloud identity) is no ask for a token"
    spec["spec"]["template"]["spec"]["automountServiceAccountToken"] = True
    pod = render_job(_launch(trial_spec=spec, primary_container="training"))["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True, "a template that asks for the token keeps it"


def test_a_trial_pod_gets_an_api_token_only_when_the_study_asks_for_one():
    pod = render_job(_launch(cluster=Cluster(service_account="trainer")))["spec"]["template"]["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("trainer", False)
    asked = Cluster(service_account="trainer", automount_token=True)
    assert render_job(_launch(cluster=asked))["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


def _replicas(kind: str, key: str, roles: dict) -> dict:
    return {"apiVersion": "kubeflow.org/v1", "kind": kind, "spec": {key: {role: {"replicas": 1, "template": {"spec": {
        "containers": [{"name": "main", "image": "python", "command": ["python", "t.py"]}], **pod}}}
        for role, pod in roles.items()}}}


def test_training_operator_pods_get_no_token_unless_their_kind_needs_one():
    tf = render_job(_launch(trial_spec=_replicas("TFJob", "tfReplicaSpecs", {"Chief": {}, "Worker": {
        "automountServiceAccountToken": True}}), primary_container="main"))
    pods = {role: r["template"]["spec"] for role, r in tf["spec"]["tfReplicaSpecs"].items()}
    assert (pods["Chief"]["automountServiceAccountToken"], pods["Worker"]["automountServiceAccountToken"]) == (False, True)
    mpi = render_job(_launch(trial_spec=_replicas("MPIJob", "mpiReplicaSpecs", {"Launcher": {}, "Worker": {}}),
                             primary_container="main"))
    assert not any("automountServiceAccountToken" in r["template"]["spec"]
                   for r in mpi["spec"]["mpiReplicaSpecs"].values()), "an MPIJob's launcher runs kubectl"


def test_a_parameter_cannot_make_a_trial_pod_run_as_the_service_account():
    spec = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "serviceAccountName": "${trialParameters.account}",
        "containers": [{"name": "training", "image": "python", "command": ["python", "t.py"]}]}}}}
    service = Cluster(reserved_accounts=("katuna",))
    launch = _launch(trial_spec=spec, primary_container="training", params={"account": "trainer"})
    assert render_job(launch, service)["spec"]["template"]["spec"]["serviceAccountName"] == "trainer"
    with pytest.raises(InvalidStudy) as refused:
        render_job(replace(launch, params={"account": "katuna"}), service)
    assert [p.path for p in refused.value.problems] == ["trialTemplate.trialSpec.spec.template.spec.serviceAccountName"]
    with pytest.raises(InvalidStudy, match="kubernetes.serviceAccountName: 'katuna' is the katuna service's own"):
        render_job(_launch(cluster=Cluster(service_account="katuna")), service)


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    service = Service(tmp_path_factory.mktemp("locked"), workers=1, KATUNA_API_TOKEN="s3cret-token-0123456789")
    yield service
    service.close()


OPEN = {"/healthz", "/readyz", "/", "/functions/{function}"}


def _operations() -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in document()["paths"].items()
            for method in item if method in ("get", "post", "delete", "put", "patch")
            if path not in OPEN and not (path == "/dead-letters" and method == "post")]


@pytest.mark.slow
@pytest.mark.parametrize("method, path", _operations(), ids=[f"{m} {p}" for m, p in _operations()])
def test_every_api_route_needs_the_token_when_one_is_set(locked: Service, method: str, path: str):
    url = path.replace("{name}", "demo").replace("{number}", "0")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0LXRva2Vu"},
                    {"Authorization": "Bearer s3cret-token-0123456789-and-more"}, {"Authorization": "Bearer "}):
        status, answer, _ = locked.request(method, url, b"{}" if method == "POST" else None,
                                           {"Content-Type": "application/json", **headers})
        assert status == 401, (method, url, headers)
        assert answer["WWW-Authenticate"].startswith("Bearer")
    status, _, _ = locked.request(method, url, b"{}" if method == "POST" else None,
                                  {"Content-Type": "application/json", "Authorization": "Bearer s3cret-token-0123456789"})
    assert status != 401


FORBIDDEN_CALLS = {("pickle", "loads"), ("pickle", "load"), ("pickle", "Unpickler"), ("marshal", "loads"),
                   ("dill", "loads"), ("yaml", "unsafe_load"), ("yaml", "full_load"), ("yaml", "load_all"),
                   ("os", "system"), ("os", "popen"), ("shelve", "open"), ("jsonpickle", "decode")}
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__"}


def _violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in FORBIDDEN_NAMES:
            found.append(f"{func.id}() at line {node.lineno}")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if (func.value.id, func.attr) in FORBIDDEN_CALLS:
                found.append(f"{func.value.id}.{func.attr}() at line {node.lineno}")
            if (func.value.id, func.attr) == ("yaml", "load") and not any(
                    "Safe" in ast.unparse(k.value) for k in node.keywords if k.arg == "Loader"):
                found.append(f"yaml.load() without a safe loader at line {node.lineno}")
        if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
               for k in node.keywords):
            found.append(f"a call with shell= at line {node.lineno}")
    return found


def test_the_scan_catches_what_it_looks_for():
    bad = ("import pickle, yaml, subprocess\npickle.loads(b)\neval(x)\nyaml.load(t)\n"
           "yaml.load(t, Loader=yaml.SafeLoader)\nsubprocess.run(a, shell=True)\n")
    assert len(_violations(bad)) == 4


@pytest.mark.parametrize("path", sorted(FUNCTIONS.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_is_unpickled_evaluated_or_run_through_a_shell(path: Path):
    assert _violations(path.read_text()) == []
    if path not in PICKLES_ITS_OWN_STATE:
        assert "import pickle" not in path.read_text() and "from pickle" not in path.read_text()


PICKLES_ITS_OWN_STATE = {FUNCTIONS / "core" / "optuna_compat" / name: pickled
                         for name, pickled in (("_journal.py", "storage._replay_result"), ("_cmaes.py", "optimizer"))}
"""The modules that pickle, and what: Optuna's replayed state into a snapshot row of katuna's own
database, and the restarting CMA-ES's optimizer into its trials' system attributes there (where
Optuna's own CMA-ES keeps it); only Optuna reads them back (``restore_replay_result``, the CMA-ES sampler's
``_restore_optimizer``), from that database, never from the network."""


def test_only_the_journal_and_the_cma_es_pickle_and_only_their_own_state():
    for path, pickled in PICKLES_ITS_OWN_STATE.items():
        source = path.read_text()
        assert f"pickle.dumps({pickled})" in source and source.count("pickle.") == 1, path



def test_a_token_sent_the_wrong_way_is_refused_and_kept_out_of_the_access_log(locked: Service):
    """A token as a Basic auth user name or in the query string is refused (``401``) and never
    written to the log: its access lines give the method, the path and the status alone."""
    basic = "Basic " + base64.b64encode(b"s3cret-token-0123456789:").decode()
    assert locked.request("POST", "/studies", b"{}", {"Content-Type": "application/json",
                                                     "Authorization": basic})[0] == 401
    assert locked.request("POST", "/studies?token=s3cret-token-0123456789&access_token=s3cret-token-0123456789", b"{}",
                          {"Content-Type": "application/json", "Referer": "http://127.0.0.1/ui/?token=s3cret-token-0123456789"}
                          )[0] == 401
    log = eventually(lambda: len(re.findall(r'"POST /studies[^"]*" 401 ', text := (locked.workdir / "serve.log")
                                            .read_text())) >= 2 and text, "the access lines of both requests")
    assert "s3cret-token-0123456789" not in log
    assert log.count('"POST /studies HTTP/1.1" 401 ') >= 2


def test_an_invalid_study_of_many_problems_is_answered_with_the_first_hundred(locked: Service):
    """A body of 45,000 unknown fields (570 KB, within ``KATUNA_MAX_BODY``) has as many problems:
    the ``422`` lists the first 100 and counts the rest, where it listed each with the fields
    expected there, an answer of 12 MB (twenty times the body) at every post."""
    body = json.dumps({"name": "many", **{f"field{i}": 0 for i in range(45_000)}})
    status, _, answer = locked.request("POST", "/studies", body, {"Content-Type": "application/json",
                                                                 "Authorization": "Bearer s3cret-token-0123456789"})
    refused = json.loads(answer)
    assert status == 422 and len(answer) < 64 * 1024, len(answer)
    assert [p["path"] for p in refused["problems"]][:2] == ["field0", "field1"] and len(refused["problems"]) == 100
    assert refused["problemsNotListed"] >= 45_000 - 100 and "the first 100 in problems" in refused["message"]


PROXY_HEADERS = {"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=203.0.113.7;proto=https",
                 "X-Real-IP": "203.0.113.7", "X-Forwarded-Host": "katuna.example.org", "X-Forwarded-Proto": "https",
                 "Via": "1.1 edge"}
"""The headers by which proxies say they passed a request on, as nginx, Apache, Caddy, Traefik
and Envoy send them."""


@pytest.mark.slow
def test_without_a_token_a_request_a_proxy_passed_on_is_refused_though_its_connection_is_the_services_own_user(
        tmp_path: Path):
    """A proxy run as the service's own user (or root) on this machine connects as that user,
    whoever its client is: an nginx in front, whose requests name the upstream's Host
    (``127.0.0.1:port``) unless told otherwise, would give anyone who reaches it the service's
    writes, each study a command run here. So a service without a token refuses every request
    that says a proxy passed it on (reads too: the studies are its user's), naming the header
    and the token that would serve it; the service's own user, sending none, is served."""
    service = Service(tmp_path, workers=1)
    definition = yaml.safe_dump(study_definition(name="proxied"))
    try:
        for header, value in PROXY_HEADERS.items():
            for method, path, body in (("POST", "/studies", definition), ("GET", "/studies", None),
                                       ("GET", "/ui/", None)):
                status, _, answer = service.request(method, path, body,
                                                    {"Content-Type": "application/yaml", header: value})
                assert status == 403, (header, method, path, answer)
                refusal = yaml.safe_load(answer)
                assert refusal["error"] == "local_user_not_allowed", refusal
                assert f"its {header} header says so" in refusal["message"] and "KATUNA_API_TOKEN" in refusal["message"]
        assert service.json("GET", "/studies") == (200, []), "no study was made, and the own user is served"
        assert service.json("GET", "/healthz")[0] == 200
    finally:
        service.close()


def _form(service: Service, path: str, fields: dict[str, str], headers: dict[str, str],
          method: str = "POST") -> tuple[int, str]:
    """A form sent to ``path`` (posted, unless ``method`` says otherwise), its redirect not
    followed: the status and the cookie it sets."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        connection.request(method, path, urllib.parse.urlencode(fields),
                           {"Content-Type": "application/x-www-form-urlencoded", **headers})
        answer = connection.getresponse()
        answer.read()
        return answer.status, answer.headers.get("Set-Cookie", "")
    finally:
        connection.close()


PLACED_POSTS = {"Origin of the page": {"Origin": "{base}"},
                "Sec-Fetch-Site alone": {"Sec-Fetch-Site": "same-origin"},
                "no referrer (Origin: null)": {"Origin": "null", "Sec-Fetch-Site": "same-origin",
                                               "Sec-Fetch-Mode": "navigate"}}
"""How a browser posts the dashboard's own forms: naming the page's origin, or (where the user's
browser sends no referrer, which empties the Origin of a POST) saying so in Sec-Fetch-Site."""
UNPLACED_POSTS = {"no header": {}, "Referer of the page alone": {"Referer": "{base}/ui/login"},
                  "Referer of another site": {"Referer": "http://evil.example/"},
                  "another site": {"Origin": "http://evil.example"}, "null alone": {"Origin": "null"},
                  "a sandboxed frame": {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
                  "a sibling site": {"Sec-Fetch-Site": "same-site"}}
"""Form posts that do not say they come from the dashboard's own page: the header that names
the origin missing (a script, a browser too old to say), or naming another one."""


def _headers(kind: dict[str, str], service: Service) -> dict[str, str]:
    return {name: value.format(base=service.base) for name, value in kind.items()}


@pytest.mark.slow
@pytest.mark.parametrize("kind", UNPLACED_POSTS)
def test_the_login_form_is_refused_unless_the_browser_says_it_comes_from_the_dashboard(locked: Service, kind: str):
    """The login form needs no session, so no CSRF token guards it: the browser's word that the
    post comes from this origin does, as for every write made with a session. A Referer is no
    such word (a browser may leave it out, and it says nothing a script could not)."""
    status, cookie = _form(locked, "/ui/login", {"token": "s3cret-token-0123456789"}, _headers(UNPLACED_POSTS[kind], locked))
    assert (status, cookie) == (403, ""), kind


@pytest.mark.slow
@pytest.mark.parametrize("kind", PLACED_POSTS)
def test_the_dashboards_own_forms_log_in_and_out_whether_or_not_the_browser_sends_a_referrer(locked: Service,
                                                                                            kind: str):
    headers = _headers(PLACED_POSTS[kind], locked)
    status, cookie = _form(locked, "/ui/login", {"token": "s3cret-token-0123456789"}, headers)
    assert status == 302 and cookie.startswith("katuna_session="), (kind, status)
    session = {"Cookie": cookie.split(";")[0]}
    page = locked.request("GET", "/ui/", headers=session)[2].decode()
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page).group(1)
    assert _form(locked, "/ui/logout", {"csrf": csrf}, {**headers, **session})[0] == 302, kind
    assert locked.request("GET", "/studies", headers=session)[0] == 401, "the session is over"


def test_a_head_of_the_login_page_is_its_read_and_starts_no_session(locked: Service):
    """``HEAD /ui/login`` is the login page's ``GET``, a read the guard takes without asking
    where it comes from: it answers as the page does, and a form body sent with it, the right
    token included, starts no session (only a post the browser places on this origin does)."""
    status, cookie = _form(locked, "/ui/login", {"token": "s3cret-token-0123456789"}, {}, method="HEAD")
    assert (status, cookie) == (200, "")
    assert _form(locked, "/ui/login", {"token": "wrong"}, {}, method="HEAD") == (200, "")


OPEN_ANSWER_BYTES = 64 * 1024
"""The most an answer to a caller with no credentials may hold: what the kernel takes into a
connection's buffers, so that no such client, by not reading, keeps a thread of the worker."""


def test_no_answer_to_a_caller_without_the_token_outgrows_what_the_kernel_takes_unread(locked: Service):
    """Every path open without the token (the login page and the dashboard's own static files,
    gzipped or not) answers within :data:`OPEN_ANSWER_BYTES`: a larger answer to a client that
    never reads it keeps the worker's thread until ``KATUNA_CLIENT_TIMEOUT`` passes, and a few
    such clients, with no token, kept every thread (the broker's deliveries' and the token
    holders' requests) waiting. plotly.js (4.8 MB) is the pages' behind the login: it needs
    the token or a session."""
    static = files("functions.adapters.web") / "static"
    paths = ["/ui/login", *(f"/ui/static/{item.name}" for item in static.iterdir()), "/ui/vendor/plotly.min.js"]
    for path in paths:
        for encoding in ("gzip", "identity"):
            status, _, body = locked.request("GET", path, headers={"Accept-Encoding": encoding})
            assert len(body) <= OPEN_ANSWER_BYTES, (path, encoding, status, len(body))
    assert locked.request("GET", "/ui/vendor/plotly.min.js")[0] == 401
    held = locked.request("GET", "/ui/vendor/plotly.min.js", headers={"Authorization": "Bearer s3cret-token-0123456789"})
    assert (held[0], len(held[2]) > OPEN_ANSWER_BYTES) == (200, True)


UNNAMED_HOSTS = {
    "HTTP/1.0 without Host": ("GET /studies HTTP/1.0", None, "send a Host header"),
    "absolute target of another host": ("GET http://evil.example/studies HTTP/1.1", "127.0.0.1:{port}",
                                        "the request target names 'evil.example'"),
    "absolute target of a loopback name, Host another": ("GET http://127.0.0.1:{port}/studies HTTP/1.1",
                                                        "evil.example", "the request target names '127.0.0.1:"),
}


@pytest.mark.parametrize("kind", UNNAMED_HOSTS)
def test_a_request_naming_no_host_or_a_target_of_another_host_is_refused_as_a_wrong_host_is(locked: Service,
                                                                                          kind: str):
    """Without a ``Host`` header werkzeug took the address the service listens on, which the
    check allows; an absolute target's host, which by RFC 9112 replaces ``Host``, was never
    looked at. Both are refused as a Host not served is; a target naming its own Host is served."""
    line, host, message = UNNAMED_HOSTS[kind]
    headers = [line, "Authorization: Bearer s3cret-token-0123456789", "Connection: close"]
    if host is not None:
        headers.append(f"Host: {host.format(port=locked.port)}")
    status, answer = raw_request(locked.port, "\r\n".join(headers) + "\r\n")
    assert (status, answer.get("error")) == (400, "host_not_allowed"), kind
    assert answer["message"].startswith(message)
    own = (f"GET http://127.0.0.1:{locked.port}/studies HTTP/1.1\r\nHost: 127.0.0.1:{locked.port}\r\n"
           "Authorization: Bearer s3cret-token-0123456789\r\nConnection: close\r\n")
    assert raw_request(locked.port, own)[0] == 200


BIG_PARAMETER = 400_000
"""Characters of a parameter's value in the wide Pareto front below: a page of such trials is
cut at :data:`paging.PAGE_BYTES` after about twenty of them."""


def _wide_front(tmp_path: Path) -> Runtime:
    """A runtime whose completed study ``wide`` has 120 trials of 400 KB each, all on its
    Pareto front: 48 MB, of which a page takes 8 MiB."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    store = runtime.store()
    definition = study_definition(name="wide", maxTrials=200, objective={"metrics": [
        {"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}]})
    store.add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-w", status="completed"))
    with store.transaction():
        for number in range(120):
            store.add_trial(TrialRecord("wide", number, {"x": "v" * BIG_PARAMETER}, COMPLETE,
                                        values=[float(number), float(number)]))
    return runtime



OTHER_SCHEME_TOKEN = "Xk4pW9rT2mQ7vL3nB8cZ5dH6"
"""The API token of :func:`test_a_write_whose_origin_names_this_host_over_another_scheme_is_refused`."""


@pytest.mark.parametrize(("method", "path", "data"), [("POST", "/studies/held/stop", None),
                                                      ("POST", "/ui/login", {"token": OTHER_SCHEME_TOKEN})],
                         ids=["API write", "login form"])
def test_a_write_whose_origin_names_this_host_over_another_scheme_is_refused(tmp_path, method, path, data):
    """``Origin`` is compared by host and port (the service behind a proxy that ends TLS cannot
    tell its own scheme), so a page on ``http://katuna.example``, which a network attacker can
    serve, passed as this origin when it posted to the service at ``https://katuna.example``:
    the browser says ``Sec-Fetch-Site: cross-site`` there (schemes differ), and is believed.
    The service's own page, saying ``same-origin``, is still served."""
    runtime = Runtime(Settings(db=tmp_path / "katuna.db", api_token=OTHER_SCHEME_TOKEN,
                               allowed_hosts=("katuna.example",)))
    try:
        definition = study_definition(name="held")
        runtime.store().add_study(StudyRecord(parse_study(definition), definition, str(tmp_path), "uid-h"))
        client = create_app(runtime).test_client()
        bearer = {"Authorization": f"Bearer {OTHER_SCHEME_TOKEN}"} if path.startswith("/studies") else {}
        for site, expected in (("cross-site", 403), ("same-site", 403), ("same-origin", None)):
            answer = client.open(path, method=method, data=data, base_url="https://katuna.example",
                                 headers={"Origin": "http://katuna.example", "Sec-Fetch-Site": site, **bearer})
            if expected is None:
                assert answer.status_code in (200, 302), (site, answer.status_code, answer.get_data()[:300])
            else:
                assert answer.status_code == 403 and answer.get_json()["error"] == "cross_origin", (site, answer.status)
                assert "Set-Cookie" not in answer.headers
        assert runtime.store().get_study("held").status == "stopped" or path == "/ui/login"
    finally:
        runtime.close()


T = TypeVar("T")


def _peak_of(get: Callable[[], T]) -> tuple[T, int]:
    """What ``get`` answers, and the most memory it held at once."""
    tracemalloc.start()
    try:
        answer = get()
        return answer, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_page_of_the_pareto_front_reads_no_more_trials_than_it_answers(tmp_path):
    """``GET /studies/{name}/best?limit=10000`` answers one page of at most ``PAGE_BYTES``, and
    reads only that page's trials whole: it read the whole limit's (10,000 trials of hundreds of
    kilobytes each, gigabytes) before the page was cut, where the trials listing reads one at a
    time. Here 120 front trials of 400 KB each, 48 MB, of which a page takes 8 MiB."""
    runtime = _wide_front(tmp_path)
    try:
        client = create_app(runtime).test_client()
        assert client.get("/studies/wide").get_json()["frontSize"] == 120
        answer, peak = _peak_of(lambda: client.get("/studies/wide/best?limit=10000"))
        assert answer.status_code == 200 and 'rel="next"' in answer.headers["Link"]
        assert len(answer.get_data()) <= paging.PAGE_BYTES + BIG_PARAMETER
        assert peak < 4 * paging.PAGE_BYTES, f"{peak:,} bytes at the peak"
    finally:
        runtime.close()


def test_the_dashboard_lists_the_whole_pareto_front_a_bounded_page_at_a_time(tmp_path):
    """The study page's ``?front=all`` lists a page of the front, cut at ``PAGE_BYTES`` of its
    trials' JSON as the API's pages are, read a few trials at a time: it read and rendered every
    trial of the front at once (up to ``KATUNA_MAX_HISTORY``, 100,000, of hundreds of kilobytes
    each). Here 120 front trials of 400 KB each, 48 MB: each page holds what fits in 8 MiB, and
    following the next links lists every trial once."""
    runtime = _wide_front(tmp_path)
    try:
        client = create_app(runtime).test_client()
        answer, peak = _peak_of(lambda: client.get("/ui/studies/wide/best.fragment?front=all"))
        assert answer.status_code == 200 and len(answer.get_data()) <= paging.PAGE_BYTES + BIG_PARAMETER
        assert peak < 6 * paging.PAGE_BYTES, f"{peak:,} bytes at the peak"  # the page, its HTML, and their copies
        listed: list[int] = []
        link: str | None = "/ui/studies/wide?front=all"
        while link is not None:
            page = client.get(link).get_data(as_text=True)
            listed += [int(n) for n in re.findall(r'<tr><td class="num"><a href="/ui/studies/wide/trials/(\d+)"', page)]
            found = re.search(r'<a href="([^"#]+)#best-trials" id="front-next">', page)
            link = html.unescape(found.group(1)) if found else None
        assert listed == list(range(120))
    finally:
        runtime.close()


def test_the_study_page_spreads_along_the_pareto_front_what_fits_in_a_bounded_page(tmp_path):
    """The study page's default view of a front (500 trials spread along it) is cut at
    ``PAGE_BYTES`` of their JSON, as a page of ``?front=all`` is, read a few trials at a time,
    and says so with the way to the rest: it read and rendered the 500 whole (hundreds of
    megabytes of a study of thousands of parameters). What fits still spreads along the front:
    its two ends first, then the points halving the gaps."""
    runtime = _wide_front(tmp_path)
    try:
        client = create_app(runtime).test_client()
        answer, peak = _peak_of(lambda: client.get("/ui/studies/wide/best.fragment"))
        page = answer.get_data(as_text=True)
        assert answer.status_code == 200 and len(answer.get_data()) <= paging.PAGE_BYTES + BIG_PARAMETER
        assert peak < 6 * paging.PAGE_BYTES, f"{peak:,} bytes at the peak"
        listed = [int(n) for n in re.findall(r'<tr><td class="num"><a href="/ui/studies/wide/trials/(\d+)"', page)]
        assert listed == sorted(listed) and 10 < len(listed) < 120 and {0, 119} <= set(listed), listed
        assert max(b - a for a, b in itertools.pairwise(listed)) <= 2 * 120 // len(listed), listed
        said = html.unescape(" ".join(re.search(r'id="best-count">(.*?)</span></h2>', page, re.S).group(1).split()))
        assert re.sub(r"<[^>]+>", "", said) == (
            f"{len(listed)} of its 120 trials, spread along it (fewer than the 500 asked for: a page holds at most "
            "8 MiB of its trials' JSON, and their parameters fill it) · list all, a page at a time")
        assert 'href="/ui/studies/wide?front=all#best-trials"' in page
    finally:
        runtime.close()


def test_the_trial_table_lists_a_page_bounded_in_bytes_and_leads_on_to_the_rows_it_left_out(tmp_path):
    """A page of the trial table (up to 500 rows) is cut at ``PAGE_BYTES`` of its trials'
    JSON, read a row at a time, and says so: it read and rendered its every row whole. Its next
    page starts at the first row it left out (``row``), so following the next links lists every
    trial once, even where a row is too large for 25 of them to fit a page."""
    runtime = _wide_front(tmp_path)
    try:
        client = create_app(runtime).test_client()
        for path in ("/ui/studies/wide/trials?size=500", "/ui/studies/wide/trials.fragment?size=500"):
            answer, peak = _peak_of(lambda path=path: client.get(path))
            assert answer.status_code == 200 and len(answer.get_data()) <= paging.PAGE_BYTES + 2 * BIG_PARAMETER
            assert peak < 8 * paging.PAGE_BYTES, f"{path}: {peak:,} bytes at the peak"
        for size in (500, 25):
            listed: list[int] = []
            link: str | None = f"/ui/studies/wide/trials?size={size}"
            while link is not None:
                page = client.get(link).get_data(as_text=True)
                shown = [int(n) for n in re.findall(r'<tr data-number="(\d+)">', page)]
                notice = re.search(r'<p class="notice" id="rows-cut">(.*?)</p>', page, re.S)
                assert notice is not None and re.sub(r"<[^>]+>", "", html.unescape(notice.group(1))) == (
                    f"This page lists {len(shown)} rows, fewer than the {size} asked for: a page holds at most 8 MiB "
                    "of its trials' JSON, and their parameters fill it: next › lists the rest.") \
                    or shown[-1] == 119, page[:2000]
                listed += shown
                found = re.search(r'<a href="([^"]+)" id="next-page">', page)
                link = html.unescape(found.group(1)) if found else None
            assert listed == list(range(120)), size
    finally:
        runtime.close()


class Recorder:
    """A loopback server that answers every request with ``status`` (to ``location`` where
    given: a redirect), recording each one's method and ``Authorization``; over TLS under
    ``authority``'s certificate where given."""

    def __init__(self, status: int, location: str | None = None, authority: Authority | None = None) -> None:
        self.seen: list[tuple[str, str | None]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                recorder.seen.append((self.command, self.headers.get("Authorization")))
                self.send_response(status)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        server = StandInServer(("127.0.0.1", 0), Handler)
        self.server = authority.serving(server) if authority is not None else server
        self.url = f"{'https' if authority else 'http'}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


DELIVERY = jwt.encode({"sub": "system:serviceaccount:x:y"}, "k" * 32, "HS256", headers={"kid": "k1"})
"""A delivery token naming a key, so that the issuer's keys are asked for."""
POD_TOKEN = "bearer-of-the-service-0123456789"


def test_the_oidc_issuers_discovery_follows_no_redirect_with_the_pods_token(tmp_path: Path):
    """The discovery document is read with the pod's service-account token, which holds the
    service's own permissions: urllib followed a redirect with it to whatever host it named, and
    took the issuer from there. The read now fails (the broker retries the delivery), and the
    token goes to the issuer's own address alone."""
    authority = Authority(tmp_path)
    elsewhere = Recorder(200)
    issuer = Recorder(302, elsewhere.url + "/.well-known/openid-configuration", authority)
    (tmp_path / "token").write_text(POD_TOKEN)
    (tmp_path / "ca.crt").write_text(authority.ca_pem)
    try:
        with pytest.raises(TemporaryError, match="could not read the token issuer's keys.*302"):
            Verifier("katuna", issuer.url, service_account=tmp_path).subject(DELIVERY)
    finally:
        issuer.close()
        elsewhere.close()
    assert issuer.seen == [("GET", f"Bearer {POD_TOKEN}")], "the issuer itself is asked with the token"
    assert elsewhere.seen == [], "nothing, and no token, goes where the redirect leads"


def test_the_pods_service_account_token_goes_to_the_oidc_issuer_over_tls_alone(tmp_path: Path):
    """A plain http:// issuer (KATUNA_OIDC_ISSUER_URL) is asked for its keys without the token,
    which anyone on the way would read."""
    issuer = Recorder(404)
    (tmp_path / "token").write_text(POD_TOKEN)
    try:
        with pytest.raises(TemporaryError):
            Verifier("katuna", issuer.url, service_account=tmp_path).subject(DELIVERY)
    finally:
        issuer.close()
    assert issuer.seen == [("GET", None)]


def test_delivery_tokens_naming_keys_the_issuer_lacks_count_against_their_client(tmp_path: Path):
    """A delivery token naming a key the issuer does not publish is a wrong token like any
    other: refused (401) once the keys read again for it still lack it, and, where they may not
    be read again yet (503, retried: a key rotated in since), counted all the same. A client
    sending tokens that name made-up keys was answered 503 without end, never counted; it is
    refused 429 past its failed attempts, its tokens no longer looked at."""
    issuer = Issuer([_jwk(RSA_KEY, "rsa", jwt.algorithms.RSAAlgorithm)])
    service = Service(tmp_path, workers=1, KATUNA_EVENTS="reply", KATUNA_API_TOKEN=EVENTS_TOKEN,
                      KATUNA_OIDC_AUDIENCE=AUDIENCE, KATUNA_OIDC_ISSUER_URL=issuer.url)
    client = {"X-Forwarded-For": "203.0.113.20"}
    try:
        answers = [_post(service, "/", completed("any"), **client, Authorization="Bearer " + jwt.encode(
            _claims(), OTHER_KEY, "RS256", headers={"kid": f"made-up-{number}"}))[0] for number in range(FAILURES + 1)]
    finally:
        service.close()
        issuer.close()
    assert answers == [401] + [503] * (FAILURES - 1) + [429], answers
    assert issuer.key_reads == 2, "the keys are read once, and once again for the first key they lack"


HELD_CONNECTIONS = 1_050
"""Connections one client opens and holds: gunicorn's ``worker_connections`` (1,000), and more
waiting to be accepted ahead of anyone else's."""


def _hold(connections: list[socket.socket], stop: threading.Event) -> None:
    """Keep each of ``connections`` part way through its request head, a byte every second
    (sooner than ``katuna serve``'s keep-alive closes a silent one), until ``stop``."""
    while not stop.wait(1.0):
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.send(b"x")


@pytest.mark.slow
def test_a_client_holding_every_connection_open_keeps_no_other_client_waiting(tmp_path):
    """One client, without the token, opens more connections than a worker holds and keeps
    each part way through its request head (a slowloris) for as long as the client timeout
    lets it: gunicorn stopped accepting at its bound, and every other client, token holders
    and the readiness probe among them, waited until those connections timed out. The worker
    now closes the held connection nearest its deadline to take a waiting one, so a request
    sent whole is answered while the held ones go on."""
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN="s3cret-token-0123456789", KATUNA_CLIENT_TIMEOUT="600")
    held: list[socket.socket] = []
    stop = threading.Event()
    holder = threading.Thread(target=_hold, args=(held, stop))
    try:
        for _ in range(HELD_CONNECTIONS):
            connection = socket.create_connection(("127.0.0.1", service.port), timeout=30)
            connection.sendall(b"POST /studies HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            held.append(connection)
        holder.start()
        assert service.request("GET", "/readyz")[0] == 200
        assert service.request("GET", "/studies", headers={"Authorization": "Bearer s3cret-token-0123456789"})[0] == 200
    finally:
        stop.set()
        if holder.is_alive():
            holder.join()
        for connection in held:
            connection.close()
        service.close()


def _katuna_database(folder: Path, name: str) -> Path:
    """A katuna database made by ``katuna run`` of the one-trial study ``name`` in ``folder``."""
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps(study_definition(name, maxTrials=1, parallelism=1)))
    assert run_katuna("run", "study.json", cwd=folder).returncode == 0
    return folder / "katuna.db"


def _as_write_ahead_log(database: Path, log: Path) -> None:
    """Write ``database``'s every page to ``log``, a write-ahead log that SQLite, finding it
    beside another database, would read as that database's latest writes."""
    copy = database.with_name("copy.db")
    target = sqlite3.connect(copy, isolation_level=None)
    target.execute("PRAGMA journal_mode=WAL")
    target.execute("PRAGMA wal_autocheckpoint=0")
    with contextlib.closing(sqlite3.connect(database)) as source:
        source.backup(target)
    shutil.copyfile(copy.with_name("copy.db-wal"), log)
    target.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another user needs root")
@pytest.mark.parametrize("planted", ["database", "write-ahead log"])
def test_a_database_another_user_could_have_written_is_refused_before_anything_is_read_from_it(tmp_path, planted):
    """Another account that may write where katuna keeps its database (``/tmp``, a folder a team
    shares) could leave one there holding a study of its own, or a write-ahead log that SQLite
    reads as that database's latest writes: katuna would run that study's commands, and take its
    records, as the user who runs it. A database, or a file of its journal, that neither that user
    nor root owns is refused, naming it and its owner, before SQLite opens it."""
    theirs = _katuna_database(tmp_path / "theirs", "planted")
    shared = tmp_path / "shared"
    if planted == "database":
        shared.mkdir()
        stranger = shared / "katuna.db"
        shutil.copyfile(theirs, stranger)
        database = stranger
    else:
        database = _katuna_database(shared, "mine")
        stranger = shared / "katuna.db-wal"
        _as_write_ahead_log(theirs, stranger)
    os.chown(stranger, NOBODY, NOBODY)
    listed = run_katuna("studies", "--db", str(database), cwd=shared)
    assert listed.returncode == 2, listed.stdout
    assert "planted" not in listed.stdout
    assert f"{stranger} belongs to another user (uid {NOBODY})" in listed.stderr
    assert stranger.stat().st_uid == NOBODY


def _as_rollback_journal(database: Path, journal: Path) -> None:
    """Write to ``journal`` the hot rollback journal of a write to a copy of ``database`` in
    SQLite's rollback mode, caught before it committed: one that overwrites every page (its tables
    dropped, their pages zeroed), so that played back beside another database of the same page
    size it copies every page of ``database`` over that one's."""
    copy = database.with_name("rollback.db")
    shutil.copyfile(database, copy)
    with contextlib.closing(sqlite3.connect(copy, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA cache_size=1")
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        conn.execute("BEGIN")
        for table in tables:
            conn.execute(f'DROP TABLE "{table}"')
        shutil.copyfile(copy.with_name("rollback.db-journal"), journal)
        conn.execute("ROLLBACK")


def test_a_rollback_journal_left_beside_the_database_is_refused_before_sqlite_plays_it_back(tmp_path):
    """SQLite plays a hot rollback journal back into a database before reading it, whatever the
    database's journal mode: one left beside katuna's database (by another program, or copied from
    another database) would replace its studies with that database's pages. katuna, which keeps
    the database with a write-ahead log and writes no rollback journal, refuses it, naming the
    file, and the database is left as it was."""
    theirs = _katuna_database(tmp_path / "theirs", "planted")
    database = _katuna_database(tmp_path / "shared", "mine")
    journal = database.with_name("katuna.db-journal")
    _as_rollback_journal(theirs, journal)
    listed = run_katuna("studies", "--db", str(database), cwd=database.parent)
    assert listed.returncode == 2, listed.stdout
    assert "planted" not in listed.stdout
    assert f"{journal} lies beside it, a rollback journal" in listed.stderr
    assert journal.exists()
    journal.unlink()
    listed = run_katuna("studies", "--db", str(database), cwd=database.parent)
    assert listed.returncode == 0, listed.stderr
    assert "mine" in listed.stdout and "planted" not in listed.stdout
    assert database.read_bytes()[18:20] == b"\x02\x02", "the database is still kept with the write-ahead log"


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a folder to another user needs root")
def test_a_trial_log_folder_of_another_user_is_refused_before_a_study_is_stored(tmp_path):
    """The trial-log folder's owner could swap a study's folder in it for one of their own, whose
    records of how attempts ended katuna would read, and whose checkpoints trials would load: a
    folder neither this user nor root owns is refused, naming it, before the study is stored."""
    (tmp_path / "study.json").write_text(json.dumps(study_definition("mine", maxTrials=1, parallelism=1)))
    logs = tmp_path / "katuna-logs"
    logs.mkdir(mode=0o777)
    os.chown(logs, NOBODY, NOBODY)
    ran = run_katuna("run", "study.json", cwd=tmp_path)
    assert ran.returncode == 2, ran.stdout
    assert f"trial-log folder {logs.name}: it belongs to another user (uid {NOBODY})" in ran.stderr
    assert not (tmp_path / "katuna.db").exists()


def test_a_trial_log_folder_other_users_may_write_in_is_refused_before_a_study_is_stored(tmp_path):
    """A trial-log folder anyone may write in (``/tmp`` itself, root's, or one of the user's own
    opened to all) lets another account make a study's folder there before katuna does, and so
    own it, as it would own the whole folder: refused, naming it, before the study is stored."""
    (tmp_path / "study.json").write_text(json.dumps(study_definition("mine", maxTrials=1, parallelism=1)))
    logs = tmp_path / "katuna-logs"
    logs.mkdir()
    logs.chmod(0o1777)
    ran = run_katuna("run", "study.json", cwd=tmp_path)
    assert ran.returncode == 2, ran.stdout
    assert f"trial-log folder {logs.name}: other users may write in it (mode 1777)" in ran.stderr
    assert not (tmp_path / "katuna.db").exists()
    assert list(logs.iterdir()) == []


def test_a_cloudevent_attribute_header_given_twice_is_refused_naming_it(tmp_path):
    """Two ``ce-id`` lines would reach the application joined into one value (``a,b``), an
    event id neither sender meant, deduplicated as such: a CloudEvents attribute has one value,
    so the request is refused (400), naming the header, before the event is read."""
    service = Service(tmp_path, workers=1, KATUNA_API_TOKEN="s3cret-token-0123456789")
    try:
        head = ("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret-token-0123456789\r\n"
                "Content-Type: application/json\r\nce-specversion: 1.0\r\nce-type: dev.katuna.study.created\r\n"
                "ce-source: /test\r\nce-id: first\r\nce-id: second\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        status, answer = raw_request(service.port, head)
        assert status == 400, answer
        assert "ce-id is given twice" in json.dumps(answer)
    finally:
        service.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a folder to another user needs root")
def test_an_abandoned_metrics_folder_of_another_user_is_left_alone(tmp_path: Path):
    from functions.adapters.web.server import IN_USE, PRIVATE_PREFIX, remove_abandoned_metrics_dirs

    theirs, mine = tmp_path / f"{PRIVATE_PREFIX}theirs", tmp_path / f"{PRIVATE_PREFIX}mine"
    for folder in (theirs, mine):
        folder.mkdir()
        (folder / IN_USE).write_bytes(b"")
    os.chown(theirs, NOBODY, NOBODY)
    remove_abandoned_metrics_dirs(tmp_path)
    assert theirs.is_dir() and not mine.exists(), "only the user's own abandoned metrics folder is removed"


@pytest.mark.parametrize("shared", ["writable by others", "another user's"])
def test_a_metrics_directory_another_account_may_write_in_is_refused_before_a_worker_writes_there(tmp_path, shared):
    """Each worker opens ``<kind>_<pid>.db`` in ``PROMETHEUS_MULTIPROC_DIR`` and writes its counts
    through whatever link it finds there: a directory another account owns or may write in (one
    made in /tmp by someone else, /tmp itself) let that account have the service write into this
    user's files, or fail every event it handled. Such a directory is refused at start (exit 2,
    naming the variable), nothing in it touched."""
    if shared == "another user's" and os.geteuid() != 0:
        pytest.skip("handing a folder to another user needs root")
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"an earlier run's counts")
    if shared == "another user's":
        os.chown(folder, NOBODY, NOBODY)
    else:
        folder.chmod(0o1777)
    done = refused_start(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(folder))
    assert done.returncode == 2, done.stderr
    assert f"PROMETHEUS_MULTIPROC_DIR={folder}: " in done.stderr
    assert ("belongs to another user" if shared == "another user's" else "other users may write in it") in done.stderr
    assert (folder / "counter_1.db").read_bytes() == b"an earlier run's counts", "nothing there is touched"


def test_the_images_gunicorn_refuses_a_metrics_directory_other_accounts_may_write_in(tmp_path: Path):
    """gunicorn started as the image starts it (or by hand), not by ``katuna serve``, with a
    ``PROMETHEUS_MULTIPROC_DIR`` others may write in: its worker refuses to start before it
    counts anything (gunicorn stops with status 4, the line naming the variable), as ``katuna
    serve`` refuses it, rather than writing its counts through whatever links are put there."""
    from knative_emulator.service import image_command

    folder = tmp_path / "metrics"
    folder.mkdir()
    folder.chmod(0o1777)
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")},
               "KATUNA_DB": str(tmp_path / "katuna.db"), "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    process = subprocess.Popen(image_command(free_port()), cwd=tmp_path, env=environ, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output = process.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 15)
        raise AssertionError("gunicorn served with a metrics directory others may write in:\n"
                             + process.communicate(timeout=30)[0]) from None
    assert process.returncode == 4, output
    assert f"katuna cannot start: PROMETHEUS_MULTIPROC_DIR={folder}: other users may write in it" in output
    assert not list(folder.iterdir()), "no worker wrote its counts there"


def test_a_service_whose_starting_shell_holds_its_token_for_its_trials_to_read_does_not_start():
    """A shell that started ``katuna serve`` without ``exec`` (``sh -c '...; echo done'``, a
    container's entry script, a ``make`` target) keeps the environment it started with, the API
    token in it, readable from ``/proc/<pid>/environ`` by every process of its user: a local
    trial read it there. Such a service refuses to start (exit 2), naming the process and how to
    start it instead; run as an ordinary user (``nobody`` when this is root), as root reads all."""
    home = Path(tempfile.mkdtemp(prefix="katuna-shell-"))  # a folder the user can reach, as tmp_path's are not
    home.chmod(0o755)
    switch = []
    if os.geteuid() == 0:
        os.chown(home, NOBODY, NOBODY)
        switch = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")},
           "KATUNA_API_TOKEN": "tok-held-by-the-shell-0123456789", "KATUNA_DB": str(home / "katuna.db"),
           "HOME": str(home)}
    command = f"{KATUNA} serve --port {free_port()} --workers 1; echo the service ended"
    shell = subprocess.Popen([*switch, "sh", "-c", command], cwd=home, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        output, errors = shell.communicate(timeout=20)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("katuna serve started though its shell holds its token for its trials to read") from exc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, 9)
        shell.wait()
        shutil.rmtree(home, ignore_errors=True)
    assert "the service ended" in output
    assert f"process {shell.pid} (sh), which started this service, holds KATUNA_API_TOKEN" in errors
    assert "exec katuna serve" in errors and "Traceback" not in errors
