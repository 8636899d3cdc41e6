"""Studies end to end on the embedded default: real subprocess trials, a real SQLite file."""

from __future__ import annotations

import math
import re
import resource
import signal
import sys
import threading
from pathlib import Path

import pytest
from conftest import run_study, study_definition
from proc_stat import alive

from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import study_completed
from functions.core.pareto import FRONT_SHOWN, best_trials
from functions.core.records import StudyRecord
from functions.core.validate import parse_study
from functions.core.views import study_view
from functions.embedded import Embedded
from functions.interrupts import Interrupted
from functions.settings import Settings


def test_a_study_runs_to_max_trials_and_finds_its_best(embedded, tmp_path: Path):
    definition = study_definition(maxTrials=6)
    record = run_study(embedded, definition, tmp_path)

    assert record.status == "completed"
    assert record.reason == "max trials reached (6)"
    trials = embedded.store.trials("demo")
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state == "COMPLETE" for t in trials)
    for trial in trials:
        expected = (trial.params["x"] - 2) ** 2
        assert math.isclose(trial.values[0], expected, abs_tol=1e-5)
        assert trial.metrics["loss"] == trial.values[0]
    best = embedded.store.best_trials("demo", 1)[0]
    assert best.values[0] == min(t.values[0] for t in trials)
    observations = embedded.store.observations("demo", 0)
    assert [o.step for o in observations] == [1, 2, 3, None]


def test_the_sampler_hears_every_result(embedded, tmp_path: Path):
    run_study(embedded, study_definition(maxTrials=5), tmp_path)
    import optuna

    study = optuna.load_study(study_name="demo", storage=embedded.store.optuna_storage())
    values = {t.number: t.value for t in study.trials}
    assert values == {t.number: t.values[0] for t in embedded.store.trials("demo")}
    creations = embedded.store.db.execute(
        "SELECT count(*) FROM optuna_journal WHERE json_extract(body, '$.op_code') = 0").fetchone()[0]
    assert creations == 1, "the journal records the study's creation once, not once per event"


def test_a_closed_runner_keeps_none_of_the_threads_that_waited_for_its_trials(tmp_path: Path):
    """Each thread that waited for a trial's end ends once its runner is closed: a process that
    runs one study after another (a test process, a program driving katuna) gathered idle
    threads forever, a few per study."""
    earlier = set(threading.enumerate())
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    try:
        run_study(runner, study_definition(maxTrials=4), tmp_path)
        waited = [t for t in threading.enumerate() if t.name == "katuna-trial" and t not in earlier]
        assert waited, "the trials' ends were waited for on threads of their own"
    finally:
        runner.close()
    for thread in waited:
        thread.join(timeout=60)
    assert [t for t in waited if t.is_alive()] == []


def test_a_runs_thread_is_woken_by_a_trials_end_only_once_none_of_its_trials_runs(embedded, tmp_path: Path):
    """Each trial's end is handled on its own thread; the run's thread, which only looks whether
    the study is over, is woken for the ends after which no trial of the study runs, not for
    every end (the prepared trial already runs in the freed slot)."""
    wakes: list[int] = []
    events = embedded.broker.events
    woken = events.wake

    def wake() -> None:
        wakes.append(embedded.executor.running("demo"))
        woken()

    events.wake = wake
    record = run_study(embedded, study_definition(maxTrials=8, parallelism=2), tmp_path)
    assert record.status == "completed" and embedded.store.count_trials("demo").complete == 8
    # the last end may come while another thread handles, and is queued, waking the run as any event does
    assert set(wakes) <= {0}, "woken only once no trial of the study ran"


@pytest.mark.slow
def test_a_time_budget_ends_the_study_and_kills_its_trials(embedded, tmp_path: Path):
    definition = study_definition(mode="hang", timeBudget=1.5, maxTrials=10)
    definition["trialTemplate"]["env"] = {"PID_DIR": str(tmp_path)}
    record = run_study(embedded, definition, tmp_path)
    assert record.status == "failed"
    assert record.reason == "time budget of 1.5s used; no trial succeeded"
    trials = embedded.store.trials("demo")
    assert [t.number for t in trials if t.started_at is not None] == [0, 1]
    assert {t.state for t in trials} == {"PRUNED"}, "the trial prepared ahead of a free slot ends too"
    for pid_file in tmp_path.glob("*.pid"):
        assert not alive(int(pid_file.read_text()))


