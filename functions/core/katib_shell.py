"""What Katib's shell does to a Katib Experiment's primary command: Katib's collector runs the
primary container's command and args as one ``sh -c`` line, where a shell expands ``$HOME``,
runs ``&&``, splits a command line given as one word into its program and arguments, and
removes quotes; katuna runs them as Kubernetes does, with no shell. A word the shell would
expand, run or split is refused at submission, naming its field, rather than passed on as
written; a word the shell would only unquote (``'{"lr": 0.1}'``, as Katib's SDK passes its LLM
trainer's settings) is given to the program unquoted, as Katib's shell gives it
(:func:`unquote_primary_words`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from functions.core import inline_code, template
from functions.core.errors import Problem
from functions.core.trial_spec import as_the_engine_gives, located_containers, primary_container

TEMPLATE = "spec.trialTemplate"
"""Where an Experiment holds its trial template (:data:`functions.core.katib_template.PATH`)."""
SHELL_EXPANSION = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[^}]*\}|[0-9$?#@*!-]|\([^()]*\)|\()")
"""What a shell expands at a ``$``: a variable (``$HOME``, ``${DATA_DIR}``, ``${OUT:-/tmp}``), a
special parameter (``$1``, ``$$``), a command's output (``$(date)``)."""
SHELL_OPERATORS = frozenset(";&|<>")
"""The characters a shell reads as a control or redirection operator wherever they stand
unquoted in a word (``&&``, ``||``, ``;``, ``|``, ``>``, ``2>&1``)."""
SHELL_SPECIAL = frozenset(";&|<>()$`*?[]{}#~")
"""What a shell reads as more than itself outside quotes (an operator, an expansion, a glob, a
brace, a comment, a home folder): a word holding one unquoted is not only unquoted by it."""
KUBELET_REFERENCE = re.compile(r"\$\([^()]*\)")
"""A Kubernetes ``$(NAME)``, which the kubelet expands before any shell reads the word."""
KUBELET_EXPANSION = re.compile(r"\$\$|\$\(([^()]*)\)")
"""What the kubelet expands in a container's command and args, left to right: ``$$`` (to ``$``)
and ``$(NAME)`` (to the variable's value, where the container defines it)."""


def expanded_by_katibs_shell(trial: Mapping[str, Any]) -> list[Problem]:
    """A shell's expansion (:func:`shell_expansion`) in the primary container's command or args
    where they start no shell. Katib's pod webhook wraps that container for its collector (StdOut,
    File or TensorFlowEvent) as ``sh -c "<command and args joined by spaces> 1>... 2>&1 && ..."``
    (``wrapWorkerContainer`` in ``pkg/webhook/v1beta1/pod/utils.go``), so a shell expands
    ``$HOME`` there, and ends, pipes or redirects the command at an operator of a word without
    spaces (:func:`shell_operator`: ``&&``, ``|``, ``>``, ``;``), and splits a program word
    holding spaces (:func:`_program_split`); katuna runs the command as Kubernetes does, without
    a shell, and the program would get either as written, or never start, every trial alike."""
    trial_spec = trial.get("trialSpec")
    if not isinstance(trial_spec, Mapping):
        return []
    labels = trial.get("primaryPodLabels") if isinstance(trial.get("primaryPodLabels"), Mapping) else None
    container = primary_container(trial_spec, trial.get("primaryContainerName"), labels)
    found = next((path for path, _, _, c in located_containers(trial_spec) if c is container), None)
    if container is None or found is None:
        return []
    argv = [(f"{key}[{i}]", item) for key in ("command", "args") for i, item in enumerate(container.get(key) or [])]
    if inline_code.shell_script([str(item) for _, item in argv]) is not None:
        return []
    problems = []
    for field, item in argv:
        if field == "command[0]" and _spaced(str(item)):
            problems.append(_program_split(f"{TEMPLATE}.trialSpec.{found}.{field}", item))
            continue
        text = template.OWN.sub("", str(item))
        met = shell_expansion(as_the_kubelet_gives(as_the_engine_gives(trial_spec, text), _defined(container)))
        if met is not None:
            problems.append(_run_by_katibs_shell(f"{TEMPLATE}.trialSpec.{found}.{field}", item, met, (
                "which a shell expands", "it is expanded", "as written", "the value itself")))
        operator = None if met is not None or _spaced(text) else shell_operator(KUBELET_REFERENCE.sub("", text))
        if operator is not None:
            problems.append(_run_by_katibs_shell(f"{TEMPLATE}.trialSpec.{found}.{field}", item, operator, (
                "which a shell reads as an operator (a command's end, a pipe, a redirection)", "it runs as one",
                "as an argument", "the argument quoted as the shell should read it")))
    return problems


