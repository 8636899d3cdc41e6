"""A trial sees a minimal environment: nothing of the service's secrets or settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml
from http_helpers import KATUNA

from functions.adapters.trial_env import trial_environment
from functions.core.errors import InvalidSetting
from functions.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

DUMP = "import json, os, sys; open(sys.argv[1], 'w').write(json.dumps(dict(os.environ))); print('loss=1')"

SERVICE_ONLY = {
    "KATUNA_API_TOKEN": "the-admin-token-0123456789", "KATUNA_BUSY_TIMEOUT": "31", "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "AWS_ACCESS_KEY_ID": "aws-id", "GOOGLE_APPLICATION_CREDENTIALS": "/secret/key.json", "DATABASE_PASSWORD": "pw",
}


@pytest.mark.slow
def test_a_trial_gets_only_the_documented_variables(tmp_path: Path):
    seen = tmp_path / "env.json"
    definition = {
        "name": "env", "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
        "maxTrials": 1, "parallelism": 1,
        "trialTemplate": {"command": [sys.executable, "-c", DUMP, str(seen)],
                          "env": {"STUDY_SETTING": "${trialParameters.x}"}},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(definition))
    environ = {**os.environ, **SERVICE_ONLY, "CUDA_VISIBLE_DEVICES": "1", "KATUNA_TRIAL_ENV": "CUDA_VISIBLE_DEVICES",
               "WANDB_API_KEY": "the-trials-own", "KATUNA_TRIAL_SECRETS": "WANDB_API_KEY",
               "LANG": "C.UTF-8", "TZ": "UTC", "HOME": str(tmp_path)}
    done = subprocess.run([KATUNA, "run", "study.yaml", "--db", "katuna.db"], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

    env = json.loads(seen.read_text())
    assert not set(SERVICE_ONLY) & set(env), "no secret or setting of the service reaches a trial"
    katuna = {"KATUNA_STUDY", "KATUNA_STUDY_UID", "KATUNA_TRIAL", "KATUNA_ATTEMPT", "KATUNA_OBJECTIVE",
              "KATUNA_ATTEMPT_ID", "KATUNA_PARAM_x"}
    documented = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "PYTHONUNBUFFERED",
                  "CUDA_VISIBLE_DEVICES", "WANDB_API_KEY", "STUDY_SETTING"} | katuna
    assert {name for name in env if not name.startswith("LC_")} <= documented
    assert katuna <= set(env)
    assert env["WANDB_API_KEY"] == "the-trials-own", "a secret of the trials', named as one, is passed"
    assert (env["CUDA_VISIBLE_DEVICES"], env["LANG"], env["TZ"], env["HOME"]) == ("1", "C.UTF-8", "UTC", str(tmp_path))
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent), "the service's Python comes first"
    assert env["PYTHONUNBUFFERED"] == "1" and float(env["STUDY_SETTING"]) <= 1.0
    assert env["KATUNA_PARAM_x"] == env["STUDY_SETTING"], "every trial gets each parameter's value in a variable"
    assert env["KATUNA_ATTEMPT_ID"] == f"{env['KATUNA_STUDY_UID']}/0/1"


@pytest.mark.parametrize("name", ["KATUNA_API_TOKEN", "KATUNA_METRICS_TOKEN", "KATUNA_DB"])
def test_the_services_own_variables_can_never_be_passed_through(name: str):
    with pytest.raises(ValueError, match=f"KATUNA_TRIAL_ENV.*remove {name}"):
        Settings.from_env({"KATUNA_TRIAL_ENV": f"CUDA_VISIBLE_DEVICES,{name}"})
    env = trial_environment({name: "t", "PATH": "/bin"}, [name], {}, ("M", "m"))
    assert name not in env


CLOUD = ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS",
         "AZURE_CLIENT_SECRET", "KUBECONFIG"]


@pytest.mark.parametrize("name", CLOUD)
def test_the_services_cloud_credentials_are_refused_in_either_list_and_never_passed(name: str):
    for setting in ("KATUNA_TRIAL_ENV", "KATUNA_TRIAL_SECRETS"):
        with pytest.raises(InvalidSetting, match=f"^{setting}: {name} leads to the service's own cloud or Kubernetes "
                                                 "credentials, which trials may never get: remove it"):
            Settings.from_env({setting: f"CUDA_VISIBLE_DEVICES,{name}"})
    assert name not in trial_environment({name: "t", "PATH": "/bin"}, [name], {}, ("M", "m"))


SECRETS = ["WANDB_API_KEY", "HF_TOKEN", "DATABASE_PASSWORD", "MY_SECRET", "GH_ACCESS_KEY", "SMTP_PASS", "DB_PASSWD",
           "OPENAI_KEY", "SIGNING_KEY", "KEY", "AUTH", "BASIC_AUTH", "DSN", "SENTRY_DSN", "GIT_CREDENTIALS",
           "SESSION_COOKIE", "FLASK_SESSION", "SSH_PRIVATE_KEY_PATH", "TLS_PRIVATEKEY", "DATABASE_URL",
           "GPG_PASSPHRASE", "API_KEY_ID"]


@pytest.mark.parametrize("name", SECRETS)
def test_a_secret_is_passed_only_where_named_as_one(name: str):
    with pytest.raises(InvalidSetting, match=f"^KATUNA_TRIAL_ENV: {name} is named as a secret is, and this list passes "
                                             "no secret to trials: remove it, or.* name it in KATUNA_TRIAL_SECRETS"):
        Settings.from_env({"KATUNA_TRIAL_ENV": f"CUDA_VISIBLE_DEVICES,{name}"})
    settings = Settings.from_env({"KATUNA_TRIAL_ENV": "TOKENIZERS_PARALLELISM", "KATUNA_TRIAL_SECRETS": name})
    assert settings.passed_to_trials == ("TOKENIZERS_PARALLELISM", name), "a word holding TOKEN is no secret's"


def test_a_name_holding_a_secrets_word_inside_a_longer_word_is_passed():
    names = ("KEYBOARD,MONKEY_LEVEL,TOKENIZERS_PARALLELISM,KEY_LEVEL,PASS_COUNT,AUTH_URL,NUM_PASSES,HOTKEY,"
             "SESSION_NAME_PREFIX,_KEYS_SEEN_,CUDA_VISIBLE_DEVICES")
    settings = Settings.from_env({"KATUNA_TRIAL_ENV": names})
    assert settings.trial_env == tuple(names.split(","))


def test_a_study_cannot_take_over_the_attempt_marker():
    env = trial_environment({"PATH": "/bin"}, [], {"KATUNA_ATTEMPT_ID": "someone-else/0/1"},
                            ("KATUNA_ATTEMPT_ID", "u/0/1"))
    assert env["KATUNA_ATTEMPT_ID"] == "u/0/1"


READ_PARENT = textwrap.dedent("""
    import ctypes, os, sys, time
    from pathlib import Path
    from functions.adapters.local_executor import LocalExecutor
    from functions.core.launch import TrialLaunch
    logs = Path(sys.argv[1])
    if os.getuid() == 0:  # become an ordinary user, whose processes may read each other's /proc files
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # dumpable, as a process that user started is
    executor = LocalExecutor(logs, publish=lambda event: None)
    read = f"tr '\\\\0' '\\\\n' < /proc/{os.getpid()}/environ; echo status=$?"
    executor.launch(TrialLaunch(study="demo", uid=f"u1-{os.getpid()}", number=0, attempt=1, job_name="demo-0-1",
                                argv=["/bin/sh", "-c", read], env={}, working_dir=str(logs), timeout=None))
    while executor.running():
        time.sleep(0.05)
    executor.shutdown()
""")


def test_a_local_trial_cannot_read_the_environment_of_the_process_that_started_it():
    """A trial runs as the service's user, who may read ``/proc/<pid>/environ`` of their own
    processes: the service's token is there unless the service hides it."""
    logs = Path(tempfile.mkdtemp(prefix="katuna-hidden-"))
    try:
        if os.getuid() == 0:
            os.chown(logs, 65534, 65534)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KATUNA_API_TOKEN": "the-admin-token-0123456789"}
        done = subprocess.run([sys.executable, "-c", READ_PARENT, str(logs)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        output = (logs / "demo" / "0.1.log").read_text()
        assert "the-admin-token" not in output
        assert "Permission denied" in output and "status=0" not in output
    finally:
        shutil.rmtree(logs)