def test_a_crashing_trial_fails_with_its_exit_code_and_last_lines(embedded, tmp_path: Path):
    record = run_study(embedded, study_definition(mode="crash", maxTrials=2), tmp_path)
    trial = embedded.store.trials("demo")[0]
    assert trial.state == "FAIL"
    assert trial.exit_code == 3
    assert "exited with code 3" in trial.reason and "about to fail" in trial.reason
    assert record.status == "failed"
    assert "no trial succeeded" in record.reason


def test_a_trial_without_its_objective_is_metrics_unavailable(embedded, tmp_path: Path):
    run_study(embedded, study_definition(mode="silent", maxTrials=1, parallelism=1), tmp_path)
    trial = embedded.store.trials("demo")[0]
    assert trial.state == "FAIL"
    assert trial.reason.startswith("metrics unavailable: objective 'loss' never reported")
    assert "Validation-loss=0.5" in trial.reason


def test_a_nan_objective_fails_the_trial(embedded, tmp_path: Path):
    definition = study_definition(mode="nan", maxTrials=1, parallelism=1,
                                  metricsCollector={"format": "json"})
    run_study(embedded, definition, tmp_path)
    trial = embedded.store.trials("demo")[0]
    assert trial.state == "FAIL"
    assert "not a finite number: loss=nan" in trial.reason


@pytest.mark.parametrize("collector", [{}, {"format": "json"}])
def test_steps_and_numbers_too_large_to_hold_leave_the_trial_and_the_study_as_they_were(
        embedded, tmp_path: Path, collector: dict):
    """``step=1e30``, ``epoch=-1`` and a JSON integer beyond a float mark no step and read as an
    infinity: the trials complete and the study with them, instead of the collection failing
    until the study does; the output is read for early stopping as it is printed, too."""
    definition = study_definition(mode="huge", maxTrials=2, parallelism=2, metricsCollector=collector,
                                  earlyStopping={"algorithm": "median"},
                                  objective={"metric": "loss", "direction": "minimize", "additionalMetrics": ["samples"]})
    record = run_study(embedded, definition, tmp_path)
    assert (record.status, record.reason) == ("completed", "max trials reached (2)")
    for trial in embedded.store.trials("demo"):
        assert trial.state == "COMPLETE", trial.reason
        assert trial.values == [pytest.approx((trial.params["x"] - 2) ** 2, abs=1e-6)]
        assert trial.metrics.get("samples") == (math.inf if collector else None)
        assert {o.step for o in embedded.store.observations("demo", trial.number)} == {None}


REPORTS = Path(__file__).parent / "trials" / "reports.py"


@pytest.mark.parametrize(("how", "collector"), [
    ("text", {}), ("json", {"format": "json"}), ("file", {"kind": "file", "path": "m-${trialSpec.Name}.txt"}),
    ("tfevent", {"kind": "tfevent", "path": "ev/${trialSpec.Name}"})])
def test_an_objective_reported_as_nan_or_infinity_fails_the_trial_with_every_collector(
        embedded, tmp_path: Path, how: str, collector: dict):
    """``loss=nan`` is a report, not silence, and a finite value after an infinity does not hide
    it (``min`` would pick 0.2); the finite run completes."""
    where = {"file": "m-${trialSpec.Name}.txt", "tfevent": "ev/${trialSpec.Name}"}.get(how)
    definition = study_definition(
        parameters=[{"name": "reports", "type": "categorical", "values": ["nan", "inf,0.2", "-inf,0.3", "0.5,0.25"]}],
        algorithm={"name": "grid"}, maxTrials=4, parallelism=2, metricsCollector=collector)
    definition["trialTemplate"]["command"] = [sys.executable, str(REPORTS), "--how", how,
                                              "--values=${trialParameters.reports}"] + (["--path", where] if where else [])
    run_study(embedded, definition, tmp_path)
    trials = {t.params["reports"]: t for t in embedded.store.trials("demo")}
    assert (trials["0.5,0.25"].state, trials["0.5,0.25"].values) == ("COMPLETE", [0.25])
    for reports, shown in (("nan", "loss=nan"), ("inf,0.2", "loss=inf"), ("-inf,0.3", "loss=-inf")):
        assert trials[reports].state == "FAIL", (reports, trials[reports].reason)
        assert trials[reports].reason.startswith(f"objective is not a finite number: {shown} was reported"), \
            trials[reports].reason


