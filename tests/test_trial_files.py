"""What the service reads back of a local trial is the trial's own files, never its own process's:
a metrics file, event files or a log that a trial made a link to ``/proc/self/environ`` (the
service's environment, with its API token) is refused when opened, with a reason saying why,
and a metrics path under ``/proc``, ``/sys`` or ``/dev`` is refused at submission. A trial's log is
written never through a link, FIFO or second name a trial planted where a later attempt logs."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import pytest
import tfevent_writer
from conftest import run_study, study_definition
from http_helpers import Service

from functions import pools
from functions.adapters import local_marks, local_outputs, trial_files
from functions.adapters.file_follow import follow
from functions.adapters.local_executor import LocalExecutor
from functions.core import tfevents
from functions.core.errors import InvalidStudy, RefusedFile, Stopping
from functions.core.formats import load_definition
from functions.core.launch import TrialLaunch
from functions.core.tfevents import masked_crc
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings

SECRET_DIGITS = "31415926"
TOKEN = f"{SECRET_DIGITS}-service-token-kept-from-trials"
"""The service's API token: its leading digits are what a study's filter could move into a metric."""
AUTH = {"Authorization": f"Bearer {TOKEN}"}

LINKER = """
import os, sys
target = sys.argv[1].replace("PARENT", str(os.getppid()))
os.symlink(target, "metrics.txt")
print("loss=1.0 written to metrics.txt")
"""
"""A trial that makes its metrics file a link (``PARENT``: the service process that started it)."""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    served = Service(tmp_path_factory.mktemp("files"), workers=1, KATUNA_API_TOKEN=TOKEN)
    yield served
    served.close()


def _post(service: Service, definition: dict) -> tuple[int, bytes]:
    status, _, body = service.request("POST", "/studies", json.dumps(definition),
                                      {"Content-Type": "application/json", **AUTH})
    return status, body


def _ended(service: Service, name: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        study = json.loads(service.request("GET", f"/studies/{name}", headers=AUTH)[2])
        if study["status"] in ("completed", "failed"):
            return study
        time.sleep(0.2)
    raise AssertionError(f"study {name} did not end: {study}")


def _exfiltrating(name: str, target: str) -> dict:
    """A study whose trial links its metrics file to ``target``, with filters that would store
    the token's leading digits as its metric ``TOKEN``."""
    definition = study_definition(name=name, maxTrials=1, parallelism=1)
    definition["objective"]["additionalMetrics"] = ["TOKEN"]
    definition["trialTemplate"] = {"command": [sys.executable, "-c", LINKER, target, "${trialParameters.x}"],
                                   "workingDir": name}
    definition["metricsCollector"] = {"kind": "file", "path": "metrics.txt",
                                      "filters": [r"API_(TOKEN)=(\d+)", r"(loss)=([\d.]+)"]}
    return definition


def _everything_kept(service: Service) -> bytes:
    """Every byte the service keeps or wrote: database, trial logs, its own log (links, which
    trials made, are not followed)."""
    return b"".join(path.read_bytes() for path in sorted(service.workdir.rglob("*"))
                    if path.is_file() and not path.is_symlink())


@pytest.mark.parametrize(("name", "target"), [("self", "/proc/self/environ"), ("parent", "/proc/PARENT/environ"),
                                              ("task", "/proc/self/task/../environ")])
def test_a_metrics_file_linked_to_the_services_environment_is_refused_and_nothing_of_it_kept(service, name, target):
    (service.workdir / name).mkdir()
    status, body = _post(service, _exfiltrating(name, target))
    assert status == 201, body
    assert _ended(service, name)["status"] == "failed"
    trials = service.request("GET", f"/studies/{name}/trials", headers=AUTH)[2]
    [trial] = json.loads(trials)
    assert trial["state"] == "FAIL" and "TOKEN" not in (trial.get("metrics") or {})
    assert "metrics.txt leads to /proc/" in trial["reason"] and "katuna reads no file under /proc" in trial["reason"]
    kept = _everything_kept(service) + trials
    assert TOKEN.encode() not in kept and SECRET_DIGITS.encode() not in kept


