"""The TensorFlowEvent collector: event files read without TensorFlow as Katib's collector reads
them, locally after the trial ends and on a cluster through the wrapped container's log."""

from __future__ import annotations

import ast
import inspect
import json
import math
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import tfevent_writer as writer
from conftest import run_study, study_definition

from functions.adapters import local_outputs
from functions.adapters.local_executor import LocalExecutor
from functions.core import file_collector, katib, tfevent_budget, tfevent_lines, tfevents
from functions.core.errors import InvalidStudy, RefusedFile, Stopping
from functions.core.formats import load_definition
from functions.core.launch import TrialLaunch
from functions.core.lines import bounded_lines
from functions.core.metrics import parse_json_lines
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings

TRIAL = Path(__file__).parent / "trials" / "katib_tf_summaries.py"


def _logs(root: Path) -> Path:
    """``train/`` and ``test/`` as TensorFlow's writers leave them: TF2 tensors in one file, TF1
    simple values, double and integer tensors in others, a record cut short at the end of one, and a
    file that is no event file."""
    writer.write(root / "train" / "events.out.tfevents.1",
                 [writer.event(step, [("accuracy", 0.5 + step / 10), ("loss", 1.0)]) for step in range(3)],
                 truncated_tail=True)
    writer.write(root / "test" / "events.out.tfevents.1",
                 [writer.event(step, [("accuracy", 0.25 * (step + 1))], writer.SIMPLE) for step in (2, 0, 1)])
    writer.write(root / "test" / "nested" / "events.out.tfevents.2",
                 [writer.event(0, [("loss", 0.75)], writer.CONTENT), writer.event(1, [("loss", 0.5)], writer.DOUBLE),
                  writer.event(1, [("epochs", -2)], writer.INT64)])
    (root / "README.txt").write_text("not an event file\n")
    return root


def _lines(root: Path) -> list[str]:
    return [json.dumps(record) for record in tfevents.directory_records(str(root))]


def test_crc32c_matches_the_castagnoli_check_value():
    assert tfevents.crc32c(b"123456789") == 0xE3069283


def test_scalars_are_read_from_tensors_and_simple_values_in_every_folder(tmp_path: Path):
    records = list(tfevents.directory_records(str(_logs(tmp_path))))
    found = {(Path(str(r["dir"])).relative_to(tmp_path).as_posix(), r["tag"], r["step"], r["value"]) for r in records}
    assert found == {
        ("train", "accuracy", 0, "0.5"), ("train", "loss", 0, "1"), ("train", "accuracy", 1, "0.6"),
        ("train", "loss", 1, "1"), ("train", "accuracy", 2, "0.7"), ("train", "loss", 2, "1"),
        ("test", "accuracy", 2, "0.75"), ("test", "accuracy", 0, "0.25"), ("test", "accuracy", 1, "0.5"),
        ("test/nested", "loss", 0, "0.75"), ("test/nested", "loss", 1, "0.5"), ("test/nested", "epochs", 1, "-2")}
    assert len(records) == len(found), "the truncated record of train/ is no scalar"


def test_a_corrupt_record_ends_the_file_as_tensorflow_readers_do(tmp_path: Path):
    path = writer.write(tmp_path / "events", [writer.event(s, [("loss", float(s))]) for s in range(3)])
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    assert [r["step"] for r in tfevents.directory_records(str(tmp_path))] == [0, 1]


def test_names_match_as_katib_matches_them_in_step_order(tmp_path: Path):
    """A plain name takes the tag from every folder; ``test/loss`` only from a folder ending in
    ``test`` (``test/nested`` does not); reports come in step order."""
    names = ["accuracy", "test/accuracy", "test/loss", "train/loss"]
    lines = tfevent_lines.metric_lines(_lines(_logs(tmp_path)), names)
    observed = [(o.metric, o.value) for o in parse_json_lines(lines, names)]
    assert observed == [("accuracy", 0.25), ("test/accuracy", 0.25), ("accuracy", 0.5), ("train/loss", 1.0),
                        ("accuracy", 0.5), ("test/accuracy", 0.5), ("accuracy", 0.6), ("train/loss", 1.0),
                        ("accuracy", 0.75), ("test/accuracy", 0.75), ("accuracy", 0.7), ("train/loss", 1.0)]


