"""What one accepted study may ask of the service: bounded at submission, each bound a clear
problem naming the field and the limit, the limits configurable through ``KATUNA_MAX_*``."""

from __future__ import annotations

import json
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from conftest import run_study, study_definition
from http_helpers import Service

from functions.core.errors import InvalidStudy, TooManyStudies
from functions.core.grid import grid_size
from functions.core.limits import DEFAULTS, EksQuotas, Limits
from functions.core.metric_filters import compile_filter
from functions.core.metrics import parse_text
from functions.core.reader import listed
from functions.core.samplers import build_sampler
from functions.core.space import sample
from functions.core.validate import parse_study
from functions.handlers.submit import store_or_restart, store_study
from functions.settings import Settings


def problems(definition: dict, limits: Limits = DEFAULTS) -> list[str]:
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition, limits)
    return [str(p) for p in caught.value.problems]


def without_parallelism(**overrides) -> dict:
    definition = study_definition(**overrides)
    del definition["parallelism"]
    return definition


@pytest.mark.parametrize("max_trials, parallelism", [(1, 1), (2, 2), (3, 3), (50, 3)])
def test_the_default_parallelism_never_exceeds_max_trials(max_trials: int, parallelism: int):
    assert parse_study(without_parallelism(maxTrials=max_trials)).parallelism == parallelism


def test_a_single_trial_study_without_parallelism_runs(embedded, tmp_path: Path):
    spec = parse_study(without_parallelism(name="single", maxTrials=1))
    embedded.submit(spec, spec.to_dict(), tmp_path)
    assert embedded.run("single").status == "completed"
    assert [t.state for t in embedded.store.trials("single")] == ["COMPLETE"]


@pytest.mark.parametrize("field, value, expected", [
    ("parallelism", 1_001, "parallelism: expected at most 1,000 (set by KATUNA_MAX_PARALLELISM), got 1,001"),
    ("maxTrials", 1_000_001, "maxTrials: expected at most 1,000,000 (set by KATUNA_MAX_TRIALS), got 1,000,001"),
    ("maxFailedTrials", 10**9, "maxFailedTrials: expected at most 1,000,000 (set by KATUNA_MAX_TRIALS)"),
    ("maxTrials", 10**30, "maxTrials: expected an integer of at most 2**53 in magnitude, got 1e+30"),
    ("maxTrials", 1e9, "maxTrials: expected an integer, got a number 1000000000.0"),
    ("timeBudget", "400d", "timeBudget: expected at most 31,622,400.0 seconds (set by KATUNA_MAX_DURATION)"),
])
def test_counts_and_durations_past_their_bound_are_refused_naming_the_limit(field: str, value, expected: str):
    definition = study_definition(maxTrials=2_000_000, parallelism=1)
    definition[field] = value
    assert any(p.startswith(expected) for p in problems(definition)), problems(definition)


def test_values_at_the_bounds_are_accepted():
    limits = Limits()
    definition = study_definition(parallelism=limits.parallelism, maxTrials=limits.trials,
                                  maxFailedTrials=limits.trials, timeBudget=limits.duration)
    definition["trialTemplate"].update(timeout=limits.duration, maxAttempts=limits.attempts)
    spec = parse_study(definition)
    assert (spec.parallelism, spec.max_trials, spec.trial_template.max_attempts) == (1_000, 1_000_000, 100)


def test_template_fields_past_their_bound_are_refused():
    definition = study_definition()
    definition["trialTemplate"].update(timeout="367d", maxAttempts=10**6)
    found = problems(definition)
    assert any(p.startswith("trialTemplate.timeout: expected at most 31,622,400.0") for p in found), found
    assert any(p.startswith("trialTemplate.maxAttempts: expected at most 100 (set by KATUNA_MAX_ATTEMPTS)")
               for p in found), found


