"""Which fields a study submitted under a stored study's name changes, as its conflict names them."""

from __future__ import annotations

import sys

from conftest import study_definition

from functions.core.conflicts import changed_paths, study_conflict
from functions.core.records import StudyRecord
from functions.core.validate import parse_study


def stored(definition: dict) -> StudyRecord:
    return StudyRecord(parse_study(definition), definition, "/tmp", "uid-1")


def test_paths_go_into_mappings_by_key_and_into_lists_of_the_same_length_by_index():
    before = {"a": 1, "b": {"c": [1, {"d": 2}], "e": "x"}, "gone": 0, "list": [1, 2]}
    after = {"a": 1.0, "b": {"c": [1, {"d": 3}], "e": "y"}, "list": [1, 2, 3], "new": 0}
    assert changed_paths(before, after) == ["b.c[1].d", "b.e", "gone", "list", "new"]
    assert changed_paths(before, before) == []


def test_the_conflict_names_the_changed_fields_as_written_and_how_to_go_on():
    edited = study_definition(maxTrials=5, objective={"metric": "loss", "direction": "minimize", "goal": 0.1})
    edited["parameters"][0]["min"] = 0.5
    conflict = study_conflict(stored(study_definition(maxTrials=4)), parse_study(edited), edited)
    assert conflict.changed == ("objective.goal", "parameters[0].min", "maxTrials")
    assert str(conflict) == ("study 'demo' already exists with a different definition (changed: objective.goal, "
                             "parameters[0].min, maxTrials); give it another name, or delete the stored study and "
                             "its trials first (katuna delete demo, or DELETE /studies/demo)")


def test_where_only_what_the_definition_reads_changed_the_normalised_studys_fields_are_named():
    definition = study_definition(maxTrials=4)
    record = StudyRecord(parse_study(definition), study_definition(maxTrials=4), "/tmp", "uid-1")
    conflict = study_conflict(record, parse_study(study_definition(maxTrials=4, parallelism=1)), definition)
    assert conflict.changed == ("parallelism",)


def test_a_long_list_of_changes_is_shortened_in_the_message_only():
    def wide(high: float) -> dict:
        definition = study_definition(parameters=[{"name": f"p{i}", "type": "float", "min": 0.0, "max": high}
                                                  for i in range(10)])
        definition["trialTemplate"]["command"] = [sys.executable, "-c", "print('loss=1')",
                                                  *(f"${{trialParameters.p{i}}}" for i in range(10))]
        return definition

    conflict = study_conflict(stored(wide(1.0)), parse_study(wide(2.0)), wide(2.0))
    assert conflict.changed == tuple(f"parameters[{i}].max" for i in range(10))
    assert "parameters[7].max and 2 more); give it" in str(conflict)