@pytest.mark.parametrize(("collector", "working_dir"), [
    ({"kind": "file", "path": "/proc/self/environ"}, None),
    ({"kind": "file", "path": "/var/../proc/self/environ"}, None),
    ({"kind": "file", "path": "environ"}, "/proc/self"),
    ({"kind": "tfevent", "path": "/sys/kernel"}, None),
    ({"kind": "file", "path": "//dev/stdin"}, None),
])
def test_a_metrics_path_under_the_systems_folders_is_refused_at_submission_naming_the_field(
        service, collector, working_dir):
    definition = study_definition(name="sys-path", metricsCollector=collector)
    if working_dir:
        definition["trialTemplate"]["workingDir"] = working_dir
    status, body = _post(service, definition)
    assert status == 422, body
    [problem] = json.loads(body)["problems"]
    assert problem["path"] == "metricsCollector.path" and "katuna reads no file under /proc, /sys, /dev" in problem[
        "message"]
    assert service.request("GET", "/studies/sys-path", headers=AUTH)[0] == 404


def test_a_metrics_file_every_trial_would_write_at_once_is_refused_at_submission(service):
    """Katib's ``/katib/mnist.log``, each pod's own on a cluster: trials running at once here
    would take each other's lines for their own metrics."""
    definition = study_definition(name="shared", parallelism=3, metricsCollector={"kind": "file", "path": "/katib/mnist.log"})
    status, body = _post(service, definition)
    assert status == 422, body
    [problem] = json.loads(body)["problems"]
    assert problem["path"] == "metricsCollector.path" and "3 would run at once on this machine" in problem["message"]
    assert service.request("GET", "/studies/shared", headers=AUTH)[0] == 404


def test_a_katib_experiment_gets_the_refusal_at_its_own_field(tmp_path: Path):
    experiment = _katib_experiment()
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        with pytest.raises(InvalidStudy) as refused:
            runner.submit(*load_definition(experiment), tmp_path)
        assert [p.path for p in refused.value.problems] == ["spec.metricsCollectorSpec.source.fileSystemPath.path"]
        assert runner.store.list_studies() == []
    finally:
        runner.close()


def _katib_experiment() -> dict:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "katib-proc"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"}, "maxTrialCount": 1, "parallelTrialCount": 1,
            "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
            "metricsCollectorSpec": {"collector": {"kind": "File"},
                                     "source": {"fileSystemPath": {"path": "/proc/self/environ", "kind": "File"}}},
            "trialTemplate": {"primaryContainerName": "main", "trialParameters": [{"name": "x", "reference": "x"}],
                              "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                                  "containers": [{"name": "main", "image": "python:3.12",
                                                  "command": ["python", "-c", "print(1)", "${trialParameters.x}"]}],
                                  "restartPolicy": "Never"}}}}},
        },
    }


@pytest.mark.parametrize("scratch", [False, True], ids=["elsewhere", "dev-shm"])
def test_an_absolute_metrics_path_outside_them_still_works_locally(tmp_path: Path, scratch: bool):
    """``/dev/shm`` is memory-backed scratch space of plain files, not a device: it is taken."""
    if scratch and not Path("/dev/shm").is_dir():
        pytest.skip("this machine has no /dev/shm")
    root = Path(tempfile.mkdtemp(dir="/dev/shm")) if scratch else tmp_path
    metrics = root / "var" / "log" / "katib" / "metrics.log"
    metrics.parent.mkdir(parents=True)
    definition = study_definition(maxTrials=1, parallelism=1, metricsCollector={"kind": "file", "path": str(metrics)})
    definition["trialTemplate"]["command"] = [sys.executable, "-c", f"open({str(metrics)!r}, 'w').write('loss=0.5\\n')",
                                              "${trialParameters.x}"]
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        runner.submit(parse_study(definition), definition, tmp_path)
        assert runner.run("demo").status == "completed"
        assert runner.store.trials("demo")[0].values == [0.5]
    finally:
        runner.close()
        if scratch:
            shutil.rmtree(root)


def _launch(working_dir: Path) -> TrialLaunch:
    return TrialLaunch(study="demo", uid="u", number=0, attempt=1, job_name="demo-0", argv=["true"], env={},
                       working_dir=str(working_dir), timeout=None)