def test_the_number_of_parameters_and_of_values_is_bounded():
    limits = Limits(parameters=2, values=3)
    definition = study_definition(parameters=[{"name": f"p{i}", "type": "float", "min": 0, "max": 1} for i in range(3)])
    assert "parameters: expected at most 2 (set by KATUNA_MAX_PARAMETERS), got 3" in problems(definition, limits)
    definition = study_definition(parameters=[{"name": "x", "type": "categorical", "values": list("abcd")}])
    assert "parameters[0].values: expected at most 3 (set by KATUNA_MAX_VALUES), got 4" in problems(definition, limits)


def test_configured_limits_come_from_the_environment():
    settings = Settings.from_env({"KATUNA_MAX_PARALLELISM": "4", "KATUNA_MAX_TRIALS": "10", "KATUNA_MAX_GRID": "7",
                                  "KATUNA_MAX_DURATION": "60.5"})
    assert settings.limits == Limits(parallelism=4, trials=10, grid=7, duration=60.5)
    assert Settings.from_env({}).limits == Limits()
    for bad in ("0", "-3", "many", "1.5"):
        with pytest.raises(ValueError, match="KATUNA_MAX_GRID: expected a positive integer"):
            Settings.from_env({"KATUNA_MAX_GRID": bad})


def pooled(pool: dict, **overrides) -> dict:
    return study_definition(name="pooled", nodePool={"provider": "gke", **pool}, **overrides)


def test_a_node_pool_past_the_ceilings_is_refused_naming_each_field():
    gpus = {"machineType": "a2-megagpu-16g", "accelerators": [{"type": "nvidia-tesla-a100", "count": 16}]}
    assert problems(pooled({"maxNodes": 1_000, **gpus})) == [
        "nodePool.maxNodes: expected at most 100 (set by KATUNA_MAX_POOL_NODES), got 1,000",
        "nodePool.accelerators[0].count: expected at most 8 (set by KATUNA_MAX_ACCELERATORS), got 16"]
    two = {"machineType": "n1-standard-8", "accelerators": [{"type": "nvidia-tesla-t4", "count": 2},
                                                            {"type": "nvidia-tesla-p4", "count": 2}]}
    assert problems(pooled(two), Limits(accelerators=3)) == [
        "nodePool.accelerators: expected at most 3 (set by KATUNA_MAX_ACCELERATORS), got 4"]
    spec = parse_study(pooled({"maxNodes": 100, "machineType": "a3-highgpu-8g",
                               "accelerators": [{"type": "nvidia-h100-80gb", "count": 8}]}))
    assert (spec.node_pool.max_nodes, spec.node_pool.accelerators) == (100, (("nvidia-h100-80gb", 8),))


def test_a_pools_boot_disk_past_the_operators_bound_is_refused_and_the_bound_is_a_setting():
    """Each node of a pool is billed for its boot disk, which the clouds take up to 64 TiB (about
    9 dollars a node-hour): a study's pool is held to KATUNA_MAX_POOL_DISK_GB as to its nodes."""
    assert problems(pooled({"diskSizeGb": 65_536})) == [
        "nodePool.diskSizeGb: expected at most 1,000 GiB (set by KATUNA_MAX_POOL_DISK_GB), got 65,536"]
    assert problems(study_definition(name="pooled", nodePool={"provider": "eks", "diskSizeGb": 16_384})) == [
        "nodePool.diskSizeGb: expected at most 1,000 GiB (set by KATUNA_MAX_POOL_DISK_GB), got 16,384"]
    assert parse_study(pooled({"diskSizeGb": 1_000})).node_pool.disk_size_gb == 1_000
    limits = Settings.from_env({"KATUNA_MAX_POOL_DISK_GB": "200"}).limits
    assert problems(pooled({"diskSizeGb": 201}), limits) == [
        "nodePool.diskSizeGb: expected at most 200 GiB (set by KATUNA_MAX_POOL_DISK_GB), got 201"]
    assert parse_study(pooled({}), limits).node_pool.disk_size_gb is None, "the cloud's default disk is no bound's"


