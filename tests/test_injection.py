"""Parameter values with shell metacharacters reach the trial literally and execute nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import run_study

ARGV_TRIAL = Path(__file__).parent / "trials" / "argv.py"


def hostile_values(marker: Path) -> list[str]:
    """Values that would create ``marker`` if any shell or template engine interpreted them."""
    return [f"; touch {marker}", f"$(touch {marker})", f"`touch {marker}`", f"| touch {marker}",
            f"&& touch {marker}", f"\n touch {marker}", f"' ; touch {marker} '", f'" ; touch {marker} "',
            "${trialParameters.value}", "${trialSpec.Name}", "${HOME}", "$HOME", "*", "~", "%s%s%n",
            f"{{{{ touch {marker} }}}}", "-rf", "--help"]


def test_shell_metacharacters_in_a_categorical_value_reach_the_trial_literally(embedded, tmp_path: Path):
    marker = tmp_path / "executed"
    values = hostile_values(marker)
    out = tmp_path / "argv"
    out.mkdir()
    definition = {
        "name": "inject", "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "value", "type": "categorical", "values": values}],
        "algorithm": {"name": "grid"}, "parallelism": 3,
        "trialTemplate": {"command": [sys.executable, str(ARGV_TRIAL), "--value", "${trialParameters.value}",
                                      "v=${trialParameters.value}"],
                          "env": {"VALUE": "${trialParameters.value}", "ARGV_DIR": str(out)}},
    }
    study = run_study(embedded, definition, tmp_path)
    assert study.status == "completed"
    trials = embedded.store.trials("inject")
    assert sorted(t.params["value"] for t in trials) == sorted(values)
    assert all(t.state == "COMPLETE" for t in trials)
    for trial in trials:
        value = trial.params["value"]
        seen = json.loads((out / f"{trial.number}.json").read_text())
        assert (seen["argv"], seen["env"]) == (["--value", value, f"v={value}"], value)
    assert not marker.exists()
    assert not list(tmp_path.glob("*touch*"))


SCRIPT = (f"exec {sys.executable} {ARGV_TRIAL} ${{trialParameters.value}} \"dq=${{trialParameters.value}}\" "
          "'sq=${trialParameters.value}' \"${UNSET:-${trialParameters.value}}\" \"$(printf %s \"${trialParameters.value}\")\""
          " <<EOF\n${trialParameters.value}\nEOF\n")
"""A shell's script naming the value outside quotes, in double and single quotes, inside the
shell's own ``${...}`` and ``$(...)``, and in a here-document (the trial's standard input)."""


def _scripted(shape: str, values: list[str], out: Path) -> dict:
    """A study whose trial is ``sh -c SCRIPT``: as a command, or as a Katib-style Job's container."""
    definition = {
        "name": "inject-shell", "objective": {"metric": "loss", "direction": "minimize"},
        "parameters": [{"name": "value", "type": "categorical", "values": values}],
        "algorithm": {"name": "grid"}, "parallelism": 3,
        "trialTemplate": {"command": ["sh", "-c", SCRIPT], "env": {"ARGV_DIR": str(out)}},
    }
    if shape == "trialSpec":
        container = {"name": "main", "image": "busybox", "command": ["sh", "-c"], "args": [SCRIPT],
                     "env": [{"name": "ARGV_DIR", "value": str(out)}]}
        definition["trialTemplate"] = {"primaryContainerName": "main", "trialSpec": {
            "apiVersion": "batch/v1", "kind": "Job",
            "spec": {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}}}}
    return definition


@pytest.mark.parametrize("shape", ["command", "trialSpec"])
def test_a_value_reaches_a_shells_script_as_data_wherever_the_script_names_it(embedded, tmp_path: Path, shape: str):
    marker = tmp_path / "executed"
    values = hostile_values(marker)
    out = tmp_path / "argv"
    out.mkdir()
    study = run_study(embedded, _scripted(shape, values, out), tmp_path)
    assert study.status == "completed"
    trials = embedded.store.trials("inject-shell")
    assert sorted(t.params["value"] for t in trials) == sorted(values)
    for trial in trials:
        value = trial.params["value"]
        seen = json.loads((out / f"{trial.number}.json").read_text())
        assert seen["argv"] == [value, f"dq={value}", f"sq={value}", value, value], value
        assert seen["stdin"] == value + "\n", value
    assert not marker.exists()
    assert not list(tmp_path.glob("*touch*"))
