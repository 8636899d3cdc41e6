"""What katuna writes to the cluster's store fits in etcd at any study size: one object is one
etcd value, at most 1.5 MiB by default (``--max-request-bytes``), and the API server decodes a
write's body of at most 3 MiB. The loopback API refuses past both as the API server does
(:mod:`kube_standin.etcd`); a study resource's status is cut to fit
(:mod:`functions.core.status_room`), the counts beside its lists whole."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import study_definition, watching_dispatcher
from kube_standin import etcd
from kube_stub import KubeStub
from kubernetes import client
from kubernetes.client.rest import ApiException

from functions.adapters.kubernetes_client import api_client, translate
from functions.adapters.kubernetes_executor import KubernetesExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core import status_room
from functions.core.cluster import Cluster
from functions.core.errors import PermanentError
from functions.core.events import resource_changed, trial_suggested
from functions.core.katib_trials import KILLED_LIST, TRIAL_LISTS, trial_status
from functions.core.records import COMPLETE, TrialRecord
from functions.core.resource_status import PARETO_FRONT_SHOWN
from functions.core.resources import Origin
from functions.core.validate import parse_study
from functions.handlers.writeback import behind

KUBE_NAMESPACES = ("team",)
WIDE = [f"p{j:03d}_encoder_block_attention_dropout" for j in range(256)]
"""256 parameters (the most a study may have) of 36-character names: one trial's assignments
are about 18 KB of a status, so 100 trials of a Pareto front are 1.8 MB."""


@pytest.fixture(scope="module", autouse=True)
def study_grants(kube: KubeStub) -> None:
    """katuna's Role in the namespace the studies live in (its service account writes their status)."""
    with kube.lock:
        kube.authorizer.copy_role("katuna", "team")


def wide_study(name: str) -> dict:
    """A Study resource of two objectives over :data:`WIDE`."""
    spec = {"objective": {"metrics": [{"name": "loss", "direction": "minimize"},
                                      {"name": "cost", "direction": "minimize"}]},
            "parameters": [{"name": p, "type": "float", "min": 0.0, "max": 1.0} for p in WIDE],
            "algorithm": {"name": "random", "seed": 1}, "parallelism": 2, "maxTrials": 1000,
            "trialTemplate": {"command": ["python", "train.py", *(f"--{p}=${{trialParameters.{p}}}" for p in WIDE)],
                              "image": "registry.example/train:1"}}
    return {"apiVersion": "katuna.dev/v1", "kind": "Study", "metadata": {"name": name, "namespace": "team"},
            "spec": spec}


def custom(kube: KubeStub) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client(kube.url))