def test_a_pool_left_unsized_is_capped_at_the_ceiling_not_refused():
    spec = parse_study(pooled({}, parallelism=500, maxTrials=1_000))
    assert (spec.parallelism, spec.node_pool.max_nodes) == (500, 100), "trials wait for room instead"
    assert parse_study(pooled({}, parallelism=500, maxTrials=1_000), Limits(pool_nodes=1_000)).node_pool.max_nodes == 500
    eks = study_definition(name="pooled", parallelism=500, maxTrials=1_000, nodePool={"provider": "eks"})
    assert parse_study(eks, Limits(pool_nodes=1_000)).node_pool.max_nodes == 450, "EKS's nodes per group"


EKS_POOL = {"provider": "eks", "instanceTypes": ["m5.xlarge"]}
EKS_ENV = {"KATUNA_EKS_CLUSTER": "tuning", "KATUNA_EKS_SUBNETS": "subnet-a",
           "KATUNA_EKS_NODE_ROLE": "arn:aws:iam::123456789012:role/n"}


def test_an_eks_group_past_eks_nodes_per_group_is_refused_whatever_the_ceiling_naming_the_quota_setting():
    limits = Settings.from_env({**EKS_ENV, "KATUNA_MAX_POOL_NODES": "1000"}).limits
    assert problems(study_definition(name="pooled", nodePool={**EKS_POOL, "maxNodes": 451}), limits) == [
        "nodePool.maxNodes: expected an integer from 1 to 450: EKS's quota of nodes per managed node group "
        "(a larger group would be refused when it is created; where the account's quota is raised, set "
        "KATUNA_EKS_NODES_PER_GROUP to it)"]
    accepted = parse_study(study_definition(name="pooled", nodePool={**EKS_POOL, "maxNodes": 450}), limits)
    assert accepted.node_pool.max_nodes == 450
    assert parse_study(pooled({"maxNodes": 1_000}), limits).node_pool.max_nodes == 1_000, "GKE's own limit"
    assert problems(pooled({"maxNodes": 1_001}), Limits(pool_nodes=2_000)) == [
        "nodePool.maxNodes: expected an integer from 1 to 1000"]


def test_an_account_with_a_raised_eks_quota_gets_groups_of_that_size():
    """An operator whose account may have 600 nodes in a managed node group says so; a study may
    then ask for 600, and one left unsized is capped there rather than at AWS's default."""
    limits = Settings.from_env({**EKS_ENV, "KATUNA_EKS_NODES_PER_GROUP": "600", "KATUNA_MAX_POOL_NODES": "1000"}).limits
    assert limits.eks == EksQuotas(nodes_per_group=600, groups_per_cluster=30)
    asked = parse_study(study_definition(name="pooled", nodePool={**EKS_POOL, "maxNodes": 600}), limits)
    assert asked.node_pool.max_nodes == 600
    unsized = study_definition(name="pooled", parallelism=800, maxTrials=1_000, nodePool=EKS_POOL)
    assert parse_study(unsized, limits).node_pool.max_nodes == 600
    assert problems(study_definition(name="pooled", nodePool={**EKS_POOL, "maxNodes": 601}), limits) == [
        "nodePool.maxNodes: expected an integer from 1 to 600: EKS's quota of nodes per managed node group "
        "(a larger group would be refused when it is created; where the account's quota is raised, set "
        "KATUNA_EKS_NODES_PER_GROUP to it)"]


@pytest.mark.parametrize("variable", ["KATUNA_EKS_NODES_PER_GROUP", "KATUNA_EKS_GROUPS_PER_CLUSTER"])
@pytest.mark.parametrize("value", ["0", "-3", "many", "4.5"])
def test_an_eks_quota_that_is_not_a_positive_integer_is_refused_naming_it(variable: str, value: str):
    with pytest.raises(ValueError) as refused:
        Settings.from_env({**EKS_ENV, variable: value})
    assert str(refused.value) == f"{variable}: expected a positive integer, got {value!r}"