def test_event_files_under_a_linked_folder_or_linked_themselves_are_refused(tmp_path: Path):
    (tmp_path / "events").symlink_to("/proc/self")
    with pytest.raises(RefusedFile, match=r"events leads to /proc/\d+, under /proc"):
        list(local_outputs.read_file(_launch(tmp_path), "events"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "events.out.tfevents.1").symlink_to("/proc/self/environ")
    with pytest.raises(RefusedFile, match=r"events.out.tfevents.1 leads to /proc/\d+/environ"):
        list(local_outputs.read_file(_launch(tmp_path), "mine"))


@pytest.mark.timeout(30)
def test_a_fifo_or_device_is_refused_without_blocking(tmp_path: Path):
    """Opening a FIFO for reading waits for a writer, and /dev/zero never ends: each is refused
    before it is opened (a read that blocked would be stopped by the timeout, and fail)."""
    os.mkfifo(tmp_path / "metrics.txt")
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(RefusedFile, match="metrics.txt is a FIFO; katuna reads a regular file there"):
        list(local_outputs.read_file(_launch(tmp_path), "metrics.txt"))
    with pytest.raises(RefusedFile, match="zero is a character device"):
        list(local_outputs.lines(tmp_path / "zero"))


def test_a_read_of_a_trials_output_or_event_files_ends_once_reads_are_stopped(tmp_path: Path):
    """Asked between chunks (and event records), a stop ends the read where it is: the lines
    left unread never come, the read ends in a temporary error naming the file."""
    log = tmp_path / "0.1.log"
    log.write_bytes(b"loss=1\n" * (3 * local_outputs.CHUNK))
    stopped = False
    read = local_outputs.lines(log, lambda: stopped)
    assert next(read) == "loss=1\n"
    stopped = True
    with pytest.raises(Stopping, match=r"katuna is stopping: the read of .*0\.1\.log was given up") as ended:
        deque(read, maxlen=0)
    assert ended.value.retryable
    (tmp_path / "events").mkdir()
    tfevent_writer.write(tmp_path / "events" / "events.out.tfevents.1", [tfevent_writer.event(0, [("loss", 1.0)])])
    assert len(list(local_outputs.read_file(_launch(tmp_path), "events"))) == 1
    with pytest.raises(Stopping, match="the read of .*events was given up"):
        list(local_outputs.read_file(_launch(tmp_path), "events", lambda: True))


def test_a_trial_log_replaced_by_a_link_is_refused(tmp_path: Path):
    log = tmp_path / "0.1.log"
    log.symlink_to("/proc/self/environ")
    with pytest.raises(RefusedFile, match=r"0.1.log leads to /proc/\d+/environ"):
        list(local_outputs.lines(log))


def test_a_file_reached_through_another_processes_open_file_is_not_read(tmp_path: Path):
    hidden = tmp_path / "hidden"
    hidden.write_text("loss=1\n")
    with hidden.open() as held:
        hidden.unlink()
        link = tmp_path / "metrics.txt"
        link.symlink_to(f"/proc/self/fd/{held.fileno()}")
        assert list(local_outputs.read_file(_launch(tmp_path), "metrics.txt")) == []


def test_following_a_metrics_file_stops_at_a_link_to_the_services_own_files(tmp_path: Path):
    link = tmp_path / "metrics.txt"
    link.symlink_to("/proc/self/environ")
    with pytest.raises(RefusedFile):
        list(follow(link, lambda: True, poll=0))
    assert trial_files.open_file(__file__).read(3) == b'"""'


def _planted(tmp_path: Path) -> tuple[LocalExecutor, TrialLaunch, Path]:
    """An executor logging under ``tmp_path / logs``, the launch of attempt 2 of trial 0, and a
    file of the service's (its database, say) that a trial would have katuna overwrite."""
    executor = LocalExecutor(tmp_path / "logs", publish=lambda event: None)
    precious = tmp_path / "katuna.db"
    precious.write_bytes(b"the service's own data")
    launch = replace(_launch(tmp_path), argv=[sys.executable, "-c", "print('loss=1')"], attempt=2, job_name="demo-0-2")
    return executor, launch, precious


def test_a_link_planted_at_a_later_attempts_log_is_refused_and_its_target_left_whole(tmp_path: Path):
    """Before, opening the log followed the link and emptied the file it names."""
    executor, launch, precious = _planted(tmp_path)
    log = executor.log_path(launch)
    log.parent.mkdir(parents=True)
    log.symlink_to(precious)
    with pytest.raises(RefusedFile, match=r"0\.2\.log is a link .* katuna writes a trial's log only as a file"):
        executor.launch(launch)
    assert precious.read_bytes() == b"the service's own data"
    assert not executor.exists(launch)
    log.unlink()
    os.link(precious, log)
    with pytest.raises(RefusedFile, match=r"0\.2\.log is a file with another name too"):
        executor.launch(launch)
    assert precious.read_bytes() == b"the service's own data"


def test_a_link_planted_as_a_studys_log_folder_is_refused(tmp_path: Path):
    executor, launch, precious = _planted(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0.2.log").write_bytes(b"kept")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "demo").symlink_to(elsewhere)
    with pytest.raises(RefusedFile, match=r"demo on the way is not a folder"):
        executor.launch(launch)
    assert (elsewhere / "0.2.log").read_bytes() == b"kept"


@pytest.mark.timeout(30)
def test_a_fifo_planted_as_a_log_is_refused_without_blocking(tmp_path: Path):
    """Opening a FIFO to write the log would wait for a reader: it is refused without being
    opened (an open that blocked would be stopped by the timeout, and fail)."""
    executor, launch, _ = _planted(tmp_path)
    log = executor.log_path(launch)
    log.parent.mkdir(parents=True)
    os.mkfifo(log)
    with pytest.raises(RefusedFile, match=r"0\.2\.log is a FIFO or a socket"):
        executor.launch(launch)
    assert not executor.exists(launch)


PLANTS = """
import os, sys
logs, precious = sys.argv[1], sys.argv[2]
if os.environ["KATUNA_TRIAL"] == "0":
    os.symlink(precious, os.path.join(logs, "planting", os.environ["KATUNA_STUDY_UID"], "1.1.log"))
print("loss=1")
"""
"""Trial 0 plants a link to a file of the service's where trial 1 will log."""


def test_a_trial_whose_log_was_planted_fails_alone_and_the_study_goes_on(tmp_path: Path):
    """The launch is refused, the file the link names left whole; that trial fails with the
    reason, and the study runs its other trials to its end."""
    precious = tmp_path / "precious"
    precious.write_bytes(b"the service's own data")
    runner = Embedded(Settings(db=tmp_path / "katuna.db", log_dir=tmp_path / "logs"))
    definition = study_definition("planting", parallelism=1, maxTrials=3, algorithm={"name": "grid"},
                                  parameters=[{"name": "n", "type": "int", "min": 0, "max": 2}])
    definition["trialTemplate"]["command"] = [sys.executable, "-c", PLANTS, str(tmp_path / "logs"), str(precious),
                                              "${trialParameters.n}"]
    try:
        record = run_study(runner, definition, tmp_path)
        trials = {t.number: t for t in runner.store.trials("planting")}
    finally:
        runner.close()
    assert record.status == "completed", record.reason
    assert {n: t.state for n, t in trials.items()} == {0: "COMPLETE", 1: "FAIL", 2: "COMPLETE"}
    assert trials[1].reason.startswith("katuna refused to start the attempt: ") and "1.1.log is a link" in trials[1].reason
    assert precious.read_bytes() == b"the service's own data"


def test_the_log_of_an_attempt_opened_again_is_made_new(tmp_path: Path):
    """At-least-once delivery: the same attempt's log may be opened twice; it is emptied, private."""
    logs = tmp_path / "logs"
    path = logs / "demo" / "0.1.log"
    with local_outputs.new_log(path, logs) as first:
        first.write(b"loss=2\n" * 3)
    with local_outputs.new_log(path, logs) as again:
        again.write(b"loss=1\n")
    assert path.read_bytes() == b"loss=1\n"
    assert all(p.stat().st_mode & 0o077 == 0 for p in (logs, logs / "demo", path))


def _runs_in(folder: str, **template: object) -> dict:
    """A trialSpec Job whose container runs in ``folder`` (its ``workingDir``), where a local trial runs."""
    container = {"name": "trial", "image": "python:3.12", "workingDir": folder, "command": [sys.executable, "-c", "0", "${trialParameters.x}"]}
    return {"trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [container]}}}}, **template}


def test_a_metrics_path_relative_to_a_trial_spec_containers_folder_under_proc_is_refused_at_submission(service):
    """A local trialSpec trial runs, and its relative metrics path is read, in its container's
    ``workingDir``: the check at submission resolved it against ``trialTemplate.workingDir``
    alone, and took ``environ`` from ``/proc/self`` (the service's own environment)."""
    definition = study_definition(name="sys-container", parallelism=1, metricsCollector={"kind": "file", "path": "environ"})
    definition["trialTemplate"] = _runs_in("/proc/self")
    status, body = _post(service, definition)
    assert status == 422, body
    [problem] = json.loads(body)["problems"]
    assert problem["path"] == "metricsCollector.path" and problem["message"].startswith(
        "'environ' (from the workingDir of the trialSpec's primary container '/proc/self') lies under /proc")
    assert service.request("GET", "/studies/sys-container", headers=AUTH)[0] == 404


def test_a_metrics_file_shared_by_trials_is_found_in_the_folder_a_trial_spec_trial_runs_in():
    """Three trials at once in their container's one ``workingDir`` all write its ``metrics.log``,
    whatever ``trialTemplate.workingDir`` says (the trials do not run there); a container's
    folder naming each trial is each trial's own."""
    shared = study_definition(name="shared-folder", parallelism=3, metricsCollector={"kind": "file", "path": "metrics.log"})
    shared["trialTemplate"] = _runs_in("/srv/train", workingDir="runs/${trialSpec.Name}")
    with pytest.raises(InvalidStudy) as refused:
        pools.check_study(parse_study(shared), shared, Settings(), runs_jobs=False)
    [problem] = refused.value.problems
    assert problem.path == "metricsCollector.path" and "3 would run at once on this machine" in problem.message
    assert "or in the workingDir of the trialSpec's primary container, where the trial runs" in problem.message
    own = study_definition(name="own-folder", parallelism=3, metricsCollector={"kind": "file", "path": "metrics.log"})
    own["trialTemplate"] = _runs_in("runs/${trialSpec.Name}")
    pools.check_study(parse_study(own), own, Settings(), runs_jobs=False)


def test_an_event_folder_of_more_files_than_are_read_or_a_damaged_event_file_is_named_in_a_refusal(tmp_path: Path):
    """A folder of more than ``MAX_FILES`` files is refused before any is read (a folder of ``/``
    was walked whole at each attempt's start and end, and read whole), its mark not taken; a
    damaged event file is named once every other file was read, its records before the damage
    read too."""
    events = tmp_path / "events"
    good = tfevent_writer.write(events / "a" / "events.out.tfevents.1", [tfevent_writer.event(0, [("loss", 1.0)])])
    claim = struct.pack("<Q", 1 << 40)
    (events / "b").mkdir()
    (events / "b" / "events.out.tfevents.2").write_bytes(
        good.read_bytes() + claim + struct.pack("<I", masked_crc(claim)))
    tfevent_writer.write(events / "c" / "events.out.tfevents.3", [tfevent_writer.event(1, [("loss", 0.5)])])
    read = local_outputs.read_file(_launch(tmp_path), "events")
    assert [json.loads(line)["step"] for line in itertools.islice(read, 3)] == [0, 0, 1]
    with pytest.raises(RefusedFile, match=r"events/b/events\.out\.tfevents\.2: a record claims 1,099,511,627,776 "
                                          r"bytes, and 0 are left of the file: read up to that record$"):
        next(read)
    launch = replace(_launch(tmp_path), metrics_file="events", metrics_events=("loss",))
    assert local_marks.taken(launch) is not None
    for number in range(tfevents.MAX_FILES):
        (events / f"{number}.txt").write_bytes(b"")
    assert local_marks.taken(launch) is None
    with pytest.raises(RefusedFile, match=r"events holds more than 10,000 files; katuna reads the event files of a "
                                          r"folder of at most 10,000: name the trial's own event folder"):
        next(local_outputs.read_file(launch, "events"))


@pytest.mark.parametrize(("collector", "template", "where"), [
    ({"kind": "tfevent", "path": "/"}, {}, ""),
    ({"kind": "tfevent", "path": "."}, {"workingDir": "/"}, " (from trialTemplate.workingDir '/')"),
    ({"kind": "tfevent", "path": "."}, _runs_in("//"), " (from the workingDir of the trialSpec's primary container '//')"),
])
def test_the_root_folder_as_an_event_folder_is_refused_at_submission_naming_the_field(collector, template, where):
    definition = study_definition(name="root-events", parallelism=1, metricsCollector=collector)
    definition["trialTemplate"] = template if "trialSpec" in template else {**definition["trialTemplate"], **template}
    with pytest.raises(InvalidStudy) as refused:
        pools.check_study(parse_study(definition), definition, Settings(), runs_jobs=False)
    [problem] = refused.value.problems
    assert problem.path == "metricsCollector.path"
    assert problem.message.startswith(f"{collector['path']!r}{where} is the root folder: katuna would walk the machine's")
