"""The ``Store`` port's contract, run against every store.

:class:`StoreContract` states what any store does, through the port alone; each implementation
gets a subclass that provides a ``store`` fixture and :meth:`StoreContract.open_again` (another
store on the same data: another connection, or the store after a restart). A new store (a
server database, say) comes with its tests ready: subclass the contract. What is particular to
one store (the SQLite schema's migrations, the journal's snapshots) is tested in its own module,
and Optuna's storage test suite runs against katuna's Optuna storage in
tests/test_conformance_optuna_storage.py.
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from conftest import study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.core.disruptions import Disruption, LostPods
from functions.core.errors import StudyConflict, StudyNotFound
from functions.core.events import study_created
from functions.core.log_cursor import Cursor
from functions.core.log_keep import Kept, LogRead
from functions.core.metric_summary import Summary
from functions.core.metrics import Observation
from functions.core.pareto import best_trials, front_sample
from functions.core.pareto_search import pareto_front
from functions.core.pool_use import READY, RELEASED, PoolUse
from functions.core.records import StudyRecord, TrialRecord, Unreported
from functions.core.store_port import Store
from functions.core.study_brief import brief_of
from functions.core.trial_query import TrialQuery
from functions.core.validate import parse_study

MARK = Unreported(("loss",), ("los", "acc"), "objective.metric", "loss", "metricsCollector.filters")
"""The mark beside the verdict of a trial that never reported its objective, every part given."""


def record(**overrides) -> StudyRecord:
    definition = study_definition(**overrides)
    return StudyRecord(parse_study(definition), definition, "/tmp", f"uid-{definition['name']}", created_at=1.0)


def by_state(store: Store, study: str) -> dict[str, int]:
    """The study's counts as the store keeps them, by state name, states with none left out."""
    c = store.count_trials(study)
    counts = {"WAITING": c.waiting, "RUNNING": c.running, "COMPLETE": c.complete, "FAIL": c.failed, "PRUNED": c.pruned}
    return {state: n for state, n in counts.items() if n}


def listed_by_state(store: Store, study: str) -> dict[str, int]:
    """The study's counts as its listed trials give them."""
    counts: dict[str, int] = {}
    for trial in store.trials(study):
        counts[trial.state] = counts.get(trial.state, 0) + 1
    return counts


def _random_write(store: Store, rng: random.Random, step: int, objectives: int = 3) -> None:
    """One write of a random history of study ``demo`` of ``objectives`` objectives: a trial
    added (in any state), completed, re-marked failed or pruned, given other values, or
    discarded (one that never started)."""
    trials = store.trials("demo")
    values = [float(rng.randint(0, 2)) for _ in range(objectives)]
    kind = rng.choice(["add", "add", "complete", "remark", "rewrite", "discard"])
    completed = [t.number for t in trials if t.state == "COMPLETE"]
    waiting = [t.number for t in trials if t.state in ("WAITING", "RUNNING")]
    if kind == "complete" and waiting:
        store.update_trial("demo", rng.choice(waiting), state="COMPLETE", values=values)
    elif kind == "remark" and completed:
        store.update_trial("demo", rng.choice(completed), state=rng.choice(["FAIL", "PRUNED"]))
    elif kind == "rewrite" and completed:
        store.update_trial("demo", rng.choice(completed), values=values)
    elif kind == "discard" and waiting:
        store.discard_trial("demo", rng.choice(waiting))
    else:
        number = max((t.number for t in trials), default=-1) + 1
        state = rng.choice(["COMPLETE", "COMPLETE", "WAITING", "RUNNING", "FAIL"])
        store.add_trial(TrialRecord("demo", number, {"x": step}, state, values=values if state == "COMPLETE" else None))


def completed_values(store: Store) -> list[tuple[int, list[float]]]:
    """The number and objective values of each of study ``demo``'s completed trials, by number."""
    return [(number, values) for number, values in store.changed_values("demo", 0)[0] if values is not None]