def test_the_loopback_api_refuses_an_object_past_etcds_limit_and_a_body_past_the_servers(kube: KubeStub):
    """A status write that would take the resource past 1.5 MiB is the API server's 500 with
    etcd's words, nothing stored; a body past 3 MiB its 413; katuna takes the first as a
    refusal that a retry meets again, not a failure to retry."""
    obj = kube.apply(wide_study("etcd-refusals"))
    api = custom(kube)
    fits = {"status": {"phase": "Running", "note": "x" * (etcd.MAX_STORED // 2)}}
    api.patch_namespaced_custom_object_status("katuna.dev", "v1", "team", "studies", "etcd-refusals", fits,
                                              _content_type="application/merge-patch+json")
    big = {"status": {"phase": "Succeeded", "note": "x" * etcd.MAX_STORED}}
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object_status("katuna.dev", "v1", "team", "studies", "etcd-refusals", big,
                                                  _content_type="application/merge-patch+json")
    assert (refused.value.status, json.loads(refused.value.body)) == (500, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "etcdserver: request is too large", "code": 500})
    stored = kube.resources[("studies", "team", "etcd-refusals")]
    assert stored["status"]["phase"] == "Running" and stored["metadata"]["uid"] == obj["metadata"]["uid"]
    error = translate(refused.value, "write the status of Study team/etcd-refusals")
    assert isinstance(error, PermanentError) and "larger than etcd stores" in str(error)
    request = urllib.request.Request(f"{kube.url}/apis/katuna.dev/v1/namespaces/team/studies/etcd-refusals/status",
                                     data=json.dumps({"status": {"note": "x" * etcd.MAX_REQUEST_BODY}}).encode(),
                                     method="PATCH", headers={"Content-Type": "application/merge-patch+json",
                                                              "Authorization": "Bearer system:serviceaccount:katuna:katuna"})
    with pytest.raises(urllib.error.HTTPError) as too_long:
        urllib.request.urlopen(request, timeout=30)
    body = json.loads(too_long.value.read())
    assert (too_long.value.code, body["reason"], body["message"]) == (
        413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")


def test_a_wide_pareto_front_is_cut_to_what_etcd_stores_and_still_counted_whole(kube: KubeStub, tmp_path: Path):
    """A study of 256 parameters and two objectives whose whole front (150 trials) would list
    100 of them, 1.8 MB, past what etcd stores beside the resource: the status lists as many
    as fit in 256 KiB, spread along the front with both its ends, ``paretoFrontSize`` counting
    all 150; the tick then finds the resource up to date, so it writes it no more."""
    created = kube.apply(wide_study("etcd-front"))
    store = SqliteStore(tmp_path / "katuna.db")
    api = api_client(kube.url)
    dispatcher = watching_dispatcher(store, api, "team", katib_api=False)
    try:
        dispatcher.deliver_to("resource", resource_changed("add", created))
        record = store.get_study("etcd-front")
        now = time.time()
        for number in range(150):
            params = {p: (number * 7 + j) % 1000 / 999 for j, p in enumerate(WIDE)}
            store.add_trial(TrialRecord("etcd-front", number, params, COMPLETE, values=[number, 149 - number],
                                        metrics={"loss": number, "cost": 149 - number}, created_at=now,
                                        started_at=now, finished_at=now))
        dispatcher.deliver_to("writeback", trial_suggested("etcd-front", record.uid, 149, 1))
        stored = kube.resources[("studies", "team", "etcd-front")]
        front = [t["trialNumber"] for t in stored["status"]["paretoFront"]]
        assert stored["status"]["paretoFrontSize"] == 150 and 10 < len(front) < PARETO_FRONT_SHOWN
        assert (front[0], front[-1]) == (0, 149) and front == sorted(set(front))
        assert etcd.stored_size(stored["status"]) <= status_room.STATUS_BYTES < etcd.stored_size(stored["status"]) + \
            etcd.stored_size(stored["status"]["paretoFront"][0])
        current = store.get_study("etcd-front")
        assert not behind(current, Origin.from_dict(current.origin or {}), stored, store)
    finally:
        store.close()


def test_a_status_that_fits_is_written_whole_and_one_that_does_not_keeps_its_counts():
    """The cut touches only a status past its room: the Pareto front spread thinner, the Trial
    lists to their latest names, the problems to the first ones, in that order."""
    status = {"phase": "Running", "trialsSucceeded": 300,
              "paretoFront": [{"trialNumber": n, "pad": "x" * 1000} for n in range(100)], "paretoFrontSize": 300,
              "succeededTrialList": [f"demo-{n}" for n in range(100)], "killedTrialList": None}
    assert status_room.fitted(status, status_room.size(status)) == status
    cut = status_room.fitted(status, 60_000)
    front = [t["trialNumber"] for t in cut["paretoFront"]]
    assert status_room.size(cut) <= 60_000 and 2 < len(front) < 100 and (front[0], front[-1]) == (0, 99)
    assert cut["succeededTrialList"] == status["succeededTrialList"], "the front alone made room"
    mixed = {**status, "paretoFront": [{"trialNumber": n, "objectiveValues": [n * 37 % 100, -(n * 37 % 100)],
                                        "pad": "x" * 1000} for n in range(100)]}
    kept = status_room.fitted(mixed, 60_000)["paretoFront"]
    numbers, values = [t["trialNumber"] for t in kept], sorted(t["objectiveValues"][0] for t in kept)
    assert numbers == sorted(numbers), "listed by number, as the status lists its front"
    assert (values[0], values[-1]) == (0, 99) and max(b - a for a, b in zip(values, values[1:])) <= \
        -(-99 // (len(values) - 1)), "spread along the front: both ends, even steps of its values"
    lists = status_room.fitted(status, 2_000)
    assert lists["paretoFront"] is None and lists["killedTrialList"] is None
    assert lists["succeededTrialList"] == status["succeededTrialList"][-len(lists["succeededTrialList"]):]
    assert (lists["paretoFrontSize"], lists["trialsSucceeded"]) == (300, 300)
    refused = {"phase": "Failed", "problems": [{"field": f"parameters[{n}]", "message": "y" * 100} for n in range(500)]}
    first = status_room.fitted(refused, 10_000)["problems"]
    assert 0 < len(first) < 500 and first == refused["problems"][:len(first)]
    assert set(status_room.TRIAL_LISTS) == {*TRIAL_LISTS.values(), KILLED_LIST}


def test_a_conditions_message_holds_at_most_what_a_kubernetes_condition_does():
    """A trial's reason gathers each lost attempt's (up to 100 of them): its Trial's ending
    condition carries it after Katib's words, cut to ``metav1.Condition``'s 32,768 characters,
    its start kept; no condition is longer."""
    spec = parse_study(study_definition())
    reason = "\n".join(f"attempt {n} preempted: {'z' * 2000}" for n in range(100, 0, -1))
    trial = TrialRecord("demo", 0, {"x": 0.5}, "FAIL", reason=reason, created_at=1.0, started_at=2.0,
                        finished_at=3.0)
    messages = [c["message"] for c in trial_status(trial, spec)["conditions"]]
    assert all(len(m) <= status_room.MESSAGE_CHARS for m in messages)
    assert messages[-1].startswith("Trial has failed: attempt 100 preempted")
    assert messages[-1].endswith("more characters)")


def test_a_job_its_parameters_make_larger_than_etcd_stores_fails_that_trial(kube: KubeStub):
    """A template that repeats a placeholder, filled with a long value, renders a Job past what
    etcd stores though the study fits: the API server's 500 is that trial's refusal, naming its
    template, and nothing is stored; the launch is not tried again and again."""
    from functions.core.errors import RefusedWorkload
    from functions.core.launch import TrialLaunch
    from functions.core.naming import job_name

    executor = KubernetesExecutor(Cluster(namespace="team"), api_client(kube.url))
    launch = TrialLaunch("wide-argv", "0123456789ab", 0, 1, job_name("wide-argv", 0, 1),
                         ["python", "train.py", *(["--note=" + "n" * 100_000] * 16)], {}, ".", timeout=None,
                         image="python:3.12")
    with pytest.raises(RefusedWorkload) as refused:
        executor.launch(launch)
    assert [p.path for p in refused.value.problems] == ["trialTemplate"]
    assert "larger than the cluster stores" in str(refused.value)
    assert ("team", "wide-argv-0") not in kube.jobs

