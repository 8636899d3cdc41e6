"""The environment a local trial process starts with: what it needs, and none of the service's.

A trial is code its study's author chose; the service's own environment holds its API token,
its ``KATUNA_*`` settings and perhaps cloud credentials, none of which a trial may read. So a
trial gets, and nothing else:

- ``PATH``: the service's Python's bin directory first, then the service's ``PATH``;
- ``HOME``, ``USER``, ``LOGNAME``, ``LANG``, every ``LC_*``, ``TZ`` and ``TMPDIR``, when the
  service has them;
- ``PYTHONUNBUFFERED=1``, so a Python trial's output arrives as it prints;
- the variables an operator lists in ``KATUNA_TRIAL_ENV`` (say ``CUDA_VISIBLE_DEVICES``),
  never one of the service's own ``KATUNA_*`` (its API and metrics tokens among them);
- the study's ``env``, and katuna's trial variables ``KATUNA_STUDY``, ``KATUNA_STUDY_UID``,
  ``KATUNA_TRIAL``, ``KATUNA_ATTEMPT`` and ``KATUNA_OBJECTIVE``;
- ``KATUNA_ATTEMPT_ID``, the marker by which the attempt's processes are found
  (:mod:`functions.adapters.process_tree`), which a study cannot override.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping

KEPT = ("HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR")
"""Variables of the service's environment that every trial gets."""

KEPT_PREFIXES = ("LC_",)
"""Prefixes of variables every trial gets (the locale's categories)."""

NEVER_PREFIX = "KATUNA_"
"""The service's own variables, never passed on, whatever the operator lists (the settings
refuse such a name too)."""


def trial_environment(service: Mapping[str, str], pass_through: Iterable[str], study_env: Mapping[str, str],
                      marker: tuple[str, str]) -> dict[str, str]:
    """The environment of a trial process, from the service's environment ``service``."""
    wanted = set(KEPT) | set(pass_through)
    env = {name: value for name, value in service.items()
           if not name.startswith(NEVER_PREFIX) and (name in wanted or name.startswith(KEPT_PREFIXES))}
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), service.get("PATH", os.defpath)])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(study_env)
    env[marker[0]] = marker[1]
    return env
