"""Report a trial's intermediate values to katuna, so early stopping reaches trials on a cluster.

Standard library only, so a trial image can carry this one file without installing katuna:

    from reporter import report          # or: from functions.reporter import report
    for epoch in range(1, epochs + 1):
        ...
        report(epoch, accuracy=accuracy)  # also print(f"epoch={epoch} accuracy={accuracy}")

It posts a ``dev.katuna.trial.progress`` CloudEvent to ``KATUNA_REPORT_URL``, which katuna sets
for trials of studies with early stopping, and does nothing elsewhere. Each report carries the
attempt's ``KATUNA_REPORT_TOKEN``, set with it: katuna takes a report only with its attempt's
token, so a copy of this file from a release before the token is refused (the trial's log is
still read for its progress). On a cluster each report names its pod too (``KATUNA_POD_UID``,
its uid, which katuna sets with the token): a pod its Job made in place of a disrupted one runs
the trial again from its start, in the same attempt, and its reports are judged as its own,
not taken for the lost pod's sent again. Where the trial's workload runs this code in several
pods (a TrainJob's nodes, a Job of several pods with ``primaryPodLabels``), only its primary pods
report, as katuna reads only their logs (``KATUNA_PRIMARY_POD_LABELS``); the others' ``report``
sends nothing and returns False. The posts go out in the background, in order, so a slow or
unreachable broker never holds up training; the reports still waiting when the trial exits get
:data:`EXIT_WAIT` seconds to go out, and ``flush()`` waits for them at any point. A trial the
pruner stops is ended from outside (its Job is deleted); ``report`` itself never raises, not
even for a step or value katuna would refuse (it returns False). NaN and
the infinities are reported too, by name (``"nan"``, ``"inf"``, ``"-inf"``: JSON has no number
for them), as the pruner stops a trial whose values turned NaN.

Where a SinkBinding binds the trial's pod to a broker that needs Knative Eventing's OIDC tokens,
the post carries the token the binding mounts (``/oidc/token``, or ``KATUNA_SINK_TOKEN_FILE``,
read at each report as it is rotated); an https sink is trusted with the CA certificates in
``K_CA_CERTS`` and the cluster's trust bundles the binding mounts (:data:`TRUST_BUNDLES`) as well
as the system's. Each report carries the extensions of the binding's
``ceOverrides``, which Knative passes in ``K_CE_OVERRIDES``, as every event a Knative source
sends does; overrides Knative would not send (:func:`parse_overrides`) are named once on
stderr, and no report is sent with them (the trial runs on; its log is still read for its
progress).

The overrides are read here for katuna's service too (its settings take them from
:func:`parse_overrides`), so the one file a trial image carries holds the only copy of the rules.
"""

from __future__ import annotations

import atexit
import http.client
import json
import math
import os
import re
import ssl
import sys
import threading
import time
import unicodedata
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Mapping

OIDC_MOUNT = "/oidc/token"
"""Where a SinkBinding mounts the OIDC token for its sink."""
TRUST_BUNDLES = "/knative-custom-certs"
"""Where Knative's SinkBinding mounts the cluster's trust bundles (the ConfigMaps labelled
``networking.knative.dev/trust-bundle: "true"``), whose CAs Knative's own senders trust besides
``K_CA_CERTS``; ``KATUNA_TRUST_BUNDLES`` names another folder."""


MAX_WAITING = 1000
"""Reports kept while the sink is slower than the trial reports; past that the oldest waiting
one is dropped (the pruner judges the latest steps)."""

EXIT_WAIT = 5.0
"""Seconds an exiting trial gives its waiting reports to go out."""

POST_TIMEOUT = 60.0
"""Seconds one post may take: a Knative broker answers once the report is handled, and a post
given up cancels its delivery (katuna answers a report without a reply, so it waits for one
handling, which may wait out a busy database's lock)."""

OVERRIDES = "K_CE_OVERRIDES"
"""Where a SinkBinding gives its ``ceOverrides`` as JSON (``{"extensions": {"team": "ml"}}``;
empty without them)."""

OVERRIDES_EXAMPLE = '{"extensions": {"team": "ml"}}'

EXTENSION_NAME = re.compile(r"[A-Za-z0-9]+")
"""An extension name as Knative's webhook takes it (duck/v1 ``validateExtensionName``); its
CloudEvents SDK sets it lower-cased."""

CONTEXT_ATTRIBUTES = frozenset({"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject",
                                "time", "data"})
