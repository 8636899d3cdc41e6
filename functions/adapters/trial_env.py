"""The environment a local trial process starts with: what it needs, and none of the service's.

A trial is code its study's author chose; the service's own environment holds its API token,
its ``KATUNA_*`` settings and perhaps cloud credentials, none of which a trial may read. So a
trial gets, and nothing else:

- ``PATH``: the service's Python's bin directory first, then the service's ``PATH``;
- ``HOME``, ``USER``, ``LOGNAME``, ``LANG``, every ``LC_*``, ``TZ`` and ``TMPDIR``, when the
  service has them;
- ``PYTHONUNBUFFERED=1``, so a Python trial's output arrives as it prints;
- the variables an operator lists in ``KATUNA_TRIAL_ENV`` (say ``CUDA_VISIBLE_DEVICES``), and
  the trials' own secrets it lists in ``KATUNA_TRIAL_SECRETS`` (say ``WANDB_API_KEY``), never one
  of the service's own ``KATUNA_*`` (its API and metrics tokens among them) nor a variable by
  which a cloud or Kubernetes client finds the service's credentials (:data:`CLOUD_CREDENTIALS`);
- the study's ``env``, and katuna's trial variables ``KATUNA_STUDY``, ``KATUNA_STUDY_UID``,
  ``KATUNA_TRIAL``, ``KATUNA_ATTEMPT`` and ``KATUNA_OBJECTIVE``;
- ``KATUNA_ATTEMPT_ID``, the marker by which the attempt's processes are found
  (:mod:`functions.adapters.process_tree`), which a study cannot override.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping

KEPT = ("HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR")
"""Variables of the service's environment that every trial gets."""

KEPT_PREFIXES = ("LC_",)
"""Prefixes of variables every trial gets (the locale's categories)."""

NEVER_PREFIX = "KATUNA_"
"""The service's own variables, never passed on, whatever the operator lists (the settings
refuse such a name too)."""

CLOUD_CREDENTIALS = frozenset({
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_CREDENTIALS", "GOOGLE_CLOUD_KEYFILE_JSON",
    "CLOUDSDK_AUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE",
    "CLOUDSDK_CONFIG", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "KUBECONFIG",
})
"""Variables that hold, or lead the cloud and Kubernetes clients (boto3, google-auth, the
Kubernetes client) to, the service's credentials: the identity that makes node pools and Jobs,
never a trial's, whichever list names them."""

SECRET_WORDS = frozenset({
    "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PASSPHRASE", "CREDENTIAL",
    "CREDENTIALS", "CREDS", "COOKIE", "COOKIES", "DSN", "APIKEY", "ACCESSKEY", "SECRETKEY", "PRIVATEKEY",
})
"""Words of a variable's name, between underscores, that say it holds a secret wherever they stand
(``HF_TOKEN``, ``SENTRY_DSN``, ``SESSION_COOKIE``); a longer word holding one
(``TOKENIZERS_PARALLELISM``) says nothing of the kind."""

SECRET_ENDINGS = frozenset({"PASS", "KEY", "KEYS", "AUTH", "SESSION"})
"""Words that say so where they end the name (``SMTP_PASS``, ``OPENAI_KEY``, ``BASIC_AUTH``,
``KEY``): elsewhere they name other things (``KEY_LEVEL``, ``PASS_COUNT``, ``AUTH_URL``)."""

SECRET_PHRASES = (("PRIVATE", "KEY"), ("API", "KEY"), ("ACCESS", "KEY"), ("SECRET", "KEY"))
"""Two words that say so wherever they stand (``SSH_PRIVATE_KEY_PATH``, ``GH_ACCESS_KEY_ID``)."""

SECRET_NAMES = (("DATABASE", "URL"),)
"""Endings of names that, by convention, hold a connection string with its password."""

VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def trial_environment(service: Mapping[str, str], pass_through: Iterable[str], study_env: Mapping[str, str],
                      marker: tuple[str, str]) -> dict[str, str]:
    """The environment of a trial process, from the service's environment ``service``."""
    wanted = set(KEPT) | set(pass_through)
    env = {name: value for name, value in service.items()
           if not name.startswith(NEVER_PREFIX) and name.upper() not in CLOUD_CREDENTIALS and (name in wanted or name.startswith(KEPT_PREFIXES))}
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), service.get("PATH", os.defpath)])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(study_env)
    env[marker[0]] = marker[1]
    return env


def pass_through_problem(names: Iterable[str], secrets: bool) -> str | None:
    """Why local trials may not get the service's variables ``names`` (``KATUNA_TRIAL_SECRETS``
    where ``secrets``, else ``KATUNA_TRIAL_ENV``), or None: a name no variable has, one of the
    service's own, a cloud credential, or, in the list that is not for secrets, a secret."""
    names = list(names)
    unnamed = [name for name in names if not VARIABLE_NAME.fullmatch(name)]
    if unnamed:
        return ("expected names of environment variables (letters, digits and _, not beginning with a digit), "
                f"got {', '.join(map(repr, unnamed))}")
    own = [name for name in names if name.upper().startswith(NEVER_PREFIX)]
    if own:
        return (f"trials may never get the service's own {NEVER_PREFIX}* variables (its tokens among them): "
                f"remove {', '.join(own)} from the list")
    cloud = [name for name in names if name.upper() in CLOUD_CREDENTIALS]
    if cloud:
        return (f"{cloud[0]} leads to the service's own cloud or Kubernetes credentials, which trials may never "
                "get: remove it from the list; a trial that reaches a cloud does so with credentials made for it")
    secret = [name for name in names if not secrets and names_a_secret(name)]
    if secret:
        return (f"{secret[0]} is named as a secret is, and this list passes no secret to trials: remove it, or, "
                f"where it is a secret made for the trials (never one of the service's), name it in "
                f"{NEVER_PREFIX}TRIAL_SECRETS instead")
    return None


def names_a_secret(name: str) -> bool:
    """Whether the variable's ``name`` says it holds a secret, judged on its words between
    underscores (so ``KEYBOARD`` and ``MONKEY_LEVEL`` say nothing of the kind)."""
    words = [word for word in name.upper().split("_") if word]
    pairs = list(zip(words, words[1:]))
    return bool(SECRET_WORDS.intersection(words) or (words and words[-1] in SECRET_ENDINGS)
                or any(pair in SECRET_PHRASES for pair in pairs) or (pairs and pairs[-1] in SECRET_NAMES))
