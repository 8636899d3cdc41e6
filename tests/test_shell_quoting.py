"""A parameter's value in a shell's script is data wherever the script names it: each script
below, filled in as a trial's command would be, runs in real shells (dash's ``sh`` and bash)
and prints exactly the value, and none of the values runs anything."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from functions.core import template

SHELLS = [shell for shell in ("sh", "bash") if shutil.which(shell)]

FORMS = {
    "outside quotes": ("printf '[%s]' ${trialParameters.v}", "[{}]"),
    "in double quotes": ('printf "[%s]" "--v=${trialParameters.v}"', "[--v={}]"),
    "in single quotes": ("printf '[%s]' '--v=${trialParameters.v}'", "[--v={}]"),
    "in a shell's default": ('printf "[%s]" "${UNSET:-${trialParameters.v}}"', "[{}]"),
    "in a shell's default outside quotes": ("printf '[%s]' ${UNSET:-${trialParameters.v}}", "[{}]"),
    "in a command substitution": ('printf "[%s]" "$(printf %s "${trialParameters.v}")"', "[{}]"),
    "in a here-document": ("cat <<EOF\n[${trialParameters.v}]\nEOF", "[{}]\n"),
    "in an indented here-document": ("cat <<-EOF\n\t[${trialParameters.v}]\n\tEOF", "[{}]\n"),
    "in a here-document read as written": ("cat <<'EOF'\n[${trialParameters.v}]\nEOF", "[{}]\n"),
    "after a comment with a quote": ("# it's\nprintf '[%s]' ${trialParameters.v}", "[{}]"),
    "after a shift in arithmetic": ("x=$((1 << 2))\nprintf '[%s]' $x ${trialParameters.v}", "[4][{}]"),
    "after a backquoted command": ("x=`echo 'a\"'`\nprintf '[%s]' \"${trialParameters.v}\"", "[{}]"),
}

VALUES = ["0.01", "-3", "adam", "", "a  b", "*", "~", "a=b", "\\", "${HOME}", "--help", "\n leading newline",
          "'quoted'", '"double"']


def hostile(marker: Path) -> list[str]:
    return [f"$(touch {marker})", f"`touch {marker}`", f'"; touch {marker}; "', f"'; touch {marker}; '",
            f"EOF\ntouch {marker}", f"x' ; touch {marker} ; '"]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("form", FORMS)
def test_a_script_gets_exactly_the_value_wherever_it_names_it(tmp_path: Path, shell: str, form: str):
    marker = tmp_path / "ran"
    script, expected = FORMS[form]
    for value in VALUES + hostile(marker):
        text = template.substitute(script, {"v": value}, "trial-0", script=True)
        env = {"PATH": "/usr/bin:/bin", **template.parameter_env({"v": value})}
        out = subprocess.run([shell, "-c", text], capture_output=True, text=True, env=env, timeout=10).stdout
        if form == "in a here-document read as written" and value.startswith("EOF\n"):
            assert out == expected.format("${KATUNA_PARAM_v}"), text  # the value would end the document
        else:
            assert out == expected.format(value), (value, text)
    assert not marker.exists()


def test_a_number_or_plain_word_is_written_into_the_script_and_any_other_value_is_a_variable():
    script = "train --v=${trialParameters.v}"
    assert template.substitute(script, {"v": 0.001}, "t", script=True) == "train --v=0.001"
    assert template.substitute(script, {"v": "sgd/momentum:0.9"}, "t", script=True) == "train --v=sgd/momentum:0.9"
    assert template.substitute(script, {"v": "a b"}, "t", script=True) == 'train --v="${KATUNA_PARAM_v}"'
    assert template.parameter_env({"v": "a b"}) == {"KATUNA_PARAM_v": "a b"}