def test_the_pools_held_on_eks_are_bounded_by_the_accounts_quota_of_groups():
    with pytest.raises(ValueError) as refused:
        Settings.from_env({**EKS_ENV, "KATUNA_MAX_POOLS": "31"})
    assert str(refused.value) == (
        "KATUNA_MAX_POOLS: expected at most 30 with KATUNA_EKS_CLUSTER (EKS's quota of managed node groups per "
        "cluster; where the account's quota is raised, set KATUNA_EKS_GROUPS_PER_CLUSTER to it), got 31")
    raised = Settings.from_env({**EKS_ENV, "KATUNA_MAX_POOLS": "40", "KATUNA_EKS_GROUPS_PER_CLUSTER": "40"})
    assert (raised.limits.pools, raised.limits.eks.groups_per_cluster) == (40, 40)
    with pytest.raises(ValueError, match="KATUNA_MAX_POOLS: expected at most 40 "):
        Settings.from_env({**EKS_ENV, "KATUNA_MAX_POOLS": "41", "KATUNA_EKS_GROUPS_PER_CLUSTER": "40"})
    assert Settings.from_env({"KATUNA_MAX_POOLS": "41"}).limits.pools == 41, "only EKS has the quota"


def test_machine_types_the_service_does_not_allow_are_refused_naming_the_field():
    allowed = Limits(machine_types=("n2-standard-4", "m5.xlarge"))
    assert problems(pooled({"machineType": "a3-highgpu-8g"}), allowed) == [
        "nodePool.machineType: expected one of the machine types this service allows (n2-standard-4, m5.xlarge: "
        "KATUNA_POOL_MACHINE_TYPES), got a3-highgpu-8g"]
    assert problems(pooled({}), allowed) == [
        "nodePool.machineType: expected one of the machine types this service allows (n2-standard-4, m5.xlarge: "
        "KATUNA_POOL_MACHINE_TYPES); the default, e2-standard-4, is not one: set nodePool.machineType"]
    eks = study_definition(name="pooled", nodePool={"provider": "eks", "instanceTypes": ["m5.xlarge", "m6i.2xlarge"]})
    assert [p.split(":")[0] for p in problems(eks, allowed)] == ["nodePool.instanceTypes[1]"]
    assert parse_study(pooled({"machineType": "n2-standard-4"}), allowed).node_pool.machine_types == ("n2-standard-4",)
    assert parse_study(pooled({"machineType": "a3-highgpu-8g"})).node_pool, "no list: any machine type"


def test_node_pool_ceilings_come_from_the_environment():
    settings = Settings.from_env({"KATUNA_MAX_POOL_NODES": "20", "KATUNA_MAX_ACCELERATORS": "1",
                                  "KATUNA_MAX_POOLS": "3", "KATUNA_POOL_MACHINE_TYPES": "n2-standard-4, e2-standard-8"})
    assert settings.limits == Limits(pool_nodes=20, accelerators=1, pools=3,
                                     machine_types=("n2-standard-4", "e2-standard-8"))
    assert (Limits().pool_nodes, Limits().accelerators, Limits().pools, Limits().machine_types) == (100, 8, 10, ())
    with pytest.raises(ValueError, match="KATUNA_MAX_POOLS: expected a positive integer"):
        Settings.from_env({"KATUNA_MAX_POOLS": "0"})
    with pytest.raises(ValueError, match="KATUNA_MAX_POOLS: expected at most 30 with KATUNA_EKS_CLUSTER"):
        Settings.from_env({**EKS_ENV, "KATUNA_MAX_POOLS": "31"})
    assert Settings.from_env({**EKS_ENV, "KATUNA_MAX_POOLS": "30"}).limits.pools == 30


def test_inline_known_results_past_the_limit_are_refused_naming_it():
    known = [{"params": {"x": 0.5}, "value": 1.0}] * 1_001
    assert problems(study_definition(warmStart={"trials": known})) == [
        "warmStart.trials: expected at most 1,000 (set by KATUNA_MAX_WARM_START), got 1,001"]
    assert len(parse_study(study_definition(warmStart={"trials": known[:1_000]})).warm_start.trials) == 1_000
    limits = Settings.from_env({"KATUNA_MAX_WARM_START": "1001"}).limits
    assert limits == Limits(warm_start=1_001)
    assert len(parse_study(study_definition(warmStart={"trials": known}), limits).warm_start.trials) == 1_001


