"""How a Katib Experiment's Trials and its end read to a Katib user: each Trial condition with
the message Katib's controller writes for it, katuna's reason on the condition that ends the
trial; a failed Experiment's reason naming the ``maxFailedTrialCount`` its user wrote."""

from __future__ import annotations

from conftest import stored_cap, study_definition

from functions.core import resource_status
from functions.core.katib_trials import failure_limit, trial_status
from functions.core.records import (
    COMPLETE,
    FAIL,
    PRUNED,
    STOPPED_AT_END,
    Counts,
    StudyRecord,
    TrialRecord,
    Unreported,
)
from functions.core.resources import KATIB_API_VERSIONS, Origin, Ref
from functions.core.stop import decide
from functions.core.validate import parse_study

SPEC = parse_study(study_definition(maxTrials=4))


def messages(trial: TrialRecord) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["reason"], c["message"]) for c in trial_status(trial, SPEC)["conditions"]}


def ended(state: str, reason: str = "", unreported: Unreported | None = None) -> TrialRecord:
    return TrialRecord("demo", 3, {"x": 1.0}, state, reason=reason, created_at=1.0, started_at=2.0, finished_at=9.0,
                       unreported=unreported)


NOPE = Unreported(("nope",))
"""The mark beside the verdict of a trial that never reported its objective ``nope``."""


def test_each_trial_condition_has_katibs_message_and_the_end_katunas_reason():
    unavailable = messages(ended(FAIL, "metrics unavailable: objective 'nope' never reported", NOPE))
    assert unavailable["Created"] == ("TrialCreated", "Trial is created")
    assert unavailable["Running"] == ("TrialRunning", "Trial is running")
    assert unavailable["MetricsUnavailable"] == ("MetricsUnavailable", "Metrics are not available: metrics "
                                                                       "unavailable: objective 'nope' never reported")
    assert "Failed" not in unavailable
    failed = messages(ended(FAIL, "exited with code 1; last lines:\nboom"))
    assert failed["Failed"] == ("TrialFailed", "Trial has failed: exited with code 1; last lines:\nboom")
    assert messages(ended(COMPLETE))["Succeeded"] == ("TrialSucceeded", "Trial has succeeded")
    assert messages(ended(COMPLETE))["Created"] == ("TrialCreated", "Trial is created")
    pruned = messages(ended(PRUNED, "pruned at step 3: below the median"))
    assert pruned["EarlyStopped"] == ("TrialEarlyStopped", "Trial is early stopped: pruned at step 3: below the median")
    killed = messages(ended(PRUNED, STOPPED_AT_END))
    assert killed["Killed"][0] == "TrialKilled" and killed["Killed"][1].startswith("Trial is killed: stopped: ")
    running = TrialRecord("demo", 4, {"x": 1.0}, "RUNNING", created_at=1.0, started_at=2.0)
    assert messages(running) == {"Created": ("TrialCreated", "Trial is created"),
                                 "Running": ("TrialRunning", "Trial is running")}


def test_every_end_turns_running_false_with_its_words_and_comes_last():
    """Katib's trial controller turns ``Running`` False, keeping its reason and message, and
    puts the end after it (the last condition, which ``kubectl get trials`` shows); katuna does
    so at every end, an early stop's too (where Katib's median-stop service leaves it True)."""
    for trial in (ended(COMPLETE), ended(FAIL, "exit 1"), ended(FAIL, "metrics unavailable: objective 'nope'", NOPE),
                  ended(PRUNED, "pruned at step 3"), ended(PRUNED, STOPPED_AT_END)):
        conditions = trial_status(trial, SPEC)["conditions"]
        running = {c["type"]: c for c in conditions}["Running"]
        assert [c["type"] for c in conditions][:2] == ["Created", "Running"], conditions
        assert (running["status"], running["reason"], running["message"]) == ("False", "TrialRunning",
                                                                               "Trial is running"), trial.reason
        assert running["lastTransitionTime"] == "1970-01-01T00:00:09Z" == conditions[-1]["lastTransitionTime"]
        assert conditions[-1]["status"] == "True" and len(conditions) == 3, conditions


def test_a_trials_start_time_is_set_when_it_is_made_and_never_moves():
    """Katib's trial controller sets a Trial's ``startTime`` once, when it first reconciles the
    new Trial (with its ``Created`` condition), and never again: a pending Trial's stays put
    when its Job starts and when it ends, and ``completionTime`` is its end."""
    made = "1970-01-01T00:00:01Z"
    waiting = TrialRecord("demo", 3, {"x": 1.0}, "WAITING", created_at=1.0)
    running = TrialRecord("demo", 3, {"x": 1.0}, "RUNNING", created_at=1.0, started_at=30.0)
    for trial in (waiting, running, ended(COMPLETE), ended(FAIL, "exit 1"), ended(PRUNED, STOPPED_AT_END)):
        status = trial_status(trial, SPEC)
        assert status["startTime"] == made == status["conditions"][0]["lastTransitionTime"], trial.state
    assert trial_status(ended(COMPLETE), SPEC)["completionTime"] == "1970-01-01T00:00:09Z"
    assert "completionTime" not in trial_status(running, SPEC)


def test_an_experiments_start_time_is_when_it_was_taken_and_never_moves():
    """Katib's experiment controller sets ``startTime`` once, when it first sees the Experiment,
    and keeps it through its run and a restart."""
    definition = study_definition(maxTrials=4)
    origin = Origin(Ref("Experiment", "team", "demo", KATIB_API_VERSIONS[0]), "uid-1", 1)
    for started, restarted in ((None, None), (40.0, None), (40.0, 90.0)):
        record = StudyRecord(SPEC, definition, ".", "uid-1", created_at=10.0, started_at=started,
                             restarts=int(restarted is not None), restarted_at=restarted)
        status = resource_status.study_status(record, Counts(), [], origin)
        assert status["startTime"] == "1970-01-01T00:00:10Z" == status["conditions"][0]["lastTransitionTime"]


def experiment(max_failed: int) -> dict:
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "demo"},
            "spec": {"maxTrialCount": 10, "maxFailedTrialCount": max_failed}}


def test_a_failed_experiment_names_the_max_failed_trial_count_its_user_wrote():
    assert failure_limit(experiment(2)) == "maxFailedTrialCount (2)"
    assert failure_limit(study_definition(maxFailedTrials=2)) is None
    study = parse_study(study_definition(maxTrials=10, maxFailedTrials=1))
    decision = decide(study, Counts(failed=2), None, 0, cap=stored_cap(study), failed_limit="maxFailedTrialCount (2)")
    assert decision.reason == "too many failed trials: 2 failed, maxFailedTrialCount (2) reached"
    native = decide(study, Counts(failed=2), None, 0, cap=stored_cap(study))
    assert native.reason == "too many failed trials: 2 failed, at most 1 allowed"
