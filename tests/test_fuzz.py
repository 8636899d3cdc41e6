"""Property-based fuzzing of the parsers that read untrusted input: study definitions (native,
Katib Experiment, StudyJob), event data and metric lines. Each may refuse its input, only ever
with katuna's own error, and never crashes, hangs or accepts what the validator forbids.

``KATUNA_FUZZ_EXAMPLES`` sets the examples per property (300 by default; see docs/reliability.md)."""

from __future__ import annotations

import copy
import json
import os
import re

from conftest import study_definition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile import KATIB

from functions.core.errors import InvalidStudy
from functions.core.events import ROUTES, data_problems
from functions.core.formats import load_study
from functions.core.metrics import KATIB_DEFAULT_FILTER, Observation, parse_json_lines, parse_text
from functions.core.spec import Study
from functions.core.validate import DNS1123_LABEL, parse_study

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


@FUZZ
@given(values)
def test_any_data_is_a_study_or_a_validation_error(data):
    _accepted_or_refused(data)


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
    ["study", "uid", "trial", "attempt", "outcome", "exitCode", "message", "step", "value", "status", "reason"]),
    scalars, max_size=11))
def test_event_data_checks_name_each_bad_field_and_never_raise(event_type, data):
    for problem in data_problems(event_type, data):
        assert re.match(r"^data\.\w+: ", problem)


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
    if re.search(KATIB_DEFAULT_FILTER.replace(r"([\w|-]+)", re.escape(name)), noise):
        return  # the noise itself reports the metric
    found = [o.value for o in parse_text([line], [name]) if o.metric == name]
    assert found and found[-1] == value
    json_found = [o.value for o in parse_json_lines([json.dumps({name: value}) + "\n"], [name])]
    assert json_found == [value]
