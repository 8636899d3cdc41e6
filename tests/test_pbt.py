"""Population-based training's decisions (:mod:`functions.core.pbt`) as Katib's ``pbt`` service
makes them, and its settings refused as that service refuses them, naming the setting; where
trials run as Kubernetes Jobs, the algorithm is refused at submission."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from conftest import study_definition

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core import pbt
from functions.core.checkpoint_volume import CheckpointVolume
from functions.core.cluster import Cluster
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.parameters import CategoricalParameter, FloatParameter, IntParameter
from functions.core.records import KUBERNETES
from functions.core.validate import parse_study
from functions.handlers import Deps
from functions.handlers.submit import store_study

DATA = Path(__file__).parent / "data" / "katib_examples"
LR = FloatParameter("lr", low=0.0001, high=0.02, step=0.0001)
SETTINGS = pbt.Settings(n_population=5, truncation_threshold=0.2, suggestion_trial_dir="/ckpt")


def members(scores: list[float | None], generation: int = 0, first: int = 0) -> list[pbt.Member]:
    """Succeeded members of one generation, their lr 0.001 times their place plus one."""
    return [pbt.Member(first + i, {"lr": round(0.001 * (i + 1), 4)}, generation, None if generation == 0 else 0,
                       pbt.SUCCEEDED if score is not None else pbt.OTHER, score)
            for i, score in enumerate(scores)]


def test_the_first_generation_is_drawn_from_the_space_until_a_population_has_succeeded():
    assert pbt.next_plan(SETTINGS, [LR], [], random.Random(1)) == pbt.Plan(None, 0, None)
    four_done = members([0.1, 0.2, 0.3, 0.4, None, None])
    assert pbt.next_plan(SETTINGS, [LR], four_done, random.Random(1)) == pbt.Plan(None, 0, None), \
        "trials drawn afresh while the population has not finished, as Katib's service seeds more"


def test_the_bottom_trial_exploits_an_upper_ones_hyperparameters_from_its_own_checkpoint():
    pool = members([0.5, 0.1, 0.9, 0.6, 0.7])
    plan = pbt.next_plan(SETTINGS, [LR], pool, random.Random(3))
    assert (plan.generation, plan.parent) == (1, 1), "the one below the 0.2 quantile continues its own checkpoint"
    assert plan.params == {"lr": 0.003}, "with the hyperparameters of the one at or above the 0.8 quantile"


def test_after_its_share_of_exploits_each_other_trial_is_explored_once_by_perturbation():
    pool = members([0.5, 0.1, 0.9, 0.6, 0.7])
    asked = list(pool)
    for number in range(5, 10):
        plan = pbt.next_plan(SETTINGS, [LR], asked, random.Random(number))
        asked.append(pbt.Member(number, plan.params or {}, plan.generation, plan.parent, pbt.OTHER))
    children = asked[5:]
    assert [c.parent for c in children][0] == 1 and sorted(c.parent for c in children[1:]) == [0, 2, 3, 4], \
        "one exploit (int(5 * 0.2)), then each trial not at the bottom explored once"
    for child in children[1:]:
        parent = pool[child.parent or 0].params["lr"]
        assert child.params["lr"] in (round(parent * 0.8, 4), round(parent * 1.2, 4)), (child, parent)


def test_resampling_draws_each_value_afresh_with_its_probability():
    settings = pbt.Settings(5, 0.0, "/ckpt", resample_probability=1.0)
    plan = pbt.next_plan(settings, [LR], members([0.5, 0.1, 0.9, 0.6, 0.7]), random.Random(5))
    assert plan.generation == 1 and plan.params is not None
    assert round((plan.params["lr"] - 0.0001) / 0.0001, 6).is_integer() and 0.0001 <= plan.params["lr"] <= 0.02
    kept = pbt.Settings(5, 0.0, "/ckpt", resample_probability=0.0)
    plan = pbt.next_plan(kept, [LR], members([0.5, 0.1, 0.9, 0.6, 0.7]), random.Random(5))
    assert plan.params == members([0.5, 0.1, 0.9, 0.6, 0.7])[plan.parent or 0].params


def test_a_failed_trial_runs_again_with_its_hyperparameters_generation_and_parent():
    pool = members([0.5, 0.1, 0.9, 0.6, 0.7])
    failed = pbt.Member(5, {"lr": 0.0042}, 1, 3, pbt.FAILED)
    assert pbt.next_plan(SETTINGS, [LR], [*pool, failed], random.Random(1)) == pbt.Plan({"lr": 0.0042}, 1, 3)
    again = pbt.Member(6, {"lr": 0.0042}, 1, 3, pbt.OTHER)
    assert pbt.next_plan(SETTINGS, [LR], [*pool, failed, again], random.Random(1)).params != {"lr": 0.0042}



def test_a_child_refused_its_parents_checkpoint_is_not_run_again_and_its_parent_is_passed_over():
    """Katuna refused to copy trial 3's folder (too large, a FIFO in it) for its child 5: the
    same copy would be refused again, so 5 is not run again, and 3 gets no other child while
    another trial may; a refused exploit (trial 1, the bottom one) leaves the exploit out."""
    pool = members([0.5, 0.1, 0.9, 0.6, 0.7])
    refused = pbt.Member(5, {"lr": 0.0042}, 1, 3, pbt.FAILED, refused=True)
    plans = [pbt.next_plan(SETTINGS, [LR], [*pool, refused], random.Random(seed)) for seed in range(30)]
    assert all(plan.generation == 1 and plan.parent not in (3, None) for plan in plans), plans
    exploit = pbt.Member(5, {"lr": 0.003}, 1, 1, pbt.FAILED, refused=True)
    plans = [pbt.next_plan(SETTINGS, [LR], [*pool, exploit], random.Random(seed)) for seed in range(30)]
    assert all(plan.parent in (0, 2, 3, 4) for plan in plans), plans
    every = [pbt.Member(5 + i, {"lr": 0.001}, 1, i, pbt.FAILED, refused=True) for i in range(5)]
    assert pbt.next_plan(SETTINGS, [LR], [*pool, *every], random.Random(1)).parent in range(5), \
        "a generation whose every trial was refused still gives a child (the study's failure bound ends it)"

def test_the_next_generation_comes_from_the_latest_population_that_succeeded():
    first = members([0.5, 0.1, 0.9, 0.6, 0.7])
    second = members([1.5, 1.1, 1.9, 1.6, 1.7], generation=1, first=5)
    plan = pbt.next_plan(SETTINGS, [LR], [*first, *second], random.Random(2))
    assert (plan.generation, plan.parent) == (2, 6)


def test_perturbing_keeps_a_value_in_its_range_and_a_list_value_moves_to_a_neighbour():
    count = IntParameter("n", low=1, high=10)
    assert {pbt.perturb(count, 10, random.Random(seed)) for seed in range(20)} == {8, 10}
    colour = CategoricalParameter("c", values=("red", "green", "blue"))
    assert {pbt.perturb(colour, "red", random.Random(seed)) for seed in range(20)} == {"green", "blue"}


def test_the_truncation_cut_interpolates_as_numpy_does():
    assert pbt.quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.2) == pytest.approx(1.8)
    assert pbt.quantile([3.0], 0.8) == 3.0


@pytest.mark.parametrize(("parameter", "top", "grid"), [
    (IntParameter("n", low=0, high=11, step=2), 10, {0, 2, 4, 6, 8, 10}),
    (FloatParameter("x", low=0.0, high=1.1, step=0.2), 1.0, {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}),
    (FloatParameter("y", low=0.0, high=0.3, step=0.1), 0.3, {0.0, 0.1, 0.2, 0.3}),
])
def test_a_perturbed_or_resampled_value_stays_in_a_range_whose_max_is_off_the_step(parameter, top: float,
                                                                                    grid: set[float]):
    """The top value times 1.2 is clamped to ``max``, which is put on the step below it, not
    above; a resampled value is one of the range's values on the step, each drawn."""
    assert {pbt.perturb(parameter, top, random.Random(seed)) for seed in range(20)} <= grid
    resampled = {pbt.resample(parameter, random.Random(seed)) for seed in range(200)}
    assert resampled == grid