def unquote_primary_words(trial: Mapping[str, Any], trial_spec: Any) -> None:
    """Remove the quotes Katib's shell removes from each word of the primary container's command
    and args in ``trial_spec`` (the translation's own copy of ``trial``'s), where they start no
    shell: ``'{"lr": 0.1}'`` becomes ``{"lr": 0.1}``, ``--name="my model"`` ``--name=my model``.
    Katib's pod webhook joins them into one ``sh -c`` line (``wrapWorkerContainer``), so its
    program gets each such word unquoted; Kubernetes passes a word as written, so without this a
    program parsing the word (a JSON reader) would get the quotes too. Only the primary pods'
    container is changed, as Katib's webhook wraps only it; a word that shell would do more to
    (:func:`shell_word`) stays as written."""
    if not isinstance(trial_spec, Mapping):
        return
    labels = trial.get("primaryPodLabels") if isinstance(trial.get("primaryPodLabels"), Mapping) else None
    container = primary_container(trial_spec, trial.get("primaryContainerName"), labels)
    if not isinstance(container, dict):
        return
    words = [container.get(key) for key in ("command", "args")]
    if not all(isinstance(given, list | None) for given in words):
        return
    if inline_code.shell_script([str(item) for given in words for item in given or []]) is not None:
        return
    for key in ("command", "args"):
        if isinstance(container.get(key), list):
            container[key] = [shell_word(item) if isinstance(item, str) else item for item in container[key]]


def shell_word(word: str) -> str:
    """``word`` as a POSIX shell gives it to a program when all it does is remove quotes and
    backslashes (a placeholder, which Katib fills in before that shell reads the line, kept as it
    is); ``word`` itself where its quotes do not close, or where the shell reads more in it
    outside quotes (whitespace, :data:`SHELL_SPECIAL`) or expands something inside double quotes."""
    if not any(char in "'\"\\" for char in word):
        return word
    kept = {met.start(): met.end() for met in template.OWN.finditer(word)}
    out: list[str] = []
    quote = ""
    at = 0
    while at < len(word):
        if at in kept:
            out.append(word[at:kept[at]])
            at = kept[at]
            continue
        read = _unquoted_char(word, at, quote)
        if read is None:
            return word
        text, quote, at = read
        out.append(text)
    return word if quote else "".join(out)


def _unquoted_char(word: str, at: int, quote: str) -> tuple[str, str, int] | None:
    """What a shell gives of ``word`` at ``at`` inside ``quote`` (``'``, ``"`` or none): the
    text, the quote it is in after it, and where it reads next; None where it does more than
    remove a quote or a backslash there."""
    char, after = word[at], word[at + 1:at + 2]
    if quote == "'":
        return ("", "", at + 1) if char == "'" else (char, quote, at + 1)
    if quote == '"':
        if char == "\\" and after in ("$", "`", '"', "\\"):
            return after, quote, at + 2
        if char in "$`":
            return None
        return ("", "", at + 1) if char == '"' else (char, quote, at + 1)
    if char in "'\"":
        return "", char, at + 1
    if char == "\\":
        return (after, quote, at + 2) if after not in ("", "\n") else None
    return None if char.isspace() or char in SHELL_SPECIAL else (char, quote, at + 1)


