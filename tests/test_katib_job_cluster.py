"""A Katib Experiment's trial Job on a cluster is retried as Katib's is: without a
``backoffLimit`` it gets Kubernetes' default (6), so a pod that fails once is replaced and the
trial can still succeed, while a trial whose every pod fails ends failed (katuna serve with the
Kubernetes executor, the real client, the loopback API whose Job controller retries pods)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from conftest import katib_job_experiment
from http_helpers import Service
from kube_stub import KubeStub

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("retries",)


@pytest.fixture(scope="module")
def service(kube, tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("retries"), workers=2, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="retries")
    yield running
    running.close()


def experiment(name: str, program: str) -> dict:
    """A Katib Experiment of one trial that runs ``program``, its Job without a ``backoffLimit``."""
    return katib_job_experiment(name, {"command": [sys.executable, "-c", program, "${trialParameters.learningRate}"]})


def counting(runs: Path, fails: int) -> str:
    """A trial that counts its runs in ``runs`` and fails its first ``fails``."""
    return (f"import pathlib, sys\np = pathlib.Path({str(runs)!r})\nn = int(p.read_text()) if p.exists() else 0\n"
            f"p.write_text(str(n + 1))\nprint(f'run {{n}}', flush=True)\nsys.exit(1) if n < {fails} else print('loss=0.5')\n")


def test_a_trial_whose_first_pod_fails_is_run_again_and_succeeds(service: Service, kube: KubeStub, tmp_path: Path):
    runs = tmp_path / "runs"
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(experiment("flaky", counting(runs, 1))),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body
    study = service.wait_for("flaky", timeout=120)
    trial = service.json("GET", "/studies/flaky/trials")[1][0]
    assert (study["status"], trial["state"], trial["value"]) == ("completed", "COMPLETE", 0.5), trial
    assert runs.read_text() == "2"
    assert kube.created_jobs["flaky-0"]["spec"]["backoffLimit"] == 6


def test_a_trial_whose_every_pod_fails_ends_failed_after_kubernetes_retries(service: Service, tmp_path: Path):
    runs = tmp_path / "runs"
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(experiment("broken", counting(runs, 99))),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body
    study = service.wait_for("broken", timeout=180)
    trial = service.json("GET", "/studies/broken/trials")[1][0]
    assert (study["status"], trial["state"]) == ("failed", "FAIL"), trial
    assert runs.read_text() == "7", "the first pod and its six replacements"


def test_a_job_with_a_manual_selector_has_its_pods_found_by_katunas_own_labels(service: Service, kube: KubeStub):
    """With ``manualSelector``, neither the API server nor the Job controller puts the Job's name
    on its pods: katuna finds them by the trial and attempt labels its template carries, and
    reads the trial's end from them."""
    manual = experiment("manual", "import sys; print('loss=0.25')")
    job = manual["spec"]["trialTemplate"]["trialSpec"]["spec"]
    job["manualSelector"] = True
    job["selector"] = {"matchLabels": {"app": "manual-training"}}
    job["template"]["metadata"] = {"labels": {"app": "manual-training"}}
    manual["spec"]["trialTemplate"]["retain"] = True  # its Job and pod kept, to be looked at
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(manual), {"Content-Type": "application/yaml"})
    assert status == 201, body
    study = service.wait_for("manual", timeout=120)
    trial = service.json("GET", "/studies/manual/trials")[1][0]
    assert (study["status"], trial["state"], trial["value"], trial["attempt"]) == ("completed", "COMPLETE", 0.25, 1), trial
    (pod,) = [p for p in kube.pods.values() if p["metadata"]["labels"].get("katuna.dev/study") == "manual"]
    assert "batch.kubernetes.io/job-name" not in pod["metadata"]["labels"], "the stand-in labels as the API does"


def test_a_trial_pod_reads_its_trial_name_from_katib_trial_name(service: Service):
    """Katib's pod webhook gives a trial's primary container ``KATIB_TRIAL_NAME``, the Trial's
    name; a trial that needs it runs on the cluster too."""
    program = ("import os, sys\nname = os.environ.get('KATIB_TRIAL_NAME')\n"
               "sys.exit('no KATIB_TRIAL_NAME') if name != 'named-0' else print('loss=0.75')\n")
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(experiment("named", program)),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body
    study = service.wait_for("named", timeout=120)
    trial = service.json("GET", "/studies/named/trials")[1][0]
    assert (study["status"], trial["state"], trial["value"]) == ("completed", "COMPLETE", 0.75), trial
