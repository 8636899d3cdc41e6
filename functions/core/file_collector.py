"""The File metrics collector on Kubernetes: the metrics file's lines reach katuna in the pod log.

A file inside a trial's pod is out of katuna's reach. As Katib's webhook does for its own
collector, the primary container's command is wrapped by a small POSIX shell script (so the
image needs ``sh``, as Katib's wrapped containers do): it runs the command, follows the metrics
file while the command runs (from its first line, whenever it appears; again from its start
when it is truncated or replaced; a last line without its line break included) and copies each
new line to the container's output behind :data:`MARK`.
katuna then reads the file's lines from the pod log (:func:`file_lines`) and parses them with
the study's format and filters, as it parses a local trial's file. The wrapper passes signals
on to the command and exits with its status. An ``emptyDir`` volume is mounted at the file's
folder when the path is absolute, as Katib mounts one, so the folder exists and is writable.
"""

from __future__ import annotations

import copy
import inspect
import json
import posixpath
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from functions.core import tfevents
from functions.core.errors import PermanentError, Problem
from functions.core.portable_source import portable
from functions.core.trial_spec import no_command

MARK = "katuna-metrics-file| "
"""What starts each line of the metrics file as the wrapper copies it to the pod log."""

VOLUME = "katuna-metrics-file"

RUN_COMMAND = r"""code=143
if [ -z "$term" ]; then
  "$@" &
  child=$!
  if [ -n "$term" ]; then kill -TERM "$child" 2>/dev/null; fi
  while :; do wait "$child"; code=$?; kill -0 "$child" 2>/dev/null || break; done
fi
"""
"""The wrappers' run of the command: not started when a SIGTERM or SIGINT came first (exit
143), passed one that comes while it starts, waited for through the signals it is passed; its
exit status in ``code``. The wrapper sets ``child=; term=`` and its trap before. One instant
stays open: a signal passed on between the fork and the command's ``exec`` meets the fork's
copy of the trap and is lost (``sh`` offers no way to close it); the pod then ends at its
grace period, as one whose command ignores SIGTERM."""

