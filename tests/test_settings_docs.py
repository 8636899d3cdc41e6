"""The ``KATUNA_*`` settings the pages name are the ones katuna reads, with the defaults they
give, and a setting katuna cannot use ends every command with exit 2 and one line naming it."""

from __future__ import annotations

import json
import os
import random
import re
import string
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import study_definition
from doc_blocks import ROOT

from functions.cli import main
from functions.core.cluster import MIN_TTL, START_ALLOWANCE, TTL
from functions.core.errors import InvalidSetting
from functions.core.limits import PREFIX, EksQuotas, Limits
from functions.core.records import LOCAL
from functions.settings import Settings
from functions.settings.variables import VARIABLES, default_running_trials, machine_cpus

KATUNA = str(Path(sys.executable).with_name("katuna"))
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
NAME = re.compile(r"KATUNA_[A-Z0-9_]*[A-Z0-9]")
TRIAL_ENV = {"KATUNA_STUDY", "KATUNA_STUDY_UID", "KATUNA_TRIAL", "KATUNA_ATTEMPT", "KATUNA_ATTEMPT_ID",
             "KATUNA_OBJECTIVE", "KATUNA_REPORT_TOKEN", "KATUNA_POD_UID",
             "KATUNA_PRIMARY_POD_LABELS"}
"""Variables katuna gives a trial's process (no settings), named in functions/."""
TRIAL_ENV_FAMILIES = {"KATUNA_PARAM", "KATUNA_POD_LABEL"}
"""Variables katuna gives a trial's process one for each parameter (``KATUNA_PARAM_<name>``) or
primary pod label (``KATUNA_POD_LABEL_<n>``), their prefix named in functions/."""
SUITE_KNOBS = {"KATUNA_CHAOS_SEEDS", "KATUNA_FUZZ_EXAMPLES", "KATUNA_LOAD_EVENTS", "KATUNA_LOAD_STUDIES"}
"""Variables of the test suite's own, named in tests/."""


def _settings() -> set[str]:
    """Every variable katuna reads as a setting: :data:`VARIABLES`, the limits and the EKS quotas."""
    limits = {f"{PREFIX}MAX_{item.name.upper()}" for item in fields(Limits) if isinstance(item.default, (int, float))}
    quotas = {f"{PREFIX}EKS_{item.name.upper()}" for item in fields(EksQuotas)}
    return {PREFIX + name for name, _ in VARIABLES.values()} | limits | quotas | {f"{PREFIX}POOL_MACHINE_TYPES"}


def _documented() -> set[str]:
    return {name for page in PAGES for name in NAME.findall(page.read_text())}


def test_every_setting_is_documented_and_every_documented_variable_exists():
    documented, settings = _documented(), _settings()
    assert sorted(settings - documented) == [], "settings no page names"
    assert sorted(documented - settings - TRIAL_ENV - TRIAL_ENV_FAMILIES - SUITE_KNOBS) == [], \
        "variables katuna does not read"
    sources = {folder: "".join(p.read_text() for p in (ROOT / folder).rglob("*.py")) for folder in ("functions", "tests")}
    for names, folder in ((TRIAL_ENV, "functions"), (SUITE_KNOBS, "tests")):
        assert [name for name in sorted(names) if f'"{name}"' not in sources[folder]] == [], folder
    assert [name for name in sorted(TRIAL_ENV_FAMILIES) if f'"{name}_"' not in sources["functions"]] == []


def _default(name: str) -> object:
    """What katuna uses when the variable ``name`` is unset (the trials running at once: as
    many as the CPUs of the machine the suite runs on, where trials are local processes)."""
    field = {PREFIX + variable: key for key, (variable, _) in VARIABLES.items()}.get(name)
    if name == f"{PREFIX}MAX_RUNNING_TRIALS":
        return default_running_trials(LOCAL)
    if field is not None:
        return getattr(Settings(), field)
    if name.startswith(f"{PREFIX}EKS_"):
        return getattr(Limits().eks, name.removeprefix(f"{PREFIX}EKS_").lower())
    if name == f"{PREFIX}POOL_MACHINE_TYPES":
        return Limits().machine_types
    return getattr(Limits(), name.removeprefix(f"{PREFIX}MAX_").lower())


def _figure(cell: str) -> object:
    """A default as the limits table writes it: ``1,000``, ``30 s``, ``1 MiB``, ``any``."""
    if cell == "any":
        return ()
    if cell.startswith("this machine's CPUs"):
        return machine_cpus()
    number, _, unit = cell.partition(" ")
    scale = {"MiB": 1 << 20}.get(unit.split(" ")[0], 1)
    return int(number.replace(",", "")) * scale


