"""Where katuna refuses what one of Katib's services would run, or fails only once the
Experiment runs, its refusal says so; and a mistake is told once, by the field Katib names.

Read against Katib's suggestion services (``pkg/suggestion/v1beta1``): hyperopt, Optuna and
scikit-optimize seed numpy (``RandomState``: 0 to 2**32 - 1); goptuna's CMA-ES reads any 64-bit
``random_state`` and runs a ``sigma`` of 0 or less as its default, and it ignores setting names it
does not know; its Sobol sampler and the hyperband service never read ``random_state``."""

from __future__ import annotations

import pytest
import yaml
from test_katib import experiment
from test_katib_translate import _with_settings, problems_of

from functions.core.formats import load_study

FIRST = "spec.algorithm.algorithmSettings[0]"

SEEDS = {
    "goptuna's cmaes takes a negative seed": ("cmaes", "-1", "Katib's goptuna service, which runs cmaes, takes any "
                                                            "64-bit integer"),
    "goptuna's cmaes takes a large seed": ("cmaes", "4294967296", "takes any 64-bit integer"),
    "hyperopt's random fails on a large seed": ("random", "4294967296", "Katib's hyperopt service, which runs "
                                                "random, fails on a larger one at its first suggestion"),
    "hyperopt's tpe fails on a large seed": ("tpe", "4294967296", "hyperopt service, which runs tpe, fails"),
    "Optuna's grid fails on a large seed": ("grid", "4294967296", "Optuna service, which runs grid, fails"),
    "goptuna's sobol ignores the seed": ("sobol", "seven", "Katib's goptuna service, which runs sobol, ignores "
                                                           "random_state"),
    "the hyperband service ignores the seed": ("hyperband", "-1", "Katib's hyperband service, which runs "
                                                                  "hyperband, ignores random_state"),
}


@pytest.mark.parametrize("algorithm,seed,said", SEEDS.values(), ids=SEEDS.keys())
def test_a_seed_katuna_refuses_says_what_katibs_service_for_the_algorithm_does_with_it(algorithm, seed, said):
    found = problems_of(_with_settings(algorithm, {"random_state": seed, **({"eta": "3"} if algorithm == "hyperband"
                                                                            else {})}))
    message = found[f"{FIRST}.value"]
    assert message.startswith(f"random_state of {algorithm}: expected an integer") and said in message, message
    assert message.endswith(f"got {seed!r}" if seed == "seven" else f"got {seed}")
    assert "take larger ones" not in message, "no service is said to take what it fails on"


@pytest.mark.parametrize("algorithm", ["random", "tpe", "bayesianoptimization"])
def test_a_negative_seed_katibs_own_service_refuses_up_front_is_refused_without_a_hint(algorithm: str):
    assert problems_of(_with_settings(algorithm, {"random_state": "-1"}))[f"{FIRST}.value"] == \
        f"random_state of {algorithm}: expected an integer from 0 to 4294967295, got -1"


def test_a_sigma_goptuna_runs_as_its_default_is_refused_saying_so():
    message = problems_of(_with_settings("cmaes", {"sigma": "0"}))[f"{FIRST}.value"]
    assert message == ("sigma of cmaes: expected a number > 0 (Katib's goptuna service, which runs cmaes, runs 0 "
                       "or less as its default sigma, the narrowest range / 6: leave sigma out for that), got 0.0")
    assert "goptuna" not in problems_of(_with_settings("cmaes", {"sigma": "small"}))[f"{FIRST}.value"]


def test_no_ei_candidates_is_refused_saying_katibs_optuna_service_fails_on_it_later():
    message = problems_of(_with_settings("multivariate-tpe", {"n_ei_candidates": "0"}))[f"{FIRST}.value"]
    assert message.startswith("n_ei_candidates of multivariate-tpe: expected an integer >= 1 (Katib's Optuna "
                              "service takes 0, then fails at its first suggestion after the start-up trials")


@pytest.mark.parametrize("algorithm", ["cmaes", "sobol"])
def test_a_setting_name_goptuna_would_ignore_is_refused_saying_so(algorithm: str):
    message = problems_of(_with_settings(algorithm, {"popsize": "8"}))[f"{FIRST}.name"]
    assert message.startswith(f"'popsize' is not a setting of Katib's {algorithm}; expected one of: random_state")
    assert f"Katib's goptuna service, which runs {algorithm}, ignores a name it does not know" in message
    assert message.endswith("remove it, or correct its name")