WRAPPER = r"""file=$1; shift
child=; term=; ready=; bulk=1
for tool in awk tail ls; do command -v "$tool" >/dev/null 2>&1 || bulk=; done
trap 'ready=1' USR2
trap 'term=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' TERM INT
(
  stop=; opened=; pending=; inode=; size=; from=1; copied=0
  trap 'stop=1' USR1
  kill -USR2 ${$}
  set -f
  exec 4>&1
  while :; do
    last=$stop
    if [ -n "$bulk" ]; then
      set -- `ls -dinL -- "$file" 2>/dev/null`
      if [ "$#" -ge 6 ] && [ "${2#-}" != "$2" ]; then
        if [ "$1" != "$inode" ] || [ "$6" -lt "$copied" ] 2>/dev/null; then inode=$1; size=; from=1; copied=0; fi
        if [ "$6" != "$size" ] || [ -n "$last" ]; then
          size=$6
          at=`{ tail -c +"$from" <"$file"; echo; } 2>/dev/null | LC_ALL=C awk -v copied="$copied" -v last="$last" '
            NR > 1 { printf "\rkatuna-metrics-file| %s\n", held; copied += length(held) + 1 }
            { held = $0 }
            END { if (last != "" && held != "") printf "\rkatuna-metrics-file| %s\n", held
                  printf("%.0f %.0f\n", copied + 1, copied) > "/dev/stderr" }' 2>&1 >&4`
          case $at in *[!0-9\ ]* | "") ;; *) from=${at% *}; copied=${at#* } ;; esac
        fi
      fi
    else
      if [ -z "$opened" ] && [ -e "$file" ]; then exec 3<"$file" && opened=1; fi
      if [ -n "$opened" ]; then
        while IFS= read -r line <&3; do printf '\rkatuna-metrics-file| %s%s\n' "$pending" "$line"; pending=; done
        pending=$pending$line
      fi
    fi
    if [ -n "$last" ]; then break; fi
    sleep 0.2 >/dev/null 2>&1 <&- 3<&- 4>&- & wait $!
  done
  if [ -n "$pending" ]; then printf '\rkatuna-metrics-file| %s\n' "$pending"; fi
) &
follower=$!
while [ -z "$ready" ] && kill -0 "$follower" 2>/dev/null; do sleep 0.01; done
""" + RUN_COMMAND + r"""kill -USR1 "$follower"; wait "$follower"
printf '\rkatuna-metrics-begin.\n'
if [ -r "$file" ] && [ -n "$bulk" ]; then
  LC_ALL=C awk '{ printf "\rkatuna-metrics-end| %s\n", $0 }' <"$file"
elif [ -r "$file" ]; then
  while IFS= read -r line || [ -n "$line" ]; do printf '\rkatuna-metrics-end| %s\n' "$line"; done <"$file"
fi
printf '\rkatuna-metrics-end.\n'
exit "$code"
"""
"""``sh -c WRAPPER katuna-metrics-file PATH COMMAND...``. The follower copies each new line of the
file behind :data:`MARK` while the command runs, and stops one full read after it ended. Where
the image has ``ls``, ``tail`` and ``awk`` (busybox's, GNU's with mawk or gawk), it looks at the
file every 0.2 s (``ls -dinL``: inode and size), and when the file grew reads it from the first
byte not copied (``tail -c +N``) with ``awk``, which prints the complete lines and gives back
where the line it left unended begins: the file is read a block at a time, its lines kept whole,
and a file truncated below what was copied, or another file in its place, is read again from its
start (as Katib's collector and katuna's local follower read it). Without those tools the shell
copies it line by line (``read``, a byte at a time) from the file it first opened. It
tells the script it is ready (``USR2``, once its own ``USR1`` trap is set) before the command
starts, so a command that ends at once cannot kill it with the ``USR1`` meant to stop it. Then
the script prints the whole file as it is at the end (``awk``, else ``read``) behind :data:`END_MARK`, between
:data:`END_BEGIN` and :data:`END_DONE` (both even when there is no file): what Katib's collector
reads, a file rewritten in place or replaced included (:func:`final_lines`). Each line the
script prints starts with a carriage return, where katuna's readers cut a log's lines: the
trial's own output, which the script shares, may have a line begun and not ended (a progress
bar redrawn in place), which would otherwise hold the script's line and hide its mark. SIGTERM and SIGINT are caught before the
command starts: one that came first ends the wrapper with 143 and the command never starts, one
that comes while it starts is passed on once it has. The script holds no ``$$`` nor ``$(``: the
kubelet expands those in a container's command (``$$`` to ``$``, ``$(NAME)`` to a variable's
value), so the wrapper's own process id is written ``${$}``."""

END_MARK = "katuna-metrics-end| "
"""What starts each line of the metrics file as the wrapper prints it whole once the command ended."""

END_BEGIN = "katuna-metrics-begin."
"""The line the wrapper prints before it prints the whole file: an end copy read without it lost
its start (the kubelet rotated the log while the wrapper printed it, and the API serves only the
lines since)."""

END_DONE = "katuna-metrics-end."
"""The line the wrapper prints once it printed the whole file (or found no file)."""


class NoCommand(PermanentError):
    """The primary container has no command to wrap (it runs its image's entrypoint)."""


EVENT_MARK = "katuna-metrics-event| "
"""What starts each record of the event files the TensorFlowEvent collector's wrapper prints
while the command runs (those it prints once the command ended start with :data:`MARK`)."""

