"""The log of a cluster trial katuna ended itself (its study stopped, the trial pruned) outlives
the Job katuna deleted with its pods: its last lines, kept in the store, are what the API and
the dashboard serve (a real ``katuna serve`` with the Kubernetes executor, the real client, the
loopback API whose kubelet runs the trial's command and serves its log)."""

from __future__ import annotations

import sys

import pytest
from conftest import study_definition
from http_helpers import Service, settled_trials
from kube_stub import KubeStub
from test_katib_early_stopping_cluster import experiment
from waiting import eventually

pytestmark = pytest.mark.slow

NAMESPACE = "kept"
KUBE_NAMESPACES = (NAMESPACE,)


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    running = Service(tmp_path_factory.mktemp("kept"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE=NAMESPACE, KATUNA_K8S_PROGRESS_SECONDS="0.3")
    yield running
    running.close()


def hanging(name: str) -> dict:
    """A study of one trial that prints ``hanging`` and then runs for minutes."""
    definition = study_definition(name=name, mode="hang", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["image"] = "python:3.12"
    return definition


def printed(service: Service, name: str) -> bytes:
    """The running trial 0's log, once it has printed."""
    return eventually(lambda: (answer := service.request("GET", f"/studies/{name}/trials/0/logs"))[0] == 200
                      and answer[2], f"trial 0 of {name} prints")


def pods_gone(kube: KubeStub, job: str) -> None:
    """Wait until no pod of ``job`` is left, so its log can only come from the store."""
    eventually(lambda: not [p for p in list(kube.pods.values()) if p["metadata"]["labels"].get("job-name") == job],
               f"the pods of Job {job} are gone")


def test_a_stopped_studys_trial_log_is_served_from_its_kept_tail_once_its_job_is_deleted(service: Service,
                                                                                         kube: KubeStub):
    service.submit(hanging("kept-stop"))
    assert printed(service, "kept-stop") == b"hanging\n"
    status, study = service.json("POST", "/studies/kept-stop/stop")
    assert status == 200 and study["status"] == "stopped"
    pods_gone(kube, "kept-stop-0")
    status, _, body = service.request("GET", "/studies/kept-stop/trials/0/logs")
    note = "[katuna: attempt 1's log, kept when katuna deleted Job kept-stop-0 as the trial ended]\n"
    assert (status, body.decode()) == (200, note + "hanging\n")
    window = service.json("GET", "/ui/studies/kept-stop/trials/0/log?offset=0")[1]
    assert (window["text"], window["gone"]) == (note + "hanging\n", None), "the dashboard shows it too"


def served_log(service: Service, study: str, number: int) -> bytes:
    """The trial's log once it is served: the stop that keeps its last lines deletes the Job
    inside its transaction, which commits a moment after the cluster saw the delete."""
    answers: list[tuple[int, bytes]] = []

    def served() -> bool:
        status, _, body = service.request("GET", f"/studies/{study}/trials/{number}/logs")
        answers.append((status, body))
        return status == 200

    eventually(served, f"trial {number}'s kept log served")
    return answers[-1][1]


@pytest.mark.parametrize("short", [1_998, 1_999])
def test_a_kept_tail_begins_at_a_whole_line_and_is_whole_only_where_the_log_is(service: Service, kube: KubeStub,
                                                                              short: int):
    """The API counts a tail's lines in the runtime's records, and the 40,000-byte line here
    takes three. The 2,001 records read begin inside it with 1,999 short lines after it, and at
    its start with 1,998, which nothing in the answer tells: either way its first line is not
    kept, and the lines kept are said not to be the whole log (katuna read them as the whole log,
    a piece of the long line at their head, from the 2,000 records it asked for). Its metrics go
    to a file, so the stop reads its log's last lines alone, as it reads any trial's whose output
    holds no metrics it keeps."""
    name = f"kept-long-{short}"
    definition = hanging(name)
    definition["metricsCollector"] = {"kind": "file", "path": "metrics.log"}
    code = f"import sys, time; print('x' * 40_000); [print(f'line {{n}}') for n in range({short})]; " \
           "sys.stdout.flush(); time.sleep(600)"
    definition["trialTemplate"]["command"] = [sys.executable, "-c", code, "${trialParameters.x}"]
    service.submit(definition)
    eventually(lambda: printed(service, name).endswith(f"line {short - 1}\n".encode()), "trial 0 prints its last line")
    status, study = service.json("POST", f"/studies/{name}/stop")
    assert status == 200 and study["status"] == "stopped"
    pods_gone(kube, f"{name}-0")
    kept = "".join(f"line {n}\n" for n in range(short))
    assert served_log(service, name, 0).decode() == (
        f"[katuna: the last {len(kept):,} bytes of attempt 1's log, kept when katuna deleted Job {name}-0 as the "
        f"trial ended; the lines before them are not kept]\n{kept}")


def test_a_progress_bar_redrawn_with_carriage_returns_is_one_record_and_the_log_is_kept_whole(service: Service,
                                                                                             kube: KubeStub):
    """A progress bar redrawn 3,000 times on one line (``\\r``, as tqdm does) is one line of the
    runtime's, two records of the log file: the four records are the whole log, kept whole
    (katuna counted each redraw as a record, took the 2,001 it asked for to be reached, and left
    the log's first line out)."""
    name = "kept-progress"
    definition = hanging(name)
    code = "import sys, time; print('starting'); [sys.stdout.write(f'{n:05d}\\r') for n in range(3000)]; " \
           "print(); print('done'); sys.stdout.flush(); time.sleep(600)"
    definition["trialTemplate"]["command"] = [sys.executable, "-c", code, "${trialParameters.x}"]
    service.submit(definition)
    eventually(lambda: printed(service, name).endswith(b"done\n"), "trial 0 prints its last line")
    assert terminal_views(service, name) == ("starting\n02999\ndone\n",) * 2, "from the pod, as a terminal shows it"
    assert service.json("POST", f"/studies/{name}/stop")[0] == 200
    pods_gone(kube, f"{name}-0")
    redrawn = "".join(f"{n:05d}\n" for n in range(3000))
    note = f"[katuna: attempt 1's log, kept when katuna deleted Job {name}-0 as the trial ended]\n"
    assert served_log(service, name, 0).decode() == f"{note}starting\n{redrawn}done\n"
    assert terminal_views(service, name) == (f"{note}starting\n02999\ndone\n",) * 2, \
        "the kept tail as a terminal shows it too, as the pod's log was"


def terminal_views(service: Service, name: str) -> tuple[str, str]:
    """Trial 0's log as a terminal shows it: the API's ``?terminal=true``, and the dashboard's window."""
    status, _, body = service.request("GET", f"/studies/{name}/trials/0/logs?terminal=true")
    assert status == 200, body
    return body.decode(), service.json("GET", f"/ui/studies/{name}/trials/0/log?offset=0")[1]["text"]


def test_a_pruned_cluster_trials_log_is_served_from_its_kept_tail(service: Service, kube: KubeStub):
    service.submit(experiment("kept-prune"))
    assert service.wait_for("kept-prune")["status"] == "completed"
    trials = settled_trials(service, "kept-prune", 30)
    assert [t["state"] for t in trials] == ["COMPLETE", "PRUNED"], trials
    eventually(lambda: ("kept", "kept-prune-1", "Background") in kube.deleted, "the pruned trial's Job deleted")
    pods_gone(kube, "kept-prune-1")
    body = served_log(service, "kept-prune", 1)
    assert body.decode().splitlines() == [
        "[katuna: attempt 1's log, kept when katuna deleted Job kept-prune-1 as the trial ended]",
        "Epoch 1: loss=11.0000", "Epoch 2: loss=10.5000"]


def test_a_stop_whose_log_read_fails_still_stops_and_says_katuna_deleted_the_job(service: Service,
                                                                                kube: KubeStub):
    """The read of the last lines is refused (``503``): the stop goes on, its Job deleted, and the
    log that is gone is said to be gone because katuna deleted the Job, not blamed on its TTL."""
    service.submit(hanging("kept-fail"))
    printed(service, "kept-fail")
    kube.faults.refuse("get", "pods", times=1_000)
    try:
        status, study = service.json("POST", "/studies/kept-fail/stop")
        assert status == 200 and study["status"] == "stopped"
        eventually(lambda: ("kept", "kept-fail-0") not in kube.jobs, "the Job is deleted")
    finally:
        kube.faults.refuse("get", "pods", times=0)
    pods_gone(kube, "kept-fail-0")
    status, answer = service.json("GET", "/studies/kept-fail/trials/0/logs")
    assert (status, answer["error"]) == (404, "log_gone"), answer
    assert answer["message"] == ("no log of trial 0 attempt 1 is left: katuna deleted Job kept-fail-0 with its pods "
                                 "as the trial ended, and no line of its log could be kept before (the read failed, "
                                 "or it wrote none)")
    window = service.json("GET", "/ui/studies/kept-fail/trials/0/log?offset=-1")[1]
    assert (window["text"], window["gone"]) == ("", answer["message"])


def test_a_retained_pruned_trials_log_is_kept_as_its_job_is_suspended(service: Service, kube: KubeStub):
    """With ``retain`` the pruned trial's Job stays, suspended, and its pod is terminated: the
    last lines were kept first, and say the Job was suspended."""
    definition = experiment("kept-retain")
    definition["spec"]["trialTemplate"]["retain"] = True
    service.submit(definition)
    assert service.wait_for("kept-retain")["status"] == "completed"
    assert [t["state"] for t in settled_trials(service, "kept-retain", 30)] == ["COMPLETE", "PRUNED"]
    eventually(lambda: kube.jobs[(NAMESPACE, "kept-retain-1")]["spec"].get("suspend") is True,
               "the pruned trial's Job suspended")
    pods_gone(kube, "kept-retain-1")
    assert served_log(service, "kept-retain", 1).decode().splitlines()[0] == \
        "[katuna: attempt 1's log, kept when katuna suspended Job kept-retain-1 as the trial ended]"