def test_scores_far_apart_still_leave_a_bottom_trial_an_upper_one_to_exploit():
    """The difference of the top two scores overflows: the upper cut stays at the top score."""
    first = members([-1.7e308, -1e308, -1e308, -1e308, 1.7e308])
    plan = pbt.next_plan(SETTINGS, [LR], first, random.Random(1))
    assert (plan.generation, plan.parent, plan.params) == (1, 0, {"lr": 0.005})
    assert pbt.quantile([-1e308, 1.7e308], 0.5) == pytest.approx(3.5e307)


def native(**settings: object) -> dict:
    return study_definition(algorithm={"name": "pbt", "settings": settings}, maxTrials=10)


VALID = {"suggestion_trial_dir": "/ckpt", "n_population": 5, "truncation_threshold": 0.2}


@pytest.mark.parametrize(("change", "path", "words"), [
    ({"n_population": None}, "algorithm.settings.n_population", "n_population is required by pbt"),
    ({"suggestion_trial_dir": None}, "algorithm.settings.suggestion_trial_dir", "is required by pbt"),
    ({"n_population": 4}, "algorithm.settings.n_population", "expected an integer >= 5"),
    ({"truncation_threshold": 1.5}, "algorithm.settings.truncation_threshold", "from 0 to 1, inclusive"),
    ({"resample_probability": -0.1}, "algorithm.settings.resample_probability", "from 0 to 1, inclusive"),
    ({"suggestion_trial_dir": "ckpt"}, "algorithm.settings.suggestion_trial_dir", "an absolute path"),
    ({"n_population": "many"}, "algorithm.settings.n_population", "expected an integer"),
    ({"colour": "red"}, "algorithm.settings.colour", "not a setting of 'pbt'"),
])
def test_a_native_studys_settings_are_refused_naming_the_setting(change: dict, path: str, words: str):
    settings = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    with pytest.raises(InvalidStudy) as refused:
        parse_study(native(**settings))
    problems = {p.path: p.message for p in refused.value.problems}
    assert list(problems) == [path] and words in problems[path], problems