def grid(*parameters: dict) -> dict:
    definition = study_definition(algorithm={"name": "grid"}, parameters=list(parameters))
    definition["trialTemplate"]["command"] += [f"${{trialParameters.{p['name']}}}" for p in parameters]
    return definition


def test_a_grid_is_counted_without_being_listed():
    spec = parse_study(grid({"name": "x", "type": "float", "min": 0.0, "max": 1.0, "step": 0.25},
                            {"name": "n", "type": "int", "min": 1, "max": 100, "step": 3},
                            {"name": "c", "type": "categorical", "values": ["a", "b"]}))
    assert grid_size(spec.parameters) == 5 * 34 * 2


@pytest.mark.parametrize("parameters, points", [
    ([{"name": "x", "type": "int", "min": 0, "max": 10**6 - 1}] * 1 + [
      {"name": "y", "type": "int", "min": 0, "max": 10**6 - 1}], "1,000,000,000,000"),
    ([{"name": "x", "type": "float", "min": 0.0, "max": 1e20, "step": 1.0}], "100,000,000,000,000,000,001"),
])
def test_a_grid_past_the_limit_is_refused_without_being_listed(parameters: list, points: str):
    found = problems(grid(*parameters))
    assert found == [f"parameters: the grid has {points} points; expected at most 100,000 (KATUNA_MAX_GRID)"]


def test_a_grid_at_the_limit_is_accepted():
    spec = parse_study(grid({"name": "x", "type": "int", "min": 1, "max": 10}), Limits(grid=10))
    assert grid_size(spec.parameters) == 10
    with pytest.raises(InvalidStudy, match="the grid has 10 points; expected at most 9"):
        parse_study(grid({"name": "x", "type": "int", "min": 1, "max": 10}), Limits(grid=9))


def test_a_float_range_wider_than_a_float_is_refused():
    definition = study_definition()
    definition["parameters"][0].update(min=-1e308, max=1e308)
    found = problems(definition)
    assert len(found) == 1 and found[0].startswith("parameters[0].max: the range from min (-1e+308) to max (1e+308) "
                                                   "is wider than a float can hold"), found


def test_a_float_step_too_fine_for_optuna_is_refused_naming_it():
    definition = study_definition()
    definition["parameters"][0].update(min=0.0, max=1e20, step=1e-10)
    found = problems(definition)
    assert len(found) == 1 and found[0].startswith("parameters[0].step: Optuna cannot sample this range"), found


@pytest.mark.parametrize("algorithm", ["random", "tpe", "cmaes", "qmc"])
def test_the_widest_accepted_float_range_is_sampled(algorithm: str):
    definition = study_definition(algorithm={"name": algorithm, "seed": 1})
    definition["parameters"][0].update(min=-8e307, max=8e307)
    spec = parse_study(definition)
    study = optuna.create_study(sampler=build_sampler(spec.algorithm, spec.parameters, 0))
    for number in range(12):
        trial = sample(study, spec.parameters)
        assert -8e307 <= trial.params["x"] <= 8e307
        study.tell(trial, float(number))


def test_a_filter_is_matched_in_linear_time():
    """``(a|a)*`` backtracks exponentially in Python's engine; RE2 answers at once."""
    definition = study_definition(metricsCollector={"filters": [r"(loss)=((a|a)*c)"]})
    spec = parse_study(definition)
    line = "loss=" + "a" * 50_000 + "\n"
    assert parse_text([line], ["loss"], spec.metrics_collector.filters) == []


def test_a_metric_name_past_the_text_limit_is_refused():
    definition = study_definition(objective={"metric": "loss" * 1_025, "direction": "minimize"})
    found = [p for p in problems(definition) if p.startswith("objective: ")]
    assert found == [f"objective: expected metric names of at most 4,096 characters (set by KATUNA_MAX_TEXT), got "
                     f"{'loss' * 1_025!r:.80}, of 4,100"]