def test_the_wrapped_container_prints_the_scalars_after_its_command_and_keeps_its_status(tmp_path: Path):
    """The cluster's wrapper, run as the container runs it: the command's output, then the
    metric's records behind the mark; the container exits with the command's status."""
    manifest = {"kind": "Job", "spec": {"template": {"spec": {"containers": [{
        "name": "main", "command": ["sh", "-c", '"$@"; exit 3', "trial"],
        "args": [sys.executable, str(TRIAL), "--lr", "0.02", "--log-path", str(tmp_path)]}]}}}}
    wrapped = file_collector.wrap_events(manifest, "main", str(tmp_path / "test"), ["accuracy"])
    container = wrapped["spec"]["template"]["spec"]["containers"][0]
    assert container["volumeMounts"] == [{"name": file_collector.VOLUME, "mountPath": str(tmp_path / "test")}]
    done = subprocess.run(container["command"], capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    assert done.returncode == 3, done.stderr
    output = done.stdout.splitlines()
    assert output[0].startswith("Train Epoch: 1")
    assert [r["tag"] for r in tfevent_lines.records(file_collector.file_lines(output))] == ["accuracy"], \
        "the log holds the metrics' scalars only"
    lines = tfevent_lines.metric_lines(file_collector.file_lines(output), ["accuracy"])
    assert lines == [json.dumps({"accuracy": "0.6452"})], "test/'s accuracy at lr 0.02, not train/'s or the output's"


def test_a_local_trial_reports_the_event_files_metrics_and_not_its_output(embedded, tmp_path: Path):
    """Only ``test/``'s accuracy counts: ``train/``'s (0.5) and the output's (0.0001) would be the
    least, the objective's best."""
    definition = study_definition(maxTrials=2, objective={"metric": "accuracy", "direction": "minimize"},
                                  parameters=[{"name": "lr", "type": "float", "min": 0.01, "max": 0.05}],
                                  metricsCollector={"kind": "tfevent", "path": "logs/${trialSpec.Name}/test"})
    definition["trialTemplate"]["command"] = [sys.executable, str(TRIAL), "--lr", "${trialParameters.lr}",
                                              "--epochs", "2", "--style", "simple",
                                              "--log-path", "logs/${trialSpec.Name}"]
    run_study(embedded, definition, tmp_path)
    trials = embedded.store.trials("demo")
    assert [t.state for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        base = 100 * (trial.params["lr"] - 0.03) ** 2 + 0.04
        best = min(round(1 / (1 + base + 0.5 / epoch), 4) for epoch in (1, 2))
        assert math.isclose(trial.values[0], best, rel_tol=1e-6)


def _experiment(collector: dict) -> dict:
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "tf"},
            "spec": {"objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
                     "algorithm": {"algorithmName": "random"}, "maxTrialCount": 2, "parallelTrialCount": 2,
                     "metricsCollectorSpec": collector,
                     "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.2"}}],
                     "trialTemplate": {"primaryContainerName": "main", "trialParameters": [
                         {"name": "lr", "reference": "lr"}], "trialSpec": {
                         "apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                             "restartPolicy": "Never",
                             "containers": [{"name": "main", "image": "python", "command": [
                                 "python3", "train.py", "--lr=${trialParameters.lr}"]}]}}}}}}}


def test_katib_tensorflow_event_collector_becomes_the_tfevent_collector():
    given = katib.from_experiment(_experiment({"collector": {"kind": "TensorFlowEvent"}, "source": {
        "fileSystemPath": {"path": "/logs/test", "kind": "Directory"}}}))
    assert given["metricsCollector"] == {"kind": "tfevent", "path": "/logs/test", "nonFinite": "skip"}
    default = katib.from_experiment(_experiment({"collector": {"kind": "TensorFlowEvent"}}))
    assert default["metricsCollector"] == {"kind": "tfevent", "path": "/var/log/katib/tfevent/", "nonFinite": "skip"}