def test_the_limits_table_gives_the_defaults_katuna_uses():
    page = (ROOT / "docs/reliability.md").read_text()
    rows = re.findall(r"^\| [^|]+ \| ([^|]+) \| `(KATUNA_[A-Z0-9_]+)` \|$", page, re.MULTILINE)
    assert len(rows) > 15
    assert [(name, _figure(cell)) for cell, name in rows] == [(name, _default(name)) for _, name in rows]


STATED_DEFAULT = re.compile(r"`(KATUNA_[A-Z0-9_]+)`(?: [a-z]+){0,3} \((\d{1,3}(?:,\d{3})*(?:\.\d+)?)"
                           r"( s| seconds| hours| MiB)?(?=\)|;| by default)")
"""A default a page gives in passing: ``KATUNA_BUSY_TIMEOUT`` seconds (30), ``KATUNA_CLIENT_TIMEOUT``
(15 s), ``KATUNA_K8S_START_ALLOWANCE`` (3600 seconds by default), ``KATUNA_MAX_BODY`` (1 MiB; ...)."""
COMMA_DEFAULT = re.compile(r"`(KATUNA_[A-Z0-9_]+)`, default (\d{1,3}(?:,\d{3})*(?:\.\d+)?)()(?=[);,])")
"""A default a page gives after a comma: (``KATUNA_LOOKAHEAD``, default 1)."""
HELP_DEFAULT = re.compile(r"(KATUNA_[A-Z0-9_]+)(?: [a-z]+){0,3} \((\d{1,3}(?:,\d{3})*(?:\.\d+)?)( s| seconds)?\)")
"""A default a command's ``--help`` gives: KATUNA_CLIENT_TIMEOUT seconds (15)."""
UNSET = {f"{PREFIX}K8S_TTL_SECONDS": TTL, f"{PREFIX}K8S_START_ALLOWANCE": START_ALLOWANCE}
"""Settings unset by default whose value then comes from the study or katuna's own default."""


def test_each_default_the_pages_give_in_passing_is_the_one_katuna_uses():
    settings, checked = _settings(), 0
    for page in PAGES:
        text = " ".join(page.read_text().split())
        for name, number, unit in [*STATED_DEFAULT.findall(text), *COMMA_DEFAULT.findall(text)]:
            if name not in settings:
                continue
            stated = float(number.replace(",", "")) * {" hours": 3600, " MiB": 1 << 20}.get(unit, 1)
            default = _default(name)
            assert stated == (UNSET[name] if default is None else default), f"{page.name}: {name} ({number}{unit})"
            checked += 1
    assert checked >= 15, checked


def test_each_default_a_commands_help_gives_is_the_one_katuna_uses():
    """``katuna serve --help`` gives a client ``KATUNA_CLIENT_TIMEOUT`` seconds (15) to send its
    request: a default the help names is checked as the pages' are."""
    from functions.cli import COMMANDS

    checked = 0
    for command in COMMANDS:
        shown = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
        for name, number, _ in HELP_DEFAULT.findall(shown):
            assert float(number.replace(",", "")) == _default(name), f"katuna {command} --help: {name} ({number})"
            checked += 1
    assert checked >= 2, checked


def test_the_kubernetes_page_gives_the_job_ttl_and_default_resources_katuna_uses():
    page = " ".join((ROOT / "docs/kubernetes.md").read_text().split())
    assert f"`ttlSecondsAfterFinished` seconds, {TTL} (an hour) by default" in page
    assert f"`kubernetes.ttlSecondsAfterFinished` must be at least {MIN_TTL}" in page
    resources = ",".join(f"{key}={value}" for key, value in Settings().k8s_default_resources)
    assert f"`KATUNA_K8S_DEFAULT_RESOURCES` defaults to `{resources}`" in page