def _run_by_katibs_shell(path: str, item: Any, held: str, words: tuple[str, str, str, str]) -> Problem:
    """The refusal of ``item``, a word of the primary container's command or args that holds
    ``held``, which Katib's shell acts on and katuna passes on; ``words`` say what that shell does
    with it, what it does there, how the program would get it, and the other way to write it."""
    what, there, passed, instead = words
    return Problem(path, (
        f"{str(item)!r:.200} holds {held}, {what}: Katib's collector runs the primary container's command and args "
        f"as one sh -c line, where {there}, and katuna runs them as Kubernetes does, with no shell, so the program "
        f"would get {held} {passed}: expected the command as a script (command: [sh, -c, '<the command line>']), "
        f"which a shell runs under both, or {instead}"))


def _program_split(path: str, item: Any) -> Problem:
    """The refusal of a program word holding whitespace (a whole command line given as one
    word, a name with a stray space): Katib's shell splits it into a program and its arguments
    (or trims it), where no program of that name exists without a shell, so every trial would
    fail to start."""
    return Problem(path, (
        f"{str(item)!r:.200} is a program name with spaces, which Katib's shell splits into a program and its "
        "arguments: Katib's collector runs the primary container's command and args as one sh -c line, and katuna "
        "runs them as Kubernetes does, with no shell, where no program has that name and every trial would fail to "
        "start: expected the command as a script (command: [sh, -c, '<the command line>']), which a shell runs "
        "under both, or the program and each of its arguments as words of their own"))


def _spaced(word: str) -> bool:
    """Whether ``word`` holds whitespace, which Katib's shell splits it at: code another program
    reads (``python -c 'import sys; ...'``), a command line given as one argument. Such a word
    runs differently under Katib whatever it holds (the split is documented), so an operator
    in it is not refused on its own."""
    return any(char.isspace() for char in word)


def _defined(container: Mapping[str, Any]) -> frozenset[str] | None:
    """The variables the container defines, whose ``$(NAME)`` the kubelet expands before any
    shell reads the word; None where an ``envFrom`` may define any."""
    if container.get("envFrom"):
        return None
    listed = container.get("env")
    return frozenset(e["name"] for e in listed if isinstance(e, Mapping) and isinstance(e.get("name"), str)) \
        if isinstance(listed, list) else frozenset()


def as_the_kubelet_gives(word: str, defined: frozenset[str] | None) -> str:
    """``word`` as the kubelet gives it to the container, which Katib's shell then reads: each
    ``$(NAME)`` of a variable the container defines (``defined``; any, where None) replaced (by
    ``_``: its value is not known here), one of another left as written, and ``$$`` made ``$``."""
    def expanded(met: re.Match[str]) -> str:
        if met.group() == "$$":
            return "$"
        return "_" if defined is None or met.group(1) in defined else met.group()
    return KUBELET_EXPANSION.sub(expanded, word)


def _read(word: str) -> Iterator[tuple[int, str, str]]:
    """Each character of ``word`` a POSIX shell reads as itself, outside single quotes and
    backslash escapes, with its position and the quote it is in (``"``, or none); the quotes
    and backslashes that say so are not given."""
    quote = ""
    escaped = False
    for at, char in enumerate(word):
        if escaped or (quote == "'" and char != "'"):
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "'\"" and quote in ("", char):
            quote = "" if quote else char
        else:
            yield at, char, quote


def shell_expansion(word: str) -> str | None:
    """The first expansion a POSIX shell makes in ``word`` outside single quotes and backslash
    escapes: at a ``$`` (:data:`SHELL_EXPANSION`), at a backquote (a command's output), at a
    ``~`` that begins it; None where it makes none."""
    if word.startswith("~"):
        return "~"
    for at, char, _ in _read(word):
        if char == "`":
            return char
        if char == "$" and (met := SHELL_EXPANSION.match(word, at)) is not None:
            return met.group()
    return None


def shell_operator(word: str) -> str | None:
    """The first control or redirection operator (:data:`SHELL_OPERATORS`, with the operator
    characters that follow it: ``&&``, ``2>&1``'s ``>&``) a POSIX shell reads in ``word``
    outside quotes and backslash escapes; None where it reads none."""
    for at, char, quote in _read(word):
        if not quote and char in SHELL_OPERATORS:
            end = at
            while end < len(word) and word[end] in SHELL_OPERATORS:
                end += 1
            return word[at:end]
    return None
