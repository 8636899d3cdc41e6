"""A study whose trials keep failing to start for its own image stops, saying why; one whose
image a trial's parameters make, or that had a trial complete, goes on."""

from __future__ import annotations

from conftest import study_definition

from functions.core.records import Counts, TrialRecord
from functions.core.start_failures import image_cause, reason, unstartable
from functions.core.validate import parse_study

IMAGE = "registry.example.com/team/trainer:v2"


def _template(image: str = IMAGE):
    definition = study_definition()
    definition["trialTemplate"]["image"] = image
    return parse_study(definition).trial_template


def _failed(number: int, image: str = IMAGE, waited: str = "ImagePullBackOff") -> TrialRecord:
    message = f'its pod demo-{number}-x: container trial: {waited}: ...; it waited past the start allowance of 600s'
    return TrialRecord("demo", number, {}, state="FAIL", reason=reason(message, image_cause(image, unparsed=False)))


def test_three_trials_that_could_not_pull_the_studys_image_stop_the_study():
    trials = [_failed(0), _failed(1, waited="ErrImagePull"), _failed(2)]
    assert unstartable(_template(), Counts(failed=2), trials[:2]) is None, "two may be bad luck"
    why = unstartable(_template(), Counts(failed=3, running=2), trials)
    assert why is not None and why.startswith(
        f'every trial could not start: image "{IMAGE}" cannot be pulled (3 trials, each after waiting for it)')
    assert "submit the study again" in why


def test_an_image_of_a_trialspec_is_the_studys_own_too():
    definition = study_definition()
    definition["trialTemplate"] = {"trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
        "spec": {"containers": [{"name": "trial", "image": IMAGE, "command": ["train", "${trialParameters.x}"]}]}}}}}
    template = parse_study(definition).trial_template
    assert unstartable(template, Counts(failed=3), [_failed(0), _failed(1), _failed(2)]) is not None


def test_a_study_goes_on_after_a_completed_trial_a_different_cause_or_an_image_its_parameters_make():
    trials = [_failed(0), _failed(1), _failed(2)]
    assert unstartable(_template(), Counts(failed=3, complete=1), trials) is None
    assert unstartable(_template(), Counts(failed=3), [*trials[:2], _failed(2, image="other:1")]) is None
    exited = TrialRecord("demo", 2, {}, state="FAIL", reason="exited with code 1; last lines:\n...")
    assert unstartable(_template(), Counts(failed=3), [*trials[:2], exited]) is None
    made = "registry.example.com/team/trainer:${trialParameters.x}"
    assert unstartable(_template(made), Counts(failed=3), trials) is None, "the image is a trial's, not the study's"


def test_a_reason_without_a_cause_reads_as_before():
    assert reason("'no-such-program' (No such file or directory)", None) == \
        "could not start 'no-such-program' (No such file or directory)"