EVENTS_WRAPPER = r"""dir=$1; source=$2; names=$3; shift 3
child=; term=; ready=
if command -v python3 >/dev/null 2>&1; then python=python3; else python=python; fi
trap 'ready=1' USR2
trap 'term=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' TERM INT
"$python" -c "$source" --follow 'katuna-metrics-event| ' "$dir" "$names" ${$} &
follower=$!
while [ -z "$ready" ] && kill -0 "$follower" 2>/dev/null; do sleep 0.01 2>/dev/null; done
""" + RUN_COMMAND + r"""kill -TERM "$follower" 2>/dev/null
while kill -0 "$follower" 2>/dev/null; do wait "$follower"; done
"$python" -c "$source" 'katuna-metrics-file| ' "$dir" "$names" && printf '\rkatuna-metrics-events-end.\n'
exit "$code"
"""
"""``sh -c EVENTS_WRAPPER katuna-metrics-file DIRECTORY SOURCE NAMES COMMAND...``: while the
command runs, the reader's SOURCE follows the event files (:func:`~functions.core.tfevents.follow`),
printing each record of the metrics behind :data:`EVENT_MARK` as it is written, so a stop that
reads the log before it ends the trial (its study's end) finds what it wrote so far. The command
starts once the follower tells the script it is ready (``USR2``, its SIGTERM handler set, as
:data:`WRAPPER`'s follower does), so a command that ends at once cannot kill it before its last
look. Once the command ended, the follower is ended (it looks once more first) and waited for,
and the reader's SOURCE (:mod:`functions.core.tfevents`, as Python 3.6 runs it:
:mod:`functions.core.portable_source`) prints the scalars of the event files under DIRECTORY
that a metric of NAMES (a JSON list) matches behind :data:`MARK`, as Katib's TensorFlowEvent
collector reads them when the training has ended: those that reduce as all of them do, a bounded
number (:func:`~functions.core.tfevents.kept_reports`): what a trial's end reads, the
follower's records left out; then :data:`EVENTS_DONE`, once it printed them all. A log without
that line (read while the reader printed, or of a container killed first) gives the follower's
records instead (:class:`EndCopy`). The image needs ``python3`` or ``python`` of version 3.6 or
later, as TensorFlow's have since 1.13."""

EVENTS_DONE = "katuna-metrics-events-end."
"""The line the TensorFlowEvent collector's wrapper prints once the reader at the end printed
every record it prints."""


def wrap(manifest: Mapping[str, Any], container: str, path: str) -> dict[str, Any]:
    """``manifest`` (a Job, or any kind with pod templates) with container ``container`` of
    each pod template wrapped to copy the metrics file at ``path`` to its output."""
    return _wrap(manifest, container, "File", [WRAPPER, VOLUME, path], posixpath.dirname(path))


def wrap_events(manifest: Mapping[str, Any], container: str, directory: str,
                metrics: Iterable[str]) -> dict[str, Any]:
    """``manifest`` with container ``container`` of each pod template wrapped to print the
    scalars of ``metrics`` in the TensorFlow event files under ``directory`` once its command
    ended; an ``emptyDir`` is mounted at the directory itself, as Katib mounts one."""
    script = [EVENTS_WRAPPER, VOLUME, directory, portable(inspect.getsource(tfevents)), json.dumps(list(metrics))]
    return _wrap(manifest, container, "TensorFlowEvent", script, directory)


def _wrap(manifest: Mapping[str, Any], container: str, collector: str, script: list[str],
          folder: str) -> dict[str, Any]:
    wrapped = copy.deepcopy(dict(manifest))
    why = unwrappable(wrapped, container, collector)
    if why is not None:
        raise NoCommand(f"{why.path}: {why.message}")
    for _, pod in _pod_specs(wrapped, ""):
        for item in pod["containers"]:
            if isinstance(item, dict) and item.get("name") == container:
                _wrap_container(pod, item, script, folder)
    return wrapped


def unwrappable(manifest: Mapping[str, Any], container: str, collector: str) -> Problem | None:
    """Why container ``container`` of the workload ``manifest`` (a ``trialSpec``, or the workload
    rendered from it) cannot be wrapped for the ``collector`` (``File``, ``TensorFlowEvent``),
    with the study's path (the collector's kind, or the container's command): no pod template holds
    a container of that name (a TrainJob, an Argo Workflow or a Tekton PipelineRun describes its
    containers otherwise), or one has no ``command`` (it runs its image's entrypoint, which
    katuna cannot read; Katib reads it from the image's registry). None when it can be."""
    found = [(f"{path}.containers[{i}]", item) for path, pod in _pod_specs(manifest, "")
             for i, item in enumerate(pod["containers"]) if isinstance(item, Mapping) and item.get("name") == container]
    if not found:
        return Problem("metricsCollector.kind", (
            f"the {collector} collector on Kubernetes wraps the primary container's command in the workload's "
            f"pod templates, and the trial's {manifest.get('kind')} has no pod template container {container!r} "
            f"(a TrainJob, an Argo Workflow or a Tekton PipelineRun describes its containers otherwise): use the "
            f"StdOut collector"))
    bare = next((path for path, item in found if not item.get("command")), None)
    if bare is not None:
        return no_command(bare, container, f"with the {collector} collector, which wraps the primary container's "
                                           f"command")
    return None


