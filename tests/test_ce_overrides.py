"""A SinkBinding's ``ceOverrides`` reach the service in ``K_CE_OVERRIDES``, and every event katuna
sends to ``K_SINK`` carries their extensions, as Knative's own senders' do, so a Trigger can
route katuna's events by them; its replies go as they are, and no override replaces an
attribute katuna sets. A value Knative would not send stops the service at start, naming it.
A trial's reporter puts them on its progress reports too, by the same rules; with overrides
Knative would not send, it says so on stderr and the trial runs on."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import study_definition
from http_helpers import Sink, refused_start
from knative_emulator import KnativeCluster, documents, sink_binding_env
from knative_emulator.broker import Broker
from kube_stub import KubeStub
from test_knative_mode import SERVICE_REF, Subscriber
from waiting import eventually

from functions import reporter
from functions.adapters import cloudevents_http
from functions.core import event_signature
from functions.core.errors import InvalidSetting
from functions.core.events import Event
from functions.settings import Settings


def test_the_overrides_are_read_once_with_their_names_lower_cased_as_knatives_sdk_sets_them():
    env = {"K_CE_OVERRIDES": '{"extensions": {"Team": "ml", "cost2": "", "where": "caf\\u00e9 \\u003cA\\u003e"}}'}
    assert Settings.from_env(env).ce_overrides == (("cost2", ""), ("team", "ml"), ("where", "café <A>"))
    for unset in ({}, {"K_CE_OVERRIDES": ""}, {"K_CE_OVERRIDES": "{}"}, {"K_CE_OVERRIDES": '{"extensions": null}'}):
        assert Settings.from_env(unset).ce_overrides == (), unset


REFUSED = [
    ("team=ml", "K_CE_OVERRIDES: expected JSON such as"),
    ('["team"]', "K_CE_OVERRIDES: expected a JSON object such as"),
    ('{"extension": {"team": "ml"}}', "K_CE_OVERRIDES: expected only 'extensions'"),
    ('{"extensions": ["team"]}', "K_CE_OVERRIDES: extensions: expected an object of names to strings"),
    ('{"extensions": {"team": 1}}', "K_CE_OVERRIDES: extensions.team: expected a string, got 1"),
    ('{"extensions": {"team": null}}', "K_CE_OVERRIDES: extensions.team: expected a string, got null"),
    ('{"extensions": {"my-team": "ml"}}', "K_CE_OVERRIDES: extensions.'my-team': expected an extension name of"),
    ('{"extensions": {"": "ml"}}', "K_CE_OVERRIDES: extensions.'': expected an extension name of"),
    ('{"extensions": {"team": "m\\nl"}}', "K_CE_OVERRIDES: extensions.team: expected text a CloudEvents string"),
    ('{"extensions": {"team": "\\ud800"}}', "U+D800"),
    ('{"extensions": {"Team": "ml", "team": "ai"}}', "names the extension 'team' a second time"),
    ('{"extensions": {"ID": "1"}}', "extensions.ID: 'id' is a CloudEvents context attribute"),
    ('{"extensions": {"type": "x"}}', "'type' is a CloudEvents context attribute"),
    ('{"extensions": {"data": "x"}}', "'data' is a CloudEvents context attribute"),
    ('{"extensions": {"katunasignature": "x"}}', "'katunasignature' is an attribute katuna or the broker sets"),
    ('{"extensions": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}',
     "'traceparent' is an attribute katuna or the broker sets"),
    ('{"extensions": {"TraceState": "k=v"}}', "'tracestate' is an attribute katuna or the broker sets"),
    ('{"extensions": {"apiversion": "x"}}', "'apiversion' is an attribute katuna or the broker sets"),
    ('{"extensions": {"knativebrokerttl": "1"}}', "'knativebrokerttl' is an attribute katuna or the broker sets"),
]
"""Overrides Knative would not send, and the words naming why."""


@pytest.mark.parametrize(("text", "expected"), REFUSED)
def test_overrides_knative_would_not_send_stop_the_service_at_start_naming_them(text: str, expected: str):
    with pytest.raises(InvalidSetting, match="^K_CE_OVERRIDES: ") as refused:
        Settings.from_env({"K_CE_OVERRIDES": text})
    assert expected in str(refused.value)


def test_the_reporter_keeps_katunas_signature_among_the_names_no_override_takes():
    """The service reads its overrides by the reporter's rules, which spell the signature's name."""
    assert event_signature.EXTENSION in reporter.KATUNAS


def _trial_env(monkeypatch: pytest.MonkeyPatch, url: str, overrides: str) -> None:
    """The environment katuna gives a trial of a study with early stopping, bound by a SinkBinding,
    in a process that, as a new trial's, has named no refused overrides and no failed post yet
    (the reporter names each once a process; a test run again in the same pytest process would
    otherwise find its line said by the first run)."""
    monkeypatch.setattr(reporter, "_REFUSED", set())
    monkeypatch.setattr(reporter, "_UNEXPECTED", set())
    for variable, value in {"KATUNA_REPORT_URL": url, "KATUNA_OBJECTIVE": "loss", "KATUNA_STUDY": "s",
                            "KATUNA_STUDY_UID": "u", "KATUNA_TRIAL": "0", "KATUNA_ATTEMPT": "1",
                            "KATUNA_SINK_TOKEN_FILE": "/nonexistent/token", "K_CE_OVERRIDES": overrides}.items():
        monkeypatch.setenv(variable, value)


def test_a_trials_progress_reports_carry_the_overrides_as_katunas_own_events_do(monkeypatch: pytest.MonkeyPatch):
    sink = Sink()
    try:
        _trial_env(monkeypatch, sink.url, '{"extensions": {"Team": "ml", "where": "caf\\u00e9 <A> 100%"}}')
        assert reporter.report(1, loss=0.5) and reporter.flush()
        [(headers, _)] = sink.wait(1)
    finally:
        sink.close()
    overrides = (("team", "ml"), ("where", "café <A> 100%"))
    service, _ = cloudevents_http.to_http(Event(type="dev.katuna.trial.progress", data={}), extensions=overrides)
    assert (headers["ce-team"], headers["ce-where"]) == ("ml", service["ce-where"]) == ("ml", "caf%C3%A9%20<A>%20100%25")
    assert (headers["ce-type"], headers["ce-id"]) == ("dev.katuna.trial.progress", "u/0/1/progress/1")


def test_the_reporter_alone_in_a_trial_image_applies_them_with_the_standard_library_only(tmp_path: Path):
    """The one file a trial image carries, run by a Python with the standard library alone
    (``-S``: no site-packages, so neither katuna nor any other package), reads the overrides and
    puts them on its reports."""
    shutil.copy(Path(reporter.__file__), tmp_path / "reporter.py")
    sink = Sink()
    try:
        env = {"PATH": os.environ["PATH"], "KATUNA_REPORT_URL": sink.url, "KATUNA_OBJECTIVE": "loss",
               "KATUNA_TRIAL": "0", "K_CE_OVERRIDES": '{"extensions": {"team": "ml"}}'}
        script = "from reporter import report, flush; assert report(1, loss=0.5) and flush()"
        done = subprocess.run([sys.executable, "-S", "-E", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        [(headers, _)] = sink.wait(1)
    finally:
        sink.close()
    assert headers["ce-team"] == "ml"


def test_a_process_that_only_imports_the_reporter_gains_no_exit_or_fork_hooks_until_it_reports():
    """katuna's service imports the reporter for its override rules: the import alone registers
    nothing to run at exit, while a process that reports flushes its reports at exit."""
    script = ("import atexit; before = atexit._ncallbacks(); from functions import reporter; "
              "print(atexit._ncallbacks() - before); assert reporter.report(1, loss=0.5); "
              "print(atexit._ncallbacks() - before)")
    env = {**os.environ, "KATUNA_REPORT_URL": "http://127.0.0.1:9/", "KATUNA_OBJECTIVE": "loss", "KATUNA_TRIAL": "0"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env,
                          cwd=Path(reporter.__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"]


def test_a_report_katuna_would_refuse_is_not_sent_and_the_training_runs_on(monkeypatch: pytest.MonkeyPatch):
    """``report`` never raises into the training loop that calls it: a step that is no number of
    0 or more, or a value that is no number (a validation loss of ``None`` on an epoch without
    validation), is not sent (False), and the next report goes as ever."""
    sink = Sink()
    try:
        _trial_env(monkeypatch, sink.url, "")
        for step, value in ((None, 0.5), (float("nan"), 0.5), (float("inf"), 0.5), (-1, 0.5), (1, None), (1, "n/a")):
            assert reporter.report(step, loss=value) is False, (step, value)  # type: ignore[arg-type]
        assert reporter.report(2, loss=0.4) and reporter.flush()
        [(headers, body)] = sink.wait(1)
    finally:
        sink.close()
    assert headers["ce-id"] == "u/0/1/progress/2" and b'"value": 0.4' in body


def test_a_trial_with_overrides_knative_would_not_send_runs_on_and_says_so_once(monkeypatch: pytest.MonkeyPatch,
                                                                              capsys: pytest.CaptureFixture[str]):
    sink = Sink()
    try:
        _trial_env(monkeypatch, sink.url, '{"extensions": {"ID": "1"}}')
        assert not reporter.report(1, loss=0.5) and not reporter.report(2, loss=0.4), "no report is taken"
        assert reporter.flush() and not sink.received
    finally:
        sink.close()
    said = capsys.readouterr().err
    assert said.count("katuna reporter: K_CE_OVERRIDES: extensions.ID: 'id' is a CloudEvents context attribute") == 1
    assert "progress reports are not sent" in said and "Traceback" not in said


@pytest.mark.slow
def test_katuna_serve_does_not_start_with_overrides_it_would_not_send_and_says_why(tmp_path: Path):
    done = refused_start(tmp_path, KATUNA_EVENTS="reply", K_SINK="http://127.0.0.1:9/",
                         K_CE_OVERRIDES='{"extensions": {"ID": "1"}}')
    assert done.returncode == 2, done.stderr
    assert "K_CE_OVERRIDES: extensions.ID: 'id' is a CloudEvents context attribute" in done.stderr
    assert "Traceback" not in done.stderr


def _bound(overrides: dict) -> list[dict]:
    """``knative/``'s objects, the SinkBinding with ``overrides`` as its ``ceOverrides``."""
    docs = copy.deepcopy(documents())
    [binding] = [doc for doc in docs if doc["kind"] == "SinkBinding"]
    binding["spec"]["ceOverrides"] = overrides
    return docs


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"extensions": {"Team": "ml", "cost": None}}, '{"extensions":{"Team":"ml","cost":""}}'),
    ({"extensions": {"team": "<r&d>"}}, '{"extensions":{"team":"\\u003cr\\u0026d\\u003e"}}'),
    ({"extensions": {}}, "{}"), ({}, "{}"),
    ({"extensions": {"my-team": "ml"}}, "invalid key name 'my-team': keys are expected to be alphanumeric"),
    ({"extensions": {"": "ml"}}, "invalid key name ''"),
    ({"extensions": {"team": 1}}, "spec.ceOverrides.extensions.team: expected a string"),
    ({"extensions": {"team": "ml"}, "format": "json"}, "['format'] not in the schema"),
])
def test_the_sink_binding_passes_its_ce_overrides_on_as_eventing_does_or_is_refused_as_its_webhook_refuses_them(
        overrides: dict, expected: str):
    broker = Broker(documents(), {SERVICE_REF: "http://127.0.0.1:1"})
    try:
        if expected.startswith("{"):
            assert sink_binding_env(broker, _bound(overrides))["K_CE_OVERRIDES"] == expected
        else:
            with pytest.raises(ValueError, match="SinkBinding katuna-sink: spec.ceOverrides") as refused:
                sink_binding_env(broker, _bound(overrides))
            assert expected in str(refused.value)
    finally:
        broker.close()


