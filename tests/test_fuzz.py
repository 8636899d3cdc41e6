"""Property-based fuzzing of the parsers that read untrusted input: study definitions (native,
Katib Experiment, StudyJob), event data and metric lines. Each may refuse its input, only ever
with katuna's own error, and never crashes, hangs or accepts what the validator forbids.

``KATUNA_FUZZ_EXAMPLES`` sets the examples per property (300 by default; see docs/reliability.md)."""

from __future__ import annotations

import copy
import json
import math
import os
import re

import optuna
import pytest
from conftest import study_definition
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_hostile import KATIB

from functions.core.errors import InvalidStudy
from functions.core.event_data import data_problems
from functions.core.events import ROUTES
from functions.core.formats import load_study
from functions.core.grid import grid_size
from functions.core.limits import Limits
from functions.core.metrics import KATIB_DEFAULT_FILTER, Observation, parse_json_lines, parse_text
from functions.core.naming import DNS1123_LABEL
from functions.core.samplers import build_sampler
from functions.core.space import sample
from functions.core.spec import Study
from functions.core.validate import parse_study

FUZZ = settings(max_examples=int(os.environ.get("KATUNA_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=20)


def _paths(node, prefix=()):
    """Every path into a nested definition, leaves and branches."""
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*prefix, index))


@st.composite
def mutated_definitions(draw):
    """A valid native study or Katib Experiment with a few fields replaced, added or removed."""
    definition = copy.deepcopy(draw(st.sampled_from([study_definition(name="fuzz"), KATIB])))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(definition) if p]
        path = draw(st.sampled_from(paths))
        parent = definition
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(values)
        else:
            parent.append(draw(values))
        if not isinstance(definition, dict):
            break
    return definition


def _accepted_or_refused(data) -> Study | None:
    try:
        study = parse_study(data)
    except InvalidStudy as exc:
        assert exc.problems and all(isinstance(p.path, str) and p.message for p in exc.problems)
        return None
    assert isinstance(study, Study)
    return study


@pytest.mark.slow
@FUZZ
@given(values)
def test_any_data_is_a_study_or_a_validation_error(data):
    _accepted_or_refused(data)


@pytest.mark.slow
@FUZZ
@given(mutated_definitions())
def test_a_mutated_definition_is_a_valid_study_or_a_validation_error(definition):
    try:
        study, _ = load_study(json.dumps(definition))
    except InvalidStudy as exc:
        assert exc.problems
        return
    assert DNS1123_LABEL.fullmatch(study.name) and len(study.name) <= 63
    assert study.parameters and all(p.low is None or p.low <= p.high for p in study.parameters)
    assert study.parallelism >= 1 if study.parallelism is not None else True


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_a_study_or_a_validation_error(text):
    try:
        load_study(text)
    except InvalidStudy as exc:
        assert exc.problems


@FUZZ
@given(st.sampled_from(sorted(ROUTES)), st.dictionaries(st.sampled_from(
    ["study", "uid", "trial", "attempt", "outcome", "exitCode", "message", "step", "value", "status", "reason",
     "restarts"]), scalars, max_size=12))
def test_event_data_checks_name_each_bad_field_and_never_raise(event_type, data):
    for problem in data_problems(event_type, data):
        assert re.match(r"^data\.\w+: ", problem)


@pytest.mark.slow
@FUZZ
@given(st.lists(st.one_of(st.text(max_size=200), st.from_regex(r"[\w|-]{1,8} ?= ?[-+.eE0-9nainf]{0,12}")),
                max_size=20), st.lists(st.from_regex(r"[\w|-]{1,12}", fullmatch=True),
                                                             min_size=1, max_size=3))
def test_metric_parsing_never_raises_on_any_output(lines, metrics):
    for observation in parse_text(lines, metrics) + parse_json_lines(lines, metrics):
        assert isinstance(observation, Observation) and observation.metric in metrics
        assert isinstance(observation.value, float)


@FUZZ
@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,15}", fullmatch=True),  # RE2's \w is ASCII, as in Katib
       st.floats(allow_nan=False, allow_infinity=False, width=64),
       st.text(alphabet=st.characters(blacklist_categories=["Cs", "Zl", "Zp", "Cc"]), max_size=30))
def test_a_reported_value_is_read_back_exactly_among_noise(name, value, noise):
    line = f"noise {noise!r} ;; {name}={value!r}\n"
    assume(not re.search(KATIB_DEFAULT_FILTER.replace(r"([\w|-]+)", re.escape(name)), noise))  # noise reporting it
    found = [o.value for o in parse_text([line], [name]) if o.metric == name]
    assert found and found[-1] == value
    json_found = [o.value for o in parse_json_lines([json.dumps({name: value}) + "\n"], [name])]
    assert json_found == [value]