def _wrap_container(pod: dict[str, Any], container: dict[str, Any], script: list[str], folder: str) -> None:
    container["command"] = ["sh", "-c", *script, *container["command"], *(container.get("args") or [])]
    container.pop("args", None)
    if posixpath.isabs(folder) and not _mounted(container, folder):
        pod["volumes"] = [*(pod.get("volumes") or []), {"name": VOLUME, "emptyDir": {}}]
        container["volumeMounts"] = [*(container.get("volumeMounts") or []),
                                     {"name": VOLUME, "mountPath": posixpath.normpath(folder)}]


def _mounted(container: Mapping[str, Any], folder: str) -> bool:
    """Whether a volume is mounted at ``folder`` already (the trial brings its own)."""
    return any(posixpath.normpath(str(m.get("mountPath"))) == posixpath.normpath(folder)
               for m in container.get("volumeMounts") or [])


def _pod_specs(tree: Any, path: str) -> Iterator[tuple[str, Any]]:
    """``(path, pod spec)`` of every pod spec in the manifest: each mapping holding a
    ``containers`` list."""
    if isinstance(tree, Mapping):
        if isinstance(tree.get("containers"), list):
            yield path, tree
        for key, value in tree.items():
            yield from _pod_specs(value, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _pod_specs(value, f"{path}[{i}]")


def event_lines(output: Iterable[str]) -> Iterator[str]:
    """The event files' records among a wrapped container's output lines, as the
    TensorFlowEvent collector's wrapper printed them while the command ran."""
    for line in output:
        if line.startswith(EVENT_MARK):
            yield line[len(EVENT_MARK):]


def file_lines(output: Iterable[str]) -> Iterator[str]:
    """The metrics file's lines among a wrapped container's output lines, as the wrapper copied
    them while the command ran (what progress is read from)."""
    for line in output:
        if line.startswith(MARK):
            yield line[len(MARK):]


class EndCopy:
    """The metrics file as the wrapper printed it whole once the command ended, read from a
    wrapped container's output lines (:meth:`lines`): ``complete`` once its closing line was
    read (a container killed while printing it has none), ``whole`` once its opening line was
    read too (a log the kubelet rotated while the wrapper printed the copy, or a wrapper of an
    earlier katuna, has none). For the TensorFlowEvent collector's wrapper, whether the lines
    read hold records its follower printed (``followed``) and the line that closes the reader's
    records at the end (``events_done``): :attr:`followed_only`."""

    def __init__(self) -> None:
        self.complete = False
        self.begun = False
        self.followed = False
        self.events_done = False

    @property
    def whole(self) -> bool:
        return self.begun and self.complete

    @property
    def followed_only(self) -> bool:
        """Whether the event files' records the follower printed as they were written give the
        metrics, and not those the reader at the end printed: the lines read hold the former,
        and not the end's closing line (:data:`EVENTS_DONE`), so the end's records read, if
        any, are a part of them (a read while the reader printed them; a container killed
        first), where the follower's are every record the command wrote."""
        return self.followed and not self.events_done

    def lines(self, output: Iterable[str]) -> Iterator[str]:
        """The file's lines printed at the end, among ``output``."""
        for line in output:
            if line.startswith(END_MARK):
                yield line[len(END_MARK):]
            elif line.rstrip("\n") == END_BEGIN:
                self.begun = True
            elif line.rstrip("\n") == END_DONE:
                self.complete = True
            elif line.startswith(EVENT_MARK):
                self.followed = True
            elif line.rstrip("\n") == EVENTS_DONE:
                self.events_done = True


def final_lines(read: Callable[[], Iterable[str]]) -> Iterator[str]:
    """The metrics file's lines in a wrapped container's output, which ``read`` reads (twice:
    the output is streamed, never held): the whole file as it was when the command ended, as
    Katib's collector reads it then (a file rewritten in place or replaced gives its last
    content), when the wrapper printed it to its end (all the log still holds of it, where the
    kubelet rotated the log while the wrapper printed it: the lines copied before are gone
    too); else the lines copied while the command ran (the container was killed first). For
    the TensorFlowEvent collector, the records the reader printed at the end, unless it was
    killed before it printed them all: then those its follower printed as they were written
    (:attr:`EndCopy.followed_only`)."""
    ended = EndCopy()
    deque(ended.lines(read()), maxlen=0)
    if ended.complete:
        return EndCopy().lines(read())
    return event_lines(read()) if ended.followed_only else file_lines(read())