def test_a_trial_past_its_timeout_is_killed_with_its_process_group(embedded, tmp_path: Path):
    definition = study_definition(mode="hang", maxTrials=1, parallelism=1)
    definition["trialTemplate"]["timeout"] = 1
    definition["trialTemplate"]["env"] = {"PID_DIR": str(tmp_path)}
    run_study(embedded, definition, tmp_path)
    trial = embedded.store.trials("demo")[0]
    assert trial.state == "FAIL"
    assert trial.reason.startswith("timed out: ran past its timeout of 1s (trialTemplate.timeout sets it: raise it "
                                   "for a trial that needs longer)"), trial.reason
    pid = int((tmp_path / "0.1.pid").read_text())
    assert not alive(pid)


def test_a_missing_command_fails_the_trial_and_the_study_goes_on(embedded, tmp_path: Path):
    definition = study_definition(maxTrials=3, parallelism=1, maxFailedTrials=5)
    definition["trialTemplate"]["command"] = ["no-such-program-katuna", "${trialParameters.x}"]
    record = run_study(embedded, definition, tmp_path)
    trials = embedded.store.trials("demo")
    assert len(trials) == 3
    assert all(t.state == "FAIL" for t in trials)
    assert trials[0].reason == ('could not start: program "no-such-program-katuna" cannot be run: No such file or '
                                "directory"), "the cause alone: the executor's message would only repeat it"
    assert record.status == "failed"


def test_too_many_failures_fail_the_study(embedded, tmp_path: Path):
    record = run_study(embedded, study_definition(mode="crash", maxTrials=10, maxFailedTrials=1), tmp_path)
    assert record.status == "failed"
    assert record.reason.startswith("too many failed trials: 2 failed, at most 1 allowed; the latest, trial ")
    assert ": exited with code " in record.reason and "\n" not in record.reason
    assert len(embedded.store.trials("demo")) < 10


def test_reaching_the_goal_completes_the_study_and_stops_running_trials(embedded, tmp_path: Path):
    definition = study_definition(maxTrials=40, parallelism=2)
    definition["objective"]["goal"] = 4.0
    record = run_study(embedded, definition, tmp_path)
    assert record.status == "completed"
    assert record.reason.startswith("goal reached by trial")
    number = int(record.reason.split("trial ")[1].split(":")[0])
    assert embedded.store.get_trial("demo", number).values[0] <= 4.0
    assert all(t.state in ("COMPLETE", "PRUNED") for t in embedded.store.trials("demo"))


def test_a_preempted_attempt_is_retried_not_failed(embedded, tmp_path: Path):
    record = run_study(embedded, study_definition(mode="preempt-once", maxTrials=2), tmp_path)
    assert record.status == "completed"
    for trial in embedded.store.trials("demo"):
        assert trial.state == "COMPLETE"
        assert trial.attempt == 2
        assert re.fullmatch(r"attempt 1 preempted: killed by SIGKILL from outside katuna \(another process, or "
                            r"the kernel's out-of-memory killer\); peak memory at most \d+\.\d MiB", trial.reason), \
            "a peak within what katuna held as it started the trial only bounds the trial's"
        assert trial.peak_memory is None
    logs = embedded.settings.logs / record.log_folder
    assert (logs / "0.1.log").exists() and (logs / "0.2.log").exists()


def test_an_explicit_stop_kills_running_trials_and_keeps_them_pruned(embedded, tmp_path: Path):
    definition = study_definition(mode="hang", maxTrials=4)
    definition["trialTemplate"]["env"] = {"PID_DIR": str(tmp_path)}
    from functions.core.validate import parse_study

    embedded.submit(parse_study(definition), definition, tmp_path)
    ticks = []

    def stop_once_running() -> None:
        ticks.append(1)
        if len(list(tmp_path.glob("*.pid"))) == 2 and not embedded.store.get_study("demo").terminal:
            record = embedded.store.get_study("demo")
            embedded.broker.publish(study_completed("demo", record.uid, "stopped", "stopped by user"))

    record = embedded.run("demo", on_tick=stop_once_running)
    assert record.status == "stopped"
    trials = embedded.store.trials("demo")
    assert [(t.number, t.state) for t in trials] == [(0, "PRUNED"), (1, "PRUNED")], \
        "the trial prepared ahead of a free slot never ran: it is no trial of the study"
    assert "stopped by user" in trials[0].reason
    for pid_file in tmp_path.glob("*.pid"):
        assert not alive(int(pid_file.read_text()))


