"""A problem of a study file is listed with the line its field is written on."""

from __future__ import annotations

import pytest

from functions.core.errors import Problem
from functions.core.field_lines import field_lines, located, steps

STUDY = """\
name: demo
objective:
  metric: loss
  direction: down
parameters:
  - name: x
    type: float
  - {name: y, typo: 1}
trialTemplate:
  trialSpec:
    metadata:
      annotations:
        example.com/owner: me
shared: &common {a: 1}
again: *common
"""


@pytest.mark.parametrize(("path", "line"), [
    ("objective.direction", 4),
    ("parameters[0].type", 7),
    ("parameters[1].typo", 8),
    ("parameters[1]", 8),
    ("parameters[0].max", 6),  # not written: the item it belongs in
    ("objective.goal", 2),  # not written: the mapping it belongs in
    ('trialTemplate.trialSpec.metadata.annotations["example.com/owner"]', 13),
    ("again.a", 14),  # an alias: where its anchor's value is written
])
def test_a_problem_is_listed_with_the_line_of_its_field_or_of_the_nearest_written_above_it(path: str, line: int):
    assert located(Problem(path, "wrong"), field_lines(STUDY)) == f"{path} (line {line}): wrong"


@pytest.mark.parametrize("path", ["", "maxTrials", "--params x"])
def test_a_problem_of_no_written_field_is_listed_as_it_is(path: str):
    problem = Problem(path, "required")
    assert located(problem, field_lines(STUDY)) == str(problem)


def test_a_json_study_has_its_lines_too_and_a_message_naming_its_line_is_not_given_another():
    lines = field_lines('{\n  "name": "demo",\n  "objective": {\n    "metric": "loss"\n  }\n}\n')
    assert located(Problem("objective.metric", "wrong"), lines) == "objective.metric (line 4): wrong"
    quoted = Problem("name", "read differently (line 2, column 11)")
    assert located(quoted, lines) == str(quoted)


def test_text_that_is_no_yaml_has_no_lines():
    assert field_lines("a: [1\n") == {}


def test_a_path_reads_as_keys_and_indexes_a_quoted_key_whole():
    assert steps('spec.containers[0].env["A.B/c"].value') == ("spec", "containers", 0, "env", "A.B/c", "value")


def test_a_document_written_on_one_line_gives_no_line():
    """JSON a program wrote on one line: every field is on line 1, which tells nothing."""
    text = '{"name": "demo", "objective": {"metric": "loss", "direction": "down"}}\n'
    assert field_lines(text) == {}
    assert located(Problem("objective.direction", "wrong"), field_lines(text)) == "objective.direction: wrong"


def test_a_quoted_key_that_is_no_json_string_ends_the_path_where_it_stands():
    """A key the file wrote with a backslash that JSON does not take (``bad["\\q"]``): the path
    reads up to it, and the problem is placed on its nearest written field above."""
    assert steps('spec["\\q"].x') == ("spec",)
    text = 'name: demo\nspec:\n  bad: 1\n'
    assert located(Problem('spec["\\q"]', "unknown"), field_lines(text)) == 'spec["\\q"] (line 2): unknown'
