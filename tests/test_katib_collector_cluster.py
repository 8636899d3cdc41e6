"""Katib's File collector on Kubernetes: the trial container is wrapped so that its metrics
file's lines reach the pod log, where katuna reads them (katuna serve with the Kubernetes
executor, the real client, the loopback API whose kubelet runs the wrapped command)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import job_experiment
from http_helpers import Service
from kube_stub import KubeStub
from waiting import eventually

from functions.core.file_collector import (
    END_BEGIN,
    END_DONE,
    END_MARK,
    EVENTS_WRAPPER,
    MARK,
    WRAPPER,
    NoCommand,
    file_lines,
    final_lines,
    wrap,
)

pytestmark = pytest.mark.slow

KUBE_NAMESPACES = ("files",)
DATA = Path(__file__).parent / "data" / "katib_collector"
KATIB_TEXT = r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"


@pytest.fixture(scope="module")
def service(kube, tmp_path_factory):
    running = Service(tmp_path_factory.mktemp("files"), workers=2, KATUNA_EXECUTOR="kubernetes",
                      KATUNA_K8S_API=kube.url, KATUNA_K8S_NAMESPACE="files", KATUNA_K8S_KEEP_SECONDS="0.3")
    yield running
    running.close()


def experiment(name: str, path: Path, program: str) -> dict:
    """A Katib Experiment whose trial runs ``program`` and reads its metrics from ``path``."""
    return job_experiment(
        name, {"command": [sys.executable, "-c", program], "args": ["--lr=${trialParameters.learningRate}"]}, max_trials=1,
        objective={"type": "maximize", "objectiveMetricName": "accuracy", "additionalMetricNames": ["loss"]},
        collector={"collector": {"kind": "File"},
                   "source": {"fileSystemPath": {"path": str(path), "kind": "File", "format": "TEXT"},
                              "filter": {"metricsFormat": [KATIB_TEXT]}}})


def test_a_trial_writing_katibs_metrics_file_on_a_cluster_gets_its_metrics(service: Service, kube: KubeStub,
                                                                          tmp_path: Path):
    """The file's lines, not the trial's own output, are the metrics; a last line without its
    line break counts too."""
    path = tmp_path / "katib" / "metrics.log"
    program = (f"import os, shutil, sys, time; assert sys.argv[1].startswith('--lr=')\n"
               f"print('{{metricName: accuracy, metricValue: 999999}}', flush=True)\n"
               f"os.makedirs({str(path.parent)!r}, exist_ok=True)\n"
               f"shutil.copy({str(DATA / 'good.log')!r}, {str(path)!r})\n"
               "time.sleep(0.3)\n")
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(experiment("file-metrics", path, program)),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body
    study = service.wait_for("file-metrics", timeout=90)
    trial = service.json("GET", "/studies/file-metrics/trials")[1][0]
    assert (study["status"], trial["state"]) == ("completed", "COMPLETE"), trial
    assert trial["value"] == 888.333, "the file's best accuracy, not the 999999 printed to stdout"
    assert trial["metrics"] == {"accuracy": 888.333, "loss": 0.8671}
    job = kube.created_jobs["file-metrics-0"]
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][:2] == ["sh", "-c"] and "args" not in container
    assert {"name": "katuna-metrics-file", "mountPath": str(path.parent)} in container["volumeMounts"]
    assert {"name": "katuna-metrics-file", "emptyDir": {}} in pod["volumes"]


def test_the_wrapper_copies_the_file_passes_signals_on_and_keeps_the_exit_status(tmp_path: Path):
    program = ("import sys, time\nprint('plain output', flush=True)\ntime.sleep(0.4)\n"
               "f = open('m.log', 'w'); f.write('loss=1\\nloss=2\\n'); f.flush(); time.sleep(0.4)\n"
               "f.write('loss=3\\nlo'); f.flush(); time.sleep(0.4); f.write('ss=4'); f.close(); sys.exit(3)")
    done = subprocess.run(["sh", "-c", WRAPPER, "katuna-metrics-file", "m.log", sys.executable, "-c", program],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert list(file_lines(done.stdout.splitlines())) == ["loss=1", "loss=2", "loss=3", "loss=4"]
    assert "plain output" in done.stdout.splitlines()
    waiting = subprocess.Popen(["sh", "-c", WRAPPER, "katuna-metrics-file", "never.log", sys.executable, "-c",
                                "print('started', flush=True); import time; time.sleep(60)"],
                               cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert waiting.stdout.readline() == "started\n"
    waiting.terminate()
    assert waiting.wait(timeout=30) == 143, "SIGTERM reached the command"
    waiting.stdout.close()


def test_a_metrics_file_rewritten_in_place_gives_its_last_content_on_a_cluster(service: Service, tmp_path: Path):
    """As Katib's collector reads the file once the training ended (and a local trial's file is
    read then), the file as it is at the end gives the metrics, though its log was read while the
    trial ran: not each value the file held on the way."""
    path = tmp_path / "katib" / "metrics.log"
    program = (f"import os, time\nos.makedirs({str(path.parent)!r}, exist_ok=True)\n"
               "for value in ('0.1', '0.9', '0.5'):\n"
               f"    open({str(path)!r}, 'w').write('{{metricName: accuracy, metricValue: %s}}\\n' % value)\n"
               "    time.sleep(0.6)\n")
    status, _, body = service.request("POST", "/studies", yaml.safe_dump(experiment("rewritten", path, program)),
                                      {"Content-Type": "application/yaml"})
    assert status == 201, body
    service.wait_for("rewritten", timeout=90)
    trial = service.json("GET", "/studies/rewritten/trials")[1][0]
    assert (trial["state"], trial["value"]) == ("COMPLETE", 0.5), trial
    assert [o["value"] for o in service.json("GET", "/studies/rewritten/trials/0")[1]["observations"]] == [0.5]


def run_wrapper(cwd: Path, *command: str) -> subprocess.CompletedProcess:
    """The File collector's wrapper run by the machine's ``sh`` (dash on Debian), following ``m.log``."""
    return subprocess.run(["sh", "-c", WRAPPER, "katuna-metrics-file", "m.log", *command], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_a_command_that_ends_at_once_never_loses_the_file(tmp_path: Path):
    """The command starts once the follower can be told to stop: one that ends at once cannot
    kill it with that signal before it copied a line (the runs are many, as the loss was a race)."""
    (tmp_path / "m.log").write_text("acc=1\n")
    for _ in range(150):
        done = run_wrapper(tmp_path, ":")
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout.splitlines() == ["", f"{MARK}acc=1", "", END_BEGIN, "", f"{END_MARK}acc=1", "", END_DONE], \
            "each line the wrapper prints starts with a carriage return"


CATCHES_TERM = r"""while read -r key mask; do
  if [ "$key" = SigCgt: ] && [ $((0x$mask & 0x4000)) = 0 ]; then exit 7; fi
