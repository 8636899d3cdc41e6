"""A study whose trials keep failing to start for its own image, or for a Secret or ConfigMap
its own template reads that is missing, stops, saying why and what to do; one whose image or
object a trial's parameters make, or that had a trial complete, goes on."""

from __future__ import annotations

import pytest
from conftest import study_definition

from functions.core.quota_causes import quota_cause
from functions.core.records import Counts, TrialRecord
from functions.core.start_failures import image_cause, missing_cause, non_root_cause, reason, unstartable
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
    assert "delete this study and submit it again" in why


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


@pytest.mark.parametrize(("missing", "fix"), [
    ("limits.cpu for: trial", "katuna's own trial container asks for trialTemplate.resources.cpu as a request, never "
                              "a limit: give the study a trialSpec (a batch/v1 Job whose container sets "
                              "resources.limits.cpu and the rest the quota names), or run the trials in a namespace"),
    ("limits.memory for: trial; memory for: trial", "Give the trial pod the requests and limits the quota names "
                                                    "(trialTemplate.resources: cpu is its container's request, memory "
                                                    "its request and limit), or run the trials in a namespace"),
])
def test_a_quota_katunas_own_trial_container_does_not_meet_says_what_the_study_may_set(missing: str, fix: str):
    """katuna's own trial container asks for ``trialTemplate.resources.cpu`` as a request only:
    where the namespace's quota tracks ``limits.cpu``, no ``trialTemplate.resources`` meets it, so
    the study's stop says to give it a ``trialSpec`` instead; memory it may set there."""
    cause = quota_cause("team-quota", "team", missing)
    trials = [TrialRecord("demo", n, {}, state="FAIL", reason=reason("its Job's pod: refused", cause)) for n in range(3)]
    why = unstartable(_template(), Counts(failed=3), trials)
    assert why is not None and f"so the study stops. {fix}" in why, why


def _reading(*env: dict, env_from: tuple[dict, ...] = ()):
    definition = study_definition()
    container = {"name": "trial", "image": IMAGE, "command": ["train", "${trialParameters.x}"], "env": list(env),
                 "envFrom": list(env_from)}
    definition["trialTemplate"] = {"trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
        "spec": {"containers": [container]}}}}}
    return parse_study(definition).trial_template


def _key_ref(kind: str, name: str, key: str, optional: bool = False) -> dict:
    return {"name": "V", "valueFrom": {f"{kind}KeyRef": {"name": name, "key": key, "optional": optional}}}


def _missing(cause: str) -> list[TrialRecord]:
    message = "its pod demo-0-x: container trial: CreateContainerConfigError: ...; it waited past the start allowance"
    return [TrialRecord("demo", n, {}, state="FAIL", reason=reason(message, cause)) for n in range(3)]


STOPS = {
    "secret": (_key_ref("secret", "db", "password"), missing_cause("Secret", "db", "team"),
               'Secret "db" in namespace "team" is missing',
               "Create it (kubectl create secret generic db -n team --from-literal=password=<value>)"),
    "configmap": (_key_ref("configMap", "settings", "lr"), missing_cause("ConfigMap", "settings", "team"),
                  'ConfigMap "settings" in namespace "team" is missing',
                  "Create it (kubectl create configmap settings -n team --from-literal=lr=<value>)"),
    "secret key": (_key_ref("secret", "db", "password"), missing_cause("Secret", "db", "team", "password"),
                   'key "password" of Secret "db" in namespace "team" is missing',
                   """Add the key (kubectl patch secret db -n team --type merge -p '{"stringData":{"password":"<value>"}}')"""),
}


@pytest.mark.parametrize(("env", "cause", "words", "fix"), STOPS.values(), ids=STOPS.keys())
def test_three_trials_that_could_not_read_what_the_template_names_stop_the_study(env, cause, words, fix):
    assert cause == words
    assert unstartable(_reading(env), Counts(failed=2), _missing(cause)[:2]) is None, "two may be bad luck"
    assert unstartable(_reading(env), Counts(failed=3), _missing(cause)) == (
        f"every trial could not start: {words} (3 trials, each after waiting for it); every later trial would meet "
        f"the same, so the study stops. {fix}, "
        "then delete this study and submit it again (submitted again as it is, a failed study stays failed)")


def test_an_env_from_names_the_object_without_a_key():
    template = _reading(env_from=({"secretRef": {"name": "db"}},))
    why = unstartable(template, Counts(failed=3), _missing(missing_cause("Secret", "db", "team")))
    assert why is not None and "(kubectl create secret generic db -n team --from-literal=<key>=<value>)" in why


def test_a_study_goes_on_for_an_object_its_template_does_not_name_for_sure():
    secret = missing_cause("Secret", "db", "team")
    made = _reading(_key_ref("secret", "db-${trialParameters.x}", "password"))
    assert unstartable(made, Counts(failed=3), _missing(secret)) is None, "a trial's parameters make the name"
    optional = _reading(_key_ref("secret", "db", "password", optional=True))
    assert unstartable(optional, Counts(failed=3), _missing(secret)) is None, "the kubelet skips an optional one"
    other_kind = _reading(_key_ref("configMap", "db", "password"))
    assert unstartable(other_kind, Counts(failed=3), _missing(secret)) is None
    other_key = missing_cause("Secret", "db", "team", "token")
    assert unstartable(_reading(_key_ref("secret", "db", "password")), Counts(failed=3), _missing(other_key)) is None
    assert unstartable(_reading(_key_ref("secret", "db", "password")), Counts(failed=3, complete=1),
                       _missing(secret)) is None