@pytest.mark.parametrize("variable, value, expected", [
    ("KATUNA_LOOKAHEAD", "abc", "KATUNA_LOOKAHEAD: expected an integer, got 'abc'"),
    ("KATUNA_BUSY_TIMEOUT", "soon", "KATUNA_BUSY_TIMEOUT: expected a number, got 'soon'"),
    ("KATUNA_KATIB_API", "maybe", "KATUNA_KATIB_API: expected true or false, got 'maybe'"),
    ("KATUNA_MAX_BODY", "-5", "KATUNA_MAX_BODY: expected a positive number, got -5"),
    ("KATUNA_MAX_LOG", "1MiB", "KATUNA_MAX_LOG: expected an integer, got '1MiB'"),
    ("KATUNA_MAX_TFEVENTS", "0", "KATUNA_MAX_TFEVENTS: expected a positive number, got 0"),
    ("KATUNA_MAX_TFEVENTS", "-1", "KATUNA_MAX_TFEVENTS: expected a positive number, got -1"),
    ("KATUNA_MAX_TFEVENTS", "16MiB", "KATUNA_MAX_TFEVENTS: expected an integer, got '16MiB'"),
    ("KATUNA_MAX_HISTORY_CELLS", "0", "KATUNA_MAX_HISTORY_CELLS: expected a positive integer, got '0'"),
    ("KATUNA_SESSION_TTL", "nan", "KATUNA_SESSION_TTL: expected a number, got 'nan'"),
    ("KATUNA_SESSION_TTL", "0", "KATUNA_SESSION_TTL: expected a positive number of seconds, got 0.0"),
    ("KATUNA_LOOKAHEAD", "1_0", "KATUNA_LOOKAHEAD: expected an integer, got '1_0'"),
    ("KATUNA_BUSY_TIMEOUT", "inf", "KATUNA_BUSY_TIMEOUT: expected a number, got 'inf'"),
    ("KATUNA_MAX_TRIALS", "\uff11\uff10", "KATUNA_MAX_TRIALS: expected a positive integer, got '\uff11\uff10'"),
    ("KATUNA_TICK_FLOOR", "-1", "KATUNA_TICK_FLOOR: expected a number of seconds, 0 or more, got -1.0"),
    ("KATUNA_K8S_TTL_SECONDS", "0", "KATUNA_K8S_TTL_SECONDS: expected at least 600 seconds, got 0: "),
    ("KATUNA_EXECUTOR", "cloud", "KATUNA_EXECUTOR: expected local or kubernetes, got 'cloud'"),
    ("KATUNA_INSTALLATION", "team/a", "KATUNA_INSTALLATION: expected a Kubernetes label value: at most 63 letters, "
                                      "digits, '-', '_' or '.', beginning and ending with a letter or digit, got "
                                      "'team/a'"),
    ("KATUNA_TRIAL_SINK_BINDING", "trial progress", "KATUNA_TRIAL_SINK_BINDING: expected a SinkBinding's name that "
                                                    "is a Kubernetes label value: at most 63 letters, digits, '-', "
                                                    "'_' or '.', beginning and ending with a letter or digit, got "
                                                    "'trial progress'"),
    ("KATUNA_ORPHAN_GRACE", "60", "KATUNA_ORPHAN_GRACE: expected at least 300 seconds (a trial workload younger may "
                                  "belong to a handling not committed yet), got 60.0"),
    ("KATUNA_LOG_FORMAT", "xml", "KATUNA_LOG_FORMAT and KATUNA_LOG_LEVEL: expected text or json, and DEBUG, INFO, "
                                 "WARNING, ERROR; got 'xml' and 'INFO'"),
    ("KATUNA_MAX_BODY", "99999999999999999999",
     "KATUNA_MAX_BODY: expected an integer of at most 2**53 in magnitude, got 1e+20"),
    ("KATUNA_LOOKAHEAD", "99999999999999999999",
     "KATUNA_LOOKAHEAD: expected an integer of at most 2**53 in magnitude, got 1e+20"),
    ("KATUNA_MAX_TRIALS", "99999999999999999999",
     "KATUNA_MAX_TRIALS: expected an integer of at most 2**53 in magnitude, got 1e+20"),
    ("KATUNA_SESSION_TTL", "1e999", "KATUNA_SESSION_TTL: expected a positive number of seconds, got inf"),
    ("KATUNA_NODE_LOOK_SECONDS", "1e999", "KATUNA_NODE_LOOK_SECONDS: expected a positive number of seconds, got inf"),
    ("KATUNA_K8S_KEEP_SECONDS", "1e999", "KATUNA_K8S_KEEP_SECONDS: expected a positive number of seconds, got inf"),
    ("KATUNA_MAX_DURATION", "1e999", "KATUNA_MAX_DURATION: expected a positive number, got '1e999'"),
    ("KATUNA_KATIB_TRIALS_KEPT", "99", "KATUNA_KATIB_TRIALS_KEPT: expected at least 100 Trials (as many as a status's "
                                       "Trial list names), got 99"),
    ("KATUNA_TRIAL_ENV", "HOME,a b,=x", "KATUNA_TRIAL_ENV: expected names of environment variables (letters, "
                                        "digits and _, not beginning with a digit), got 'a b', '=x'"),
    ("KATUNA_API_TOKEN", "s3cret-0123456789abcd", "KATUNA_API_TOKEN: expected a random token of at least 22 "
                                                  "characters, without spaces, got one of 21: a short token can be "
                                                  "guessed (the API token offline, from any event katuna signs); "
                                                  "make one with python -c 'import secrets; "
                                                  "print(secrets.token_urlsafe(32))'"),
    ("KATUNA_METRICS_TOKEN", "scrape-me", "KATUNA_METRICS_TOKEN: expected a random token of at least 22 characters"),
    ("KATUNA_API_TOKEN", "s3cret-0123456789 abcdefgh", "KATUNA_API_TOKEN: expected a random token of printable "
                                                       "characters without spaces, as an Authorization header "
                                                       "carries it, got one with a space or a control character"),
    ("KATUNA_API_TOKEN", "s3cret 01", "KATUNA_API_TOKEN: expected a random token of printable characters without "
                                      "spaces"),
    ("KATUNA_API_TOKEN", "a" * 40, "KATUNA_API_TOKEN: expected a random token, got one that holds 1 different "
                                   "character(s), fewer than 8: such a token is guessed as easily as a short one "
                                   "(the API token offline, from any event katuna signs); make one with python -c "
                                   "'import secrets; print(secrets.token_urlsafe(32))'"),
    ("KATUNA_METRICS_TOKEN", "password" * 3, "KATUNA_METRICS_TOKEN: expected a random token, got one that holds 7 "
                                             "different character(s), fewer than 8"),
    ("KATUNA_API_TOKEN", "Passw0rd!" * 3, "KATUNA_API_TOKEN: expected a random token, got one that repeats one "
                                          "string of 9 characters: such a token is guessed as easily"),
    ("KATUNA_TRIAL_ENV", "CUDA_VISIBLE_DEVICES,AWS_SECRET_ACCESS_KEY",
     "KATUNA_TRIAL_ENV: AWS_SECRET_ACCESS_KEY leads to the service's own cloud or Kubernetes credentials"),
    ("KATUNA_ALLOWED_HOSTS", "katuna.example.org, example.org:8080",
     "KATUNA_ALLOWED_HOSTS: expected host names alone (example.org, *.example.org), without a scheme, port or "
     "path: they are served on any port; got 'example.org:8080'"),
    ("KATUNA_GKE_ENDPOINT", "ftp://gke.example.org", "KATUNA_GKE_ENDPOINT: expected an API endpoint's URL (http://127.0.0.1:PORT for a local stand-in, https://HOST) or HOST[:PORT], got 'ftp://gke.example.org'"),
    ("KATUNA_GKE_ENDPOINT", "http://127.0.0.1:99999", "KATUNA_GKE_ENDPOINT: expected an API endpoint's URL (http://127.0.0.1:PORT for a local stand-in, https://HOST) or HOST[:PORT], "
                                                      "got 'http://127.0.0.1:99999'"),
    ("KATUNA_GKE_ENDPOINT", "http://alice:s3cret@127.0.0.1:99999", "KATUNA_GKE_ENDPOINT: expected an API endpoint's "
     "URL (http://127.0.0.1:PORT for a local stand-in, https://HOST) or HOST[:PORT], got 'http://***@127.0.0.1:99999'"),
    ("KATUNA_GKE_ENDPOINT", " ", "KATUNA_GKE_ENDPOINT: expected an API endpoint's URL (http://127.0.0.1:PORT for a local stand-in, https://HOST) or HOST[:PORT], got ' '"),
    ("KATUNA_GKE_ENDPOINT", "http://", "KATUNA_GKE_ENDPOINT: expected an API endpoint's URL (http://127.0.0.1:PORT for a local stand-in, https://HOST) or HOST[:PORT], got 'http://'"),
    ("KATUNA_K8S_API", "127.0.0.1:8001", "KATUNA_K8S_API: expected an http:// or https:// URL with a host (and a port from 1 to 65535), got '127.0.0.1:8001'"),
    ("KATUNA_REPORT_URL", "http://:8080/", "KATUNA_REPORT_URL: expected an http:// or https:// URL with a host (and a port from 1 to 65535), got 'http://:8080/'"),
    ("KATUNA_OIDC_ISSUER_URL", "kubernetes.default.svc",
     "KATUNA_OIDC_ISSUER_URL: expected an http:// or https:// URL with a host (and a port from 1 to 65535), got 'kubernetes.default.svc'"),
    ("KATUNA_DB_ON_NETWORK_FS", "yes", "KATUNA_DB_ON_NETWORK_FS: expected allow or refuse, got 'yes'"),
])
def test_a_setting_katuna_cannot_use_ends_every_command_with_exit_2_naming_it(tmp_path: Path, variable: str,
                                                                             value: str, expected: str):
    study = tmp_path / "s.yaml"
    study.write_text(json.dumps(study_definition(maxTrials=1)))
    db = str(tmp_path / "k.db")
    for args in (["run", str(study), "--db", db], ["studies", "--db", db], ["convert", str(study)],
                 ["render", str(study)], ["serve", "--db", db]):
        result = CliRunner().invoke(main, args, env={variable: value})
        assert (result.exit_code, result.stderr.startswith(f"error: {expected}")) == (2, True), (args, result.output)
        assert result.stderr.count("\n") == 1 and isinstance(result.exception, SystemExit), result.stderr
    assert not Path(db).exists(), "nothing was stored"