class StoreContract:
    """What every store does. Subclasses provide the ``store`` fixture and :meth:`open_again`."""

    def open_again(self, store: Store) -> Store:
        """Another store on the same data (the caller closes it)."""
        raise NotImplementedError

    def close(self, store: Store) -> None:
        """Let go of a store from :meth:`open_again`."""

    def test_adding_the_same_definition_twice_is_idempotent_and_a_different_one_conflicts(self, store: Store):
        first = store.add_study(record())
        assert store.add_study(record()) == first
        with pytest.raises(StudyConflict, match=r"already exists with a different definition \(changed: maxTrials\)") as conflict:
            store.add_study(record(maxTrials=9))
        assert conflict.value.changed == ("maxTrials",)
        assert store.get_study("demo").spec.max_trials == 4
        with pytest.raises(StudyNotFound):
            store.get_study("other")

    def test_a_failed_transaction_rolls_back_katunas_rows_and_optunas_state(self, store: Store):
        store.add_study(record())
        study = optuna.create_study(storage=store.optuna_storage(), study_name="demo")
        with pytest.raises(RuntimeError), store.transaction():
            trial = study.ask()
            store.add_trial(TrialRecord("demo", trial.number, {"x": 1.0}))
            raise RuntimeError("crash after the writes, before the commit")
        assert store.trials("demo") == []
        fresh = optuna.load_study(study_name="demo", storage=store.optuna_storage())
        assert fresh.trials == []
        with store.transaction():
            trial = fresh.ask()
        assert trial.number == 0, "the rolled-back trial left no gap"

    def test_numbered_trials_come_in_the_order_asked_without_those_not_stored(self, store: Store):
        store.add_study(record())
        with store.transaction():
            for number in range(1200):
                store.add_trial(TrialRecord("demo", number, {"x": float(number)}, "RUNNING"))
        asked = [1199, 3, 5000, *range(1100, 400, -1), 0]
        found = store.numbered_trials("demo", asked)
        assert [t.number for t in found] == [n for n in asked if n < 1200]
        assert all(t.params == {"x": float(t.number)} for t in found)
        assert store.numbered_trials("demo", []) == [] and store.numbered_trials("other", [0]) == []

    def test_two_stores_on_the_same_data_see_each_others_commits(self, store: Store):
        store.add_study(record())
        other = self.open_again(store)
        try:
            study = optuna.create_study(storage=store.optuna_storage(), study_name="demo")
            with store.transaction():
                number = study.ask().number
                store.add_trial(TrialRecord("demo", number, {"x": 2.0}, "RUNNING"))
            seen = optuna.load_study(study_name="demo", storage=other.optuna_storage())
            with other.transaction():
                seen.tell(number, 1.5)
                other.update_trial("demo", number, state="COMPLETE", values=[1.5])
            assert optuna.load_study(study_name="demo", storage=store.optuna_storage()).trials[0].value == 1.5
            assert store.get_trial("demo", number).values == [1.5]
        finally:
            self.close(other)

    def test_what_was_stored_is_there_when_opened_again(self, store: Store):
        store.add_study(record())
        store.update_study("demo", seed=7, katuna_version="1.2.3", optuna_version="5.0.0", lookahead=0)
        store.add_trial(TrialRecord("demo", 0, {"x": 1.0}, "RUNNING"))
        store.update_trial("demo", 0, image_digest="python@sha256:00ff")
        store.add_trial(TrialRecord("demo", 1, {"x": 1.0}, "RUNNING"))
        store.update_trial("demo", 1, state="FAIL", reason="metrics unavailable: objective 'loss' never reported",
                           unreported=MARK)
        again = self.open_again(store)
        try:
            found = again.get_study("demo")
            assert found.spec == record().spec
            assert (found.seed, found.katuna_version, found.optuna_version, found.lookahead) == (7, "1.2.3", "5.0.0", 0)
            assert again.get_trial("demo", 0).image_digest == "python@sha256:00ff"
            assert (again.get_trial("demo", 0).unreported, again.get_trial("demo", 1).unreported) == (None, MARK)
            assert again.count_metrics_unavailable("demo") == 1
        finally:
            self.close(again)

    def test_how_far_a_trials_log_was_read_is_kept_with_it_apart_from_its_record(self, store: Store):
        """Written as often as a scan finds new lines: no change of the trial to report, and
        each trial's its own; a later attempt's replaces the earlier one's."""
        store.add_study(record())
        for number in range(2):
            store.add_trial(TrialRecord("demo", number, {"x": 1.0}, "RUNNING"))
        assert store.log_read("demo", 0) == store.log_read("demo", 9) == LogRead()
        _, change = store.trial_changes("demo", 0)
        summary = Summary({"loss": "min"})
        summary.add([Observation("loss", 0.75), Observation("loss", 0.5)])
        cursor = Cursor("demo-0-1-pod", 1_700_000_000_000_000_000, 2, 1, named=True)
        kept = Kept(1, (Cursor("demo-0-1-pod", 1_700_000_000_000_000_000, 1, 1),), summary.tally())
        later = Kept(2, (Cursor("demo-0-2-pod", 1_700_000_000_000_000_000, 1, 1),), summary.tally())
        store.set_log_cursor("demo", 0, cursor)
        store.set_log_kept("demo", 0, kept)
        assert store.log_read("demo", 0) == LogRead(cursor, kept)
        assert store.log_read("demo", 1) == LogRead()
        assert store.trial_changes("demo", change) == ([], change), "nothing of the trial a report shows changed"
        assert store.get_trial("demo", 0) == TrialRecord("demo", 0, {"x": 1.0}, "RUNNING")
        with pytest.raises(RuntimeError), store.transaction():
            store.set_log_kept("demo", 0, later)
            raise RuntimeError("rolled back")
        again = self.open_again(store)
        try:
            assert again.log_read("demo", 0) == LogRead(cursor, kept)
            again.set_log_kept("demo", 0, later)
        finally:
            self.close(again)
        assert store.log_read("demo", 0) == LogRead(cursor, later)
        for write, value in ((store.set_log_cursor, cursor), (store.set_log_kept, kept)):
            with pytest.raises(StudyNotFound, match="no trial demo 9"):
                write("demo", 9, value)
        store.delete_study("demo")
        assert store.log_read("demo", 0) == LogRead()

    def test_the_pods_a_trials_attempt_lost_are_kept_with_it_and_only_grow(self, store: Store):
        """Kept as each look sees them (their pods are deleted soon after): a pod seen again
        counts once, an earlier attempt's are not the current one's, and nothing a reader of the
        trial sees changes."""
        store.add_study(record())
        store.add_trial(TrialRecord("demo", 0, {"x": 1.0}, "RUNNING"))
        assert store.lost_pods("demo", 0) == store.lost_pods("demo", 9) == LostPods()
        _, change = store.trial_changes("demo", 0)
        first = {"uid-1": Disruption("PreemptionByScheduler", "default-scheduler: preempting")}
        store.set_lost_pods("demo", 0, store.lost_pods("demo", 0).seen(1, first, frozenset({"uid-2"})))
        for seen in (first, {"uid-2": Disruption("EvictionByEvictionAPI", "Eviction API: evicting")}, first):
            store.set_lost_pods("demo", 0, store.lost_pods("demo", 0).seen(1, seen, frozenset({"uid-4"})))
        again = self.open_again(store)
        try:
            kept = again.lost_pods("demo", 0)
        finally:
            self.close(again)
        assert sorted(kept.of(1)) == ["uid-1", "uid-2"] and kept.of(2) == {}
        assert kept.of(1)["uid-2"] == Disruption("EvictionByEvictionAPI", "Eviction API: evicting")
        assert (kept.running_of(1), kept.running_of(2)) == ({"uid-4"}, set()), "the pods running at the latest look"
        assert store.trial_changes("demo", change) == ([], change), "nothing of the trial a report shows changed"
        later = kept.seen(2, {"uid-3": Disruption("PreemptionByScheduler")}, frozenset())
        assert (later.attempt, list(later.pods)) == (2, ["uid-3"]), "an earlier attempt's are dropped"
        with pytest.raises(StudyNotFound, match="no trial demo 9"):
            store.set_lost_pods("demo", 9, later)

    def test_the_events_recorded_about_a_studys_resource_are_kept_with_it_and_only_grow(self, store: Store):
        """As a trial's: names added by another store are kept, a name added twice is kept
        once, a study stored under another uid (replaced since) gets none, and the study as
        read is unchanged."""
        stored = store.add_study(record())
        assert store.recorded_study_events("demo", stored.uid) == frozenset()
        store.add_recorded_study_events("demo", stored.uid, ["s.a"])
        again = self.open_again(store)
        try:
            again.add_recorded_study_events("demo", stored.uid, ["s.b", "s.a"])
        finally:
            self.close(again)
        store.add_recorded_study_events("demo", "another-uid", ["s.c"])
        assert store.recorded_study_events("demo", stored.uid) == frozenset({"s.a", "s.b"})
        assert store.recorded_study_events("demo", "another-uid") == frozenset()
        assert store.recorded_study_events("gone", stored.uid) == frozenset()
        assert store.get_study("demo") == stored

    def test_the_events_recorded_about_a_trials_trial_are_kept_with_it_and_only_grow(self, store: Store):
        """Added by reports of any process: names added by another store between a read and a
        write are kept, a name added twice is kept once, a trial gone is no error, and nothing a
        reader of the trial sees changes."""
        store.add_study(record())
        for number in (0, 1):
            store.add_trial(TrialRecord("demo", number, {"x": 1.0}, "RUNNING"))
        _, change = store.trial_changes("demo", 0)
        assert store.recorded_events("demo", [0, 1, 9]) == {}
        store.add_recorded_events("demo", {0: ["t-0.a", "t-0.b"], 1: ["t-1.a"]})
        again = self.open_again(store)
        try:
            again.add_recorded_events("demo", {0: ["t-0.c", "t-0.a"]})
        finally:
            self.close(again)
        store.add_recorded_events("demo", {0: ["t-0.b", "t-0.d"], 9: ["t-9.a"]})
        assert store.recorded_events("demo", [0, 1, 9]) == {0: frozenset({"t-0.a", "t-0.b", "t-0.c", "t-0.d"}),
                                                            1: frozenset({"t-1.a"})}
        assert store.trial_changes("demo", change) == ([], change), "nothing of the trial a report shows changed"
        assert store.get_trial("demo", 0) == TrialRecord("demo", 0, {"x": 1.0}, "RUNNING",
                                                         created_at=store.get_trial("demo", 0).created_at)

    def test_a_trials_observations_are_read_a_page_at_a_time_in_order_of_attempt(self, store: Store):
        store.add_study(record())
        store.add_trial(TrialRecord("demo", 0, {"x": 1.0}, "RUNNING", attempt=2))
        store.add_observations("demo", 0, 2, [Observation("loss", 2.0, 0), Observation("loss", 3.0, 1)])
        store.add_observations("demo", 0, 1, [Observation("loss", 1.0, 0)])
        assert store.count_observations("demo", 0) == 3 and store.count_observations("demo", 9) == 0
        assert [(key, o.value) for key, o in store.observations_after("demo", 0, None, 2)] == [((1, 0), 1.0),
                                                                                               ((2, 0), 2.0)]
        assert [key for key, _ in store.observations_after("demo", 0, (2, 0), 10)] == [(2, 1)]
        assert list(store.observations_after("demo", 0, (2, 1), 10)) == []

    def test_running_trials_are_counted_by_their_studys_runner_and_a_waiting_trial_tells_why(self, store: Store):
        store.add_study(replace(record(), runs_on="local"))
        store.add_study(replace(record(name="other"), runs_on="kubernetes"))
        store.add_study(record(name="older"))
        store.add_trial(TrialRecord("older", 0, {"x": 1.0}, "RUNNING"))
        for number, state in enumerate(["RUNNING", "RUNNING", "WAITING", "WAITING"]):
            store.add_trial(TrialRecord("demo", number, {"x": 1.0}, state,
                                        reason="waiting: for room" if number == 3 else ""))
        store.add_trial(TrialRecord("other", 0, {"x": 1.0}, "RUNNING"))
        assert sorted(store.load_by_runner("local")) == [("demo", None, False, 2, 2), ("older", None, False, 1, 0)], \
            "a study that says nothing runs here"
        assert sorted(store.load_by_runner("kubernetes")) == [("older", None, False, 1, 0), ("other", None, False, 1, 0)]
        assert store.waiting_note("demo") == "for room" and store.waiting_note("other") is None

    def test_studies_are_listed_updated_and_deleted_with_their_trials_and_optunas_twin(self, store: Store):
        store.add_study(record())
        store.add_study(record(name="other"))
        store.optuna_study("demo", ["minimize"])
        store.add_trial(TrialRecord("demo", 0, {"x": 1.0}, "COMPLETE", values=[1.0]))
        store.add_observations("demo", 0, 1, [Observation("loss", 1.0)])
        store.update_study("demo", status="completed", reason="max trials reached")
        assert [(s.name, s.status) for s in store.list_studies()] == [("demo", "completed"), ("other", "running")]
        store.delete_study("demo")
        with pytest.raises(StudyNotFound):
            store.get_study("demo")
        assert store.trials("demo") == [] and store.observations("demo", 0) == []
        assert store.best_trials("demo", 1) == [] and store.count_trials("demo").created == 0, \
            "a deleted study's readers (a progress line, a status) find it empty, not an error"
        assert [s.study_name for s in optuna.get_all_study_summaries(store.optuna_storage())] == []
        assert [s.name for s in store.list_studies()] == ["other"]
        with pytest.raises(StudyNotFound):
            store.delete_study("demo")

    def test_a_studys_brief_is_what_its_whole_record_gives_without_its_spec_being_rebuilt(self, store: Store):
        """The tick's passes over every study read briefs (:mod:`functions.core.study_brief`):
        the same, for a study whose spec reads, as its whole record gives; an ended study whose
        spec cannot be rebuilt still gives its namespace and trial kind, read from the stored text."""
        pytorch = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
            "Master": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "pytorch", "image": "python:3.12", "command": ["python", "-c", "pass", "${trialParameters.x}"]}]}}}}}}
        store.add_study(replace(record(name="plain"), runs_on="kubernetes"))
        store.add_study(replace(record(name="kept", trialTemplate={"trialSpec": pytorch, "primaryContainerName": "pytorch",
                                                                   "retain": True},
                                       kubernetes={"namespace": "trials"}, algorithm={"name": "random"},
                                       nodePool={"provider": "gke", "machineType": "e2-standard-4", "maxNodes": 2,
                                                 "name": "kept-pool"}),
                                origin={"kind": "Study", "namespace": "katuna", "name": "kept", "uid": "r-1",
                                        "generation": 2}))
        store.update_study("kept", status="stopped", reason="stopped by its user", completed_at=5.0)
        briefs = store.study_briefs()
        assert briefs == [brief_of(study) for study in store.list_studies()]
        assert [brief.whole for brief in briefs] == [None, store.get_study("plain")], \
            "a study not ended is read whole once, its brief holding the record the tick reconciles"
        kept = briefs[0]
        assert (kept.name, kept.terminal, kept.namespace, kept.trial_kind, kept.retain, kept.algorithm,
                kept.node_pool, kept.completed_at) == (
            "kept", True, "trials", {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob"}, True, "random",
            ("gke", "kept-pool"), 5.0)
        spec = store.get_study("kept").spec.to_dict()
        store.update_study("kept", spec=replace(store.get_study("kept").spec, parallelism="three"))
        assert store.get_study("kept").spec != spec and store.get_study("kept").spec.objectives == (), \
            "its spec cannot be rebuilt any more"
        assert store.study_briefs()[0] == kept, "its brief reads the stored text, not the rebuilt spec"
        store.update_study("plain", spec=replace(store.get_study("plain").spec, parallelism="three"))
        assert [(brief.name, brief.status) for brief in store.study_briefs()] == [("kept", "stopped"),
                                                                                  ("plain", "failed")], \
            "a running study whose spec cannot be rebuilt is failed in brief as whole"

    def test_a_delete_of_a_study_by_its_uid_leaves_another_stored_under_its_name_since(self, store: Store):
        """A ``DELETE`` stops the study it read, then deletes it: a study stored under the name
        in between (the first deleted by another request) is not deleted unstopped."""
        store.add_study(replace(record(), uid="uid-later"))
        with pytest.raises(StudyNotFound, match="deleted meanwhile"):
            store.delete_study("demo", "uid-demo")
        assert store.get_study("demo").uid == "uid-later"
        store.delete_study("demo", "uid-later")
        assert store.list_studies() == []

    def test_failures_are_counted_per_study_of_that_uid(self, store: Store):
        store.add_study(record())
        assert [store.count_failure("demo", "uid-demo") for _ in range(2)] == [1, 2]
        assert store.count_failure("demo", "an-earlier-uid") is None
        assert store.count_failure("absent", "uid-demo") is None

    def test_counts_best_and_observations(self, store: Store):
        store.add_study(record())
        for number, (state, value) in enumerate([("COMPLETE", 3.0), ("COMPLETE", 1.0), ("FAIL", None),
                                                 ("RUNNING", None)]):
            store.add_trial(TrialRecord("demo", number, {"x": number}, state,
                                        values=None if value is None else [value]))
        counts = store.count_trials("demo")
        assert (counts.complete, counts.failed, counts.running, counts.created) == (2, 1, 1, 4)
        assert [t.number for t in store.best_trials("demo", 5)] == [1, 0]
        assert [t.number for t in store.trials("demo", ("FAIL", "RUNNING"))] == [2, 3]
        store.add_observations("demo", 0, 1, [Observation("loss", 3.5, 1), Observation("loss", 3.0)])
        store.add_observations("demo", 0, 1, [Observation("loss", 3.0)])
        assert store.observations("demo", 0) == [Observation("loss", 3.0)]

    def test_a_pareto_front_is_read_from_the_completed_trials_values(self, store: Store):
        """Minimize the first objective, maximize the second: trials equal on both are both kept,
        as Optuna keeps them; one beaten on one objective and tied on the other is not."""
        objective = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "maximize"}]}
        study = store.add_study(record(objective=objective))
        trials = [("COMPLETE", [2.0, 5.0]), ("COMPLETE", [1.0, 1.0]), ("FAIL", None), ("COMPLETE", [2.0, 5.0]),
                  ("COMPLETE", [3.0, 5.0]), ("RUNNING", None), ("COMPLETE", [0.5, 0.5]), ("COMPLETE", [2.0, 0.1]),
                  ("PRUNED", [0.1, 9.0])]
        for number, (state, values) in enumerate(trials):
            store.add_trial(TrialRecord("demo", number, {"x": number}, state, values=values))
        assert completed_values(store) == [(n, v) for n, (state, v) in enumerate(trials) if state == "COMPLETE"]
        assert store.changed_values("demo", 0)[0] == [(n, v if state == "COMPLETE" else None)
                                                      for n, (state, v) in enumerate(trials)]
        assert [t.number for t in best_trials(store, study)] == [0, 1, 3, 6]

    @pytest.mark.parametrize("directions", [("minimize", "maximize", "minimize"),
                                            ("minimize", "maximize", "minimize", "maximize")])
    def test_a_shown_pareto_front_follows_every_change_of_the_completed_trials(self, store: Store,
                                                                                directions: tuple[str, ...]):
        """A front shown again may be the one computed before, so it must be the front of the
        trials as they are now: after each write of a random history (three or four objectives
        of few values, so ties and duplicates abound; trials added, completed, re-marked failed
        or pruned, their values rewritten, discarded; some through another connection), the
        marker differs whenever the completed values do, and the front shown (whole, and its
        sample and size) is the one computed afresh, trial for trial, by number (with four
        objectives, the kept front extended by the trials completed since)."""
        objective = {"metrics": [{"name": name, "direction": direction}
                                 for name, direction in zip("abcd", directions, strict=False)]}
        study = store.add_study(record(objective=objective))
        other = self.open_again(store)
        rng = random.Random(7)
        try:
            marker, values = store.trials_marker("demo"), completed_values(store)
            for step in range(300):
                writer = other if step % 3 == 0 else store
                _random_write(writer, rng, step, len(directions))
                now = completed_values(store)
                assert store.trials_marker("demo") != marker or now == values, f"step {step}"
                marker, values = store.trials_marker("demo"), now
                fresh = pareto_front(study.spec, now)
                assert [t.number for t in best_trials(store, study)] == sorted(fresh), f"step {step}"
                assert [t.number for t in best_trials(store, study)] == sorted(fresh), f"step {step}, shown again"
                assert front_sample(store, study, 5)[1] == len(fresh)
        finally:
            self.close(other)

    def test_a_write_after_a_discard_is_a_change_after_every_earlier_one(self, store: Store):
        """The latest written trial discarded, the next write is still found among the changes
        after those read before it: no change number is given twice."""
        store.add_study(record())
        store.add_trial(TrialRecord("demo", 0, {"x": 0}, "COMPLETE", values=[1.0]))
        store.add_trial(TrialRecord("demo", 1, {"x": 1}, "WAITING"))
        store.update_trial("demo", 1, state="WAITING")
        latest = store.trial_changes("demo", 0)[1]
        store.discard_trial("demo", 1)
        store.update_trial("demo", 0, state="FAIL")
        changed, after = store.trial_changes("demo", latest)
        assert [(t.number, t.state) for t in changed] == [(0, "FAIL")] and after > latest

    def test_a_pareto_front_shown_again_follows_a_write_after_a_discard(self, store: Store):
        """A discarded trial that was the latest written leaves its change number to the next
        write: a front shown before the discard is not shown again once a trial it lists is
        re-marked failed, though the study's latest change is the same number again."""
        objective = {"metrics": [{"name": "a", "direction": "minimize"}, {"name": "b", "direction": "minimize"}]}
        study = store.add_study(record(objective=objective))
        for number, values in enumerate([[1.0, 2.0], [2.0, 1.0]]):
            store.add_trial(TrialRecord("demo", number, {"x": number}, "COMPLETE", values=values))
        store.add_trial(TrialRecord("demo", 2, {"x": 2}, "WAITING"))
        assert [t.number for t in best_trials(store, study)] == [0, 1]
        store.discard_trial("demo", 2)
        store.update_trial("demo", 1, state="FAIL")
        assert [t.number for t in best_trials(store, study)] == [0]

    def test_processed_events_keep_what_was_emitted(self, store: Store):
        assert store.processed("e1", "suggest") is None
        emitted = [study_created("demo", "uid-1")]
        store.record_processed("e1", "suggest", emitted)
        assert store.processed("e1", "suggest") == emitted
        assert store.processed("e1", "collect") is None

    def test_dead_letters_are_kept_newest_first_with_why(self, store: Store):
        for n in range(3):
            store.add_dead_letter(study_created(f"s{n}", f"uid-{n}"), f"reason {n}")
        letters = store.dead_letters(limit=2)
        assert [(d["event"]["data"]["study"], d["reason"]) for d in letters] == [("s2", "reason 2"), ("s1", "reason 1")]

    def test_a_pool_use_is_replaced_by_its_later_version_and_found_by_phase_and_pool(self, store: Store):
        use = PoolUse("uid-a", "a", "katuna-digits", "gke", "spot", ("n2-standard-8",), 5, shared=False)
        store.save_pool_use(use)
        store.save_pool_use(PoolUse("uid-b", "b", "katuna-text", "eks", "spot", ("m5.xlarge",), 3, shared=True,
                                    phase=RELEASED))
        assert store.pool_use("uid-a") == use and store.pool_use("absent") is None
        ready = PoolUse(**{**use.__dict__, "phase": READY, "ready_at": 5.0})
        store.save_pool_use(ready)
        assert store.pool_use("uid-a") == ready
        assert store.pool_uses((READY,)) == [ready]
        assert [u.uid for u in store.pool_uses(pool="katuna-text")] == ["uid-b"]
        assert {u.uid for u in store.pool_uses()} == {"uid-a", "uid-b"}

    def test_a_trial_query_filters_sorts_and_pages(self, store: Store):
        store.add_study(record())
        for number in range(30):
            failed = number % 3 == 0
            metrics = {"loss": float("nan")} if number == 3 else {} if failed else {"loss": 100.0 - number}
            store.add_trial(TrialRecord("demo", number, {"x": number / 10}, "FAIL" if failed else "COMPLETE",
                                        values=None if failed else [100.0 - number], metrics=metrics,
                                        started_at=0.0, finished_at=float(number % 7)))
        page, total = store.query_trials("demo", TrialQuery(sort="metric:loss", offset=0, limit=5))
        assert total == 30 and [t.number for t in page] == [29, 28, 26, 25, 23]
        page, total = store.query_trials("demo", TrialQuery(sort="metric:loss", descending=True, offset=15, limit=10))
        assert [t.number for t in page] == [23, 25, 26, 28, 29, 27, 24, 21, 18, 15], "trials without the field last"
        assert total == 30
        total, rows = store.trials_page("demo", TrialQuery(sort="metric:loss", descending=True, offset=15, limit=10))
        assert total == 30 and [next(rows).number for _ in range(3)] == [23, 25, 26], "the same page, row by row"
        rows.close()

        page, total = store.query_trials("demo", TrialQuery(states=("COMPLETE",), ranges=(("param:x", 1.0, 2.0),),
                                                            sort="duration", limit=None))
        assert total == 8 and {t.number for t in page} == {10, 11, 13, 14, 16, 17, 19, 20}
        assert [t.finished_at for t in page] == sorted(t.finished_at for t in page)
        _, total = store.query_trials("demo", TrialQuery(ranges=(("metric:loss", None, 80.0),)))
        assert total == 7, "NaN metrics and missing ones fall outside every range"
        with pytest.raises(ValueError, match="unknown trial field 'bogus'"):
            store.query_trials("demo", TrialQuery(sort="bogus"))

    def test_awaiting_writers_waits_for_a_transaction_under_way_and_then_reads_what_it_committed(self, store: Store):
        store.add_study(record())
        other = self.open_again(store)
        seen: list[str] = []
        try:
            with other.transaction():
                other.update_study("demo", status="stopped", reason="written meanwhile")
                reader = threading.Thread(target=lambda: (store.await_writers(),
                                                          seen.append(store.get_study("demo").status)))
                reader.start()
                reader.join(timeout=0.5)
                assert reader.is_alive() and seen == [], "it waits while the other transaction is under way"
            reader.join(timeout=10)
            assert seen == ["stopped"]
            with store.transaction():
                store.await_writers()
        finally:
            self.close(other)

    def test_studies_come_a_page_at_a_time_by_keys_that_rise_as_they_are_stored(self, store: Store):
        for at, name in enumerate(("a", "c", "b", "d")):
            store.add_study(replace(record(name=name), uid=f"uid-{name}", created_at=100.0 + at))
        first = store.studies_page(2)
        assert [r.name for _, r in first] == ["a", "c"] and first[-1][0] == (101.0, "c")
        assert [r.name for _, r in store.studies_page(5, after=first[-1][0])] == ["b", "d"]
        assert [r.name for r in store.newest_studies(3)] == ["d", "b", "c"]
        assert [r.name for r in store.newest_studies(2, skip=2)] == ["c", "a"], "the older, past the newest"
        assert store.studies_version(2, skip=2) != store.studies_version(2)

    def test_a_study_stored_once_the_last_are_deleted_comes_after_a_key_given_before(self, store: Store):
        """A key is never given again: a study stored after the one a page ended on, and every
        later one, were deleted comes after that page, however the store numbers its rows."""
        for at, name in enumerate(("a", "b", "c")):
            store.add_study(replace(record(name=name), uid=f"uid-{name}", created_at=100.0 + at))
        first = store.studies_page(2)
        store.delete_study("c")
        store.delete_study("b")
        store.add_study(replace(record(name="x"), uid="uid-x", created_at=110.0))
        assert [r.name for _, r in store.studies_page(5, after=first[-1][0])] == ["x"]
        assert [r.name for r in store.newest_studies(5)] == ["x", "a"]

    def test_studies_created_at_the_same_time_come_by_name(self, store: Store):
        for name in ("b", "a", "c"):
            store.add_study(replace(record(name=name), uid=f"uid-{name}", created_at=5.0))
        first = store.studies_page(1)
        assert [r.name for _, r in first] == ["a"]
        assert [r.name for _, r in store.studies_page(5, after=first[-1][0])] == ["b", "c"]
        assert [r.name for r in store.list_studies()] == ["a", "b", "c"], "as the CLI lists them"

    def test_every_matching_trial_is_read_in_the_querys_order_a_page_at_a_time(self, store: Store):
        store.add_study(record())
        for number in range(25):
            store.add_trial(TrialRecord("demo", number, {"x": (number * 7) % 25 / 10}, "FAIL" if number % 5 == 0
                                        else "COMPLETE", values=None if number % 5 == 0 else [float(number)]))
        query = TrialQuery(states=("COMPLETE",), sort="param:x", descending=True, offset=3, limit=2)
        whole, _ = store.query_trials("demo", replace(query, offset=0, limit=None))
        streamed = store.matching_trials("demo", query, page=3)
        assert [t.number for t in streamed] == [t.number for t in whole] and len(whole) == 20, \
            "every match, in order, offset and limit aside"
        assert list(store.matching_trials("demo", TrialQuery(ranges=(("param:x", 9.0, None),)))) == []

    def test_a_discrete_parameter_written_as_strings_sorts_and_filters_as_numbers(self, store: Store):
        """A Katib Experiment lists discrete values as strings, which trials get as written."""
        study = record(parameters=[{"name": "b", "type": "discrete", "values": ["16", "32", "128"]},
                                   {"name": "c", "type": "categorical", "values": ["x", "y"]}],
                       trialTemplate={"command": ["train", "${trialParameters.b}", "${trialParameters.c}"]})
        store.add_study(study)
        for number, (b, c) in enumerate([("128", "x"), ("16", "y"), ("32", "x")]):
            store.add_trial(TrialRecord("demo", number, {"b": b, "c": c}, "COMPLETE", values=[1.0]))
        store.add_trial(TrialRecord("demo", 3, {"c": "y"}, "WAITING"))

        def numbers(**query) -> list[int]:
            return [t.number for t in store.query_trials("demo", TrialQuery(limit=None, **query))[0]]

        assert numbers(sort="param:b") == [1, 2, 0, 3]
        assert numbers(sort="param:b", descending=True) == [0, 2, 1, 3]
        assert numbers(ranges=(("param:b", None, 50.0),)) == [1, 2]
        assert numbers(ranges=(("param:b", 32.0, None),)) == [0, 2]
        assert numbers(sort="param:c") == [0, 2, 1, 3], "a categorical's labels sort as text"

    def test_trial_counts_follow_every_insert_replace_update_delete_and_rollback(self, store: Store):
        store.add_study(record())
        store.add_study(record(name="other"))
        for n in range(5):
            store.add_trial(TrialRecord("demo", n, {"x": n}, "WAITING"))
        store.add_trial(TrialRecord("other", 0, {"x": 0}, "RUNNING"))
        store.add_trial(TrialRecord("demo", 1, {"x": 1}, "RUNNING"))
        store.update_trial("demo", 2, state="COMPLETE", values=[1.0])
        store.update_trial("demo", 2, reason="no change of state")
        store.update_trial("demo", 3, state="FAIL")
        with pytest.raises(RuntimeError), store.transaction():
            store.update_trial("demo", 4, state="PRUNED")
            raise RuntimeError("rolled back")
        assert by_state(store, "demo") == listed_by_state(store, "demo") == {
            "WAITING": 2, "RUNNING": 1, "COMPLETE": 1, "FAIL": 1}
        assert by_state(store, "other") == listed_by_state(store, "other") == {"RUNNING": 1}
        store.delete_study("demo")
        assert by_state(store, "demo") == {} and by_state(store, "other") == {"RUNNING": 1}


