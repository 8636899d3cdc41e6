"""A cluster trial's log as a person follows it (a real ``katuna serve`` with the Kubernetes
executor, the real client, the loopback API whose kubelet runs the trial's command and serves
its log as the real one does): the dashboard's polls of a running trial read only what its pod
wrote since the last one, and the run of a container its kubelet ran again in place
(``restartPolicy: OnFailure``) before its current one is shown and kept, marked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from http_helpers import Service
from kube_stub import KubeStub
from test_kept_logs import served_log
from waiting import eventually

pytestmark = pytest.mark.slow

NAMESPACE = "live"
KUBE_NAMESPACES = (NAMESPACE,)


@pytest.fixture(scope="module")
def service(kube: KubeStub, tmp_path_factory: pytest.TempPathFactory):
    kube.install_operator("training-operator")
    kube.kubelets.restart_backoff = (0.5, 1.0)
    running = Service(tmp_path_factory.mktemp("live"), workers=1, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE=NAMESPACE)
    yield running
    running.close()


def _window(service: Service, name: str, offset: int, mark: str | None) -> dict | None:
    """The dashboard's window of trial 0's log; None while the trial is not made yet."""
    path = f"/ui/studies/{name}/trials/0/log?offset={offset}" + (f"&mark={mark}" if mark else "")
    status, window = service.json("GET", path)
    if status == 404 and window["error"] == "study_not_found":
        return None
    assert status == 200, window
    return window


def test_a_running_trials_polls_read_only_what_its_pod_wrote_since_the_last(service: Service, kube: KubeStub):
    """After the first window, each poll asks the API for the lines of the last few seconds
    alone (``sinceSeconds``, ``limitBytes``), not for the pod's log from its start; the text
    the polls add up to is the log, no line lost or shown twice, though lines written within
    the same second share their time. A mark the service never gave is refused, naming it."""
    name = "live-polls"
    code = ("import sys, time\nprint('x' * 2000, flush=True)\nfor n in range(120):\n"
            "    print(f'line {n}', flush=True)\n    time.sleep(0.02 if n % 10 else 0.3)\ntime.sleep(600)")
    definition = study_definition(name=name, mode="hang", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["image"] = "python:3.12"
    definition["trialTemplate"]["command"] = [sys.executable, "-c", code, "${trialParameters.x}"]
    service.submit(definition)
    first = eventually(lambda: (w := _window(service, name, -1, None)) and w["text"] and w, "the trial prints")
    assert first["mark"], "a window that ends where the running pod's log ends carries a mark"
    reads: list[dict[str, str]] = []
    kube.on_log_read = lambda pod, query: reads.append(query)
    text, offset, mark = first["text"], first["offset"], first["mark"]
    try:
        while "line 119\n" not in text:
            window = _window(service, name, offset, mark)
            assert window is not None and window["mark"], window
            text, offset, mark = text + window["text"], window["offset"], window["mark"]
    finally:
        kube.on_log_read = None
    assert text == "x" * 2000 + "\n" + "".join(f"line {n}\n" for n in range(120))
    assert reads and all("sinceSeconds" in q and "limitBytes" in q for q in reads), reads
    assert (_window(service, name, offset, mark) or {}).get("text") == "", "nothing more is written"
    status, answer = service.json("GET", f"/ui/studies/{name}/trials/0/log?offset=0&mark=nope")
    assert status == 400 and answer["message"].startswith("mark: "), "a mark the service never gave is refused"
    service.json("POST", f"/studies/{name}/stop")


def _restarting(marker: Path) -> dict:
    """A PyTorchJob study whose master's first run prints and exits 1, and whose run after it,
    in place, prints and runs for minutes."""
    code = (f"import os, sys, time\nfirst = not os.path.exists({str(marker)!r})\nopen({str(marker)!r}, 'w').close()\n"
            "print('first run: Traceback ... CUDA out of memory' if first else 'second run', flush=True)\n"
            "sys.exit(1) if first else time.sleep(600)")
    container = {"name": "pytorch", "image": "python:3.12", "command": [sys.executable, "-c", code,
                                                                       "${trialParameters.x}"]}
    definition = study_definition("restarted", maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {"primaryContainerName": "pytorch", "trialSpec": {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {"Master": {
            "replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [container]}}}}}}}
    return definition


def test_the_run_before_a_containers_restart_in_place_is_shown_and_kept(service: Service, kube: KubeStub,
                                                                       tmp_path: Path):
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(_restarting(tmp_path / "ran")),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body
    pod = "restarted-0-master-0"
    shown = (f"[katuna: the trial's container in pod {pod} was run again in place (1 restart(s)); its previous "
             "run's log follows, which ended (exit code 1, Error)]\n"
             "first run: Traceback ... CUDA out of memory\n"
             f"[katuna: the current run of the trial's container in pod {pod} follows]\n"
             "second run\n")
    eventually(lambda: service.request("GET", "/studies/restarted/trials/0/logs")[2].decode() == shown,
               "the log shows both runs")
    window = _window(service, "restarted", 0, None)
    assert window is not None and window["text"] == shown, "the dashboard shows them too"
    assert service.json("POST", "/studies/restarted/stop")[0] == 200
    eventually(lambda: ("live", pod) not in kube.pods, f"pod {pod} is gone")
    kept = served_log(service, "restarted", 0).decode()
    assert kept == ("[katuna: attempt 1's log, kept when katuna deleted PyTorchJob restarted-0 as the trial ended]\n"
                    + shown), json.dumps(kept)