@pytest.mark.parametrize(("source", "field", "words"), [
    ({"fileSystemPath": {"path": "/logs", "kind": "File"}}, "fileSystemPath.kind", "expected Directory"),
    ({"fileSystemPath": {"path": "logs", "kind": "Directory"}}, "fileSystemPath.path", "absolute"),
    ({"fileSystemPath": {"path": "/logs", "kind": "Directory", "format": "TEXT"}}, "fileSystemPath.format", "empty"),
    ({"fileSystemPath": {"path": "/logs"}, "filter": {"metricsFormat": ["(a)=(b)"]}}, "filter.metricsFormat", "tags"),
])
def test_katib_tensorflow_event_collector_refusals_name_the_field(source: dict, field: str, words: str):
    with pytest.raises(InvalidStudy) as refused:
        katib.from_experiment(_experiment({"collector": {"kind": "TensorFlowEvent"}, "source": source}))
    problems = {p.path: p.message for p in refused.value.problems}
    assert words in problems[f"spec.metricsCollectorSpec.source.{field}"], problems


@pytest.mark.parametrize(("collector", "early", "field"), [
    ({"kind": "tfevent"}, None, "metricsCollector.path"),
    ({"kind": "tfevent", "path": "logs", "format": "json"}, None, "metricsCollector.format"),
    ({"kind": "tfevent", "path": "logs", "filters": ["(a)=(b)"]}, None, "metricsCollector.filters"),
    ({"kind": "tfevent", "path": "logs"}, {"algorithm": "medianstop"}, "earlyStopping"),
])
def test_the_native_tfevent_collector_refuses_what_it_cannot_honour(collector: dict, early: dict | None, field: str):
    definition = study_definition(metricsCollector=collector)
    if early is not None:
        definition["earlyStopping"] = early
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    assert field in {p.path for p in refused.value.problems}


def test_every_replica_of_a_tfjob_has_its_primary_container_wrapped():
    """Katib's example reads the workers' event files: each replica's pod template gets the
    wrapper and its own emptyDir at the directory; other containers are left as they are."""
    replica = {"template": {"spec": {"containers": [{"name": "tensorflow", "command": ["python", "mnist.py"]},
                                                    {"name": "sidecar", "command": ["sleep", "1"]}]}}}
    tfjob = {"apiVersion": "kubeflow.org/v1", "kind": "TFJob",
             "spec": {"tfReplicaSpecs": {"Chief": replica, "Worker": {"replicas": 2, **replica}}}}
    wrapped = file_collector.wrap_events(tfjob, "tensorflow", "/logs/test/", ["accuracy"])
    for kind in ("Chief", "Worker"):
        pod = wrapped["spec"]["tfReplicaSpecs"][kind]["template"]["spec"]
        main, sidecar = pod["containers"]
        assert main["command"][:2] == ["sh", "-c"] and main["command"][3:5] == [file_collector.VOLUME, "/logs/test/"]
        assert main["command"][-3:] == ['["accuracy"]', "python", "mnist.py"]
        assert main["volumeMounts"] == [{"name": file_collector.VOLUME, "mountPath": "/logs/test"}]
        assert pod["volumes"] == [{"name": file_collector.VOLUME, "emptyDir": {}}]
        assert sidecar == {"name": "sidecar", "command": ["sleep", "1"]}