def test_the_metrics_token_may_not_be_the_api_token():
    token = "s3cret-0123456789abcdefgh"
    with pytest.raises(InvalidSetting, match="^KATUNA_METRICS_TOKEN: the same as KATUNA_API_TOKEN, which opens the "
                                             "whole API to whoever scrapes the metrics: give the scraper a token"):
        Settings.from_env({"KATUNA_API_TOKEN": token, "KATUNA_METRICS_TOKEN": token})
    assert Settings.from_env({"KATUNA_API_TOKEN": token, "KATUNA_METRICS_TOKEN": token[::-1]}).metrics_token


def test_an_endpoint_setting_takes_the_addresses_its_client_reaches():
    env = {"KATUNA_GKE_ENDPOINT": "container.example.org:8443", "KATUNA_K8S_API": "http://127.0.0.1:8001",
           "KATUNA_REPORT_URL": "https://sink.example.org/report", "KATUNA_OIDC_ISSUER_URL": "https://[::1]:6443"}
    settings = Settings.from_env(env)
    assert (settings.gke_endpoint, settings.k8s_api, settings.report_url, settings.oidc_issuer_url) == (
        "container.example.org:8443", "http://127.0.0.1:8001", "https://sink.example.org/report", "https://[::1]:6443")


@pytest.mark.slow
def test_the_katuna_command_says_it_in_one_line_without_a_traceback(tmp_path: Path):
    done = subprocess.run([KATUNA, "studies", "--db", str(tmp_path / "k.db")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "KATUNA_LOOKAHEAD": "abc"}, timeout=60)
    assert (done.returncode, done.stderr) == (2, "error: KATUNA_LOOKAHEAD: expected an integer, got 'abc'\n")