def test_a_local_study_whose_program_cannot_run_stops_after_three_trials(embedded, tmp_path):
    """Real trial processes that cannot start: the program the template names is on no PATH;
    the study stops after 3 trials of 6, naming the program and what to fix."""
    from conftest import run_study

    definition = study_definition(name="typo", maxTrials=6, parallelism=1)
    definition["trialTemplate"]["command"] = ["no-such-program-k7", "${trialParameters.x}"]
    record = run_study(embedded, definition, tmp_path)
    assert record.status == "failed" and record.reason.startswith(
        'every trial could not start: program "no-such-program-k7" cannot be run: No such file or directory '
        "(3 trials); every later trial would meet the same, so the study stops. Fix the program the trial "
        "template runs"), record.reason
    assert embedded.store.count_trials("typo").failed == 3


def test_a_program_or_working_directory_a_trials_parameters_make_stops_no_study():
    from functions.core.start_failures import directory_cause, program_cause

    definition = study_definition(parameters=[{"name": "tool", "type": "categorical", "values": ["a", "b"]}])
    definition["trialTemplate"] = {"command": ["${trialParameters.tool}"], "workingDir": "runs/${trialParameters.tool}"}
    template = parse_study(definition).trial_template
    for cause in (program_cause("a", "No such file or directory"), directory_cause("runs/a", "No such file or directory")):
        trials = [TrialRecord("demo", n, {}, state="FAIL", reason=reason("...", cause)) for n in range(3)]
        assert unstartable(template, Counts(failed=3), trials) is None, cause


def test_a_working_directory_the_template_names_that_cannot_be_entered_stops_the_study():
    from functions.core.start_failures import directory_cause

    definition = study_definition()
    definition["trialTemplate"]["workingDir"] = "no-such-folder"
    cause = directory_cause("/work/no-such-folder", "No such file or directory")
    trials = [TrialRecord("demo", n, {}, state="FAIL", reason=reason("...", cause)) for n in range(3)]
    why = unstartable(parse_study(definition).trial_template, Counts(failed=3), trials)
    assert why is not None and "Fix trialTemplate.workingDir" in why


def test_a_cause_the_executor_adds_nothing_to_is_the_reason_alone_and_still_stops_the_study():
    """A local trial's cause names the folder and the error, all its message would say."""
    from functions.core.start_failures import directory_cause

    definition = study_definition()
    definition["trialTemplate"]["workingDir"] = "no-such-folder"
    cause = directory_cause("/work/no-such-folder", "No such file or directory")
    assert reason("", cause) == 'could not start: working directory "/work/no-such-folder" cannot be entered: No such file or directory'
    trials = [TrialRecord("demo", n, {}, state="FAIL", reason=reason("", cause)) for n in range(3)]
    why = unstartable(parse_study(definition).trial_template, Counts(failed=3), trials)
    assert why is not None and why.startswith(f"every trial could not start: {cause} (3 trials)")


def _root(number: int, image: str | None = IMAGE) -> TrialRecord:
    message = f"its pod demo-{number}-x: container trial: CreateContainerConfigError: ...; no retry can change it"
    return TrialRecord("demo", number, {}, state="FAIL", reason=reason(message, non_root_cause(image, "root")))


def test_three_trials_whose_image_would_run_as_root_stop_the_study_saying_how_to_give_it_a_user():
    """A trialSpec's pod gives the user in its own securityContext; a template's runAsUser 0 is
    changed in the template; an image a trial's parameters make is the trial's."""
    definition = study_definition()
    definition["trialTemplate"] = {"trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
        "spec": {"containers": [{"name": "trial", "image": IMAGE, "command": ["train", "${trialParameters.x}"]}]}}}}}
    spec = parse_study(definition).trial_template
    assert unstartable(spec, Counts(failed=3), [_root(0), _root(1), _root(2)]) == (
        f'every trial could not start: image "{IMAGE}" runs as root, which runAsNonRoot forbids (3 trials); every '
        "later trial would meet the same, so the study stops. Build the image with a numeric USER other than 0 "
        "(USER 10001 in its Dockerfile), or give the user id to run it as (securityContext.runAsUser in the "
        "trialSpec's pod template), "
        "then delete this study and submit it again (submitted again as it is, a failed study stays failed)")
    zero = unstartable(_template(), Counts(failed=3), [_root(0, None), _root(1, None), _root(2, None)])
    assert zero is not None and zero.endswith(
        "so the study stops. Give a runAsUser other than 0 (kubernetes.runAsUser), or none, "
        "then delete this study and submit it again (submitted again as it is, a failed study stays failed)")
    made = "registry.example.com/team/trainer:${trialParameters.x}"
    assert unstartable(_template(made), Counts(failed=3), [_root(0), _root(1), _root(2)]) is None