def test_the_reader_imports_only_the_standard_library():
    """Its source runs alone in the trial's container, where neither katuna nor TensorFlow is."""
    tree = ast.parse(inspect.getsource(tfevents))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {str(node.module).split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_katib_early_stopping_with_the_tensorflow_event_collector_is_refused_by_its_path():
    experiment = _experiment({"collector": {"kind": "TensorFlowEvent"}})
    experiment["spec"]["earlyStopping"] = {"algorithmName": "medianstop"}
    with pytest.raises(InvalidStudy) as refused:
        load_definition(experiment)
    problems = {p.path: p.message for p in refused.value.problems}
    assert "reads the event files once the trial has ended" in problems["spec.earlyStopping"], problems


def test_a_line_nested_past_pythons_recursion_limit_is_no_record():
    """A trial's log holds whatever it printed beside the wrapper's records: none of it raises."""
    record = {"dir": "", "tag": "accuracy", "step": 1, "value": 0.5}
    assert list(tfevent_lines.records(["[" * 30_000 + "]" * 30_000, json.dumps(record)])) == [record]


@pytest.mark.parametrize("length", [1 << 40, (1 << 64) - 5])
def test_a_record_claiming_more_than_is_left_of_its_file_is_told_as_damaged_without_being_read(
        tmp_path: Path, length: int):
    """A header with a valid checksum over a huge length had ``read(length + 4)`` called: a
    ``MemoryError`` at 2**40, an ``OverflowError`` past 2**63, escaping the reader. The file is
    read up to that record, said damaged (its path and why), and the other files are read."""
    good = writer.write(tmp_path / "a" / "events.out.tfevents.1", [writer.event(0, [("loss", 1.0)])])
    claim = struct.pack("<Q", length)
    crafted = tmp_path / "b" / "events.out.tfevents.2"
    crafted.parent.mkdir()
    crafted.write_bytes(good.read_bytes() + claim + struct.pack("<I", tfevents.masked_crc(claim)) + b"x" * 8)
    damaged: list[tuple[str, str]] = []
    found = list(tfevents.directory_records(str(tmp_path), damaged=lambda path, why: damaged.append((path, why))))
    assert [(Path(str(r["dir"])).name, r["tag"]) for r in found] == [("a", "loss"), ("b", "loss")]
    assert damaged == [(str(crafted), f"a record claims {length:,} bytes, and 4 are left of the file")]


def test_a_record_longer_than_any_scalar_needs_is_passed_over_unread(tmp_path: Path):
    """A header claiming 16 MiB, with those bytes in the file (sparse: a trial's holds them at no
    cost to its disk), had them read at once and checksummed byte by byte in Python: as much
    memory as the record claims, and 0.2 s of CPU a MiB (minutes for a file of a few GiB). The
    record is skipped unread, and the scalars after it are read."""
    head = writer.write(tmp_path / "events.out.tfevents.1", [writer.event(0, [("loss", 1.0)])]).read_bytes()
    claim = struct.pack("<Q", 16 << 20)
    tail = writer.record(writer.event(1, [("loss", 0.5)]))
    crafted = tmp_path / "events.out.tfevents.1"
    with crafted.open("wb") as file:
        file.write(head + claim + struct.pack("<I", tfevents.masked_crc(claim)))
        file.seek((16 << 20) + 4, os.SEEK_CUR)
        file.write(tail)
    tracemalloc.start()
    try:
        found = list(tfevents.directory_records(str(tmp_path)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(r["step"], r["value"]) for r in found] == [(0, "1"), (1, "0.5")]
    assert peak < 8 << 20, f"{peak:,} bytes at the peak"


def test_the_walk_of_an_event_folder_stops_as_soon_as_it_meets_more_files_than_it_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The folders past the limit are never listed (a folder of ``/`` listed the machine's every
    file, 1.3 million here, before the limit was compared), and nothing is read."""
    for folder in range(10):
        for name in range(3):
            (tmp_path / f"d{folder}").mkdir(exist_ok=True)
            (tmp_path / f"d{folder}" / f"f{name}").write_bytes(b"")
    listed: list[str] = []
    walk = os.walk

    def listing(top: str, *args: object, **kwargs: object):
        for root, folders, files in walk(top, *args, **kwargs):
            listed.append(os.path.relpath(root, tmp_path))
            yield root, folders, files

    monkeypatch.setattr(os, "walk", listing)
    with pytest.raises(tfevents.TooManyFiles, match=f"{tmp_path} holds more than 5 files"):
        tfevents.event_files(str(tmp_path), most=5)
    assert listed == [".", "d0", "d1"]
    assert len(tfevents.event_files(str(tmp_path), most=30)) == 30


def test_a_local_trial_whose_event_files_hold_more_than_is_read_fails_naming_the_setting_to_raise(tmp_path: Path):
    """Records of up to 1 MiB were each read and checksummed in Python (about 0.2 s of the
    service's CPU a MiB, 1 s a MiB of scalar events), with no bound on their total: a trial
    writing gigabytes of them held a worker for minutes. Past ``KATUNA_MAX_TFEVENTS`` bytes (here
    lowered to 64 KiB, read from the environment as a command reads it) the read ends, and as the
    scalars read are not the attempt's whole measure (its last ones come later), none counts: the
    trial fails, its reason naming the setting to raise and what else to do."""
    limit = 64 << 10
    padded = writer.record(writer.event(1, [("accuracy", 0.5)]) + writer._field(15, 2, bytes(4000)))
    prepared = tmp_path / "prepared" / "events.out.tfevents.1"
    prepared.parent.mkdir()
    prepared.write_bytes(padded * (limit // len(padded) + 1) + writer.record(writer.event(2, [("accuracy", 0.9)])))
    assert prepared.stat().st_size < 2 * limit
    definition = study_definition(maxTrials=1, parallelism=1, objective={"metric": "accuracy", "direction": "maximize"},
                                  metricsCollector={"kind": "tfevent", "path": "events/${trialSpec.Name}"})
    definition["trialTemplate"]["command"] = [sys.executable, "-c", "import shutil, sys; shutil.copy(*sys.argv[1:3])",
                                              str(prepared), "events/${trialSpec.Name}", "${trialParameters.x}"]
    runner = Embedded(Settings.from_env({"KATUNA_DB": str(tmp_path / "katuna.db"), "KATUNA_MAX_TFEVENTS": str(limit)}))
    try:
        run_study(runner, definition, tmp_path)
        [trial] = runner.store.trials("demo")
    finally:
        runner.close()
    assert trial.state == "FAIL", (trial.state, trial.values)
    assert f"hold more than {limit:,} bytes of records; katuna reads at most {limit:,}" in trial.reason, trial.reason
    assert "(KATUNA_MAX_TFEVENTS), so none of its metrics counts: write scalars less often" in trial.reason
    assert trial.reason.endswith("to another folder than the collector's, or raise KATUNA_MAX_TFEVENTS"), trial.reason


def test_a_local_executor_reads_as_many_bytes_of_event_records_as_it_was_given(tmp_path: Path):
    """``KATUNA_MAX_TFEVENTS`` reaches the read: an executor given the folder's bytes of records
    reads every record, and one given a byte less refuses the folder, naming that many and the
    setting."""
    events = [writer.event(step, [("loss", 1.0)]) for step in range(50)]
    size = writer.write(tmp_path / "events" / "events.out.tfevents.1", events).stat().st_size
    launch = TrialLaunch(study="demo", uid="u", number=0, attempt=1, job_name="demo-0", argv=["true"], env={},
                         working_dir=str(tmp_path), timeout=None)
    for most in (size, size - 1):
        executor = LocalExecutor(tmp_path / "logs", lambda event: None, max_tfevents=most)
        try:
            if most == size:
                assert [json.loads(line)["step"] for line in executor.read_file(launch, "events")] == list(range(50))
            else:
                with pytest.raises(RefusedFile, match=rf"hold more than {most:,} bytes of records; katuna reads at "
                                                      rf"most {most:,} of an attempt's \(KATUNA_MAX_TFEVENTS\)"):
                    list(executor.read_file(launch, "events"))
        finally:
            executor.shutdown()


def test_a_stop_ends_the_read_of_event_records_that_hold_no_scalar(tmp_path: Path):
    """Only a record yielding a scalar asked whether katuna was stopping: a folder of records
    without one (images, histograms) was read to ``KATUNA_MAX_TFEVENTS`` bytes, which may be
    raised to gigabytes, before a stop was seen. Each record read asks first."""
    writer.write(tmp_path / "events" / "events.out.tfevents.1", [writer._field(15, 2, bytes(100))] * 50)
    launch = TrialLaunch(study="demo", uid="u", number=0, attempt=1, job_name="demo-0", argv=["true"], env={},
                         working_dir=str(tmp_path), timeout=None)
    asked: list[int] = []
    assert list(local_outputs.read_file(launch, "events", lambda: bool(asked.append(1)))) == []
    assert len(asked) > 50, "every record asked"
    with pytest.raises(Stopping, match="the read of .*events was given up"):
        list(local_outputs.read_file(launch, "events", lambda: True))


def test_the_bytes_of_event_records_read_are_bounded_across_the_files_of_a_folder(tmp_path: Path):
    """Each header and each record read is counted, over every file of the folder, and a file of
    records of at most 1 MiB ends the read once the budget is spent: no more of it is read."""
    events = [writer.event(step, [("loss", 1.0)]) for step in range(2_000)]
    for name in ("a", "b"):
        writer.write(tmp_path / name / "events.out.tfevents.1", events)
    size = (tmp_path / "a" / "events.out.tfevents.1").stat().st_size
    read: list[dict[str, object]] = []
    with pytest.raises(tfevent_budget.TooMuchToRead, match=f"under {tmp_path} hold more than {size + 1_000:,} bytes"):
        read.extend(tfevents.directory_records(str(tmp_path), take=tfevent_budget.Budget(str(tmp_path), size + 1_000).take))
    assert len(read) < 2_000 + 1_000 // 20, "the second file's reading ended where the budget did"
    assert len(read) > 2_000
    assert len(list(tfevents.directory_records(str(tmp_path), take=tfevent_budget.Budget(str(tmp_path), 2 * size).take))) == 4_000


def test_a_record_of_zeros_ends_its_file_as_no_message_has_a_field_zero(tmp_path: Path):
    """A megabyte of zeros (with its checksum) parsed as half a million fields numbered 0, at 0.7 s
    of CPU a MiB; protocol buffers have no field 0, and the record ends its file's reading as an
    unparseable one does."""
    path = writer.write(tmp_path / "events.out.tfevents.1", [writer.event(0, [("loss", 1.0)])])
    path.write_bytes(path.read_bytes() + writer.record(bytes(64 << 10)) + writer.record(writer.event(1, [("loss", 0.5)])))
    assert [r["step"] for r in tfevents.directory_records(str(tmp_path))] == [0]
    with pytest.raises(ValueError, match="field number 0"):
        list(tfevents.fields(b"\x00\x00"))


FOLLOWED = """
import sys, time
from pathlib import Path
sys.path[:0] = [TESTS]
import tfevent_writer as writer
folder, go = Path(sys.argv[1]), Path(sys.argv[2])
writer.write(folder / "events.out.tfevents.1", [writer.event(step, [("loss", 1.0 / (step + 1))], writer.SIMPLE)
                                                for step in range(3)])
for name in ("go", "done"):
    while not (go / name).exists():
        time.sleep(0.01)
    if name == "go":
        with open(folder / "events.out.tfevents.1", "ab") as events:
            events.write(writer.record(writer.event(3, [("loss", 0.125)], writer.SIMPLE)))
""".replace("TESTS", repr(str(Path(__file__).parent)))
"""Writes three steps' losses, waits for ``go``, then adds a fourth step's to the same file
and waits for ``done``."""


def test_the_wrapper_prints_each_record_as_it_is_written_and_the_end_reads_as_before(tmp_path: Path):
    """While the command runs, the wrapper prints the records written so far behind the running
    mark, each once (where a stop's read of the log finds them); once it ended, the records of
    every file behind the end's mark, which alone give a trial's end its metrics."""
    folder, go = tmp_path / "events", tmp_path
    job = {"spec": {"template": {"spec": {"containers": [{
        "name": "main", "command": [sys.executable, "-c", FOLLOWED, str(folder), str(go)]}]}}}}
    wrapped = file_collector.wrap_events(job, "main", str(folder), ["loss"])
    process = subprocess.Popen(wrapped["spec"]["template"]["spec"]["containers"][0]["command"],
                               stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        running: list[str] = []
        for name, count in (("go", 3), ("done", 4)):
            while len(running) < count:
                running += file_collector.event_lines(process.stdout.readline().decode().split("\r"))
            (go / name).touch()
        rest, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0
    output = rest.decode().split("\r")
    running += file_collector.event_lines(output)
    assert [(r["step"], r["value"]) for r in tfevent_lines.records(running)] == \
        [(0, "1.0"), (1, "0.5"), (2, "0.3333333432674408"), (3, "0.125")], "each record once, as it is written"
    ended = list(file_collector.file_lines(output))
    assert tfevent_lines.metric_lines(ended, ["loss"]) == [json.dumps({"loss": value}) for value in
                                                           ("1.0", "0.5", "0.3333333432674408", "0.125")]


ENDED = """
import sys
from functions.core import tfevents
tfevents.follow(*sys.argv[1:], seconds=3600)
"""
"""The follower as the wrapper runs it, looking again only an hour after its first look: what
it prints once it is ended comes from the look its SIGTERM makes."""


def test_the_follower_looks_once_more_when_it_is_ended(tmp_path: Path):
    """A record written after the follower's last look, then SIGTERM (the wrapper's, once the
    command ended): the follower prints it before it ends, so a stop that reads the log while
    the reader at the end still reads finds every record the command wrote."""
    path = writer.write(tmp_path / "events.out.tfevents.1", [writer.event(0, [("loss", 1.0)], writer.SIMPLE)])
    process = subprocess.Popen([sys.executable, "-c", ENDED, file_collector.EVENT_MARK, str(tmp_path), '["loss"]'],
                               stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        with open(path, "ab") as events:
            events.write(writer.record(writer.event(1, [("loss", 0.5)], writer.SIMPLE)))
        process.terminate()
        rest, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0
    printed = tfevent_lines.records(file_collector.event_lines((first + rest).decode().split("\r")))
    assert [(r["step"], r["value"]) for r in printed] == [(0, "1.0"), (1, "0.5")]


def test_the_follower_opens_again_only_the_files_that_changed_size(tmp_path: Path):
    """Each look reads the files that grew (or shrank) since the one before, and only those: a
    file that is no event file is not read again at every look, one rewritten shorter is read
    from its start, and a record still being written is read once it is whole."""
    events = writer.write(tmp_path / "a" / "events.out.tfevents.1", [writer.event(0, [("loss", 1.0)], writer.SIMPLE)])
    other = tmp_path / "b" / "notes.txt"
    other.parent.mkdir()
    other.write_text("not an event file\n")
    read_to: dict[str, tuple[int, int] | None] = {}
    assert [r["step"] for r in tfevents.new_records(str(tmp_path), read_to)] == [0]
    assert read_to == {str(events): (events.stat().st_size, events.stat().st_size),
                       str(other): (0, other.stat().st_size)}
    whole = writer.record(writer.event(1, [("loss", 0.5)], writer.SIMPLE))
    with open(events, "ab") as handle:
        handle.write(whole[:7])
    assert list(tfevents.new_records(str(tmp_path), read_to)) == []
    with open(events, "ab") as handle:
        handle.write(whole[7:])
    assert [r["step"] for r in tfevents.new_records(str(tmp_path), read_to)] == [1]
    writer.write(events, [writer.event(5, [("loss", 0.25)], writer.SIMPLE)])
    assert [r["step"] for r in tfevents.new_records(str(tmp_path), read_to)] == [5]


def _wrapped_run(folder: Path, command: list[str]) -> bytes:
    """The output of ``command`` run by the TensorFlowEvent collector's wrapper (real ``sh``,
    the real follower and reader) over the event files under ``folder``, the loss's records."""
    job = {"spec": {"template": {"spec": {"containers": [{"name": "main", "command": command}]}}}}
    wrapped = file_collector.wrap_events(job, "main", str(folder), ["loss"])
    return subprocess.run(wrapped["spec"]["template"]["spec"]["containers"][0]["command"], capture_output=True,
                          timeout=60, check=True).stdout


def test_a_command_that_ends_at_once_leaves_the_follower_its_last_look(tmp_path: Path):
    """The command starts once the follower handles SIGTERM (it tells the wrapper so): one that
    ends at once, as the follower's Python starts, cannot kill it before it printed the records
    the event files hold."""
    writer.write(tmp_path / "events.out.tfevents.1", [writer.event(step, [("loss", 1.0 / (step + 1))], writer.SIMPLE)
                                                      for step in range(2)])
    output = _wrapped_run(tmp_path, ["true"]).decode().split("\r")
    assert [(r["step"], r["value"]) for r in tfevent_lines.records(file_collector.event_lines(output))] == \
        [(0, "1.0"), (1, "0.5")]


def test_a_trials_end_whose_reader_was_killed_while_it_printed_reads_the_followers_records(tmp_path: Path):
    """A container killed while the reader at the end printed its records (its grace period
    over) leaves a part of them in the log, without the line that closes them: the trial's end
    reads the follower's records, every one, and not that part. With that line, the end's."""
    writer.write(tmp_path / "events.out.tfevents.1", [writer.event(step, [("loss", 1.0 / (step + 1))], writer.SIMPLE)
                                                      for step in range(4)])
    log = _wrapped_run(tmp_path, ["true"])

    def ended(read: bytes) -> list[str]:
        return tfevent_lines.metric_lines(file_collector.final_lines(lambda: bounded_lines([read])), ["loss"])

    every = [json.dumps({"loss": value}) for value in ("1.0", "0.5", "0.3333333432674408", "0.25")]
    assert ended(log) == every
    start, last = (find(f"\r{file_collector.MARK}".encode()) for find in (log.index, log.rindex))
    cuts = [at for at in range(start, log.index(b"\n", last) + 1) if log[at:at + 1] in b"\r}"]
    assert len(cuts) == 8, "each of the end's four records cut before and within"
    assert [ended(log[:at]) for at in cuts] == [every] * len(cuts)
