"""Report a trial's intermediate values to katuna, so early stopping reaches trials on a cluster.

Standard library only, so a trial image can carry this one file without installing katuna:

    from reporter import report          # or: from functions.reporter import report
    for epoch in range(1, epochs + 1):
        ...
        report(epoch, accuracy=accuracy)  # also print(f"epoch={epoch} accuracy={accuracy}")

It posts a ``dev.katuna.trial.progress`` CloudEvent to ``KATUNA_REPORT_URL``, which katuna sets
for trials of studies with early stopping, and does nothing elsewhere. A trial the pruner stops
is ended from outside (its Job is deleted); ``report`` itself never raises. NaN and the
infinities are reported too, by name (``"nan"``, ``"inf"``, ``"-inf"``: JSON has no number for
them), as the pruner stops a trial whose values turned NaN.

Where a SinkBinding binds the trial's pod to a broker that needs Knative Eventing's OIDC tokens,
the post carries the token the binding mounts (``/oidc/token``, or ``KATUNA_SINK_TOKEN_FILE``,
read at each report as it is rotated); an https sink is trusted with the CA certificates in
``K_CA_CERTS`` as well as the system's.
"""

from __future__ import annotations

import json
import math
import os
import ssl
import urllib.request

OIDC_MOUNT = "/oidc/token"
"""Where a SinkBinding mounts the OIDC token for its sink."""


def report(step: int, **metrics: float) -> bool:
    """Send the objective's value at ``step``; whether it was sent."""
    env = os.environ
    url, objective = env.get("KATUNA_REPORT_URL"), env.get("KATUNA_OBJECTIVE")
    if not url or objective not in metrics:
        return False
    ids = [env.get(k, "") for k in ("KATUNA_STUDY", "KATUNA_STUDY_UID", "KATUNA_TRIAL", "KATUNA_ATTEMPT")]
    data = {"study": ids[0], "uid": ids[1], "trial": int(ids[2] or 0), "attempt": int(ids[3] or 1),
            "step": int(step), "value": _json_value(float(metrics[objective]))}
    headers = {"ce-specversion": "1.0", "ce-type": "dev.katuna.trial.progress", "ce-source": "/katuna/reporter",
               "ce-id": "/".join([*ids[1:], "progress", str(step)]), "ce-subject": f"{ids[0]}/{ids[2]}",
               "content-type": "application/json"}
    return _post(url, json.dumps(data, allow_nan=False).encode(), headers)


def _json_value(value: float) -> float | str:
    """A finite value as it is; NaN or an infinity by name, as katuna's events carry them (this
    file stands alone, so it spells them itself)."""
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"


def _post(url: str, body: bytes, headers: dict[str, str]) -> bool:
    """POST ``body``, with the sink's OIDC token and CA certificates where the pod has them;
    whether it was accepted."""
    env = os.environ
    try:
        context = ssl.create_default_context()
        if env.get("K_CA_CERTS"):
            context.load_verify_locations(cadata=env["K_CA_CERTS"])
        headers = {**headers, **_authorization(env.get("KATUNA_SINK_TOKEN_FILE") or OIDC_MOUNT)}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=5, context=context):
            return True
    except (OSError, ValueError):
        return False


def _authorization(path: str) -> dict[str, str]:
    """The bearer token the file holds now; none without the file (OIDC is off)."""
    try:
        with open(path) as file:
            token = file.read().strip()
    except FileNotFoundError:
        return {}
    return {"Authorization": f"Bearer {token}"} if token else {}