done </proc/$$/status"""
"""Run by ``eval`` in the wrapper's own fork (no ``exec``, so as soon as it can): exit 7 when
the wrapper does not catch SIGTERM yet."""


def test_the_wrapper_catches_sigterm_before_the_command_starts_and_passes_it_on(tmp_path: Path):
    """The wrapper catches SIGTERM before it starts the command (a SIGTERM in between would end
    the wrapper and leave the command running), and passes a SIGTERM on to the running command,
    then ends with 143."""
    pids = tmp_path / "pid"
    for script, args in ((WRAPPER, ["m.log"]), (EVENTS_WRAPPER, [str(tmp_path), "pass", "[]"])):
        for _ in range(30):
            done = subprocess.run(["sh", "-c", script, "katuna-metrics-file", *args, "eval", CATCHES_TERM],
                                  cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, "the wrapper caught SIGTERM when the command started"
        pids.unlink(missing_ok=True)
        wrapper = subprocess.Popen(["sh", "-c", script, "katuna-metrics-file", *args, "sh", "-c",
                                    f"echo $$ > {pids}.new && mv {pids}.new {pids}; exec sleep 60"],
                                   cwd=tmp_path, stdout=subprocess.DEVNULL)
        eventually(lambda: pids.exists(), "the command runs", timeout=30)
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=30) == 143
        assert not _alive(int(pids.read_text()))


def _status(pid: int, key: str) -> str:
    """Field ``key`` of the process's ``/proc`` status."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(line.split(":", 1)[1].strip() for line in lines if line.startswith(f"{key}:"))