def test_the_grid_algorithm_ends_when_the_grid_is_exhausted(embedded, tmp_path: Path):
    definition = study_definition(
        maxTrials=50,
        algorithm={"name": "grid"},
        parameters=[{"name": "x", "type": "float", "min": 0.0, "max": 2.0, "step": 0.5}],
    )
    record = run_study(embedded, definition, tmp_path)
    assert record.status == "completed"
    assert record.reason == "search space exhausted after 5 trials"
    assert sorted(t.params["x"] for t in embedded.store.trials("demo")) == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_a_file_collector_reads_a_per_trial_file(embedded, tmp_path: Path):
    definition = study_definition(maxTrials=2)
    definition["trialTemplate"]["command"] = [
        "sh", "-c", 'echo "loss=$1" > "metrics-$2.txt"', "trial", "${trialParameters.x}", "${trialSpec.Name}",
    ]
    definition["metricsCollector"] = {"kind": "file", "path": "metrics-${trialSpec.Name}.txt"}
    run_study(embedded, definition, tmp_path)
    for trial in embedded.store.trials("demo"):
        assert trial.state == "COMPLETE"
        assert math.isclose(trial.values[0], trial.params["x"])
    assert (tmp_path / "metrics-demo-0.txt").exists()


def test_a_file_collectors_folder_is_made_for_a_local_trial_as_katibs_volume_is_mounted_there(
        embedded, tmp_path: Path):
    """Katib mounts an empty volume at the metrics file's folder; a Katib trial writes its file
    there without making the folder, so a local trial finds it made (``/katib/mnist.log`` in
    Katib's examples; an absolute folder under the test's own here)."""
    folder = tmp_path / "katib" / "run"
    # one trial at a time: the two share the file, as trials sharing a path on one machine do
    definition = study_definition(maxTrials=2, parallelism=1)
    definition["trialTemplate"]["command"] = ["sh", "-c", f'echo "loss=$1" > {folder}/metrics.log', "trial",
                                              "${trialParameters.x}"]
    definition["metricsCollector"] = {"kind": "file", "path": str(folder / "metrics.log")}
    run_study(embedded, definition, tmp_path)
    assert [t.state for t in embedded.store.trials("demo")] == ["COMPLETE", "COMPLETE"]
    assert folder.is_dir()


@pytest.mark.parametrize("writes", ["appends", "writes anew"])
def test_a_trial_sharing_a_metrics_file_with_earlier_ones_is_read_for_its_own_lines_alone(
        embedded, tmp_path: Path, writes: str):
    """Katib's examples write one fixed file (``/katib/mnist.log``), which Katib mounts empty in
    each pod; on one machine every trial writes the same file, and earlier studies' lines stay
    in it. Each attempt's metrics are what it wrote: what it appended, or the whole file it wrote
    anew (here with a first line as long as the file it replaced)."""
    metrics = tmp_path / "katib" / "metrics.log"
    metrics.parent.mkdir()
    metrics.write_text("loss=-99\n" * 3)
    redirect = ">>" if writes == "appends" else ">"
    definition = study_definition(maxTrials=3, parallelism=1)
    definition["trialTemplate"]["command"] = [
        "sh", "-c", f'printf "loss=%s\\n" "$1" {redirect} {metrics}; printf "note=%027d\\n" 0 >> {metrics}',
        "trial", "${trialParameters.x}"]
    definition["metricsCollector"] = {"kind": "file", "path": str(metrics)}
    run_study(embedded, definition, tmp_path)
    trials = embedded.store.trials("demo")
    assert [t.state for t in trials] == ["COMPLETE"] * 3
    assert all(math.isclose(t.values[0], t.params["x"], rel_tol=1e-9) for t in trials), [
        (t.params, t.values) for t in trials]