"""CloudEvents 1.0's context attributes, and ``data``, which its JSON format reserves: Knative's
CloudEvents SDK refuses an extension so named, failing every send."""

KATUNAS = frozenset({"katunasignature", "apiversion", "kind", "name", "namespace", "traceparent", "tracestate"})
"""Extensions katuna sets itself: its signature (``functions.core.event_signature``), a
resource event's object attributes (those of an ApiServerSource's event, which the Triggers
route by), and the trace context an event carries on from its cause
(``functions.core.trace_context``): one fixed by an override would put every event without a
cause in one trace."""

_HEADER_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in '"%')
"""What a ``ce-`` header value holds as it is: printable ASCII but ``"`` and ``%`` (the
CloudEvents HTTP binding percent-encodes the rest, UTF-8 first)."""

_REFUSED: set[str] = set()
"""The ``K_CE_OVERRIDES`` texts already named on stderr."""

_UNEXPECTED: set[str] = set()
"""The kinds of error a post raised past :func:`_post`'s own, already named on stderr."""


def report(step: int, **metrics: float) -> bool:
    """Send the objective's value at ``step``, in the background; whether it was taken to be
    sent (katuna asked for reports, ``metrics`` hold the objective, this pod is one of the
    trial's primary pods, and the binding's overrides are ones Knative sends). A step that is
    no number of 0 or more (``None``, NaN, ``-1``), or a value that is no number (``None``,
    ``"n/a"``), is not sent, and the training goes on: katuna would refuse the report."""
    env = os.environ
    url, objective = env.get("KATUNA_REPORT_URL"), env.get("KATUNA_OBJECTIVE")
    if not url or objective not in metrics or not _primary(env):
        return False
    ids = [env.get(k, "") for k in ("KATUNA_STUDY", "KATUNA_STUDY_UID", "KATUNA_TRIAL", "KATUNA_ATTEMPT")]
    try:
        numbers = int(ids[2] or 0), int(ids[3] or 1), int(step), _json_value(float(metrics[objective]))
    except (TypeError, ValueError, OverflowError):
        return False
    if numbers[2] < 0:
        return False
    data = {"study": ids[0], "uid": ids[1], "trial": numbers[0], "attempt": numbers[1], "step": numbers[2],
            "value": numbers[3], "token": env.get("KATUNA_REPORT_TOKEN", "")}
    pod = env.get("KATUNA_POD_UID")
    if pod:
        data["pod"] = pod
    extensions = _extensions(env.get(OVERRIDES, ""))
    if extensions is None:
        return False
    headers = {**extensions, "ce-specversion": "1.0", "ce-type": "dev.katuna.trial.progress",
               "ce-source": "/katuna/reporter", "ce-id": "/".join([*ids[1:], *([pod] if pod else []), "progress",
                                                                   str(step)]),
               "ce-subject": f"{ids[0]}/{ids[2]}", "content-type": "application/json"}
    _SENDER.put(url, json.dumps(data, allow_nan=False).encode(), headers)
    return True


def _primary(env: Mapping[str, str]) -> bool:
    """Whether this pod is one of the trial's primary pods, whose reports are the trial's: its
    labels (``KATUNA_POD_LABEL_1``, ... from the downward API) are those katuna names
    (``KATUNA_PRIMARY_POD_LABELS``, a JSON object, in its keys' order), or katuna names none (a
    trial of one pod, a local one). A TrainJob's other nodes, or a Job's other pods, run the
    same code and would report their own values."""
    try:
        wanted = json.loads(env.get("KATUNA_PRIMARY_POD_LABELS") or "{}")
    except ValueError:
        return True
    if not isinstance(wanted, dict):
        return True
    return all(env.get(f"KATUNA_POD_LABEL_{i}") == str(wanted[key]) for i, key in enumerate(sorted(wanted), 1))


def flush(timeout: float = EXIT_WAIT) -> bool:
    """Wait up to ``timeout`` seconds for every report taken so far to go out; whether all that
    went out since the last flush were accepted, none dropped."""
    return _SENDER.flush(timeout)


def _json_value(value: float) -> float | str:
    """A finite value as it is; NaN or an infinity by name, as katuna's events carry them (this
    file stands alone, so it spells them itself)."""
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"