LIMITS = Limits(parallelism=20, trials=1_000, grid=500, duration=3_600.0, attempts=10, setting=1_000)
"""Small limits, so that values at and past each bound are drawn often."""


def _around(bound: int) -> st.SearchStrategy[int]:
    """Integers near ``bound`` (at it, just past it, far past it) and anywhere below."""
    return st.one_of(st.integers(bound - 2, bound + 2), st.integers(1, bound), st.sampled_from([10**9, 10**30, 2**53 + 1]))


@st.composite
def bounded_definitions(draw):
    """A native study whose counts, durations, grid and float bounds sit at, inside or past the limits."""
    definition = study_definition(name="fuzz", parallelism=draw(_around(LIMITS.parallelism)),
                                  maxTrials=draw(_around(LIMITS.trials)), maxFailedTrials=draw(_around(LIMITS.trials)))
    if draw(st.booleans()):
        definition["timeBudget"] = draw(st.one_of(_around(int(LIMITS.duration)), st.floats(0.1, 1e300)))
    definition["trialTemplate"]["maxAttempts"] = draw(_around(LIMITS.attempts))
    low = draw(st.floats(allow_nan=False, allow_infinity=False))
    high = draw(st.one_of(st.floats(min_value=low, allow_infinity=False), st.just(-low), st.just(low + 1.0)))
    definition["parameters"][0].update(min=low, max=high)
    if draw(st.booleans()):
        definition["algorithm"] = {"name": "grid"}
        definition["parameters"][0]["step"] = draw(st.sampled_from([1e-300, 1e-12, 0.01, 1.0, 1e300]))
    return definition


@pytest.mark.slow
@FUZZ
@given(bounded_definitions())
def test_a_study_is_accepted_exactly_within_the_limits(definition):
    try:
        study = parse_study(definition, LIMITS)
    except InvalidStudy as exc:
        assert exc.problems and all(p.path and p.message for p in exc.problems)
        return
    assert 1 <= study.parallelism <= min(LIMITS.parallelism, study.max_trials)
    assert study.max_trials <= LIMITS.trials and study.max_failed_trials <= LIMITS.trials
    assert study.time_budget is None or study.time_budget <= LIMITS.duration
    assert study.trial_template.max_attempts <= LIMITS.attempts
    assert all(math.isfinite(p.high - p.low) for p in study.parameters if p.type == "float")
    if study.algorithm.name == "grid":
        assert grid_size(study.parameters) <= LIMITS.grid


@pytest.mark.slow
@FUZZ
@given(st.sampled_from(["tpe", "cmaes", "random", "nsga2", "qmc"]), st.dictionaries(
    st.sampled_from(["n_startup_trials", "n_ei_candidates", "gamma", "prior_weight", "consider_prior", "popsize",
                     "sigma0", "population_size", "mutation_prob", "scramble", "qmc_type", "restart_strategy"]),
    st.one_of(scalars, st.sampled_from(["0.25", "5", "abc", "true", "-3", "1e400", "halton", "ipop"])), max_size=3))
def test_accepted_sampler_settings_build_a_sampler_that_suggests(algorithm, settings_):
    """A study either names the setting that is wrong, or its sampler suggests its first trials."""
    definition = study_definition(name="fuzz", algorithm={"name": algorithm, "seed": 1, "settings": settings_})
    try:
        study = parse_study(definition, LIMITS)
    except InvalidStudy as exc:
        assert all(p.path.startswith("algorithm.settings") for p in exc.problems), exc.problems
        return
    optuna_study = optuna.create_study(sampler=build_sampler(study.algorithm, study.parameters, 0))
    for number in range(3):
        optuna_study.tell(sample(optuna_study, study.parameters), float(number))


@FUZZ
@given(st.text(alphabet="()[]{}*+?|.\\^$wda=0-9s", max_size=30))
def test_a_filter_is_refused_or_matched_without_backtracking(pattern):
    definition = study_definition(name="fuzz", metricsCollector={"filters": [pattern]})
    try:
        study = parse_study(definition, LIMITS)
    except InvalidStudy as exc:
        assert [p.path for p in exc.problems] == ["metricsCollector.filters[0]"]
        return
    for observation in parse_text(["loss=" + "a" * 5_000 + "=1 " * 1_000], ["loss"], study.metrics_collector.filters):
        assert observation.metric == "loss"