def test_a_trial_writing_an_event_folder_other_trials_wrote_is_read_for_its_own_event_files_alone(
        embedded, tmp_path: Path):
    folder = tmp_path / "events"
    write = (f"import sys, pathlib; sys.path.insert(0, {str(Path(__file__).parent)!r}); import tfevent_writer as w; "
             f"w.write(pathlib.Path({str(folder)!r}) / sys.argv[2] / 'events.out.tfevents.1', "
             "[w.event(0, [('loss', float(sys.argv[1]))])])")
    definition = study_definition(maxTrials=3, parallelism=1)
    definition["trialTemplate"]["command"] = [sys.executable, "-c", write, "${trialParameters.x}", "${trialSpec.Name}"]
    definition["metricsCollector"] = {"kind": "tfevent", "path": str(folder)}
    run_study(embedded, definition, tmp_path)
    trials = embedded.store.trials("demo")
    assert all(math.isclose(t.values[0], t.params["x"], rel_tol=1e-6) for t in trials), [
        (t.params, t.values) for t in trials]


def test_multi_objective_study_keeps_both_values(embedded, tmp_path: Path):
    definition = study_definition(maxTrials=6, algorithm={"name": "nsga2", "seed": 3})
    definition["objective"] = {"metrics": [{"name": "loss", "direction": "minimize"},
                                           {"name": "size", "direction": "minimize"}]}
    run_study(embedded, definition, tmp_path)
    for trial in embedded.store.trials("demo"):
        assert len(trial.values) == 2
        assert math.isclose(trial.values[1], abs(trial.params["x"]), abs_tol=1e-5)


def test_a_studys_view_lists_a_sample_of_a_large_pareto_front_with_its_size(embedded, tmp_path: Path):
    """``GET /studies``, ``katuna studies`` and the dashboard's list show at most FRONT_SHOWN
    trials of a front, spread along it (both ends), and the size of the whole front; shown
    again while no trial changed, the front is not computed again."""
    definition = study_definition(maxTrials=25, parallelism=5, parameters=[
        {"name": "x", "type": "float", "min": 0.0, "max": 2.0}])
    definition["objective"] = {"metrics": [{"name": "loss", "direction": "minimize"},
                                           {"name": "size", "direction": "minimize"}]}
    record = run_study(embedded, definition, tmp_path)
    front = best_trials(embedded.store, record)
    whole = [t.number for t in front]
    assert len(whole) == 25 > FRONT_SHOWN, "every trial trades loss for size"
    along = [t.number for t in sorted(front, key=lambda t: (t.values, t.number))]
    view = study_view(embedded.store, record)
    shown = [t["number"] for t in view["best"]]
    assert view["frontSize"] == 25 and len(shown) == FRONT_SHOWN
    assert {along[0], along[-1]} <= set(shown) < set(whole), "both ends of the trade-off"
    assert whole == sorted(whole) and shown == sorted(shown), "by number, as every view lists a front"

    statements: list[str] = []
    embedded.store.db.conn.set_trace_callback(statements.append)
    try:
        assert study_view(embedded.store, record)["best"] == view["best"]
    finally:
        embedded.store.db.conn.set_trace_callback(None)
    assert statements and not [s for s in statements if "trial_values" in s], \
        "shown again unchanged, the front is not computed again from every completed trial"