def _extensions(text: str) -> dict[str, str] | None:
    """The ``ce-`` headers of the overrides ``text`` sets, their values percent-encoded as the
    CloudEvents HTTP binding has them; None, said once on stderr, where Knative would not send them."""
    try:
        return {f"ce-{name}": urllib.parse.quote(value, safe=_HEADER_SAFE) for name, value in parse_overrides(text)}
    except ValueError as exc:
        if text not in _REFUSED:
            _REFUSED.add(text)
            print(f"katuna reporter: {exc}; progress reports are not sent (the trial's log is still read for its "
                  "progress)", file=sys.stderr, flush=True)
        return None


class _Unredirected(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: urllib would resend a report answered 301, 302 or 303 as a GET without
    its body, and with the OIDC token, to whatever host the answer names. A copy of
    :class:`functions.adapters.http_unredirected.Unredirected`, as this file imports nothing but
    the standard library: a trial image carries it alone (``from reporter import report``), and
    the import contracts keep it independent of the adapters."""

    def redirect_request(self, req: urllib.request.Request, fp: object, code: int, msg: str, headers: object,
                         newurl: str) -> None:
        return None


def _post(url: str, body: bytes, headers: dict[str, str]) -> bool:
    """POST ``body``, with the sink's OIDC token and CA certificates where the pod has them;
    whether it was accepted (a redirect, never followed, is not)."""
    env = os.environ
    try:
        context = tls_context(env.get("K_CA_CERTS"), env.get("KATUNA_TRUST_BUNDLES") or TRUST_BUNDLES)
        headers = {**headers, **_authorization(env.get("KATUNA_SINK_TOKEN_FILE") or OIDC_MOUNT)}
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _Unredirected())
        with opener.open(request, timeout=POST_TIMEOUT):
            return True
    except (OSError, ValueError, http.client.HTTPException):
        return False


def tls_context(ca_certs: str | None, bundles: str) -> ssl.SSLContext:
    """A TLS context trusting what Knative's senders trust: the system's CAs, the certificates
    in every file under ``bundles`` (a file with none is passed over, as they pass it) and those
    of ``ca_certs`` (``ssl.SSLError`` or ``ValueError`` where it holds none). The last one made
    is used again while the bundles' files are unchanged, as the system's CAs take milliseconds
    to load and every post asks for a context; a rotated bundle is a changed file."""
    global _last_context
    key = (ca_certs, bundles, _bundle_files(bundles))
    with _CONTEXT_LOCK:
        if _last_context is not None and _last_context[0] == key:
            return _last_context[1]
    context = ssl.create_default_context()
    for path, *_ in key[2]:
        try:
            with open(path, encoding="ascii") as file:
                context.load_verify_locations(cadata=file.read())
        except (OSError, ValueError, ssl.SSLError):
            continue
    if ca_certs:
        context.load_verify_locations(cadata=ca_certs)
    with _CONTEXT_LOCK:
        _last_context = (key, context)
    return context


_CONTEXT_LOCK = threading.Lock()
_last_context: tuple[tuple[object, ...], ssl.SSLContext] | None = None


def _bundle_files(bundles: str) -> tuple[tuple[str, int, int, int], ...]:
    """Each file under ``bundles`` with what changes when it is replaced (its inode, size and
    modification time, read through the links a projected volume swaps on rotation)."""
    found = []
    for folder, _, names in os.walk(bundles):
        for name in sorted(names):
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            found.append((path, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def _authorization(path: str) -> dict[str, str]:
    """The bearer token the file holds now; none without the file (OIDC is off)."""
    try:
        with open(path) as file:
            token = file.read().strip()
    except FileNotFoundError:
        return {}
    return {"Authorization": f"Bearer {token}"} if token else {}


class _Sender:
    """One background thread posting the reports in the order they were made: a report waits,
    not the trial, when the sink is slow or unreachable (each post may take up to its timeout).
    Its exit flush and fork reset are registered with the first report, so a process that only
    imports the module (katuna's service reads :func:`parse_overrides`) gains no hooks."""

    def __init__(self) -> None:
        self._reset()
        self._hooked = False

    def _hook(self) -> None:
        """Flush at exit, and start afresh in a forked child: once, with the first report."""
        if self._hooked:
            return
        self._hooked = True
        atexit.register(self.flush, EXIT_WAIT)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """Nothing waiting, no thread yet: as a new process, a forked child included (its copy
        of the parent's thread does not run, and its lock may have been held at the fork)."""
        self._waiting: deque[tuple[str, bytes, dict[str, str]]] = deque()
        self._changed = threading.Condition()
        self._posting = False
        self._failures = 0
        self._thread: threading.Thread | None = None

    def put(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """Queue a post, dropping the oldest waiting one past :data:`MAX_WAITING`."""
        with self._changed:
            self._hook()
            if len(self._waiting) >= MAX_WAITING:
                self._waiting.popleft()
                self._failures += 1
            self._waiting.append((url, body, headers))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="katuna-reporter", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                post = self._waiting.popleft()
                self._posting = True
            accepted = False
            try:
                accepted = _post(*post)
            except Exception as exc:
                _say_once(exc)
            finally:
                with self._changed:
                    self._posting = False
                    self._failures += not accepted
                    self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        """See :func:`flush`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._waiting or self._posting:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            failures, self._failures = self._failures, 0
        return not failures


def _say_once(exc: Exception) -> None:
    """Name on stderr, once for each kind, an error a post raised that :func:`_post` does not
    expect (an ``OverflowError`` for a port past 65535 in ``KATUNA_REPORT_URL``): that report is
    lost, and the next ones are still sent, where the thread would otherwise end and every later
    report wait unsent."""
    kind = type(exc).__name__
    if kind in _UNEXPECTED:
        return
    _UNEXPECTED.add(kind)
    print(f"katuna reporter: a progress report could not be sent: {kind}: {exc}; the next ones are still tried",
          file=sys.stderr, flush=True)


def parse_overrides(text: str) -> tuple[tuple[str, str], ...]:
    """The extensions ``text`` (``K_CE_OVERRIDES``) sets, names lower-cased, sorted by name;
    none for an empty text. A ``ValueError`` names what Knative would not send: an extension
    named after a context attribute, one katuna or the broker (``knative*``) sets, a value no
    CloudEvents string holds."""
    if not text.strip():
        return ()
    try:
        overrides = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{OVERRIDES}: expected JSON such as {OVERRIDES_EXAMPLE}, could not read it: {exc}") from exc
    if not isinstance(overrides, dict):
        raise ValueError(f"{OVERRIDES}: expected a JSON object such as {OVERRIDES_EXAMPLE}, "
                         f"got {type(overrides).__name__}")
    unknown = sorted(set(overrides) - {"extensions"})
    if unknown:
        raise ValueError(f"{OVERRIDES}: expected only 'extensions' (a SinkBinding's ceOverrides), got {unknown}")
    extensions = overrides.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise ValueError(f"{OVERRIDES}: extensions: expected an object of names to strings such as "
                         f"{OVERRIDES_EXAMPLE}")
    found: dict[str, str] = {}
    for name, value in extensions.items():
        lowered = _extension_name(name)
        if lowered in found:
            raise ValueError(f"{OVERRIDES}: extensions: {name!r} names the extension {lowered!r} a second time "
                             "(names are taken lower-cased)")
        found[lowered] = _extension_value(name, value)
    return tuple(sorted(found.items()))


def _extension_name(name: str) -> str:
    """``name`` lower-cased, where it may name an override."""
    if not EXTENSION_NAME.fullmatch(name):
        raise ValueError(f"{OVERRIDES}: extensions.{name!r}: expected an extension name of letters a-z, A-Z "
                         "and digits only")
    lowered = name.lower()
    if lowered in CONTEXT_ATTRIBUTES:
        raise ValueError(f"{OVERRIDES}: extensions.{name}: {lowered!r} is a CloudEvents context attribute, "
                         "which an extension may not override; expected an extension name of your own")
    if lowered in KATUNAS or lowered.startswith("knative"):
        raise ValueError(f"{OVERRIDES}: extensions.{name}: {lowered!r} is an attribute katuna or the broker "
                         "sets itself, which an override may not replace; expected an extension name of your own")
    return lowered


def _extension_value(name: str, value: object) -> str:
    """``value``, where it is a CloudEvents string: text without control characters, lone
    surrogates or noncharacters."""
    if not isinstance(value, str):
        raise ValueError(f"{OVERRIDES}: extensions.{name}: expected a string, got {json.dumps(value)}")
    for character in value:
        code = ord(character)
        if unicodedata.category(character) in ("Cc", "Cs") or 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
            raise ValueError(f"{OVERRIDES}: extensions.{name}: expected text a CloudEvents string may hold, got "
                             f"the character U+{code:04X}, a control character or no character")
    return value


_SENDER = _Sender()
