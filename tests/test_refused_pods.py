"""Trial Jobs whose pods the API server refuses to create, on the stand-in's simulated clock
through the real client: the Job controller records ``FailedCreate`` on the Job and tries again
for ever, so the Job waits with no pod. A missing ServiceAccount waits the start allowance (the
user may create it, and the trial then runs); a pod the namespace's Pod Security level forbids
fails at once; either stops a study whose every trial meets it after 3, saying what to do. A Job
the namespace's quota refuses is refused for now, never for good."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kube_stub import KubeStub
from test_missing_objects import deliver, started
from test_trial_pods import ALLOWANCE, pods_of

from functions.adapters.kubernetes_client import translate
from functions.adapters.kubernetes_unstartable import COMBINED
from functions.core.errors import PermanentError, TemporaryError
from functions.handlers.starting import look


def refused(kube: KubeStub, job: str) -> Callable[[], bool]:
    """Whether the Job controller has been refused a pod of ``job``, and made none."""
    return lambda: not pods_of(kube, job) and any(e["reason"] == "FailedCreate" for e in kube.events_of("Job", job))


def test_a_trial_whose_service_account_is_missing_waits_then_runs_once_it_is_created(simulated_kube: KubeStub,
                                                                                       tmp_path: Path):
    store, deps, record, dispatcher = started(simulated_kube, tmp_path, "account", trials=1,
                                              pod={"serviceAccountName": "trainer"})
    try:
        simulated_kube.run_until(refused(simulated_kube, "account-0"))
        assert look(record, store.get_trial("account", 0), deps) is None, "it waits for the account"
        assert ("its Job's pod cannot start: the API server refuses to create it: error looking up service account "
                'katuna/trainer: serviceaccount "trainer" not found; the trial fails if it has not started within') in \
            store.get_trial("account", 0).reason
        simulated_kube.add_service_account("katuna", "trainer")
        simulated_kube.run_until(lambda: bool(pods_of(simulated_kube, "account-0"))
                                 and pods_of(simulated_kube, "account-0")[0]["status"]["phase"] == "Succeeded")
        ended = look(record, store.get_trial("account", 0), deps)
        assert ended is not None and ended.data["outcome"] == "exited"
        deliver(dispatcher, ended)
        assert store.get_study("account").status == "completed"
    finally:
        store.close()


def test_a_missing_service_account_waits_from_the_first_refusal_while_the_controller_tries_again(
        simulated_kube: KubeStub, tmp_path: Path):
    """The ServiceAccount plugin names the pod by its ``generateName``, so every refusal reads
    the same and counts up on one Event: the allowance runs from the first, not the latest."""
    store, deps, record, _ = started(simulated_kube, tmp_path, "again", trials=1, pod={"serviceAccountName": "trainer"})
    try:
        simulated_kube.run_until(refused(simulated_kube, "again-0"))
        for _ in range(2):
            simulated_kube.clock.now += ALLOWANCE / 2 + 1
            simulated_kube.settle()
        (event,) = simulated_kube.events_of("Job", "again-0")
        assert event["count"] > 1 and event["message"].startswith('Error creating: pods "again-0-" is forbidden: ')
        ended = look(record, store.get_trial("again", 0), deps)
        assert ended is not None and ended.data["outcome"] == "error"
    finally:
        store.close()


CASES = {
    "account": ({"serviceAccountName": "trainer"}, True,
                'ServiceAccount "trainer" in namespace "katuna" is missing', "3 trials, each after waiting for it",
                "Create the ServiceAccount (kubectl create serviceaccount trainer -n katuna)"),
    "pod security": ({"hostNetwork": True}, False,
                     'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)', "3 trials",
                     "Ask for no more than the namespace's Pod Security level allows"),
}


def three_refused(kube: KubeStub, started_study: tuple, name: str, waits: bool = False) -> list:
    """The ends of a study's first three trials, each refused its pod, as katuna looks at each
    (after the start allowance where the refusal ``waits``), each end delivered."""
    store, deps, record, dispatcher = started_study
    ends = []
    for number in range(3):
        kube.run_until(refused(kube, f"{name}-{number}"))
        if waits:
            assert look(record, store.get_trial(name, number), deps) is None
            kube.clock.now += ALLOWANCE
        ends.append(look(record, store.get_trial(name, number), deps))
        assert ends[-1] is not None and ends[-1].data["outcome"] == "error"
        deliver(dispatcher, ends[-1])
    return ends


@pytest.mark.parametrize(("pod", "waits", "cause", "trials", "fix"), CASES.values(), ids=CASES.keys())
def test_a_study_whose_every_pod_is_refused_stops_after_three_trials_saying_why(
        simulated_kube: KubeStub, tmp_path: Path, pod: dict, waits: bool, cause: str, trials: str, fix: str):
    begun = started(simulated_kube, tmp_path, "refused", trials=5, pod=pod)
    store = begun[0]
    try:
        three_refused(simulated_kube, begun, "refused", waits)
        assert store.get_trial("refused", 0).reason.startswith(
            f"could not start: {cause}; its Job's pod: the API server refuses to create it: ")
        study = store.get_study("refused")
        assert (study.status, [t.state for t in store.trials("refused")]) == ("failed", ["FAIL"] * 3)
        assert study.reason.startswith(f"every trial could not start: {cause} ({trials}); every later trial would "
                                       f"meet the same, so the study stops. {fix}")
    finally:
        store.close()


def test_a_trial_whose_pod_the_api_server_finds_invalid_fails_at_once_and_the_study_stops_saying_why(
        simulated_kube: KubeStub, tmp_path: Path):
    """A pod template may hold an image with whitespace around it, a pod may not: the Job is made,
    and every pod of it refused as invalid, which no wait can change."""
    begun = started(simulated_kube, tmp_path, "spaced", trials=5, image="python:3.12 ")
    store = begun[0]
    why = 'spec.containers[0].image: Invalid value: "python:3.12 ": must not have leading or trailing whitespace'
    invalid = f"the API server refuses the pod as invalid: {why}"
    try:
        assert [end.data["cause"] for end in three_refused(simulated_kube, begun, "spaced")] == [invalid] * 3
        assert store.get_trial("spaced", 0).reason.startswith(
            f"could not start: {invalid}; its Job's pod: the API server refuses to create it as invalid: {why}")
        study = store.get_study("spaced")
        assert (study.status, [t.state for t in store.trials("spaced")]) == ("failed", ["FAIL"] * 3)
        assert study.reason.startswith(f"every trial could not start: {invalid} (3 trials); every later trial would "
                                       "meet the same, so the study stops. Fix the trial template's pod where the API "
                                       "server says")
    finally:
        store.close()


UNASKED = ('ResourceQuota "trial-quota" of namespace "katuna" needs every container to ask for what it tracks: '
           "must specify cpu for: trial, memory for: trial")


def test_a_trial_whose_container_asks_for_none_of_the_cpu_its_namespace_quota_tracks_fails_at_once(
        simulated_kube: KubeStub, tmp_path: Path):
    """A ResourceQuota that tracks cpu or memory refuses every pod one of whose containers does
    not ask for them (``failed quota: NAME: must specify cpu for: trial``), however much of
    the quota is free: no wait changes it, so the trial fails at once, and the study stops after
    3 saying which containers lack what. A trial asking for them runs under the same quota."""
    simulated_kube.set_quota("katuna", {"cpu": 4, "memory": "8Gi"})
    begun = started(simulated_kube, tmp_path, "unasked", trials=5)
    store = begun[0]
    try:
        assert [end.data["cause"] for end in three_refused(simulated_kube, begun, "unasked")] == [UNASKED] * 3
        assert store.get_trial("unasked", 0).reason.startswith(
            f"could not start: {UNASKED}; its Job's pod: the API server refuses to create it: failed quota: trial-quota: "
            "must specify cpu for: trial; memory for: trial")
        study = store.get_study("unasked")
        assert (study.status, [t.state for t in store.trials("unasked")]) == ("failed", ["FAIL"] * 3)
        assert study.reason.startswith(f"every trial could not start: {UNASKED} (3 trials); every later trial would "
                                       "meet the same, so the study stops. Give every container of the trial pod the "
                                       "requests and limits the quota names (each container's resources in the "
                                       "trialSpec's pod template)")
    finally:
        store.close()
    asking = {"requests": {"cpu": "500m", "memory": "256Mi"}}
    store, _, _, _ = started(simulated_kube, tmp_path / "asking", "asking", trials=1, resources=asking)
    try:
        simulated_kube.run_until(lambda: bool(pods_of(simulated_kube, "asking-0")))
        assert store.get_trial("asking", 0).state == "RUNNING"
    finally:
        store.close()


def test_a_job_the_namespaces_quota_refuses_is_refused_for_now(simulated_kube: KubeStub, tmp_path: Path):
    """The quota frees as Jobs end: the launch is retried (its event delivered again), and the
    trial runs once the quota lets it."""
    simulated_kube.set_quota("katuna", {"count/jobs.batch": 0})
    with pytest.raises(TemporaryError, match="quota full: 403 Forbidden: .*exceeded quota: trial-quota"):
        started(simulated_kube, tmp_path, "quota", trials=1)
    simulated_kube.set_quota("katuna", {})
    store, deps, record, dispatcher = started(simulated_kube, tmp_path / "again", "quota", trials=1)
    try:
        simulated_kube.run_until(lambda: bool(pods_of(simulated_kube, "quota-0")))
        assert store.get_trial("quota", 0).state == "RUNNING"
    finally:
        store.close()


def test_a_trial_spec_study_submitted_while_the_quota_is_full_is_taken_and_an_invalid_one_still_refused(
        simulated_kube: KubeStub):
    """The submission's dry run of the first trial's Job meets the namespace's quota, full for
    now (the API server charges a dry run's create as any): that says nothing of the Job, so
    the study is taken, its trials to wait for the quota. A Job the API server finds invalid
    is refused all the same, validation coming before the quota."""
    from conftest import study_definition

    from functions.adapters.kubernetes_access import Access
    from functions.adapters.kubernetes_client import api_client
    from functions.core.cluster import Cluster
    from functions.core.errors import InvalidStudy
    from functions.core.validate import parse_study

    def spec_study(pull: str) -> dict:
        definition = study_definition("quota-spec", maxTrials=1, parallelism=1)
        container = {"name": "c", "image": "python:3.12", "imagePullPolicy": pull,
                     "command": ["train", "--x=${trialParameters.x}"]}
        definition["trialTemplate"] = {"trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
            "spec": {"restartPolicy": "Never", "containers": [container]}}}}}
        return definition

    simulated_kube.set_quota("katuna", {"count/jobs.batch": 0})
    access = Access(api_client(simulated_kube.url), Cluster(namespace="katuna"))
    assert access.refusal(parse_study(spec_study("IfNotPresent"))) is None
    with pytest.raises(InvalidStudy, match='imagePullPolicy: Unsupported value: "always"'):
        access.refusal(parse_study(spec_study("always")))
    assert not simulated_kube.jobs


def test_only_a_quota_refusal_is_temporary():
    from kubernetes.client.rest import ApiException

    quota, webhook = ApiException(status=403, reason="Forbidden"), ApiException(status=403, reason="Forbidden")
    quota.body = '{"message": "jobs.batch \\"x\\" is forbidden: exceeded quota: q, requested: count/jobs.batch=1"}'
    webhook.body = '{"message": "admission webhook \\"policy.example\\" denied the request"}'
    assert isinstance(translate(quota, "create Job x"), TemporaryError)
    assert not isinstance(translate(webhook, "create Job x"), TemporaryError)
    invalid = ApiException(status=422, reason="Unprocessable Entity")
    invalid.body = ('{"message": "Job.batch \\"x\\" is invalid: metadata.annotations: Invalid value: '
                    '\\"exceeded quota\\": must be no more than 63 characters"}')
    refused = translate(invalid, "create Job x")
    assert isinstance(refused, PermanentError), "only a 403 says the quota is full, whatever the body quotes"


def _event(message: str, first: float, last: float):
    from datetime import UTC, datetime

    from kubernetes import client

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    return client.CoreV1Event(involved_object=client.V1ObjectReference(kind="Job"), metadata=client.V1ObjectMeta(),
                              reason="FailedCreate", message=f'Error creating: pods "j-x" is forbidden: {message}',
                              first_timestamp=at(first), last_timestamp=at(last))


def test_a_refusal_waits_from_its_own_first_record_and_one_no_longer_repeated_is_past():
    """A Job made two hours ago whose pod was lost and whose replacement the quota has refused for
    a minute waits from that minute; a Pod Security refusal last recorded long ago (the pod was
    made since, and deleted) fails nothing."""
    from functions.adapters.kubernetes_refused import RECENT, refused_create

    now = 100_000.0
    quota = _event("exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2", now - 60, now - 5)
    found = refused_create([quota], now - 7200, now)
    assert found is not None and (found.since, found.permanent, found.cause) == (now - 60, False, None)
    old = _event('violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)', now - 7000, now - 6990)
    assert refused_create([old], now - 7200, now) is None
    assert refused_create([old], now - 7200, now - 6990 + RECENT - 1).permanent
    assert refused_create([quota], now - 1, now) is None, "refused before the Job's latest pod was made"


def test_refusals_the_event_recorder_combined_still_say_why_and_the_wait_counts_from_the_first(
        simulated_kube: KubeStub, tmp_path: Path):
    """The Job controller tries again after a back-off (1 s, doubled up to 60 s), each refusal
    naming the pod by the name the API server drew: after ten such messages in ten minutes, the
    recorder combines the next ones into an Event of its own, first recorded then, its message
    behind ``(combined from similar events): ``. The trial still says why it waits, and it waits
    its start allowance from the first refusal, not from the combined Event's first record. The
    quota's one pod is held by a pod no node takes (a quota of none would refuse for good)."""
    simulated_kube.set_quota("katuna", {"pods": 1})
    holder = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "holder"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "nodeSelector": {"pool": "none"},
        "containers": [{"name": "c", "image": "python:3.12", "command": ["true"]}]}}}}
    assert simulated_kube.create_job("katuna", holder)[0] == 201
    simulated_kube.run_until(lambda: pods_of(simulated_kube, "holder"))
    store, deps, record, _ = started(simulated_kube, tmp_path, "full", trials=1)
    try:
        simulated_kube.run_until(lambda: any(e["message"].startswith(COMBINED)
                                             for e in simulated_kube.events_of("Job", "full-0")))
        events = simulated_kube.events_of("Job", "full-0")
        first = min(_seconds(e["firstTimestamp"]) for e in events)
        [combined] = [e for e in events if e["message"].startswith(COMBINED)]
        assert len(events) == 10 and _seconds(combined["firstTimestamp"]) - first > 180, "1+2+4+...+60+60 s of back-off"
        assert look(record, store.get_trial("full", 0), deps) is None, "it waits for the quota"
        reason = store.get_trial("full", 0).reason
        assert "its Job's pod cannot start: the API server refuses to create it: exceeded quota: trial-quota, " \
               "requested: pods=1" in reason and "combined" not in reason
        simulated_kube.clock.now = first + ALLOWANCE + 1
        ended = look(record, store.get_trial("full", 0), deps)
        assert ended is not None and ended.data["outcome"] == "error", "the allowance counts from the first refusal"
    finally:
        store.close()


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_combined_refusal_is_read_as_the_refusal_it_combines():
    """A Pod Security refusal the recorder combined fails at once as the first did, naming the
    level; the wait counts from the earliest refusal recorded since the Job's latest pod."""
    from functions.adapters.kubernetes_refused import refused_create

    now = 100_000.0
    single = _event('violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)', now - 300, now - 300)
    combined = _event('violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)', now - 60, now - 5)
    combined.message = COMBINED + combined.message
    found = refused_create([single, combined], now - 7200, now)
    assert found is not None and (found.since, found.permanent) == (now - 300, True)
    assert found.why == ('the API server refuses to create it: violates PodSecurity "baseline:latest": host namespaces '
                         "(hostNetwork=true)")
    assert found.cause == 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'