@pytest.mark.slow
def test_the_container_entry_point_stops_gunicorn_with_one_line_naming_the_setting(tmp_path: Path):
    """gunicorn as the image runs it (knative/Dockerfile: one worker of katuna's class): the
    worker says why in one line, no traceback, and gunicorn stops ("App failed to load")
    instead of starting workers again. (With several workers failing at once, gunicorn 27 may
    meet the second exit while halting for the first, and end with its own traceback.)"""
    env = {**os.environ, "KATUNA_DB": str(tmp_path / "k.db"), "KATUNA_K8S_TTL_SECONDS": "60"}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    done = subprocess.run([gunicorn, "--bind", "127.0.0.1:0", "--workers", "1", "--threads", "12",
                           "--worker-class", "functions.adapters.web.worker.Worker", "--no-control-socket",
                           "functions.runtime:from_environment()"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4, done.stderr
    assert "katuna cannot start: KATUNA_K8S_TTL_SECONDS: expected at least 600 seconds, got 60" in done.stderr
    assert "Traceback" not in done.stderr and "App failed to load" in done.stderr
    assert done.stderr.count("Booting worker") == 1


def test_a_token_of_the_alphabets_the_documented_commands_use_is_taken():
    drawn = random.Random(81)
    urlsafe, hexadecimal = string.ascii_letters + string.digits + "-_", string.hexdigits.lower()[:16]
    made = ["".join(drawn.choices(alphabet, k=size)) for alphabet, size in ((urlsafe, 22), (urlsafe, 43),
                                                                            (hexadecimal, 32), (hexadecimal, 64))
            for _ in range(250)]
    for token in made:
        assert Settings.from_env({"KATUNA_API_TOKEN": token}).api_token == token
