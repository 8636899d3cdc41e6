"""Katib's own example Experiments as Katib ships them, submitted as a user submits them: the
file given to ``katuna run``, the same text posted to ``POST /studies``. The files in
``tests/data/katib_examples/shipped/`` are copied unchanged from kubeflow/katib (commit
``33c8ff4``): ``examples/v1beta1/hp-tuning/random.yaml``,
``examples/v1beta1/trial-template/trial-configmap-source.yaml`` and the ``trial-templates``
ConfigMap it reads (``manifests/v1beta1/components/controller/trial-templates.yaml``), which
``tests/test_katib_configmap_file.py`` submits in one file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from http_helpers import run_katuna

from functions.core.errors import InvalidStudy
from functions.core.formats import load_study

SHIPPED = Path(__file__).parent / "data" / "katib_examples" / "shipped"
PRIMARY = "spec.trialTemplate.trialSpec.spec.template.spec.containers[0]"


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KATUNA_")}


@pytest.mark.parametrize("around", [("", "---\n"), ("", "---\n...\n---\n"), ("---\n", "")])
def test_empty_documents_around_an_experiment_are_passed_over_as_kubectl_passes_them(around: tuple[str, str]):
    """A ``---`` ending the file, or empty documents beside the Experiment, hold nothing:
    kubectl passes them over, and so does katuna (Katib's examples begin with ``---``)."""
    before, after = around
    study, _ = load_study(before + (SHIPPED / "random.yaml").read_text() + after)
    assert study.name == "random"


def _as_one_word(doc: dict) -> str:
    """The primary container's command as one word, the command line Katib's shell runs."""
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    line = " ".join(container["command"])
    container["command"] = [line]
    return line


def test_a_command_line_given_as_one_word_is_refused_naming_it(tmp_path: Path):
    """Katib's collector runs the primary container as ``sh -c "<command and args joined>"``,
    whose shell splits a command line given as one word into its program and arguments; katuna
    runs the command without a shell, where no program of that name exists, and every trial
    would fail to start. Refused at submission naming the word, nothing stored; the same line
    as a script runs under both."""
    doc = yaml.safe_load((SHIPPED / "random.yaml").read_text())
    line = _as_one_word(doc)
    with pytest.raises(InvalidStudy) as refused:
        load_study(yaml.safe_dump(doc))
    [problem] = refused.value.problems
    assert problem.path == f"{PRIMARY}.command[0]"
    assert "a program name with spaces, which Katib's shell splits into a program and its arguments" in problem.message
    assert "expected the command as a script (command: [sh, -c, '<the command line>'])" in problem.message
    file = tmp_path / "random.yaml"
    file.write_text(yaml.safe_dump(doc))
    done = run_katuna("run", str(file), "--db", str(tmp_path / "k.db"), cwd=tmp_path, env=_environ())
    assert done.returncode == 2, done
    assert f"{PRIMARY}.command[0]" in done.stderr
    assert not (tmp_path / "k.db").exists(), "nothing stored, no trial run"
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["sh", "-c", line]
    study, _ = load_study(yaml.safe_dump(doc))
    assert study.name == "random"


@pytest.mark.parametrize("program", ["python3 ", " python3", "python3\t/opt/pytorch-mnist/mnist.py"])
def test_a_program_word_katibs_shell_would_trim_or_split_is_refused(program: str):
    doc = yaml.safe_load((SHIPPED / "random.yaml").read_text())
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [program, *container["command"][1:]]
    with pytest.raises(InvalidStudy) as refused:
        load_study(yaml.safe_dump(doc))
    assert [p.path for p in refused.value.problems] == [f"{PRIMARY}.command[0]"]


def test_an_argument_with_spaces_is_still_taken_as_one_argument():
    """Only the program's word is refused: an argument holding spaces reaches the program as
    one argument, as documented (code a ``python -c`` runs, say)."""
    doc = yaml.safe_load((SHIPPED / "random.yaml").read_text())
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"].append("--note=two words")
    study, _ = load_study(json.dumps(doc))
    assert study.name == "random"