def _alive(pid: int) -> bool:
    try:
        return _status(pid, "State")[0] != "Z"
    except (FileNotFoundError, StopIteration):
        return False


def test_the_whole_file_at_the_end_counts_though_it_was_rewritten_or_replaced(tmp_path: Path):
    """The wrapper prints the file as it is once the command ended; that copy is read, as Katib
    reads the file then. Without it (the container was killed first) the followed lines count."""
    out = tmp_path / "out.txt"
    program = ("import os, pathlib, time\nopen('m.log', 'w').write('acc=0.1\\nacc=0.2\\n')\n"
               f"while 'acc=0.2' not in pathlib.Path({str(out)!r}).read_text(): time.sleep(0.05)\n"
               "open('m.log', 'w').write('acc=0.9\\n'); time.sleep(0.5)\n"
               "open('new.log', 'w').write('acc=0.5\\nacc=0.6'); os.rename('new.log', 'm.log')\n")
    with out.open("w") as printed:  # the program rewrites the file once the first lines were followed
        done = subprocess.run(["sh", "-c", WRAPPER, "katuna-metrics-file", "m.log", sys.executable, "-c", program],
                              cwd=tmp_path, stdout=printed, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert list(file_lines(lines))[:2] == ["acc=0.1", "acc=0.2"], "followed as it was first written"
    assert list(final_lines(lambda: lines)) == ["acc=0.5", "acc=0.6"]
    assert list(final_lines(lambda: lines[:-1])) == list(file_lines(lines)), "an end copy cut short is not read"
    assert list(final_lines(lambda: run_wrapper(tmp_path, "rm", "m.log").stdout.splitlines())) == []


def test_a_container_without_a_command_is_refused_naming_the_collector():
    job = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "trainer", "args": ["--x"]}]}}}}
    with pytest.raises(NoCommand, match=r"^trialTemplate\.trialSpec\.spec\.template\.spec\.containers\[0\]\.command: .* has none"):
        wrap(job, "main", "/var/log/katib/metrics.log")
    mounted = {"spec": {"template": {"spec": {"containers": [{
        "name": "main", "command": ["train"], "volumeMounts": [{"name": "logs", "mountPath": "/var/log/katib/"}]}],
        "volumes": [{"name": "logs", "emptyDir": {}}]}}}}
    pod = wrap(mounted, "main", "/var/log/katib/metrics.log")["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["logs"], "the trial's own volume at that folder is kept"
    assert MARK.startswith("katuna-metrics-file")


def test_the_api_refuses_mounts_of_volumes_the_pod_lacks(kube: KubeStub):
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = kube.url
    batch = client.BatchV1Api(client.ApiClient(configuration))
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "mounts"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "volumes": [{"name": "logs", "emptyDir": {}}, {"name": "logs", "emptyDir": {}}],
        "containers": [{"name": "main", "image": "python", "command": ["true"], "volumeMounts": [
            {"name": "other", "mountPath": "/a"}, {"name": "logs", "mountPath": "/a"}]}]}}}}
    with pytest.raises(client.ApiException) as refused:
        batch.create_namespaced_job("files", job)
    assert refused.value.status == 422
    causes = {c["field"]: c["message"] for c in json.loads(refused.value.body)["details"]["causes"]}
    mounts = "spec.template.spec.containers[0].volumeMounts"
    assert causes["spec.template.spec.volumes[1].name"].startswith("Duplicate value")
    assert causes[f"{mounts}[0].name"].startswith("Not found")
    assert causes[f"{mounts}[1].mountPath"].endswith("must be unique")