def test_a_setting_name_the_pbt_service_would_ignore_is_refused_saying_so():
    """Katib's pbt service reads the settings it knows from all given, and seeds nothing: a
    ``random_state`` there runs as if it were not given."""
    pbt = [{"name": "suggestion_trial_dir", "value": "/var/log/katib/checkpoints/"},
           {"name": "n_population", "value": "5"}, {"name": "truncation_threshold", "value": "0.2"},
           {"name": "random_state", "value": "3"}]
    doc = experiment(algorithm={"algorithmName": "pbt", "algorithmSettings": pbt}, maxTrialCount=10)
    message = problems_of(doc)["spec.algorithm.algorithmSettings[3].name"]
    assert message.startswith("'random_state' is not a setting of Katib's pbt")
    assert "Katib's pbt service, which runs pbt, ignores a name it does not know" in message


def test_a_setting_name_the_hyperband_service_would_ignore_is_refused_saying_so():
    hyperband = [{"name": "resource_name", "value": "x"}, {"name": "r_l", "value": "3"},
                 {"name": "etta", "value": "3"}]
    doc = experiment(algorithm={"algorithmName": "hyperband", "algorithmSettings": hyperband},
                     parameters=[{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}],
                     parallelTrialCount=3, maxTrialCount=9)
    message = problems_of(doc)["spec.algorithm.algorithmSettings[2].name"]
    assert message.startswith("unknown hyperband setting 'etta'; expected one of resource_name, eta, r_l, random_state")
    assert "Katib's hyperband service, which runs hyperband, ignores a name it does not know" in message


def test_a_misspelt_setting_name_is_refused_with_the_name_it_is_close_to():
    message = problems_of(_with_settings("random", {"random_sate": "3"}))[f"{FIRST}.name"]
    assert message == ("'random_sate' is not a setting of Katib's random; expected one of: random_state "
                       "(did you mean 'random_state'?)"), "hyperopt fails it too: no word of goptuna"


def test_two_trial_parameters_referring_to_one_parameter_are_one_problem_as_in_katib():
    """Katib's webhook reports the second entry's reference alone; its placeholder, used in the
    trialSpec, is no second problem."""
    doc = experiment()
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "again", "reference": "x"})
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"].append(
        "--again=${trialParameters.again}")
    assert problems_of(doc) == {"spec.trialTemplate.trialParameters[1].reference": "'x' is referenced twice"}


def test_primary_pod_labels_no_pod_of_a_job_carries_are_refused():
    """Katib's pod webhook gives its metrics collector only to pods carrying every primary pod
    label: a batch Job's pods carry their template's labels and those the Job controller and
    Katib add, so a label among neither leaves every trial without metrics."""
    doc = experiment()
    template = doc["spec"]["trialTemplate"]
    template["primaryPodLabels"] = {"training.kubeflow.org/job-role": "master"}
    assert problems_of(doc) == {"spec.trialTemplate.primaryPodLabels": (
        "no pod of the trial's Job carries training.kubeflow.org/job-role: master: Katib collects metrics only "
        "from pods carrying every primary pod label, so no trial would get its metrics; add it to "
        "spec.trialTemplate.trialSpec.spec.template.metadata.labels, or remove it")}
    template["trialSpec"]["spec"]["template"]["metadata"] = {"labels": {"training.kubeflow.org/job-role": "worker"}}
    assert list(problems_of(doc)) == ["spec.trialTemplate.primaryPodLabels"], "a label of another value"


@pytest.mark.parametrize("labels,pod_labels", [
    ({"role": "main"}, {"role": "main"}),
    ({"batch.kubernetes.io/job-completion-index": "0"}, None),
    ({"katib.kubeflow.org/experiment": "katib-exp"}, None),
], ids=["its template's", "the Job controller's", "Katib's"])
def test_primary_pod_labels_a_jobs_pods_carry_are_taken(labels: dict, pod_labels: dict | None):
    doc = experiment()
    doc["spec"]["trialTemplate"]["primaryPodLabels"] = labels
    if pod_labels is not None:
        doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["metadata"] = {"labels": pod_labels}
    spec, _ = load_study(yaml.safe_dump(doc))
    assert dict(spec.trial_template.primary_pod_labels) == labels