def test_a_conditional_parameter_is_refused():
    definition = native(**VALID)
    definition["parameters"] += [{"name": "kernel", "type": "categorical", "values": ["poly", "rbf"]},
                                 {"name": "degree", "type": "int", "min": 2, "max": 5, "when": {"kernel": ["poly"]}}]
    definition["trialTemplate"]["command"] += ["${trialParameters.kernel}", "${trialParameters.degree}"]
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    assert [p.path for p in refused.value.problems] == ["parameters[2].when"]


def experiment(**settings: str) -> str:
    doc = yaml.safe_load((DATA / "simple-pbt.yaml").read_text())
    doc["spec"]["algorithm"]["algorithmSettings"] = [{"name": k, "value": v} for k, v in settings.items()]
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(("settings", "path", "words"), [
    ({"suggestion_trial_dir": "/c", "n_population": "3", "truncation_threshold": "0.2"},
     "spec.algorithm.algorithmSettings[1].value", "n_population of pbt: expected an integer >= 5, got 3"),
    ({"suggestion_trial_dir": "/c", "n_population": "5", "truncation_threshold": "2"},
     "spec.algorithm.algorithmSettings[2].value", "truncation_threshold of pbt: expected a number from 0 to 1"),
    ({"suggestion_trial_dir": "/c", "n_population": "5", "truncation_threshold": "0.2", "resample_probability": "x"},
     "spec.algorithm.algorithmSettings[3].value", "resample_probability of pbt: expected a number"),
    ({"suggestion_trial_dir": "/c", "truncation_threshold": "0.2"},
     "spec.algorithm.algorithmSettings", "n_population is required by pbt"),
    ({"suggestion_trial_dir": "/c", "n_population": "5", "truncation_threshold": "0.2", "random_state": "1"},
     "spec.algorithm.algorithmSettings[3].name", "'random_state' is not a setting of Katib's pbt"),
])
def test_a_katib_experiments_settings_are_refused_naming_the_setting(settings: dict, path: str, words: str):
    with pytest.raises(InvalidStudy) as refused:
        load_study(experiment(**settings))
    problems = {p.path: p.message for p in refused.value.problems}
    assert list(problems) == [path] and words in problems[path], problems


