"""The local executor across processes: an attempt exists while the process that owns it lives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from functions.adapters.local_executor import LocalExecutor
from functions.core.ports import TrialLaunch

ROOT = Path(__file__).resolve().parent.parent


def attempt(tmp_path: Path, argv: list[str]) -> TrialLaunch:
    return TrialLaunch(study="demo", uid="u1", number=0, attempt=1, job_name="demo-0-1", argv=argv, env={},
                       working_dir=str(tmp_path), timeout=None)


OWNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from functions.adapters.local_executor import LocalExecutor
    from functions.core.ports import TrialLaunch
    executor = LocalExecutor(Path(sys.argv[1]), publish=lambda event: None)
    executor.launch(TrialLaunch(study="demo", uid="u1", number=0, attempt=1, job_name="demo-0-1",
                                argv=[sys.executable, "-c", "import time; time.sleep(5)"], env={},
                                working_dir=sys.argv[1], timeout=None))
    print("launched", flush=True)
    time.sleep(60)
""")


def test_an_attempt_owned_by_a_live_process_exists_and_stops_existing_when_that_process_dies(tmp_path: Path):
    logs = tmp_path / "logs"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(logs)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert owner.stdout.readline().strip() == "launched"
        here = LocalExecutor(logs, publish=lambda event: None)
        launch = attempt(tmp_path, [sys.executable, "-c", "pass"])
        claim = logs / "demo" / "0.1.owner"
        assert here.exists(launch), "another live process runs the attempt"
        assert claim.stat().st_nlink == 2, "the claim is a link to the owner's identity file"
        assert claim.read_text().startswith(f"{owner.pid}:")
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert not here.exists(launch), "its owner died: the attempt was lost"

    here.launch(launch)
    assert claim.read_text().startswith(f"{os.getpid()}:"), "a new run of the attempt claims it anew"
    deadline = time.monotonic() + 10
    while here.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    here.shutdown()
    assert claim.read_text().startswith(f"{os.getpid()}:"), "claims outlive the executor's identity file"
    identities = [p.read_text() for p in (logs / ".owners").iterdir()]
    assert [i.split(":")[0] for i in identities] == [str(owner.pid)], \
        "this executor's identity file goes with it (a killed owner's stays behind)"