def _observer(url: str) -> dict:
    """A Trigger sending the broker's events with the extension ``team: ml`` to ``url``."""
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "team-ml"},
            "spec": {"broker": "katuna", "filters": [{"exact": {"team": "ml"}}], "subscriber": {"uri": url}}}


@pytest.mark.slow
def test_a_trigger_filtering_on_the_sink_bindings_override_receives_katunas_events_but_not_its_replies(
        tmp_path: Path):
    """With ``ceOverrides: {extensions: {Team: ml}}`` on the SinkBinding ``katuna-sink``, each
    event katuna posts to ``K_SINK`` (the study's start, a trial's end) carries ``team: ml``,
    its own attributes and signature intact, and reaches a Trigger filtering on it; the
    functions' replies (the trial's ``trial.suggested``) carry no override, and reach only
    katuna's own Triggers."""
    observer, kube = Subscriber([202]), KubeStub()
    docs = [*_bound({"extensions": {"Team": "ml"}}), _observer(observer.url + "/observed")]
    cluster = KnativeCluster(tmp_path, kube.url, ping_interval=3600, docs=docs)
    try:
        definition = study_definition(name="overridden", maxTrials=1, parallelism=1)
        definition["trialTemplate"]["image"] = "python:3.12"
        status, body = cluster.api("POST", "/studies", definition)
        assert status == 201, body
        study = cluster.wait_for("overridden", timeout=60)
        assert (study["status"], study["counts"]["complete"]) == ("completed", 1), study
        def observed_types() -> set[str]:
            return {headers["ce-type"] for _, _, headers, _ in observer.received}

        # the broker's fan-out reaches the observer's Trigger beside katuna's, not before the study ends
        eventually(lambda: {"dev.katuna.study.created", "dev.katuna.trial.finished"} <= observed_types(),
                   "the observer's Trigger received katuna's events", timeout=30)
        observed = {headers["ce-type"]: headers for _, _, headers, _ in observer.received}
        created = observed["dev.katuna.study.created"]
        assert (created["ce-team"], created["ce-source"], created["ce-specversion"]) == ("ml", "/katuna", "1.0")
        assert created["ce-katunasignature"] and created["ce-id"], created
        assert "dev.katuna.trial.suggested" not in observed, "a reply carries no override"
        suggested = [a for a in cluster.broker.attempts if a.event_type == "dev.katuna.trial.suggested"]
        assert suggested and cluster.broker.replies > 0, "the trial was suggested in a reply, which katuna's Triggers took"
        assert not cluster.broker.dead_letters
    finally:
        cluster.close()
        kube.close()
        observer.close()


def test_a_post_failing_in_a_way_urllib_does_not_expect_loses_that_report_alone_and_says_so_once(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """A port past 65535 in ``KATUNA_REPORT_URL`` makes the socket raise ``OverflowError``, which
    no network error is: that report is lost and named once on stderr, and the reports after
    it are still sent (the background thread does not end)."""
    sink = Sink()
    try:
        _trial_env(monkeypatch, "http://127.0.0.1:99999999999999999999/", "")
        assert reporter.report(1, loss=0.5) and reporter.report(2, loss=0.4)
        assert reporter.flush() is False, "the reports lost are told"
        monkeypatch.setenv("KATUNA_REPORT_URL", sink.url)
        assert reporter.report(3, loss=0.3) and reporter.flush()
        [(headers, _)] = sink.wait(1)
    finally:
        sink.close()
    assert headers["ce-id"] == "u/0/1/progress/3"
    said = capsys.readouterr().err
    assert said.count("katuna reporter: a progress report could not be sent: OverflowError") == 1, said
    assert "the next ones are still tried" in said