def test_a_submission_interrupted_before_it_commits_stores_nothing(embedded, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    """Ctrl-C while a study is being stored (:class:`Interrupted`, which no ``except Exception``
    catches) rolls its transaction back whole: the study is not kept."""
    definition = study_definition(maxTrials=1, parallelism=1)
    add_study = embedded.store.add_study

    def interrupted(record: StudyRecord) -> StudyRecord:
        add_study(record)
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(embedded.store, "add_study", interrupted)
    with pytest.raises(Interrupted):
        embedded.submit(parse_study(definition), definition, tmp_path)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        assert store.list_studies() == []
    finally:
        store.close()


MiB = 1024**2
KILLED = re.escape("killed by SIGKILL from outside katuna (another process, or the kernel's out-of-memory "
                   "killer); ") + r"peak memory (\d+\.\d) MiB"
"""How the reason of a trial killed by SIGKILL begins, with the peak memory it measured."""


def beyond_own_peak() -> int:
    """Bytes a trial allocates to hold more than this process ever held: a process this one
    starts counts its memory until it runs its program, so no smaller peak is the trial's own."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 + 200 * MiB


def allocating(size: int, then: str) -> str:
    """Python that holds ``size`` bytes, prints a line, then does ``then``."""
    return f"data = b'x' * {size}; print('allocated the last layer', flush=True); {then}"


def sigkilled(size: int) -> str:
    """A trial killed by SIGKILL, as the kernel's out-of-memory killer ends one, after holding
    ``size`` bytes and printing a line."""
    return allocating(size, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")


def assert_peak(peak: int | None, said: str, size: int) -> None:
    """The measured peak is the trial's ``size`` bytes and the interpreter's few megabytes, and
    its reason says it (in MiB, to a tenth)."""
    assert peak is not None and size < peak < size + 100 * MiB, (peak, size)
    assert float(said) == pytest.approx(peak / MiB, abs=0.05)


def test_a_trial_that_fails_after_allocating_says_its_peak_memory(embedded, tmp_path: Path):
    size = beyond_own_peak()
    definition = study_definition(maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {"command": [sys.executable, "-c", allocating(size, "raise SystemExit(3)"),
                                               "${trialParameters.x}"]}
    run_study(embedded, definition, tmp_path)
    trial = embedded.store.get_trial("demo", 0)
    said = re.fullmatch(r"exited with code 3 \(peak memory (\d+\.\d) MiB\); last lines:\nallocated the last layer",
                        trial.reason)
    assert said is not None, trial.reason
    assert_peak(trial.peak_memory, said[1], size)


def test_a_trial_killed_by_sigkill_says_the_out_of_memory_killer_may_have_its_peak_memory_and_last_lines(
        embedded, tmp_path: Path):
    size = beyond_own_peak()
    definition = study_definition(maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {"command": [sys.executable, "-c", sigkilled(size), "${trialParameters.x}"],
                                   "maxAttempts": 1}
    record = run_study(embedded, definition, tmp_path)
    trial = embedded.store.get_trial("demo", 0)
    assert (trial.state, trial.exit_code) == ("FAIL", -9)
    said = re.fullmatch(f"preempted in all 1 attempts: {KILLED}; last lines:\nallocated the last layer", trial.reason)
    assert said is not None, trial.reason
    assert_peak(trial.peak_memory, said[1], size)
    assert re.fullmatch(r"max trials reached \(1\); no trial succeeded; the latest, trial 0: preempted in all 1 "
                        f"attempts: {KILLED}", record.reason), "the study says why its trials failed"


def test_a_status_of_128_and_a_signal_from_a_shell_names_the_signal_and_the_peak_of_what_it_waited_for(
        embedded, tmp_path: Path):
    size = beyond_own_peak()
    definition = study_definition(maxTrials=1, parallelism=1)
    definition["trialTemplate"] = {"command": ["sh", "-c", f"{sys.executable} -c \"{sigkilled(size)}\"; exit 137",
                                   "${trialParameters.x}"]}
    run_study(embedded, definition, tmp_path)
    trial = embedded.store.get_trial("demo", 0)
    assert (trial.state, trial.exit_code, trial.attempt) == ("FAIL", 137, 1)
    first, output = trial.reason.splitlines()[:2]
    said = re.fullmatch(r"exited with code 137 \(128\+9: a process under the shell was killed by SIGKILL; "
                        r"peak memory (\d+\.\d) MiB\); last lines:", first)
    assert said is not None, first
    assert_peak(trial.peak_memory, said[1], size)
    assert output == "allocated the last layer", "the shell may add a line of its own (Killed)"


RISING = """
import time
print("step=1 loss=1", flush=True)
print("step=2 loss=9", flush=True)
time.sleep(60)
"""
"""A trial whose loss rises past the threshold at its second step, then waits to be stopped."""


@pytest.mark.timeout(120)
def test_a_pruned_trials_reason_says_what_its_shown_metric_is_where_it_is_not_the_value_judged(
        embedded, tmp_path: Path):
    """The trial is judged at step 2 (loss=9) and its metrics hold the min of what it printed
    (loss=1), as Katib's collector reduces a stopped trial's: the table's loss column and the
    reason's value differed without a word, so the reason says which its metric is."""
    definition = study_definition(maxTrials=1, parallelism=1,
                                  earlyStopping={"algorithm": "threshold", "settings": {"upper": 5.0}})
    definition["trialTemplate"]["command"] = [sys.executable, "-c", RISING, "${trialParameters.x}"]
    run_study(embedded, definition, tmp_path)
    trial = embedded.store.trials("demo")[0]
    assert (trial.state, trial.metrics) == ("PRUNED", {"loss": 1.0}), trial.reason
    assert trial.reason == ("pruned at step 2 by the threshold rule (loss=9); loss=1 is the min of the 2 reports "
                            "it printed before it stopped")