def test_a_filter_past_the_text_limit_is_refused():
    definition = study_definition(metricsCollector={"filters": ["([a-z]+)=(\\d+)" + "x" * 5_000]})
    assert any(p.startswith("metricsCollector.filters[0]: expected at most 4,096 characters") for p in problems(definition))


@pytest.mark.slow
def test_a_service_refuses_past_its_configured_limits_and_stores_nothing(tmp_path: Path):
    service = Service(tmp_path, workers=1, KATUNA_MAX_PARALLELISM="2", KATUNA_MAX_GRID="3",
                      KATUNA_MAX_POOL_NODES="5")
    try:
        over = study_definition(name="over", parallelism=3, maxTrials=5)
        status, answer = service.json("POST", "/studies", body=json.dumps(over),
                                      headers={"Content-Type": "application/json"})
        assert status == 422, answer
        assert answer["problems"] == [{"path": "parallelism", "message":
                                       "expected at most 2 (set by KATUNA_MAX_PARALLELISM), got 3"}]
        wide = grid({"name": "x", "type": "int", "min": 1, "max": 4})
        status, answer = service.json("POST", "/studies", body=json.dumps(wide),
                                      headers={"Content-Type": "application/json"})
        assert status == 422 and "expected at most 3 (KATUNA_MAX_GRID)" in answer["problems"][0]["message"]
        large = pooled({"maxNodes": 6})
        status, answer = service.json("POST", "/studies", body=json.dumps(large),
                                      headers={"Content-Type": "application/json"})
        assert status == 422, answer
        assert answer["problems"] == [{"path": "nodePool.maxNodes", "message":
                                       "expected at most 5 (set by KATUNA_MAX_POOL_NODES), got 6"}]
        assert service.json("GET", "/studies")[1] == []
    finally:
        service.close()


def test_the_number_of_filters_is_bounded_naming_the_field_and_the_limit():
    filters = [rf"(m{i})=([0-9.]+)" for i in range(17)]
    definition = study_definition(metricsCollector={"filters": filters})
    assert problems(definition) == ["metricsCollector.filters: expected at most 16 (set by KATUNA_MAX_FILTERS), got 17"]
    definition = study_definition(metricsCollector={"filters": filters[:16]})
    assert len(parse_study(definition).metrics_collector.filters) == 16
    assert Settings.from_env({"KATUNA_MAX_FILTERS": "2"}).limits == Limits(filters=2)


COSTLY_FILTER = r"((?:[ab]{0,30}){0,30})=(x)"
"""26 characters RE2 compiles to 1,839 instructions, which cost the service about 19 s of CPU
per MiB of a trial's output (``loss`` and a thousand random ``a`` and ``b`` a line)."""