class TestSqliteStore(StoreContract):
    """katuna's SQLite store, on a file in a temporary folder."""

    @pytest.fixture
    def store(self, tmp_path: Path):
        opened = SqliteStore(tmp_path / "katuna.db")
        yield opened
        opened.close()

    def open_again(self, store: Store) -> Store:
        return SqliteStore(store.path)

    def close(self, store: Store) -> None:
        store.close()

    def test_the_studies_version_changes_as_a_study_is_stored_deleted_or_ends_or_a_trial_changes_state(
            self, store: SqliteStore):
        """What the dashboard's list shows of each study: a trial's end changes its counts and
        best trial (the study may run in another process while the list is idle); what the list
        does not show, an observation, changes nothing."""
        store.add_study(record(name="a"))
        store.add_study(record(name="b"))
        versions = [store.studies_version(2)]
        store.add_trial(TrialRecord("a", 0, {"x": 0.1}, "RUNNING"))
        versions.append(store.studies_version(2))
        store.add_observations("a", 0, 1, [Observation("loss", 1.0, 1)])
        assert store.studies_version(2) == versions[-1], "an observation is shown on the trial's page only"
        store.update_trial("a", 0, state="COMPLETE", values=[1.0])
        versions.append(store.studies_version(2))
        store.add_study(record(name="c"))
        versions.append(store.studies_version(2))
        store.update_study("c", status="completed", reason="max trials reached")
        versions.append(store.studies_version(2))
        store.delete_study("a")
        versions.append(store.studies_version(2))
        store.delete_study("c")
        store.add_study(replace(record(name="c"), uid="uid-c-again", status="completed", reason="max trials reached"))
        versions.append(store.studies_version(2))
        assert len(set(versions)) == len(versions), versions
