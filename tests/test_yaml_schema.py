"""A study means the same whoever reads its YAML: a plain scalar YAML 1.1 (PyYAML, and kubectl
for most forms) and YAML 1.2 read as different values is refused by its path, saying to quote
it; what both read alike is read; and katuna writes YAML back that reads as it was."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from test_cli import here

from functions.core import bounded_yaml
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study, parse_text

# (a plain scalar, its reading in YAML 1.1, and in YAML 1.2)
AMBIGUOUS = {
    "sexagesimal": ("1:30", "90", 'the text "1:30"'),
    "octal": ("010", "8", "10"),
    "binary": ("0b101", "5", 'the text "0b101"'),
    "yes": ("yes", "true", 'the text "yes"'),
    "Off": ("Off", "false", 'the text "Off"'),
    "underscore": ("1_000", "1000", 'the text "1_000"'),
    "underscore in a float": ("1_0.5", "10.5", 'the text "1_0.5"'),
    "leading zero": ("08", 'the text "08"', "8"),
    "0o octal": ("0o17", 'the text "0o17"', "15"),
    "signed fraction without a digit": ("-.5", 'the text "-.5"', "-0.5"),
}


@pytest.mark.parametrize("text,old,new", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
def test_a_scalar_yaml_1_1_and_1_2_read_differently_is_refused_by_its_path(text: str, old: str, new: str):
    with pytest.raises(InvalidStudy) as caught:
        parse_text(f"name: s\nparameters:\n- name: c\n  type: categorical\n  values: [a, {text}]\n")
    [problem] = caught.value.problems
    assert problem.path == "parameters[0].values[1]"
    assert problem.message.startswith(f"{text} (line 5, column 15) is {old} in YAML 1.1 but {new} in YAML 1.2; "
                                      f'quote it ("{text}") for the text, or write ')


def test_a_key_yaml_1_1_reads_as_a_boolean_is_refused_naming_its_mapping():
    with pytest.raises(InvalidStudy) as caught:
        parse_text("name: s\ntrialTemplate:\n  env:\n    on: x\n")
    [problem] = caught.value.problems
    assert problem.path == "trialTemplate.env"
    assert problem.message.startswith("the key on (line 4, column 5) is true in YAML 1.1")


def test_every_scalar_read_differently_is_listed_at_once_in_the_documents_order():
    """Not one a try, each fix showing the next: a study is refused with all of them, as with
    any other problems."""
    with pytest.raises(InvalidStudy) as caught:
        parse_text("name: s\nmaxTrials: 1_000\nparameters:\n- {name: c, type: categorical, values: [yes, no]}\n"
                   "trialTemplate:\n  env: {on: x}\n")
    assert [(p.path, p.message.partition(" (")[0]) for p in caught.value.problems] == [
        ("maxTrials", "1_000"), ("parameters[0].values[0]", "yes"), ("parameters[0].values[1]", "no"),
        ("trialTemplate.env", "the key on")]


def test_quoted_scalars_and_what_both_versions_read_alike_are_read():
    data = bounded_yaml.load('a: ["1:30", "010", "yes", \'1_000\', 0x1F, 1e3, -1.5, .inf, ~, true, False, 0, -7, '
                             "2024-01-01, y, =]")
    assert data["a"][:9] == ["1:30", "010", "yes", "1_000", 31, 1000.0, -1.5, math.inf, None]
    assert data["a"][9:] == [True, False, 0, -7, "2024-01-01", "y", "="]


def test_a_character_yaml_does_not_take_is_named_by_its_place_not_by_the_parsers_excerpt():
    with pytest.raises(InvalidStudy) as caught:
        parse_text("name: a\x00b\n")
    assert [p.message for p in caught.value.problems] == [
        "not valid YAML or JSON: the character #x0000 (special characters are not allowed) at character 8 of the text"]


def test_json_is_read_as_it_always_was():
    written = json.dumps({"a": [1, 2.5, -0.0, 1e300, True, None, "010", "yes", "1:30"]})
    assert bounded_yaml.load(written) == json.loads(written)


def test_katuna_convert_writes_yaml_that_reads_back_as_the_study(tmp_path: Path):
    """A value YAML 1.1 would write plain though a reader takes it for a number (``08``,
    ``1e3``, ``-.5``) is quoted, so the converted study is the study."""
    values = ["08", "0o17", "1e3", "-.5", "yes", "1:30", "plain"]
    definition = study_definition(name="quoted", parameters=[
        {"name": "x", "type": "float", "min": -5.0, "max": 5.0},
        {"name": "c", "type": "categorical", "values": values}])
    definition["trialTemplate"]["command"].append("--c=${trialParameters.c}")
    (tmp_path / "study.json").write_text(json.dumps(definition))
    converted = here("convert", "study.json", cwd=tmp_path).stdout
    assert load_study(converted)[0] == load_study(json.dumps(definition))[0]
    assert yaml.safe_load(converted)["parameters"][1]["values"] == values