def test_filters_whose_search_costs_more_than_the_limit_per_byte_of_output_are_refused_naming_it():
    definition = study_definition(metricsCollector={"filters": [COSTLY_FILTER]})
    assert problems(definition) == [
        "metricsCollector.filters: expected regular expressions RE2 compiles to at most 1,000 instructions in all "
        "(set by KATUNA_MAX_FILTER_PROGRAM), got 1,839 (filters[0]: 1,839): every line of output naming a metric is "
        "searched with each filter, at a cost that grows with its program; write simpler filters (no nested or long "
        "counted repetitions)"]
    lesser = [r"(loss)=((?:[ab]{0,10}){0,10})"] * 5
    assert "got 1,110 (filters[0]: 222, filters[1]: 222, filters[2]: 222, filters[3]: 222, filters[4]: 222)" in \
        problems(study_definition(metricsCollector={"filters": lesser}))[0]
    assert parse_study(study_definition(metricsCollector={"filters": lesser[:4]})).metrics_collector.filters
    katib_like = [r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"] * 16
    assert len(parse_study(study_definition(metricsCollector={"filters": katib_like})).metrics_collector.filters) == 16
    assert Settings.from_env({"KATUNA_MAX_FILTER_PROGRAM": "2000"}).limits == Limits(filter_program=2_000)
    assert parse_study(definition, Limits(filter_program=2_000)).metrics_collector.filters == (COSTLY_FILTER,)


def test_each_studys_filters_are_compiled_once_not_for_every_line_of_its_output():
    """Twenty studies of sixteen filters each, their output read a line at a time and
    interleaved: after the first line of each, no line compiles a pattern again."""
    studies = [[rf"(s{s}m{i})=([0-9.]+)" for i in range(16)] for s in range(20)]
    compile_filter.cache_clear()
    for filters in studies:
        parse_text(["s0m0=1\n"], ["s0m0"], filters)
    compiled = compile_filter.cache_info().misses
    for line in range(5):
        for s, filters in enumerate(studies):
            assert parse_text([f"s{s}m3={line}\n"], [f"s{s}m3"], filters)[0].value == line
    assert compile_filter.cache_info().misses == compiled == 320


def test_the_number_of_objectives_and_of_metrics_is_bounded_naming_the_field_and_the_limit():
    many = [{"name": f"m{i}", "direction": "minimize"} for i in range(9)]
    definition = study_definition(objective={"metrics": many})
    assert "objective.metrics: expected at most 8 (set by KATUNA_MAX_OBJECTIVES), got 9" in problems(definition)
    definition = study_definition(objective={"metrics": many[:8]})
    assert len(parse_study(definition).objectives) == 8
    extra = [f"extra{i}" for i in range(64)]
    definition = study_definition(objective={"metric": "loss", "direction": "minimize", "additionalMetrics": extra})
    assert problems(definition) == ["objective.additionalMetrics: expected at most 64 (set by KATUNA_MAX_METRICS), "
                                    "got 65"]
    definition = study_definition(objective={"metric": "loss", "direction": "minimize", "additionalMetrics": extra[:63]})
    assert len(parse_study(definition).metric_names) == 64
    assert Settings.from_env({"KATUNA_MAX_OBJECTIVES": "2", "KATUNA_MAX_METRICS": "3"}).limits == Limits(
        objectives=2, metrics=3)


LONG_NAMES = [{"name": f"p{i}-" + "n" * 4_000, "type": "float", "min": 0.0, "max": 1.0} for i in range(200)]
"""200 parameters of 4,000-character names: 800 KB, under the body limit and every bound."""


@pytest.mark.parametrize("case, fields", [
    ("an unknown name in each of an initial trial's keys", {
        "parameters": LONG_NAMES, "maxTrials": 10, "initialTrials": [{f"u{k}": 0.5 for k in range(200)}]}),
    ("an unknown name in each of a known result's params", {
        "parameters": LONG_NAMES, "warmStart": {"trials": [{"params": {f"u{k}": 0.5}, "value": 1.0}
                                                           for k in range(200)]}}),
    ("a value no parent lists in each of many conditions", {
        "parameters": [{"name": "a", "type": "categorical", "values": ["v" * 100 + str(i) for i in range(5_000)]},
                       *({"name": f"c{i}", "type": "float", "min": 0.0, "max": 1.0, "when": {"a": "none"}}
                         for i in range(200))]}),
])
def test_a_study_of_many_problems_each_listing_what_it_expected_is_refused_in_bounded_memory(case: str, fields: dict):
    """A 1 MiB study could hold tens of thousands of problems each listing every parameter name
    (or every value of a parameter) it expected: 17,000 unknown names beside these 200 long ones
    built 14 GB of messages, past the memory of a `katuna serve` pod, however few of them its
    answer gives. Each list is cut short, saying how long it is."""
    definition = study_definition("listed", **fields)
    definition["trialTemplate"]["command"] += [f"${{trialParameters.{p['name']}}}" for p in definition["parameters"]]
    tracemalloc.start()
    try:
        with pytest.raises(InvalidStudy) as refused:
            parse_study(definition)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    messages = [p.message for p in refused.value.problems]
    assert refused.value.count >= 200 and len(messages) == 100, case
    assert max(map(len, messages)) < 1_000, case
    assert "in all)" in messages[0], messages[0][-80:]
    assert peak < 40_000_000, f"{case}: {peak:,} bytes at the peak"


def test_a_short_list_of_what_was_expected_is_written_whole():
    assert listed(["a", "b"]) == "a, b" and listed([]) == "none"
    assert listed([f"name{i}" for i in range(100)], most=20) == "name0, name1, name2, … (100 in all)"
    assert listed(["x" * 50], most=10) == "xxxxxxxxxx…"


def _calls(work: Callable[[], object]) -> int:
    """How many Python functions ``work`` calls: its work, however fast the machine runs it."""
    count = 0

    def counted(frame, event, arg):
        nonlocal count
        count += event == "call"

    sys.setprofile(counted)
    try:
        work()
    finally:
        sys.setprofile(None)
    return count


def test_where_a_value_is_among_a_long_list_of_values_is_found_without_comparing_each():
    """A 1 MiB study could list 10,000 values of a parameter and ask where each of 150,000 others
    is (its conditions' values; its initial trials' and known results' too): compared one by one,
    1.5 billion comparisons, a quarter of an hour of the service's CPU for one request."""
    values = [f"v{i}" for i in range(2_000)]
    definition = study_definition("conditions", parameters=[
        {"name": "a", "type": "categorical", "values": values},
        *({"name": f"c{i}", "type": "float", "min": 0.0, "max": 1.0, "when": {"a": [f"w{k}" for k in range(100)]}}
          for i in range(10))], initialTrials=[{"a": value} for value in values[-500:]], maxTrials=1_000)
    definition["trialTemplate"]["command"] = ["python", "t.py", *(f"${{trialParameters.{p['name']}}}"
                                                                  for p in definition["parameters"])]

    def refused() -> None:
        with pytest.raises(InvalidStudy, match=r'parameters\[1\]\.when\.a: expected values among "v0", "v1"'):
            parse_study(definition)

    assert _calls(refused) < 200_000


@pytest.mark.slow
def test_a_service_holds_at_most_its_studies_not_ended_and_takes_one_more_once_one_ends(tmp_path: Path):
    """Each study not ended costs the service work at every tick, whether its trials run or wait:
    one more than ``KATUNA_MAX_STUDIES`` is refused (409, nothing stored), and taken once one ends."""
    service = Service(tmp_path, workers=1, KATUNA_MAX_STUDIES="2", KATUNA_MAX_RUNNING_TRIALS="2")
    headers = {"Content-Type": "application/json"}
    try:
        for name in ("first", "second"):
            service.submit(study_definition(name=name, mode="hang", maxTrials=2, parallelism=1))
        status, answer = service.json("POST", "/studies", headers=headers,
                                      body=json.dumps(study_definition(name="third", maxTrials=1, parallelism=1)))
        assert status == 409, answer
        assert answer["error"] == "too_many_studies" and answer["retryable"] is False
        assert answer["problems"] == [{"path": "name", "message": (
            "the database holds 2 studies that have not ended, the most it may hold at once (set by "
            "KATUNA_MAX_STUDIES); submit the study again once one ends, or stop or delete one")}]
        assert service.json("GET", "/studies/third")[0] == 404
        assert service.request("POST", "/studies/first/stop")[0] == 200
        service.submit(study_definition(name="third", maxTrials=1, parallelism=1))
        assert service.wait_for("third")["status"] == "completed"
    finally:
        service.close()


def test_an_ended_study_is_not_restarted_past_the_studies_not_ended_the_database_may_hold(embedded, tmp_path: Path):
    """A restart (an ended study's budget raised) makes it a study not ended again: refused
    past ``KATUNA_MAX_STUDIES`` as a new study is, the study left as it ended."""
    one = study_definition(name="one", maxTrials=1, parallelism=1)
    run_study(embedded, one, tmp_path)
    held = replace(embedded.deps, limits=Limits(studies=1))
    other = study_definition(name="other")
    store_study(held, parse_study(other), other)
    raised = {**one, "maxTrials": 2}
    with pytest.raises(TooManyStudies, match="KATUNA_MAX_STUDIES"):
        store_or_restart(held, parse_study(raised), raised)
    assert embedded.store.get_study("one").status == "completed"