def test_katibs_example_translates_to_a_pbt_study():
    spec, _ = load_study((DATA / "simple-pbt.yaml").read_text())
    assert (spec.algorithm.name, dict(spec.algorithm.settings)) == ("pbt", {
        "suggestion_trial_dir": "/var/log/katib/checkpoints/", "n_population": 5, "truncation_threshold": 0.2})


def test_where_trials_run_as_kubernetes_jobs_pbt_is_refused_at_submission(tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    deps = Deps(store, executor, lambda: 100.0, workdir=str(tmp_path), runs_on=KUBERNETES)
    try:
        spec, definition = load_study((DATA / "simple-pbt.yaml").read_text())
        with pytest.raises(InvalidStudy) as refused:
            store_study(deps, spec, definition)
        [problem] = refused.value.problems
        assert problem.path == "spec.algorithm.algorithmName"
        assert problem.message.startswith("pbt runs where trials run as Kubernetes Jobs only with a shared claim "
                                          "for its checkpoints: set KATUNA_CHECKPOINT_CLAIM to a ReadWriteMany "
                                          "PersistentVolumeClaim"), problem.message
        assert store.list_studies() == [], "nothing stored"
    finally:
        executor.shutdown()
        store.close()


def test_with_a_checkpoint_claim_pbt_is_refused_only_for_trials_that_run_as_other_workloads_than_jobs(tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    claim = Cluster(checkpoints=CheckpointVolume("pbt-checkpoints", "ghcr.io/katuna/katuna:0.1.0", 1 << 30))
    deps = Deps(store, executor, lambda: 100.0, workdir=str(tmp_path), runs_on=KUBERNETES, trial_defaults=claim)
    try:
        spec, definition = load_study((DATA / "simple-pbt.yaml").read_text())
        store_study(deps, spec, definition)
        pytorch = yaml.safe_load((DATA / "simple-pbt.yaml").read_text())
        pytorch["metadata"]["name"] = "pbt-pytorch"
        pytorch["spec"]["trialTemplate"]["trialSpec"] = {
            "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {"Master": {
                "replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [
                    {"name": "pytorch", "image": "python:3.12", "command": [
                        "python3", "train.py", "--lr=${trialParameters.learningRate}",
                        "--checkpoint=/var/log/katib/checkpoints/"]}]}}}}}}
        pytorch["spec"]["trialTemplate"]["primaryContainerName"] = "pytorch"
        spec, definition = load_study(yaml.safe_dump(pytorch))
        with pytest.raises(InvalidStudy) as refused:
            store_study(deps, spec, definition)
        [problem] = refused.value.problems
        assert (problem.path, problem.message.split(" (")[0]) == (
            "spec.algorithm.algorithmName", "pbt runs its trials on Kubernetes as Jobs only")
    finally:
        executor.shutdown()
        store.close()


@pytest.mark.parametrize(("max_trials", "extra", "given"), [
    (None, {"timeBudget": 3600}, "none"), (10_001, {}, "10,001")])
def test_a_study_without_a_bounded_max_trials_is_refused(max_trials: int | None, extra: dict, given: str):
    """Each trial's decision reads every trial before it: a study of pbt gives ``maxTrials``,
    at most :data:`pbt.MOST_TRIALS`, so its decisions' cost is bounded."""
    definition = {**native(**VALID), **extra}
    definition.pop("maxTrials")
    if max_trials is not None:
        definition["maxTrials"] = max_trials
    with pytest.raises(InvalidStudy) as refused:
        parse_study(definition)
    [problem] = refused.value.problems
    assert problem.path == "maxTrials"
    assert problem.message.startswith(f"expected at most 10,000 with the pbt algorithm, got {given}")
    definition["maxTrials"] = pbt.MOST_TRIALS
    parse_study(definition)


def test_a_katib_experiment_without_max_trial_count_is_refused_naming_it():
    doc = yaml.safe_load((DATA / "simple-pbt.yaml").read_text())
    del doc["spec"]["maxTrialCount"]
    doc["spec"]["objective"]["goal"] = 0.99
    with pytest.raises(InvalidStudy) as refused:
        load_study(yaml.safe_dump(doc))
    assert [p.path for p in refused.value.problems] == ["spec.maxTrialCount"]
