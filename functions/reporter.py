"""Report a trial's intermediate values to katuna, so early stopping reaches trials on a cluster.

Standard library only, so a trial image can carry this one file without installing katuna:

    from reporter import report          # or: from functions.reporter import report
    for epoch in range(1, epochs + 1):
        ...
        report(epoch, accuracy=accuracy)  # also print(f"epoch={epoch} accuracy={accuracy}")

It posts a ``dev.katuna.trial.progress`` CloudEvent to ``KATUNA_REPORT_URL``, which katuna sets
for trials of studies with early stopping, and does nothing elsewhere. A trial the pruner stops
is ended from outside (its Job is deleted); ``report`` itself never raises.
"""

from __future__ import annotations

import json
import os
import urllib.request


def report(step: int, **metrics: float) -> bool:
    """Send the objective's value at ``step``; whether it was sent."""
    env = os.environ
    url, objective = env.get("KATUNA_REPORT_URL"), env.get("KATUNA_OBJECTIVE")
    if not url or objective not in metrics:
        return False
    ids = [env.get(k, "") for k in ("KATUNA_STUDY", "KATUNA_STUDY_UID", "KATUNA_TRIAL", "KATUNA_ATTEMPT")]
    data = {"study": ids[0], "uid": ids[1], "trial": int(ids[2] or 0), "attempt": int(ids[3] or 1),
            "step": int(step), "value": float(metrics[objective])}
    headers = {"ce-specversion": "1.0", "ce-type": "dev.katuna.trial.progress", "ce-source": "/katuna/reporter",
               "ce-id": "/".join([*ids[1:], "progress", str(step)]), "ce-subject": f"{ids[0]}/{ids[2]}",
               "content-type": "application/json"}
    request = urllib.request.Request(url, data=json.dumps(data).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5):
            return True
    except OSError:
        return False
